"""The videos' admin: the list with their state, a video's live representation and log, and
the cancel and retry actions (academy.job_admin)."""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from academy import job_admin
from academy.videos import services
from academy.videos.models import Video


@admin.register(Video)
class VideoAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "tenant", "uploaded_by", "status", "attempt", "updated_at")
    list_select_related = ("tenant", "uploaded_by")  # one query for the page
    list_filter = ("status", "tenant")
    search_fields = ("title",)
    actions = ("cancel_selected", "retry_selected")
    readonly_fields = ("live", "status", "version", "attempt", "attempts", "previous_attempts",
                       "log", "leased_by", "leased_until", "hls_path")
    fields = ("title", "tenant", "uploaded_by", "live", *readonly_fields[1:], "error_reason")

    # Jobs come from uploads, and change only through their transitions (each one versioned
    # and published to Redis): the admin views them and acts through the services.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="Live state")
    def live(self, video: Video) -> str:
        return job_admin.live_representation(video)

    @admin.action(description="Cancel the selected videos")
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Video]) -> None:
        job_admin.run_action(self, request, queryset, lambda job_id, tenant: (
            services.cancel_video(int(job_id), tenant_id=tenant)), "cancelled")

    @admin.action(description="Retry the selected videos")
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[Video]) -> None:
        job_admin.run_action(self, request, queryset, lambda job_id, tenant: (
            services.retry_video(int(job_id), tenant_id=tenant)), "queued again")
