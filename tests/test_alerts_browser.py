"""Alerts in Chromium against `manage.py serve` and the simulator: the worker raises an alert
from what SalesIQ says, every supervisor watching sees it, the one who agreed gets a desktop
notification and a sound, one acknowledges and everyone sees who did."""

from __future__ import annotations

import pytest
import requests
from django.conf import global_settings
from django.contrib.auth import get_user_model
from django.test import override_settings

from dashboard.alerts.rules import ensure_rules
from dashboard.models import Alert, AlertKind, AlertRule, Chat, Profile, Role
from dashboard.templatetags.supervisor import iso
from siq_integration import connecting
from tests.support.browser import ARTIFACTS, shown, watched
from tests.support.simulator import oauth_connect
from tests.support.waits import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-test-password"

# Another window has the focus, as when the supervisor works in SalesIQ itself: the page then
# notifies. The spies record what the page asked the browser for and pass it on unchanged.
SPIES = """
window.__notes = [];
window.__played = 0;
const RealNotification = window.Notification;
class SpiedNotification extends RealNotification {
  constructor(title, options) {
    super(title, options);
    window.__notes.push({title, body: (options || {}).body || "", tag: (options || {}).tag || ""});
  }
}
Object.defineProperty(SpiedNotification, "permission", {get: () => RealNotification.permission});
SpiedNotification.requestPermission = (...args) => RealNotification.requestPermission(...args);
window.Notification = SpiedNotification;
const realPlay = HTMLMediaElement.prototype.play;
HTMLMediaElement.prototype.play = function () { window.__played += 1; return realPlay.call(this); };
document.hasFocus = () => false;
"""


# What any page of a test logged as an error (htmx logs each piece it finds no target for),
# and uncaught exceptions: every test here fails on any.
_console_errors: list[str] = []


@pytest.fixture(autouse=True)
def console_errors():
    _console_errors.clear()
    yield _console_errors
    errors = list(_console_errors)
    _console_errors.clear()
    assert errors == [], f"{len(errors)} console error(s), first: {errors[:5]}"


def watch_console(page) -> None:
    page.on(
        "console",
        lambda message: message.type == "error" and _console_errors.append(message.text),
    )
    page.on("pageerror", lambda error: _console_errors.append(f"uncaught: {error}"))


def user(username: str, role: Role, portal):
    with override_settings(PASSWORD_HASHERS=global_settings.PASSWORD_HASHERS):
        made = get_user_model().objects.create_user(username, password=PASSWORD)
    Profile.objects.create(user=made, role=role).portals.set([portal])
    return made


def signed_in(browser, server, username: str, *, notifications: bool = False, spies: bool = False):
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    if notifications:
        context.grant_permissions(["notifications"], origin=server.url)
    page = context.new_page()
    watch_console(page)
    if spies:
        page.add_init_script(SPIES)
    page.goto(f"{server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#connection[data-state=open]", timeout=15_000)
    return page


@pytest.fixture
def portal(server, connected_portal):
    portal = watched(server, connected_portal(open_chats=0, operators=4))
    rules = ensure_rules(portal)
    AlertRule.objects.filter(pk=rules[AlertKind.LONG_CHAT].pk).update(threshold=1)
    return portal


def long_chat(simulator, portal, visitor: str) -> Chat:
    """A chat that started two minutes ago and was picked up: over a one-minute rule."""
    remote = simulator.create_conversation(
        portal.screen_name, visitor_name=visitor, waiting_seconds=120
    )["id"]
    simulator.pickup(remote)
    wait_for(
        lambda: Chat.objects.filter(portal=portal, remote_id=remote, status="connected").exists(),
        timeout=15,
        what="the chat stored as connected",
    )
    return Chat.objects.get(portal=portal, remote_id=remote)


def test_it_raises_notifies_and_shows_who_acknowledged_to_everyone(
    browser, server, simulator, portal
):
    user("sam", Role.SUPERVISOR, portal)
    user("sue", Role.SUPERVISOR, portal)
    sam = signed_in(browser, server, "sam", notifications=True, spies=True)
    sue = signed_in(browser, server, "sue")
    try:
        # Off until the supervisor agrees; a clear question in the page, then the browser's.
        ask = shown(sam.locator("[data-signal-ask]"))
        assert "Let alerts reach you" in ask.inner_text()
        assert sam.get_attribute("[data-signal=desktop]", "aria-pressed") == "false"
        ask.locator("[data-signal-ask-yes]").click()
        sam.wait_for_selector("[data-signal=desktop][aria-pressed=true]", timeout=5_000)
        sam.wait_for_selector("[data-signal=sound][aria-pressed=true]", timeout=5_000)
        wait_for(
            lambda: Profile.objects.filter(
                user__username="sam", notify_desktop=True, notify_sound=True
            ).exists(),
            timeout=5,
            what="sam's choice remembered",
        )
        assert sam.is_hidden("[data-signal-ask]")
        sam.evaluate("window.__played = 0")  # turning the sound on plays a sample

        chat = long_chat(simulator, portal, "Long Talker")
        # The worker of `serve` evaluates the rules every few seconds.
        row = shown(sam.locator("#alerts-list li[data-kind=long_chat]"))
        # How long, as a clock running from the chat's start (not the figure of the raise).
        assert row.locator(".alert-title").inner_text().startswith("Long Talker's chat has run ")
        clock = row.locator(".alert-title time[data-tick=elapsed]")
        assert clock.get_attribute("datetime") == iso(chat.started_at)
        assert "Long Talker's chat has run 2m " in row.inner_text()  # a duration, units and all
        assert row.get_attribute("data-effective") == "open"
        sam.wait_for_function("window.__notes.length > 0", timeout=5_000)
        (note,) = sam.evaluate("window.__notes")
        assert note["title"].startswith("Long Talker's chat has run")
        assert note["tag"] == f"siq-alert-{row.get_attribute('data-alert')}"
        assert sam.evaluate("window.__played") == 1
        assert sam.title().startswith("(1) ")
        badge = shown(sam.locator(f"#chat-{chat.pk} .row-alert"))
        assert "Long Talker's chat has run" in badge.get_attribute("title")
        screenshot_of(sam, "alerts-raised")

        other = shown(sue.locator("#alerts-list li[data-kind=long_chat]"))
        assert sue.title().startswith("(1) ")
        assert sue.evaluate("typeof window.__notes") == "undefined"  # sue did not agree

        row.locator("[data-alert-ack]").click()
        sue.wait_for_selector(
            "#alerts-list li[data-kind=long_chat][data-effective=acknowledged]", timeout=10_000
        )
        assert "Acknowledged by sam" in other.inner_text()
        assert not sue.title().startswith("(")
        assert sue.is_hidden("#alerts-list li[data-kind=long_chat] [data-alert-ack]")
        screenshot_of(sue, "alerts-acknowledged")
        sam.wait_for_selector(
            "#alerts-list li[data-kind=long_chat][data-effective=acknowledged]", timeout=10_000
        )
        alert = Alert.objects.get(kind=AlertKind.LONG_CHAT, portal=portal)
        assert alert.acknowledged_by_name == "sam" and alert.is_open
        assert sam.evaluate("SupervisorLive.alerts()") == [f"alert-{alert.pk}:acknowledged"]

        # The chat ends in SalesIQ: the alert goes from every page, and so does the badge.
        simulator.end(chat.remote_id)
        sue.wait_for_selector("#alerts-list li[data-kind=long_chat]", state="detached")
        sam.wait_for_selector("#alerts-list li[data-kind=long_chat]", state="detached")
        assert sam.is_visible("#alerts-panel[data-empty='1']")
        assert len(sam.evaluate("window.__notes")) == 1  # nothing nagged twice
    finally:
        sam.context.close()
        sue.context.close()


def screenshot_of(page, name: str) -> None:
    """Under test-results/, for a person to look at (these tests have pages of their own)."""

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_it_snoozes_from_the_chat_drawer_and_keeps_the_buttons_from_viewers(
    browser, server, simulator, portal
):
    user("sam", Role.SUPERVISOR, portal)
    user("wall", Role.VIEWER, portal)
    sam = signed_in(browser, server, "sam")
    wall = signed_in(browser, server, "wall")
    try:
        chat = long_chat(simulator, portal, "Snooze Me")
        shown(sam.locator("#alerts-list li[data-kind=long_chat]"))
        sam.click(f"#chat-{chat.pk} .visitor-link")
        drawer_row = shown(sam.locator("#drawer .drawer-alerts li[data-kind=long_chat]"))
        assert "Snooze Me's chat has run" in drawer_row.inner_text()
        drawer_row.locator("summary").click()
        drawer_row.locator("button", has_text="15 min").click()
        sam.wait_for_selector(
            "#alerts-list li[data-kind=long_chat][data-effective=snoozed]", timeout=10_000
        )
        sam.wait_for_selector(
            "#drawer .drawer-alerts li[data-kind=long_chat][data-effective=snoozed]",
            timeout=10_000,
        )
        assert "Snoozed by sam until" in sam.inner_text("#alerts-list li[data-kind=long_chat]")
        # Once in the panel, though the answer to the click and the websocket both bring it.
        alert = Alert.objects.get(kind=AlertKind.LONG_CHAT, portal=portal)
        assert sam.evaluate("SupervisorLive.alerts()") == [f"alert-{alert.pk}:snoozed"]
        assert not sam.title().startswith("(")
        screenshot_of(sam, "alerts-snoozed-drawer")

        # A Viewer sees the alert and who snoozed it, but no buttons (and the server says no).
        viewer_row = shown(
            wall.locator("#alerts-list li[data-kind=long_chat][data-effective=snoozed]")
        )
        assert viewer_row.get_attribute("data-can-act") == "0"
        assert wall.is_hidden("#alerts-list li[data-kind=long_chat] [data-alert-ack]")
        # Asked with the viewer's session, from outside the page (whose console must stay clean).
        cookies = {c["name"]: c["value"] for c in wall.context.cookies()}
        refused = requests.post(
            f"{server.url}/alerts/{alert.pk}/acknowledge/",
            cookies=cookies,
            headers={"X-CSRFToken": cookies["csrftoken"], "Referer": f"{server.url}/"},
            timeout=10,
        )
        assert refused.status_code == 403
        assert "can see alerts but not acknowledge" in refused.text  # not a CSRF refusal
        alert.refresh_from_db()
        assert alert.acknowledged_at is None
    finally:
        sam.context.close()
        wall.context.close()


def test_it_logs_no_error_at_250_chats_a_first_poll_a_burst_and_every_click(
    browser, server, simulator, sim_portal
):
    """The page of a big portal while its first poll lands (rows, drawer heads and lines for
    drawers nobody opened, alerts by the dozen), a burst of webhooks, then acknowledge and
    snooze from the panel and from a drawer: the console stays clean (the autouse fixture)."""

    portal = sim_portal(open_chats=260, operators=14)
    rules = ensure_rules(portal)
    AlertRule.objects.filter(pk=rules[AlertKind.LONG_CHAT].pk).update(threshold=1)
    user("sam", Role.SUPERVISOR, portal)
    sam = signed_in(browser, server, "sam")
    try:
        oauth_connect(simulator, portal)  # the worker of `serve` takes it from here
        assert connecting.register_webhooks(
            portal, url=f"{server.url}/webhooks/salesiq/{portal.pk}/"
        )
        sam.wait_for_function(
            "document.querySelectorAll('#chats-body > tr').length >= 260", timeout=60_000
        )
        assert not _console_errors, _console_errors[:5]

        # A burst: new visitors, and lines in chats whose drawers are closed.
        state = simulator.state(portal.screen_name)["portals"][0]
        talking = [c["id"] for c in state["conversations"] if c["status"] == "connected"][:20]
        for n in range(30):
            simulator.create_conversation(portal.screen_name, visitor_name=f"Burst {n}")
        for remote in talking:
            simulator.visitor_message(remote, "Anyone there?")
        sam.wait_for_function(
            "document.querySelectorAll('#chats-body > tr').length >= 290", timeout=30_000
        )

        # Alerts: acknowledge and snooze from the panel, then snooze from a chat's drawer.
        panel = "#alerts-list li[data-effective=open][data-kind=long_chat]"
        shown(sam.locator(panel))
        sam.locator(f"{panel} [data-alert-ack]").first.click()
        sam.wait_for_selector("#alerts-list li[data-effective=acknowledged]", timeout=10_000)
        row = sam.locator(f"#alert-{sam.locator(panel).first.get_attribute('data-alert')}")
        row.locator("summary").click()
        row.get_by_role("button", name="5 min", exact=True).click()
        sam.wait_for_selector("#alerts-list li[data-effective=snoozed]", timeout=10_000)
        chat_pk = sam.locator(panel).first.get_attribute("data-chat")
        sam.click(f"#chat-{chat_pk} .visitor-link")
        drawer_row = shown(sam.locator("#drawer .drawer-alerts li[data-kind=long_chat]"))
        drawer_row.locator("summary").click()
        drawer_row.get_by_role("button", name="15 min", exact=True).click()
        sam.wait_for_selector(
            f"#alerts-list li[data-chat='{chat_pk}'][data-effective=snoozed]", timeout=10_000
        )
        sam.locator("#drawer [data-alert-ack]").first.click()
        sam.wait_for_selector(
            f"#alerts-list li[data-chat='{chat_pk}'][data-effective=acknowledged]",
            timeout=10_000,
        )
        sam.wait_for_timeout(1500)  # the websocket's copies of the same changes
    finally:
        sam.context.close()
