from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "academy.tenants"
    label = "tenants"
