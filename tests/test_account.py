"""Your settings: every signed-in user picks their clock and time zone, and every page then
writes its times that way."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from dashboard import times
from dashboard.models import Alert, AlertKind, Profile, Role
from siq_integration.models import Portal
from tests.support.history import raise_alert

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer(client):
    user = get_user_model().objects.create_user("vic", password="pw-for-tests-1")
    portal = Portal.objects.create(name="Zylker", data_center="sim", screen_name="zylker")
    Profile.objects.create(user=user, role=Role.VIEWER).portals.set([portal])
    client.force_login(user)
    user.portal = portal
    return user


def test_it_is_linked_from_the_header_on_every_page(client, viewer):
    for url in ("/", "/alerts/", "/portals/"):
        text = client.get(url).content.decode()
        assert re.search(r'<a class="who" href="/account/"[^>]*>vic · Viewer</a>', text), url
    text = client.get("/account/").content.decode()
    mine = r'<a class="who" href="/account/" title="[^"]*your settings[^"]*" aria-current="page"'
    assert re.search(mine, text)


def test_it_sends_anonymous_visitors_to_sign_in(client):
    response = client.get("/account/")
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")


def test_it_offers_the_browsers_clock_and_zone_first(client, viewer):
    client.cookies[times.ZONE_COOKIE] = "Europe/Lisbon"
    text = client.get("/account/").content.decode()
    assert "As my browser&#x27;s language has it" in text
    assert "24-hour clock (13:05)" in text and "12-hour clock (1:05 PM)" in text
    options = re.findall(r'<option value="([^"]*)"', text)
    assert options[:2] == ["", "UTC"]  # the browser's first
    assert "My browser&#x27;s (Europe/Lisbon now)" in text
    assert "Europe/Berlin" in options and "America/Argentina/Buenos_Aires" in options
    assert '<optgroup label="Europe">' in text


def test_it_saves_the_choice_and_every_page_applies_it(client, viewer):
    response = client.post("/account/", {"time_format": "12h", "time_zone": "America/New_York"})
    assert response.status_code == 302 and response["Location"] == "/account/"
    profile = Profile.objects.get(user=viewer)
    assert (profile.time_format, profile.time_zone, profile.role) == (
        "12h",
        "America/New_York",
        Role.VIEWER,  # only the clock changed
    )
    page = client.get("/account/").content.decode()
    assert "Saved. Times now read like" in page and "in America/New_York." in page
    assert re.search(r"Times now read like \d\d?:\d\d [AP]M", page)
    # Every page tells its script the viewer's choice …
    assert 'data-time-format="12h" data-time-zone="America/New_York"' in page
    # … and writes its own times that way: an alert's page, the alert history.
    alert = raise_alert(
        viewer.portal,
        AlertKind.LONG_WAIT,
        ago=timedelta(minutes=30),
        title="Ada has waited 1m 05s for pickup",
        acknowledged_after=timedelta(minutes=2),
        by=viewer,
    )
    clock = times.Clock(zone=ZoneInfo("America/New_York"), hour12=True)
    expected = times.when(alert.raised_at, clock, timezone.now())
    detail = client.get(f"/alerts/{alert.pk}/").content.decode()
    full = times.in_full(alert.raised_at, clock)
    assert f'data-local="time" title="{full}">{expected}</time>' in detail
    history = client.get("/alerts/").content.decode()
    assert "Days in America/New_York" in history
    assert times.when(alert.raised_at, clock, timezone.now(), seconds=True) in history
    assert "2m 00s" in history  # the time to acknowledge, as every duration


def test_it_can_leave_both_to_the_browser_again(client, viewer):
    Profile.objects.filter(user=viewer).update(time_format="24h", time_zone="Asia/Tokyo")
    client.post("/account/", {"time_format": "", "time_zone": ""})
    profile = Profile.objects.get(user=viewer)
    assert (profile.time_format, profile.time_zone) == ("", "")
    client.cookies[times.ZONE_COOKIE] = "Europe/Paris"
    client.cookies[times.HOUR_CYCLE_COOKIE] = "h12"
    alert = raise_alert(viewer.portal, AlertKind.LONG_WAIT, ago=timedelta(minutes=3), title="x")
    detail = client.get(f"/alerts/{alert.pk}/").content.decode()
    assert 'data-time-format="" data-time-zone=""' in detail  # the script asks the browser
    clock = times.Clock(zone=ZoneInfo("Europe/Paris"), hour12=True)
    assert f">{times.when(alert.raised_at, clock, timezone.now())}</time>" in detail


def test_it_refuses_a_zone_it_does_not_know_and_saves_nothing(client, viewer):
    response = client.post("/account/", {"time_format": "24h", "time_zone": "Mars/Olympus_Mons"})
    assert response.status_code == 200
    text = response.content.decode()
    assert "Nothing was saved" in text and "Pick a time zone from the list." in text
    assert Profile.objects.get(user=viewer).time_zone == ""
    response = client.post("/account/", {"time_format": "13h", "time_zone": ""})
    assert "Nothing was saved" in response.content.decode()
    assert Profile.objects.get(user=viewer).time_format == ""


def test_it_makes_a_profile_for_a_user_without_one_and_keeps_their_role(client):
    user = get_user_model().objects.create_user("newbie", password="pw-for-tests-1")
    client.force_login(user)
    assert client.get("/account/").status_code == 200
    assert not Profile.objects.filter(user=user).exists()  # looking changes nothing
    client.post("/account/", {"time_format": "24h", "time_zone": "Europe/Berlin"})
    profile = Profile.objects.get(user=user)
    assert (profile.role, profile.time_zone) == (Role.VIEWER, "Europe/Berlin")
    assert not Alert.objects.exists()
