"""Your settings: every signed-in user chooses how they read times (their clock and zone)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from .. import times
from ..forms.account import TimeSettingsForm
from ..models import Profile


@login_required
def account_settings(request: HttpRequest) -> HttpResponse:
    browser = times.zone_named(request.COOKIES.get(times.ZONE_COOKIE, ""))
    browser_zone = str(browser) if browser else ""
    # No profile yet reads as a Viewer with the browser's clock; saving keeps it that way.
    profile = Profile.objects.filter(user=request.user).first() or Profile(user=request.user)
    form = TimeSettingsForm(
        request.POST if request.method == "POST" else None,
        instance=profile,
        browser_zone=browser_zone,
    )
    if request.method == "POST" and form.is_valid():
        form.save()
        clock = times.viewer_clock(request)
        if clock.zone is None:
            said = "Saved. Times follow your browser's zone."
        else:
            said = f"Saved. Times now read like {times.time_of_day(timezone.now(), clock)}"
            said += f", in {clock.zone_name}."
        messages.success(request, said)
        return redirect("account")
    clock = times.viewer_clock(request)
    now = timezone.now()
    examples = {
        "h24": times.time_of_day(now, times.Clock(zone=clock.zone, hour12=False)),
        "h12": times.time_of_day(now, times.Clock(zone=clock.zone, hour12=True)),
    }
    context = {"form": form, "now": now, "examples": examples, "browser_zone": browser_zone}
    return render(request, "account/settings.html", context)
