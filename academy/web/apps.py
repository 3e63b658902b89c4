from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "academy.web"
    label = "web"
    verbose_name = "Job box web page"
