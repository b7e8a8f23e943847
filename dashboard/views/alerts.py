"""Acknowledge and snooze alerts (Supervisors of the portal and Admins); an alert's page."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from .. import access, alerts
from ..models import Alert


def _alert(request: HttpRequest, alert_id: int) -> Alert:
    alert = Alert.objects.select_related("portal", "rule").filter(pk=alert_id).first()
    if alert is None or not access.can_view(request.user, alert.portal):
        raise Http404("No such alert")
    return alert


def _may_act(request: HttpRequest, alert: Alert) -> None:
    if not access.can_act(request.user, alert.portal):
        raise PermissionDenied("Your role can see alerts but not acknowledge or snooze them.")


@login_required
@require_POST
def acknowledge(request: HttpRequest, alert_id: int) -> HttpResponse:
    alert = _alert(request, alert_id)
    _may_act(request, alert)
    alert = alerts.acknowledge(alert, request.user)
    return render(request, "alerts/parts.html#alert_row", {"alert": alert})


@login_required
@require_POST
def snooze(request: HttpRequest, alert_id: int) -> HttpResponse:
    alert = _alert(request, alert_id)
    _may_act(request, alert)
    try:
        minutes = int(request.POST.get("minutes", ""))
        alert = alerts.snooze(alert, request.user, minutes)
    except ValueError:
        return HttpResponseBadRequest("Snooze for 5, 15 or 60 minutes.")
    return render(request, "alerts/parts.html#alert_row", {"alert": alert})


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
        },
    )
