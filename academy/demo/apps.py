from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "academy.demo"
    label = "demo"
