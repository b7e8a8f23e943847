"""A portal's service levels (Admins): its time zone and target, per department an own
target and business hours. Saving publishes the portal's queue rows, so the live pages show
the new targets; a new time zone rebuilds the last days (dashboard/figures/rebuild.py)."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from siq_integration.models import Portal

from .. import times
from ..access import admin_required, portal_for
from ..figures import counting, rebuild
from ..figures.counting import settings_of, zone_of
from ..forms.service import DepartmentServiceForm, ServiceSettingsForm
from ..models import Department, DepartmentService, ServiceSettings, ServiceTally, TallySpan
from ..realtime import publish
from ..state.changes import Changes

logger = logging.getLogger(__name__)


def _queue_departments(portal: Portal, service: ServiceSettings) -> set[str]:
    """Every department a queue row of the portal may show: its departments, those with
    settings of their own, and those counted lately ("" for chats with no department)."""
    found = set(Department.objects.filter(portal=portal).values_list("remote_id", flat=True))
    found |= set(
        DepartmentService.objects.filter(portal=portal).values_list("department_id", flat=True)
    )
    since = rebuild.first_day_rebuilt(timezone.now(), zone_of(service))
    found |= set(
        ServiceTally.objects.filter(portal=portal, span=TallySpan.DAY, start__gte=since)
        .values_list("department_id", flat=True)
        .distinct()
    )
    return found


def service_settings_save(
    *,
    portal: Portal,
    settings_form: ServiceSettingsForm,
    department_forms: list[DepartmentServiceForm],
    by_user: Any,
) -> rebuild.Rebuilt | None:
    """Store valid forms in one transaction; with a new time zone, rebuild the last days in
    it. After the commit the portal's queue rows are published (their targets, hours and
    today's figures). Returns the rebuild, if the zone changed."""
    with transaction.atomic():
        # Locked, so two admins saving at once rebuild one after the other, each from the
        # zone the other left.
        stored = ServiceSettings.objects.select_for_update().get(pk=settings_form.instance.pk)
        old_zone = stored.time_zone
        service = settings_form.save()
        for form in department_forms:
            form.save()
        rebuilt = None
        if service.time_zone != old_zone:
            rebuilt = rebuild.rebuild_days(
                portal_id=portal.pk, old_zone=zone_of(stored), new_zone=zone_of(service)
            )
        publish.changed(Changes(portal.pk, queues=_queue_departments(portal, service)))
    counting.forget_zone(portal.pk)  # this process counts in the new zone at once
    logger.info(
        "%s saved the service levels of portal %s: %s%s",
        getattr(by_user, "username", "?"),
        portal.pk,
        service,
        f"; time zone {old_zone} -> {service.time_zone}, {rebuilt.chats_moved} chats moved"
        if rebuilt
        else "",
    )
    return rebuilt


@admin_required
@require_http_methods(["GET", "POST"])
def portal_service(request: HttpRequest, portal_id) -> HttpResponse:
    """The portal's service levels: time zone, target, and per department own targets
    and business hours."""
    portal = portal_for(request.user, portal_id)
    service = settings_of(portal.pk)
    # As stored: validating the form writes what was typed onto ``service``.
    stored = {
        "time_zone": service.time_zone,
        "target_seconds": service.target_seconds,
        "target_share": service.target_share,
    }
    departments = list(Department.objects.filter(portal=portal).order_by("name", "remote_id"))
    own = {row.department_id: row for row in DepartmentService.objects.filter(portal=portal)}
    data = request.POST if request.method == "POST" else None
    settings_form = ServiceSettingsForm(data, instance=service)
    department_forms = [
        form
        for department in departments
        if (
            form := DepartmentServiceForm(
                data, department=department, own=own.get(department.remote_id)
            )
        ).was_on_the_page()
    ]
    if request.method == "POST":
        # Every form is checked, so every mistake is marked at once.
        valid = [form.is_valid() for form in (settings_form, *department_forms)]
        if all(valid):
            rebuilt = service_settings_save(
                portal=portal,
                settings_form=settings_form,
                department_forms=department_forms,
                by_user=request.user,
            )
            saved = f"Saved the service levels of {portal.name}."
            if rebuilt is not None:
                moved = rebuilt.chats_moved
                saved += (
                    f" Its days now start at midnight in {settings_form.instance.time_zone}: "
                    f"the last {rebuild.DAYS_REBUILT} days were counted again "
                    f"({moved:,} chat{'s' if moved != 1 else ''} moved to another day)."
                )
            messages.success(request, saved)
            return redirect("portal_service", portal_id=portal.pk)
        messages.error(request, "Nothing was saved. Correct what is marked below and save again.")
    return render(
        request,
        "portals/service.html",
        {
            "portal": portal,
            "form": settings_form,
            "department_forms": department_forms,
            "zones": times.zone_choices(),
            "stored": stored,
        },
    )
