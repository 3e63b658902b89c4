"""The AI jobs' admin: the list with their state, a job's live representation and log, and
the cancel and retry actions (academy.job_admin)."""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from academy import job_admin
from academy.ai import services
from academy.ai.models import AIJobModel


@admin.register(AIJobModel)
class AIJobAdmin(admin.ModelAdmin):
    list_display = ("job_id", "job_type", "tenant", "created_by", "status", "attempt",
                    "updated_at")
    list_select_related = ("tenant", "created_by")  # one query for the page
    list_filter = ("status", "job_type", "tenant")
    search_fields = ("job_id",)
    actions = ("cancel_selected", "retry_selected")
    readonly_fields = ("live", "job_id", "status", "version", "attempt", "attempts",
                       "previous_attempts", "log", "leased_by", "leased_until", "result")
    fields = ("job_type", "tenant", "created_by", *readonly_fields, "error_message")

    # Jobs come from uploads, and change only through their transitions (each one versioned
    # and published to Redis): the admin views them and acts through the services.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="Live state")
    def live(self, job: AIJobModel) -> str:
        return job_admin.live_representation(job)

    @admin.action(description="Cancel the selected jobs")
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[AIJobModel]) -> None:
        job_admin.run_action(self, request, queryset, lambda job_id, tenant: (
            services.ai_job_cancel(job_id=job_id, tenant_id=tenant)), "cancelled")

    @admin.action(description="Retry the selected jobs")
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[AIJobModel]) -> None:
        job_admin.run_action(self, request, queryset, lambda job_id, tenant: (
            services.ai_job_retry(job_id=job_id, tenant_id=tenant)), "queued again")
