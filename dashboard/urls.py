from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from .views import (
    account,
    actions,
    alert_history,
    alerts,
    audit,
    canned,
    health,
    live,
    portals,
    users,
    webhooks,
)

urlpatterns = [
    path("", live.dashboard, name="home"),
    path("live/chats/<int:chat_id>/", live.chat_drawer, name="chat_drawer"),
    # Alerts
    path("alerts/", alert_history.alert_history, name="alert_history"),
    path("alerts.csv", alert_history.alert_history_csv, name="alert_history_csv"),
    path("alerts/<int:alert_id>/", alerts.detail, name="alert_detail"),
    path("alerts/<int:alert_id>/acknowledge/", alerts.acknowledge, name="alert_acknowledge"),
    path("alerts/<int:alert_id>/snooze/", alerts.snooze, name="alert_snooze"),
    path("alerts/notifications/", alerts.notification_settings, name="notification_settings"),
    # The address pages loaded before the rename still post to.
    path("alerts/signals/", alerts.notification_settings, name="alert_signals"),
    # Supervisor actions
    path("live/chats/<int:chat_id>/transfer/", actions.chat_transfer, name="chat_transfer"),
    path("live/chats/<int:chat_id>/end/", actions.chat_end, name="chat_end"),
    path("live/chats/<int:chat_id>/message/", actions.chat_message, name="chat_message"),
    path("live/chats/<int:chat_id>/pickup/", actions.chat_pickup, name="chat_pickup"),
    path("live/chats/<int:chat_id>/assign/", actions.chat_assign, name="chat_assign"),
    path("live/operators/<int:operator_id>/", actions.operator_panel, name="operator_panel"),
    path(
        "live/operators/<int:operator_id>/status/",
        actions.operator_status,
        name="operator_status",
    ),
    path("live/operators/<int:operator_id>/drain/", actions.operator_drain, name="operator_drain"),
    path("audit/", audit.audit_list, name="audit"),
    path("audit.csv", audit.audit_csv, name="audit_csv"),
    path("api/portals/<uuid:portal_id>/snapshot.json", live.snapshot_json, name="snapshot_json"),
    path(
        "login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/", account.account_settings, name="account"),
    # Portals (connection, health)
    path("portals/", portals.portal_list, name="portals"),
    path("portals/add/", portals.portal_add, name="portal_add"),
    path("portals/<uuid:portal_id>/", portals.portal_detail, name="portal_detail"),
    path("portals/<uuid:portal_id>/edit/", portals.portal_edit, name="portal_edit"),
    path("portals/<uuid:portal_id>/connect/", portals.portal_connect, name="portal_connect"),
    path(
        "portals/<uuid:portal_id>/screen-name/",
        portals.portal_screen_name,
        name="portal_screen_name",
    ),
    path("portals/<uuid:portal_id>/webhook/", portals.portal_webhook, name="portal_webhook"),
    path("portals/<uuid:portal_id>/alerts/", portals.portal_alert_rules, name="portal_alert_rules"),
    path(
        "portals/<uuid:portal_id>/disconnect/", portals.portal_disconnect, name="portal_disconnect"
    ),
    path("portals/<uuid:portal_id>/delete/", portals.portal_delete_view, name="portal_delete"),
    path("oauth/callback/", portals.oauth_callback, name="oauth_callback"),
    # Users and their portal access
    path("users/", users.user_list, name="users"),
    path("users/add/", users.user_add, name="user_add"),
    path("users/<int:user_id>/edit/", users.user_edit, name="user_edit"),
    path("users/<int:user_id>/unlock/", users.user_unlock, name="user_unlock"),
    path("users/unlock-address/", users.address_unlock, name="address_unlock"),
    # Machines
    path("healthz", health.healthz, name="healthz"),
    path("webhooks/salesiq/<uuid:portal_id>/", webhooks.receive, name="webhook"),
    path("admin/", admin.site.urls),
]
# The "Through the day" page (issue 15).
from .views import day  # noqa: E402

urlpatterns += [
    path("day/", day.day_page, name="day"),
    path("day/series.json", day.day_series, name="day_series"),
]
# A portal's service levels: time zone, targets, business hours (issue 15).
from .views import service  # noqa: E402

urlpatterns += [
    path("portals/<uuid:portal_id>/service/", service.portal_service, name="portal_service"),
    path(
        "portals/<uuid:portal_id>/canned-lines/",
        canned.portal_canned_lines,
        name="portal_canned_lines",
    ),
]
# The visitor in Zoho CRM: the drawer's panel, a lead from a chat, CRM on a portal (issue 16).
from .views import crm  # noqa: E402

urlpatterns += [
    path("live/chats/<int:chat_id>/crm/", crm.chat_crm, name="chat_crm"),
    path("live/chats/<int:chat_id>/crm/lead/", crm.chat_crm_lead, name="chat_crm_lead"),
    path("portals/<uuid:portal_id>/crm/add/", crm.portal_crm_add, name="portal_crm_add"),
    path("portals/<uuid:portal_id>/crm/remove/", crm.portal_crm_remove, name="portal_crm_remove"),
    path(
        "portals/<uuid:portal_id>/crm/settings/",
        crm.portal_crm_settings,
        name="portal_crm_settings",
    ),
]
