"""Acknowledge and snooze alerts (Supervisors of the portal and Admins); an alert's page."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
)
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from .. import access
from ..alerts import lifecycle
from ..models import Alert, Profile
from ..realtime.render import render_alerts


def _alert(request: HttpRequest, alert_id: int) -> Alert:
    alert = Alert.objects.select_related("portal", "rule").filter(pk=alert_id).first()
    if alert is None or not access.can_view(request.user, alert.portal):
        raise Http404("No such alert")
    return alert


def _may_act(request: HttpRequest, alert: Alert) -> None:
    if not access.can_act(request.user, alert.portal):
        raise PermissionDenied("Your role can see alerts but not acknowledge or snooze them.")


def _pieces(alert: Alert) -> HttpResponse:
    """The alert's rows as everyone watching gets them, so the page that acted shows the
    change at once even before its websocket brings it."""
    return HttpResponse(render_alerts([alert.pk]))


@login_required
@require_POST
def acknowledge(request: HttpRequest, alert_id: int) -> HttpResponse:
    alert = _alert(request, alert_id)
    _may_act(request, alert)
    alert = lifecycle.acknowledge(alert, request.user)
    return _pieces(alert)


@login_required
@require_POST
def snooze(request: HttpRequest, alert_id: int) -> HttpResponse:
    alert = _alert(request, alert_id)
    _may_act(request, alert)
    try:
        minutes = int(request.POST.get("minutes", ""))
        alert = lifecycle.snooze(alert, request.user, minutes)
    except ValueError:
        return HttpResponseBadRequest("Snooze for 5, 15 or 60 minutes.")
    return _pieces(alert)


@login_required
@require_GET
def detail(request: HttpRequest, alert_id: int) -> HttpResponse:
    alert = _alert(request, alert_id)
    return render(
        request,
        "alerts/detail.html",
        {
            "alert": alert,
            "escalations": list(alert.escalations.all()),
            "can_act": access.can_act(request.user, alert.portal),
            # What a webhook answered, in short: for Admins only (it may come from inside).
            "show_reasons": access.is_admin(request.user),
        },
    )


@login_required
@require_POST
def notification_settings(request: HttpRequest) -> HttpResponse:
    """Remember how new alerts reach this user (their notification settings): ``desktop``
    and/or ``sound``, "1" or "0"."""
    changes = {}
    for field, name in (("notify_desktop", "desktop"), ("notify_sound", "sound")):
        value = request.POST.get(name)
        if value is not None:
            if value not in ("0", "1"):
                return HttpResponseBadRequest(f"{name} is 1 (on) or 0 (off).")
            changes[field] = value == "1"
    if not changes:
        return HttpResponseBadRequest("Say desktop or sound.")
    profile, _ = Profile.objects.get_or_create(user=request.user)
    for field, value in changes.items():
        setattr(profile, field, value)
    profile.save(update_fields=list(changes))
    return JsonResponse({"desktop": profile.notify_desktop, "sound": profile.notify_sound})
