"""The admin of tenants (academies) and memberships: a superuser can put any user, themselves
included, in an academy. A membership saved here invalidates the user's cached principal
like any other change of the model (JOBBOX["PRINCIPAL_MODELS"])."""

from django.contrib import admin

from academy.tenants.models import Membership, Tenant


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ("user",)


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "created_at")
    search_fields = ("slug", "name")
    inlines = (MembershipInline,)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "tenant", "role")
    list_select_related = ("user", "tenant")  # one query for the page, not one per row
    list_filter = ("tenant",)
    search_fields = ("user__username", "tenant__slug")
    autocomplete_fields = ("user", "tenant")
