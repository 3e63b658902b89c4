from django.apps import AppConfig


class MaintenanceConfig(AppConfig):
    name = "academy.maintenance"
    label = "maintenance"
