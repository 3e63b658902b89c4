from django.apps import AppConfig


class ToyAppConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tests.library.toyapp"
    label = "toyapp"

    def ready(self) -> None:
        from jobbox import register
        from tests.library.toyapp.tracking import ChoreTracking

        register(ChoreTracking())
