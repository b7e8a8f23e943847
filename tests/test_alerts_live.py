"""Alerts as the live page and its websocket carry them: the panel, the drawers, the pieces
every change sends, who may acknowledge and snooze, and each user's signals."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard import selectors
from dashboard.alerts import lifecycle
from dashboard.alerts.rules import ensure_rules
from dashboard.models import Alert, AlertKind, Chat, Operator, Profile, Role
from dashboard.realtime import render
from siq_integration.models import Portal
from tests.factories import live_portal

pytestmark = pytest.mark.django_db

NASTY = "<b>x</b><script>alert(1)</script>"


@pytest.fixture(autouse=True)
def no_push(monkeypatch):
    """Nothing listens in these tests; keep the publisher quiet."""
    monkeypatch.setattr("dashboard.realtime.publish.send", lambda portal_id, html: None)


def make_portal(name: str) -> Portal:
    """A connected (live) portal: only those show on the live page."""
    return live_portal(name=name, screen_name=name.lower())


def make_chat(portal: Portal, remote_id: str, visitor: str = "Ada") -> Chat:
    now = timezone.now()
    return Chat.objects.create(
        portal=portal,
        remote_id=remote_id,
        status="connected",
        visitor_name=visitor,
        operator_id="op1",
        operator_name="Olu",
        started_at=now - timedelta(minutes=40),
        attended_at=now - timedelta(minutes=39),
        fact_at=now,
        source="poll",
    )


def make_operator(portal: Portal, remote_id: str = "op1", name: str = "Olu") -> Operator:
    return Operator.objects.create(
        portal=portal,
        remote_id=remote_id,
        name=name,
        status="busy",
        max_chats=3,
        fact_at=timezone.now(),
        source="poll",
    )


def raise_alert(portal: Portal, kind: str, *, chat=None, operator=None, title="Something") -> Alert:
    rule = ensure_rules(portal)[kind]
    target = (
        f"chat:{chat.remote_id}"
        if chat
        else f"operator:{operator.remote_id}"
        if operator
        else "portal"
    )
    return Alert.objects.create(
        portal=portal,
        rule=rule,
        kind=kind,
        severity=rule.severity,
        target=target,
        chat=chat,
        operator=operator,
        title=title,
        detail="Detail " + NASTY,
        raised_at=timezone.now() - timedelta(minutes=2),
    )


@pytest.fixture
def world(db):
    here, elsewhere = make_portal("Here"), make_portal("Elsewhere")
    users = {}
    make = get_user_model().objects.create_user
    for name, role, portals in [
        ("viewer", Role.VIEWER, [here]),
        ("supervisor_elsewhere", Role.SUPERVISOR, [elsewhere]),
        ("supervisor_here", Role.SUPERVISOR, [here]),
    ]:
        user = make(name, password="pw-for-tests-1")
        Profile.objects.create(user=user, role=role).portals.set(portals)
        users[name] = user
    users["admin"] = get_user_model().objects.create_superuser("admin", "a@x.org", "pw-1-long")
    chat = make_chat(here, "c1", visitor=NASTY)
    operator = make_operator(here)
    alert = raise_alert(
        here, AlertKind.LONG_CHAT, chat=chat, title=f"{NASTY}'s chat has run 40 min"
    )
    return {
        "here": here,
        "elsewhere": elsewhere,
        "users": users,
        "chat": chat,
        "op": operator,
        "alert": alert,
    }


def client_for(world, who: str) -> Client:
    client = Client(enforce_csrf_checks=True)
    if who != "anonymous":
        client.force_login(world["users"][who])
    return client


def csrf_post(client: Client, path: str, data: dict | None = None):
    """A POST as the page sends it: the CSRF token from the cookie in the header."""
    client.get("/", follow=True)  # the live page (or the sign-in page) sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    return client.post(path, data or {}, HTTP_X_CSRFTOKEN=token)


# --- who may acknowledge and snooze -------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("anonymous", 302),
        ("viewer", 403),
        ("supervisor_elsewhere", 404),
        ("supervisor_here", 200),
        ("admin", 200),
    ],
)
def test_it_lets_only_supervisors_of_the_portal_and_admins_acknowledge(world, who, expected):
    alert = world["alert"]
    answer = csrf_post(client_for(world, who), f"/alerts/{alert.pk}/acknowledge/")
    assert answer.status_code == expected
    alert.refresh_from_db()
    assert (alert.acknowledged_at is not None) == (expected == 200)
    if expected == 200:
        assert alert.acknowledged_by_name == who


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("anonymous", 302),
        ("viewer", 403),
        ("supervisor_elsewhere", 404),
        ("supervisor_here", 200),
        ("admin", 200),
    ],
)
def test_it_lets_only_supervisors_of_the_portal_and_admins_snooze(world, who, expected):
    alert = world["alert"]
    answer = csrf_post(client_for(world, who), f"/alerts/{alert.pk}/snooze/", {"minutes": "15"})
    assert answer.status_code == expected
    alert.refresh_from_db()
    assert (alert.snoozed_until is not None) == (expected == 200)


def test_it_refuses_an_acknowledgement_without_a_csrf_token(world):
    client = client_for(world, "supervisor_here")
    assert client.post(f"/alerts/{world['alert'].pk}/acknowledge/").status_code == 403
    world["alert"].refresh_from_db()
    assert world["alert"].acknowledged_at is None


def test_it_says_how_long_one_may_snooze(world):
    client = client_for(world, "admin")
    answer = csrf_post(client, f"/alerts/{world['alert'].pk}/snooze/", {"minutes": "7"})
    assert answer.status_code == 400
    assert answer.content.decode() == "Snooze for 5, 15 or 60 minutes."


def test_it_answers_with_the_rows_everyone_gets(world):
    alert = world["alert"]
    answer = csrf_post(client_for(world, "admin"), f"/alerts/{alert.pk}/acknowledge/")
    html = answer.content.decode()
    assert html == render.render_alerts([alert.pk])
    # The panel's row and the chat drawer's row, both swapped by id.
    assert re.findall(r'<li id="([\w-]+)"', html) == [
        f"alert-{alert.pk}",
        f"drawer-alert-{alert.pk}",
    ]
    assert html.count('hx-swap-oob="true"') == 2
    assert f'data-container="drawer-alerts-chat-{world["chat"].pk}"' in html
    assert "Acknowledged by admin" in html
    assert NASTY not in html and "&lt;script&gt;" in html


def test_it_deletes_a_resolved_alert_from_every_page(world):
    alert = world["alert"]
    lifecycle._resolve([alert], timezone.now(), "The chat ended.")
    html = render.render_alerts([alert.pk])
    assert html == (
        f'<li id="alert-{alert.pk}" hx-swap-oob="delete"></li>'
        f'<li id="drawer-alert-{alert.pk}" hx-swap-oob="delete"></li>'
    )


def test_it_gives_an_operators_alert_a_row_in_their_panel(world):
    alert = raise_alert(world["here"], AlertKind.OPERATOR_AWAY_WITH_CHATS, operator=world["op"])
    html = render.render_alerts([alert.pk])
    assert f'data-container="drawer-alerts-op-{world["op"].pk}"' in html
    assert f'data-open-operator="{world["op"].pk}"' in html


def test_it_gives_a_portals_alert_no_drawer_row(world):
    alert = raise_alert(world["here"], AlertKind.WEBHOOK_SILENCE, title="Here: no webhook")
    html = render.render_alerts([alert.pk])
    assert re.findall(r'<li id="([\w-]+)"', html) == [f"alert-{alert.pk}"]
    assert f'href="/portals/{world["here"].pk}/"' in html  # the portal's connection page


# --- the page, the drawers, the snapshot ------------------------------------------------------


def test_it_shows_the_open_alerts_in_the_page(world):
    resolved = raise_alert(world["here"], AlertKind.LONG_WAIT, chat=world["chat"], title="Gone")
    lifecycle._resolve([resolved], timezone.now(), "An operator picked the chat up.")
    raise_alert(world["elsewhere"], AlertKind.LONG_WAIT, title="Not yours")
    html = client_for(world, "supervisor_here").get("/").content.decode()
    panel = html[html.index('id="alerts-list"') :]
    panel = panel[: panel.index("</ul>")]
    assert re.findall(r'<li id="(alert-\d+)"', panel) == [f"alert-{world['alert'].pk}"]
    assert "&lt;script&gt;" in panel and NASTY not in html
    assert f'data-act-portals="{world["here"].pk}"' in html


def test_it_lets_a_viewer_act_nowhere(world):
    html = client_for(world, "viewer").get("/").content.decode()
    assert 'data-act-portals=""' in html
    assert f'id="alert-{world["alert"].pk}"' in html  # a Viewer sees the alert


def test_it_puts_the_alerts_in_the_websocket_snapshot(world):
    from django.template.loader import render_to_string

    context = selectors.live_context([world["here"]])
    html = render_to_string("live/parts.html#snapshot", {**context, "oob": True})
    assert '<ul id="alerts-list" class="alerts-list" aria-live="polite" hx-swap-oob="true">' in html
    assert f'id="alert-{world["alert"].pk}"' in html


def test_it_sends_a_snapshot_to_a_page_older_than_an_alerts_change(world):
    since = timezone.now()
    assert not selectors.changed_since([world["here"]], since)
    lifecycle.snooze(world["alert"], world["users"]["admin"], 5)
    assert selectors.changed_since([world["here"]], since)


def test_it_shows_a_chats_alerts_in_its_drawer(world):
    html = client_for(world, "supervisor_here").get(f"/live/chats/{world['chat'].pk}/").content
    html = html.decode()
    assert f'<ul id="drawer-alerts-chat-{world["chat"].pk}"' in html
    assert f'id="drawer-alert-{world["alert"].pk}"' in html


def test_it_shows_an_operators_alerts_in_their_panel(world):
    alert = raise_alert(world["here"], AlertKind.OPERATOR_AWAY_WITH_CHATS, operator=world["op"])
    html = client_for(world, "supervisor_here").get(f"/live/operators/{world['op'].pk}/")
    html = html.content.decode()
    assert f'<ul id="drawer-alerts-op-{world["op"].pk}"' in html
    assert f'id="drawer-alert-{alert.pk}"' in html
    assert f'id="drawer-alert-{world["alert"].pk}"' not in html  # the chat's, not theirs


def test_it_renders_many_alerts_with_the_same_few_queries(world):
    client = client_for(world, "supervisor_here")
    client.get("/")  # warm up: sessions, content types
    with CaptureQueriesContext(connection) as few:
        client.get("/")
    for n in range(30):
        chat = make_chat(world["here"], f"more{n}")
        raise_alert(world["here"], AlertKind.LONG_CHAT, chat=chat, title=f"Chat {n}")
    with CaptureQueriesContext(connection) as many:
        html = client.get("/").content.decode()
    assert html.count('data-container="alerts-list"') == 31
    assert len(many) == len(few)


# --- signals: how new alerts reach each user ----------------------------------------------------


def test_it_remembers_each_users_signals(world):
    client = client_for(world, "supervisor_here")
    html = client.get("/").content.decode()
    assert 'data-signal-desktop="0" data-signal-sound="0"' in html  # off until they agree
    answer = csrf_post(client, "/alerts/signals/", {"desktop": "1", "sound": "1"})
    assert answer.json() == {"desktop": True, "sound": True}
    html = client.get("/").content.decode()
    assert 'data-signal-desktop="1" data-signal-sound="1"' in html
    assert csrf_post(client, "/alerts/signals/", {"sound": "0"}).json() == {
        "desktop": True,
        "sound": False,
    }
    other = client_for(world, "admin").get("/").content.decode()
    assert 'data-signal-desktop="0" data-signal-sound="0"' in other


def test_it_remembers_signals_for_an_admin_without_a_profile(world):
    client = client_for(world, "admin")
    assert csrf_post(client, "/alerts/signals/", {"desktop": "1"}).status_code == 200
    assert Profile.objects.get(user=world["users"]["admin"]).notify_desktop


def test_it_says_what_is_wrong_with_a_signals_request(world):
    client = client_for(world, "viewer")
    answer = csrf_post(client, "/alerts/signals/", {"sound": "yes"})
    assert answer.status_code == 400
    assert answer.content.decode() == "sound is 1 (on) or 0 (off)."
    assert csrf_post(client, "/alerts/signals/", {}).status_code == 400
    assert (
        csrf_post(client_for(world, "anonymous"), "/alerts/signals/", {"sound": "1"}).status_code
        == 302
    )


def test_it_shows_an_escalation_that_reached_nobody(world):
    from dashboard.models import Escalation

    alert = world["alert"]
    now = timezone.now()
    Alert.objects.filter(pk=alert.pk).update(escalated_at=now)
    Escalation.objects.create(
        alert=alert, channel="webhook", destination="http://x", sent_at=now, error="HTTP 500"
    )
    html = render.render_alerts([alert.pk])
    assert "Escalation failed" in html and "escalation-failed" in html
    Escalation.objects.create(
        alert=alert, channel="email", destination="a@x.org", sent_at=now, ok=True
    )
    assert "Escalation partly failed" in render.render_alerts([alert.pk])
    Escalation.objects.filter(ok=False).delete()
    html = render.render_alerts([alert.pk])
    assert ">Escalated</a>" in html and "escalation-failed" not in html


# --- titles that stay true ----------------------------------------------------------------------


def panel_row(html: str, alert: Alert) -> str:
    match = re.search(rf'<li id="alert-{alert.pk}".*?</li>\s*(?=<li|$)', html, re.S)
    assert match, f"no panel row for alert {alert.pk}"
    return match.group(0)


def clock_of(row: str) -> str:
    """The ticking figure in the row's title: where it counts from."""
    title = re.search(r'class="alert-title[^"]*"[^>]*>(.*?)</(?:button|span|a)>', row, re.S)
    assert title, row
    clock = re.search(r'<time data-tick="elapsed" datetime="([^"]+)">', title.group(1))
    assert clock, title.group(1)
    return clock.group(1)


def iso(moment) -> str:
    from dashboard.templatetags.supervisor import iso as iso_filter

    return str(iso_filter(moment))


def test_it_counts_an_alerts_figure_from_the_right_moment_not_from_when_it_was_raised(world):
    now = timezone.now()
    chat = make_chat(world["here"], "w1", visitor="Léa Fontaine")
    Chat.objects.filter(pk=chat.pk).update(
        status="waiting",
        operator_id="",
        operator_name="",
        attended_at=None,
        department_name="Sales",
        waiting_since=now - timedelta(minutes=6, seconds=47),
        last_message_sender="visitor",
        last_message_at=now - timedelta(minutes=4),
    )
    waited = raise_alert(
        world["here"],
        AlertKind.LONG_WAIT,
        chat=chat,
        title="Léa Fontaine has waited 1 min for pickup (Sales)",
    )
    row = panel_row(render.render_alerts([waited.pk]), waited)
    chat.refresh_from_db()
    assert clock_of(row) == iso(chat.waiting_since)
    assert "Léa Fontaine has waited <time" in row and "</time> for pickup (Sales)" in row
    assert "1 min" not in row
    assert re.search(r'data-title="Léa Fontaine has waited 6m 4\ds for pickup \(Sales\)"', row)

    # A chat running long counts from its start; the operator away with chats, from when
    # they went away; an unanswered visitor, from their last message.
    running = world["alert"]  # "…'s chat has run 40 min" when raised
    assert clock_of(panel_row(render.render_alerts([running.pk]), running)) == iso(
        world["chat"].started_at
    )
    Operator.objects.filter(pk=world["op"].pk).update(status_since=now - timedelta(minutes=9))
    away = raise_alert(world["here"], AlertKind.OPERATOR_AWAY_WITH_CHATS, operator=world["op"])
    row = panel_row(render.render_alerts([away.pk]), away)
    assert clock_of(row) == iso(now - timedelta(minutes=9))
    assert "Olu has been busy for <time" in row and "</time> with 1 open chat" in row
    Chat.objects.filter(pk=world["chat"].pk).update(
        last_message_sender="visitor", last_message_at=now - timedelta(minutes=5)
    )
    silent = raise_alert(world["here"], AlertKind.UNANSWERED, chat=world["chat"])
    assert clock_of(panel_row(render.render_alerts([silent.pk]), silent)) == iso(
        now - timedelta(minutes=5)
    )


def test_it_renders_a_chats_alerts_again_with_its_new_operator_and_department(world):
    from dashboard.state import apply
    from siq_integration.normalised import ChatStatus, Conversation, Visitor

    here, chat, alert = world["here"], world["chat"], world["alert"]
    make_chat(here, "c2")  # Olu's second chat
    away = raise_alert(
        here, AlertKind.OPERATOR_AWAY_WITH_CHATS, operator=world["op"], title="Olu is busy with 2"
    )
    marta = make_operator(here, "op2", "Marta Kowalska")
    Operator.objects.filter(pk=marta.pk).update(display_name="Marta Kowalska")
    Chat.objects.filter(pk=chat.pk).update(department_id="d1", department_name="Sales")
    chat.refresh_from_db()
    moved = Conversation(
        id=chat.remote_id,
        status=ChatStatus.CONNECTED,
        visitor=Visitor(id="v1", name=chat.visitor_name),
        started_at=chat.started_at,
        operator_id="op2",
        operator_name="Marta",
        department_id="d2",
        department_name="Billing",
    )
    changes = apply.apply_conversation(here, moved, fact_at=timezone.now(), source="webhook")
    html = render.render_changes(changes)
    row = panel_row(html, alert)
    assert "(Billing)" in row and "With Marta Kowalska." in row and "Olu" not in row
    assert 'hx-swap-oob="true"' in row
    assert f'id="drawer-alert-{alert.pk}"' in html  # and its row in the chat's drawer
    # The operator the chat left: their alert counts one chat fewer, in the same publication.
    row = panel_row(html, away)
    assert "Olu is busy with 1 open chat<" in row  # not seen going busy: no figure


def test_it_looks_the_changed_chats_alerts_up_in_one_query(world):
    from dashboard.state import apply

    changes = apply.Changes(world["here"].pk, chats={world["chat"].pk})
    with CaptureQueriesContext(connection) as queries:
        html = render.render_changes(changes)
    assert f'id="alert-{world["alert"].pk}"' in html
    alert_reads = [q for q in queries if 'FROM "dashboard_alert"' in q["sql"]]
    # A one-table look for open alerts, then the alerts found with what their rows show.
    assert len(alert_reads) == 2 and "JOIN" not in alert_reads[0]["sql"]

    # A change of a chat with no open alert costs the one-table look alone.
    quiet = Chat.objects.filter(portal=world["here"]).exclude(pk=world["chat"].pk).first()
    if quiet is None:
        quiet = make_chat(world["here"], "quiet-1", visitor="Quiet")
    with CaptureQueriesContext(connection) as queries:
        render.render_changes(apply.Changes(world["here"].pk, chats={quiet.pk}))
    alert_reads = [q for q in queries if 'FROM "dashboard_alert"' in q["sql"]]
    assert len(alert_reads) == 1 and "JOIN" not in alert_reads[0]["sql"]


def test_it_names_notification_settings_and_keeps_the_old_address(world):
    from django.urls import resolve, reverse

    from dashboard.views.alerts import notification_settings

    assert reverse("notification_settings") == "/alerts/notifications/"
    assert resolve("/alerts/signals/").func is notification_settings
    client = client_for(world, "supervisor_here")
    assert csrf_post(client, "/alerts/notifications/", {"sound": "1"}).json()["sound"] is True
    assert csrf_post(client, "/alerts/signals/", {"sound": "0"}).json()["sound"] is False
