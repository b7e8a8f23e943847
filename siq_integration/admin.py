from django.contrib import admin

from .models import CallWindow, Portal, WebhookPublicKey


@admin.register(Portal)
class PortalAdmin(admin.ModelAdmin):
    # Encrypted fields are not editable and never listed: secrets stay out of the HTML.
    list_display = ("name", "data_center", "dialect", "screen_name", "plan", "connected_at")
    list_filter = ("dialect", "data_center", "plan")
    search_fields = ("name", "screen_name")
    readonly_fields = (
        "accounts_url",
        "token_expires_at",
        "granted_scopes",
        "connected_at",
        "last_success_at",
        "last_error_at",
        "last_error",
        "rate_limited_until",
        "webhook_id",
    )


@admin.register(WebhookPublicKey)
class WebhookPublicKeyAdmin(admin.ModelAdmin):
    list_display = ("portal", "key_id", "created_at")


@admin.register(CallWindow)
class CallWindowAdmin(admin.ModelAdmin):
    list_display = ("portal", "span", "starts_at", "used", "used_by_actions")
    list_filter = ("span",)
