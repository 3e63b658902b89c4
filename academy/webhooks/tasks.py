"""The worker's side of webhooks: one thin task, run by beat and after transitions."""

from celery import shared_task

from academy.webhooks import delivery


@shared_task(name="academy.webhooks.deliver_due", ignore_result=True)
def deliver_due() -> int:
    return delivery.deliver_due()
