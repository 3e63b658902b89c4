from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "academy.webhooks"
    label = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from academy.webhooks import metrics, outbox  # noqa: F401 - metrics exported from start
        from jobbox.signals import job_transitioned

        job_transitioned.connect(outbox.record_transition, dispatch_uid="webhooks-outbox")
