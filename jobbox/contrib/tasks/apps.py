"""The app that makes Django's Tasks framework a jobbox job kind (`jobbox.contrib.tasks`)."""

from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "jobbox.contrib.tasks"
    label = "jobbox_tasks"
    verbose_name = "Jobbox: Django tasks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from jobbox.contrib.tasks import lifecycle
        from jobbox.contrib.tasks.tracking import TaskTracking
        from jobbox.registry import register

        register(TaskTracking())
        lifecycle.connect_signals()
