"""The service alert rules: a department's service level below X % over the last N minutes,
its missed chats above Y %. One alert per department in trouble, raised and resolved by the
time-based evaluation, escalated like every other alert, edited on the alert rules page."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest
from django.template.loader import render_to_string
from django.utils import timezone

from dashboard import jobs, selectors
from dashboard.alerts import escalation, lifecycle
from dashboard.alerts.rules import ensure_rules
from dashboard.figures import queues
from dashboard.models import (
    Alert,
    AlertKind,
    AlertRule,
    Department,
    DepartmentService,
    ServiceSettings,
)
from tests.factories import make_admin, make_portal
from tests.support.figures import arrive

pytestmark = pytest.mark.django_db

LEVEL, MISSED = AlertKind.SERVICE_LEVEL_LOW, AlertKind.MISSED_SHARE_HIGH


@pytest.fixture
def portal():
    portal = make_portal("Zylker")
    now = timezone.now()
    for remote_id, name in (("d1", "Sales"), ("d2", "Billing"), ("d3", "Returns")):
        Department.objects.create(portal=portal, remote_id=remote_id, name=name, seen_at=now)
    return portal


def answered(portal, department, prefix, count, *, after=10, seconds_ago=600):
    for n in range(count):
        arrive(portal, f"{prefix}{n}", department, seconds_ago, picked_after=after)


def rule(portal, kind, **changes):
    found = ensure_rules(portal)[kind]
    AlertRule.objects.filter(pk=found.pk).update(**changes)
    return AlertRule.objects.get(pk=found.pk)


def open_alerts(portal, kind):
    return list(
        Alert.objects.filter(portal=portal, kind=kind, resolved_at__isnull=True).order_by("target")
    )


def later(seconds=1):
    return timezone.now() + timedelta(seconds=seconds)


# --- the defaults ---------------------------------------------------------------------------


def test_it_makes_both_rules_on_with_sensible_defaults(portal):
    rules = ensure_rules(portal)
    level, missed = rules[LEVEL], rules[MISSED]
    assert (level.enabled, level.threshold, level.window_minutes, level.minimum_chats) == (
        True,
        80,
        30,
        5,
    )
    assert (missed.enabled, missed.threshold, missed.window_minutes, missed.minimum_chats) == (
        True,
        15,
        30,
        5,
    )


# --- service level --------------------------------------------------------------------------


def test_it_raises_just_below_the_level_and_not_at_it(portal):
    answered(portal, "d2", "fast", 4)
    arrive(portal, "slow1", "d2", 600, picked_after=120)
    lifecycle.evaluate(portal, later())
    assert open_alerts(portal, LEVEL) == []  # 4 of 5 within 60 s: exactly 80 %, not below

    arrive(portal, "slow2", "d2", 600, picked_after=120)
    lifecycle.evaluate(portal, later())
    (alert,) = open_alerts(portal, LEVEL)
    assert alert.title == "Billing: service level 66 % over the last 30 min (target 80 %)"
    assert alert.detail == "4 of 6 chats picked up within 60 s."
    assert alert.target == "department:d2" and alert.chat is None and alert.operator is None


def test_a_mark_other_than_the_departments_target_is_called_the_rules(portal):
    rule(portal, LEVEL, threshold=90)
    answered(portal, "d2", "fast", 4)
    arrive(portal, "slow1", "d2", 600, picked_after=120)
    lifecycle.evaluate(portal, later())
    (alert,) = open_alerts(portal, LEVEL)
    assert alert.title == "Billing: service level 80 % over the last 30 min (alert below 90 %)"


def test_chats_waiting_past_the_target_now_count_against_it(portal):
    answered(portal, "d1", "fast", 4)
    arrive(portal, "wait1", "d1", 90)  # waiting 90 s against the 60 s target
    arrive(portal, "wait2", "d1", 30)  # 30 s: not past it yet, not judged
    lifecycle.evaluate(portal, later())
    assert open_alerts(portal, LEVEL) == []  # 4 of 5: 80 %

    arrive(portal, "wait3", "d1", 75)
    lifecycle.evaluate(portal, later())
    (alert,) = open_alerts(portal, LEVEL)
    assert "service level 66 %" in alert.title
    assert alert.detail == "4 of 6 chats picked up within 60 s; 2 waiting past 60 s now."


def test_it_says_nothing_below_the_minimum_count(portal):
    for n in range(4):
        arrive(portal, f"slow{n}", "d2", 600, picked_after=300)  # 0 % of 4 chats
    lifecycle.evaluate(portal, later())
    assert open_alerts(portal, LEVEL) == []

    arrive(portal, "slow4", "d2", 600, picked_after=300)
    lifecycle.evaluate(portal, later())
    (alert,) = open_alerts(portal, LEVEL)
    assert "service level 0 %" in alert.title

    # An admin who wants fewer: the rule's minimum decides, not a constant.
    rule(portal, LEVEL, minimum_chats=6)
    lifecycle.evaluate(portal, later())
    assert open_alerts(portal, LEVEL) == []
    alert.refresh_from_db()
    assert alert.resolved_reason == "Fewer than 6 chats to judge over the last 30 min (5 now)."


def test_abandoned_chats_count_on_neither_side(portal):
    answered(portal, "d2", "fast", 4)
    arrive(portal, "slow", "d2", 600, picked_after=120)
    for n in range(3):
        arrive(portal, f"left{n}", "d2", 600, missed_after=20)  # left after 20 s: abandoned
    lifecycle.evaluate(portal, later())
    assert open_alerts(portal, LEVEL) == [] and open_alerts(portal, MISSED) == []


def test_it_resolves_when_the_level_recovers_and_when_the_window_moves_on(portal):
    answered(portal, "d2", "fast", 3)
    for n in range(2):
        arrive(portal, f"slow{n}", "d2", 600, picked_after=120)
    lifecycle.evaluate(portal, later())
    (alert,) = open_alerts(portal, LEVEL)
    assert "60 %" in alert.title

    answered(portal, "d2", "more", 2, seconds_ago=120)  # 5 of 7
    lifecycle.evaluate(portal, later())
    (alert,) = open_alerts(portal, LEVEL)
    assert "service level 71 %" in alert.title  # the open alert follows the figures
    assert alert.detail == "5 of 7 chats picked up within 60 s."

    answered(portal, "d2", "most", 3, seconds_ago=60)  # 8 of 10
    lifecycle.evaluate(portal, later())
    assert open_alerts(portal, LEVEL) == []
    alert.refresh_from_db()
    assert alert.resolved_reason == "The service level is back at 80 %."

    # The same trouble again, then half an hour later its chats have left the window.
    for n in range(3):
        arrive(portal, f"late{n}", "d2", 300, picked_after=200)
    lifecycle.evaluate(portal, later())
    (again,) = open_alerts(portal, LEVEL)
    assert again.pk != alert.pk
    lifecycle.evaluate(portal, later(31 * 60))
    again.refresh_from_db()
    assert again.resolved_reason == "Fewer than 5 chats to judge over the last 30 min (0 now)."


def test_one_alert_per_department_in_trouble_however_often_evaluated(portal):
    for department in ("d1", "d2"):
        for n in range(5):
            arrive(portal, f"{department}-slow{n}", department, 600, picked_after=300)
    answered(portal, "d3", "fine", 5)
    for _ in range(3):
        lifecycle.evaluate(portal, later())
    alerts = open_alerts(portal, LEVEL)
    assert [a.target for a in alerts] == ["department:d1", "department:d2"]
    assert [a.title.split(":")[0] for a in alerts] == ["Sales", "Billing"]

    rule(portal, LEVEL, department_ids=["d1"])  # limited to Sales: Billing's resolves
    lifecycle.evaluate(portal, later())
    assert [a.target for a in open_alerts(portal, LEVEL)] == ["department:d1"]


def test_each_department_is_judged_against_its_own_target_time(portal):
    DepartmentService.objects.create(portal=portal, department_id="d2", target_seconds=180)
    for department in ("d1", "d2"):
        for n in range(5):
            arrive(portal, f"{department}-{n}", department, 600, picked_after=120)
    lifecycle.evaluate(portal, later())
    (alert,) = open_alerts(portal, LEVEL)  # 120 s is within Billing's 180 s, not Sales' 60 s
    assert alert.target == "department:d1"


def test_a_department_outside_its_business_hours_pages_nobody(portal):
    ServiceSettings.objects.create(portal=portal, time_zone="Europe/Berlin")
    local = timezone.now().astimezone(ZoneInfo("Europe/Berlin"))
    today, tomorrow = str(local.weekday()), str((local.weekday() + 1) % 7)
    hours = DepartmentService.objects.create(
        portal=portal, department_id="d2", hours={today: ["00:00", "24:00"]}
    )
    for n in range(5):
        arrive(portal, f"miss{n}", "d2", 600, missed_after=300)
    lifecycle.evaluate(portal, later())
    assert len(open_alerts(portal, LEVEL)) == len(open_alerts(portal, MISSED)) == 1

    hours.hours = {tomorrow: ["09:00", "17:00"]}  # closed all of today
    hours.save()
    lifecycle.evaluate(portal, later())
    assert open_alerts(portal, LEVEL) == [] and open_alerts(portal, MISSED) == []
    reasons = set(
        Alert.objects.filter(portal=portal, kind__in=[LEVEL, MISSED]).values_list(
            "resolved_reason", flat=True
        )
    )
    assert reasons == {"The department is closed now (outside its business hours)."}


def test_its_figure_is_the_queues_figure(portal):
    """One definition: over 60 minutes the rule reads what the queues' last hour shows."""
    rule(portal, LEVEL, window_minutes=60, threshold=100)
    answered(portal, "d2", "fast", 5, seconds_ago=3000)
    arrive(portal, "slow", "d2", 1200, picked_after=400)
    arrive(portal, "gone", "d2", 900, missed_after=200)
    arrive(portal, "wait", "d2", 100)
    arrive(portal, "old", "d2", 2 * 3600, picked_after=500)  # before the window
    now = later()
    (row,) = [r for r in queues.queue_rows([portal], now) if r.department_id == "d2"]
    lifecycle.evaluate(portal, now)
    (alert,) = open_alerts(portal, LEVEL)
    shown = int(row.last_hour.service_level)
    assert row.last_hour.judged == 8
    assert alert.title.startswith(f"Billing: service level {shown} % over the last 60 min")


def test_the_worker_job_evaluates_them(portal):
    for n in range(5):
        arrive(portal, f"slow{n}", "d2", 600, picked_after=300)
    jobs.evaluate_alerts([portal], later())
    assert len(open_alerts(portal, LEVEL)) == 1


def test_a_switched_off_rule_raises_nothing_and_resolves_its_alert(portal):
    for n in range(5):
        arrive(portal, f"slow{n}", "d2", 600, picked_after=300)
    lifecycle.evaluate(portal, later())
    (alert,) = open_alerts(portal, LEVEL)
    rule(portal, LEVEL, enabled=False)
    lifecycle.evaluate(portal, later())
    assert open_alerts(portal, LEVEL) == []
    alert.refresh_from_db()
    assert alert.resolved_reason == "The rule or its departments changed."


# --- missed share ---------------------------------------------------------------------------


def test_it_raises_for_missed_chats_just_above_the_limit_and_not_at_it(portal):
    rule(portal, MISSED, threshold=20)
    answered(portal, "d2", "fast", 4)
    arrive(portal, "miss1", "d2", 600, missed_after=120)
    lifecycle.evaluate(portal, later())
    assert open_alerts(portal, MISSED) == []  # 1 of 5: 20 %, not above

    arrive(portal, "miss2", "d2", 600, missed_after=90)
    arrive(portal, "left", "d2", 600, missed_after=10)  # abandoned: neither side
    lifecycle.evaluate(portal, later())
    (alert,) = open_alerts(portal, MISSED)
    assert alert.title == "Billing: 33 % of chats missed over the last 30 min (limit 20 %)"
    assert alert.detail == (
        "2 of 6 chats missed: nobody picked them up within 60 s. 1 left sooner (not counted)."
    )


def test_a_share_just_over_the_limit_never_reads_as_the_limit(portal):
    rule(portal, MISSED, threshold=15, minimum_chats=1)
    answered(portal, "d1", "fast", 11)
    arrive(portal, "miss1", "d1", 600, missed_after=120)
    arrive(portal, "miss2", "d1", 600, missed_after=120)
    lifecycle.evaluate(portal, later())  # 2 of 13: 15.4 %
    (alert,) = open_alerts(portal, MISSED)
    assert "16 % of chats missed" in alert.title and "(limit 15 %)" in alert.title


def test_missed_chats_need_the_minimum_count_too(portal):
    arrive(portal, "miss1", "d2", 600, missed_after=120)  # one missed chat at 7 am
    lifecycle.evaluate(portal, later())
    assert open_alerts(portal, MISSED) == []
    answered(portal, "d2", "fast", 3)
    lifecycle.evaluate(portal, later())
    assert open_alerts(portal, MISSED) == []  # 1 of 4: still too few to judge
    answered(portal, "d2", "more", 1)
    lifecycle.evaluate(portal, later())
    (alert,) = open_alerts(portal, MISSED)
    assert "20 % of chats missed" in alert.title

    answered(portal, "d2", "good", 5)
    lifecycle.evaluate(portal, later())
    alert.refresh_from_db()
    assert alert.resolved_reason == "Missed chats are down to 10 %."


# --- on the page, acknowledged, escalated ---------------------------------------------------


def test_the_panel_row_links_to_the_departments_day(portal):
    for n in range(5):
        arrive(portal, f"slow{n}", "d2", 600, picked_after=300)
    lifecycle.evaluate(portal, later())
    (alert,) = selectors.alert_rows(selectors.open_alerts([portal]).filter(kind=LEVEL))
    html = render_to_string(
        "alerts/parts.html#alert_row", {"alert": alert, "oob": False, "drawer": False}
    )
    assert f'href="/day/?portal={portal.pk}&amp;department=d2"' in html
    assert "Billing: service level 0 % over the last 30 min (target 80 %)" in html


@pytest.fixture
def receiver(settings):
    """A chat webhook receiver on 127.0.0.1, allowed by name and port as in test_alerts."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.SIQ_OUTBOUND_ALLOW_HOSTS = [f"127.0.0.1:{server.server_address[1]}"]
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def test_it_escalates_like_the_others_and_not_once_acknowledged(portal, receiver, settings):
    settings.MAILERS = {}  # no mail server: the e-mail is recorded as not sent
    url, posted = receiver
    rule(
        portal,
        LEVEL,
        escalate_after_minutes=5,
        escalate_webhook_url=url,
        escalate_emails="lead@example.org",
    )
    rule(portal, MISSED, threshold=10, escalate_after_minutes=5, escalate_webhook_url=url)
    for n in range(5):
        arrive(portal, f"slow{n}", "d2", 600, picked_after=300)
        arrive(portal, f"miss{n}", "d2", 600, missed_after=300)
    lifecycle.evaluate(portal, later())
    missed_alert = open_alerts(portal, MISSED)[0]
    lifecycle.acknowledge(missed_alert, make_admin("ada"))
    assert escalation.escalate_due(portal, later(60)) == []  # not five minutes yet

    sent = escalation.escalate_due(portal, later(6 * 60))
    assert sorted((e.channel, e.ok) for e in sent) == [("email", False), ("webhook", True)]
    (body,) = posted  # the acknowledged one stays quiet
    assert body["text"].startswith(
        "[Warning] Billing: service level 0 % over the last 30 min (target 80 %) — Zylker"
    )
    assert "0 of 10 chats picked up within 60 s; 5 missed." in body["text"]
    assert escalation.escalate_due(portal, later(20 * 60)) == []  # once per alert


# --- the rules page -------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, portal):
    client.force_login(make_admin("ada"))
    return client


def posted(portal, **changes):
    """What the page posts: every rule's fields as they are, with ``changes``."""
    data = {}
    for kind, found in ensure_rules(portal).items():
        if found.enabled:
            data[f"{kind}-enabled"] = "on"
        data[f"{kind}-threshold"] = found.threshold
        data[f"{kind}-severity"] = found.severity
        if found.window_minutes is not None:
            data[f"{kind}-window_minutes"] = found.window_minutes
            data[f"{kind}-minimum_chats"] = found.minimum_chats
    data.update(changes)
    return data


def test_the_page_shows_and_saves_the_service_rules(admin_client, portal):
    page = admin_client.get(f"/portals/{portal.pk}/alerts/").content.decode()
    assert 'id="rule-service_level_low"' in page and 'id="rule-missed_share_high"' in page
    assert 'name="service_level_low-window_minutes"' in page
    assert 'name="missed_share_high-minimum_chats"' in page
    assert "Alert below (%)" in page and "Alert above (%)" in page
    assert "count on neither side" in page  # the definition is on the page
    assert 'name="long_wait-window_minutes"' not in page  # only the service rules have one

    response = admin_client.post(
        f"/portals/{portal.pk}/alerts/",
        posted(
            portal,
            **{
                "service_level_low-threshold": 70,
                "service_level_low-window_minutes": 60,
                "service_level_low-minimum_chats": 8,
                "service_level_low-department_ids": ["d2"],
                "missed_share_high-threshold": 25,
                "missed_share_high-escalate_after_minutes": 10,
                "missed_share_high-escalate_emails": "lead@example.org",
            },
        ),
    )
    assert response.status_code == 302
    level = AlertRule.objects.get(portal=portal, kind=LEVEL)
    assert (level.threshold, level.window_minutes, level.minimum_chats) == (70, 60, 8)
    assert level.department_ids == ["d2"]
    missed = AlertRule.objects.get(portal=portal, kind=MISSED)
    assert (missed.threshold, missed.escalate_after_minutes) == (25, 10)


def test_the_page_says_what_is_wrong_in_words(admin_client, portal):
    response = admin_client.post(
        f"/portals/{portal.pk}/alerts/",
        posted(
            portal,
            **{
                "service_level_low-threshold": 0,
                "service_level_low-window_minutes": 2,
                "missed_share_high-threshold": 100,
                "missed_share_high-minimum_chats": "",
            },
        ),
    )
    text = response.content.decode()
    assert response.status_code == 200
    assert "Give a share from 1 to 100 %." in text
    assert "Say over how many minutes: 5 to 480." in text
    assert "Give a share from 0 to 99 %." in text
    assert "Say how many chats at least: 1 or more." in text
    level = AlertRule.objects.get(portal=portal, kind=LEVEL)
    assert (level.threshold, level.window_minutes) == (80, 30)  # nothing saved


def test_a_post_without_the_window_fields_keeps_them(admin_client, portal):
    rule(portal, LEVEL, window_minutes=45, minimum_chats=3)
    data = posted(portal, **{"service_level_low-threshold": 75})
    for kind in (LEVEL, MISSED):
        del data[f"{kind}-window_minutes"], data[f"{kind}-minimum_chats"]
    assert admin_client.post(f"/portals/{portal.pk}/alerts/", data).status_code == 302
    level = AlertRule.objects.get(portal=portal, kind=LEVEL)
    assert (level.threshold, level.window_minutes, level.minimum_chats) == (75, 45, 3)


def test_the_alert_history_names_the_department_and_the_rule_shortly(portal):
    from dashboard.views.alert_history import SHORT_RULE_NAMES, target_in_words

    answered(portal, "d2", "fast", 4)
    for n in range(2):
        arrive(portal, f"slow{n}", "d2", 600, picked_after=120)
    lifecycle.evaluate(portal, later())
    (alert,) = open_alerts(portal, LEVEL)
    assert target_in_words(alert) == ("Department", "Billing")
    assert SHORT_RULE_NAMES[alert.kind] == "Service level"
