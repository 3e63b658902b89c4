from django.contrib import admin

from academy.webhooks.models import Delivery, Endpoint


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = ("id", "tenant", "url", "enabled", "failing_since", "created_at")
    list_filter = ("enabled",)
    list_select_related = ("tenant",)
    readonly_fields = ("secret", "failing_since", "created_at")


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("message_id", "endpoint", "event_type", "status", "attempts",
                    "last_status_code", "last_response_ms", "created_at", "delivered_at")
    list_filter = ("status", "event_type")
    list_select_related = ("endpoint",)
    readonly_fields = [field.name for field in Delivery._meta.fields]
