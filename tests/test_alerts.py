"""Alert rules fired through the simulator and resolved when their condition clears; no
duplicates however often they are evaluated; escalation by e-mail and webhook."""

from __future__ import annotations

import json
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from dashboard.alerts import escalation, lifecycle
from dashboard.alerts.rules import ensure_rules
from dashboard.models import Alert, AlertKind, AlertRule, Chat, Escalation, Operator
from dashboard.state import apply
from siq_integration.client import SalesIQClient, record_failure
from siq_integration.exceptions import ReconnectNeeded, Unavailable

pytestmark = pytest.mark.django_db(transaction=True)


def synced(portal):
    client = SalesIQClient(portal)
    now = timezone.now()
    apply.apply_departments(portal, client.list_departments(), taken_at=now)
    apply.apply_operators(portal, client.list_operators(), taken_at=now)
    apply.apply_chats(portal, client.list_open_conversations(), taken_at=now, complete=True)
    return portal


def refreshed(portal, remote_id):
    """SalesIQ's word on one chat (what its webhook would have brought)."""
    conversation = SalesIQClient(portal).get_conversation(remote_id)
    apply.apply_conversation(portal, conversation, fact_at=timezone.now(), source="poll")


def rule(portal, kind, **changes):
    rules = ensure_rules(portal)
    AlertRule.objects.filter(pk=rules[kind].pk).update(**changes)
    return AlertRule.objects.get(pk=rules[kind].pk)


def open_alerts(portal, kind):
    return list(Alert.objects.filter(portal=portal, kind=kind, resolved_at__isnull=True))


def later(seconds=1):
    return timezone.now() + timedelta(seconds=seconds)


@pytest.fixture
def portal(connected_portal):
    return connected_portal(open_chats=0, operators=5)


@pytest.fixture
def ada(db):
    return get_user_model().objects.create_superuser("ada", "ada@example.org", "pw-for-tests-1")


def test_it_raises_a_long_wait_once_and_resolves_it_at_pickup(simulator, portal):
    chat = simulator.create_conversation(portal.screen_name, waiting_seconds=90)["id"]
    synced(portal)
    for _ in range(3):  # evaluated again and again: still one alert
        lifecycle.evaluate(portal, later())
    (alert,) = open_alerts(portal, AlertKind.LONG_WAIT)
    assert "waited 1m " in alert.title and alert.chat.remote_id == chat
    assert alert.severity == "critical"

    simulator.pickup(chat)
    synced(portal)
    lifecycle.evaluate(portal, later())
    alert.refresh_from_db()
    assert alert.resolved_at and alert.resolved_reason == "An operator picked the chat up."


def test_it_raises_a_long_chat_and_resolves_it_when_the_chat_ends(simulator, portal):
    rule(portal, AlertKind.LONG_CHAT, threshold=1)
    chat = simulator.create_conversation(portal.screen_name, waiting_seconds=120)["id"]
    simulator.pickup(chat)
    synced(portal)
    lifecycle.evaluate(portal, later())
    (alert,) = open_alerts(portal, AlertKind.LONG_CHAT)
    simulator.end(chat)
    refreshed(portal, chat)  # the chat closes here; its alerts resolve at once, no wait
    alert.refresh_from_db()
    assert alert.resolved_reason == "The chat ended."


def test_it_raises_an_unanswered_message_until_the_operator_answers(simulator, portal):
    rule(portal, AlertKind.UNANSWERED, threshold=0)
    chat = simulator.create_conversation(portal.screen_name)["id"]
    simulator.pickup(chat)
    simulator.visitor_message(chat, "Hello? Anyone <b>there</b>?")
    synced(portal)
    lifecycle.evaluate(portal, later(5))
    (alert,) = open_alerts(portal, AlertKind.UNANSWERED)
    assert "Anyone <b>there</b>?" in alert.detail  # kept as text; templates escape it
    simulator.operator_message(chat, "Yes, sorry!")
    synced(portal)
    lifecycle.evaluate(portal, later(5))
    assert open_alerts(portal, AlertKind.UNANSWERED) == []


def test_it_raises_for_an_operator_away_with_chats_and_over_capacity(simulator, portal):
    rule(portal, AlertKind.OPERATOR_AWAY_WITH_CHATS, threshold=0)
    first, second = (simulator.create_conversation(portal.screen_name)["id"] for _ in range(2))
    state = simulator.state(portal.screen_name)["portals"][0]
    operator = next(o for o in state["operators"] if o["presence"] == "online")
    simulator.pickup(first, operator["id"])
    simulator.pickup(second, operator["id"])
    simulator.update_operator(operator["id"], max_chats=1)
    simulator.set_operator_status(operator["id"], "busy")
    synced(portal)
    lifecycle.evaluate(portal, later())
    (away,) = open_alerts(portal, AlertKind.OPERATOR_AWAY_WITH_CHATS)
    (over,) = open_alerts(portal, AlertKind.OPERATOR_OVER_CAPACITY)
    assert "busy with 2 open chats" in away.title
    assert "2 chats for 1 seats" in over.title

    simulator.set_operator_status(operator["id"], "available")
    simulator.end(second)
    refreshed(portal, second)
    synced(portal)
    lifecycle.evaluate(portal, later())
    assert open_alerts(portal, AlertKind.OPERATOR_AWAY_WITH_CHATS) == []
    assert open_alerts(portal, AlertKind.OPERATOR_OVER_CAPACITY) == []


def test_it_raises_missed_chats_and_low_ratings_as_they_happen(simulator, portal, ada):
    missed = simulator.create_conversation(portal.screen_name, visitor_name="Zoë")["id"]
    synced(portal)
    simulator.miss(missed)
    refreshed(portal, missed)  # applying the change fires the event rule: no evaluation needed
    (alert,) = open_alerts(portal, AlertKind.MISSED_CHAT)
    assert "Zoë" in alert.title

    rated = simulator.create_conversation(portal.screen_name)["id"]
    simulator.pickup(rated)
    synced(portal)
    simulator.end(rated)
    simulator.rate(rated, 1, "Nobody understood me")
    client = SalesIQClient(portal)
    apply.apply_conversation(
        portal, client.get_conversation(rated), fact_at=timezone.now(), source="poll"
    )
    (low,) = open_alerts(portal, AlertKind.LOW_RATING)
    assert "rated the chat 1/5" in low.title and "Nobody understood me" in low.detail

    # Acknowledging an event alert resolves it; nothing brings it back.
    lifecycle.acknowledge(alert, ada)
    alert.refresh_from_db()
    assert alert.resolved_at and "Acknowledged by ada" in alert.resolved_reason
    synced(portal)
    apply.apply_conversation(
        portal, client.get_conversation(missed), fact_at=timezone.now(), source="poll"
    )
    assert open_alerts(portal, AlertKind.MISSED_CHAT) == []


def test_it_raises_integration_trouble(simulator, portal):
    simulator.create_conversation(portal.screen_name)
    synced(portal)
    portal.webhook_id = "w1"
    portal.last_webhook_at = timezone.now() - timedelta(minutes=30)
    portal.save()
    record_failure(portal, Unavailable())
    portal.refresh_from_db()
    lifecycle.evaluate(portal, later(180))
    (silence,) = open_alerts(portal, AlertKind.WEBHOOK_SILENCE)
    (unreachable,) = open_alerts(portal, AlertKind.SALESIQ_UNREACHABLE)
    assert "no webhook from SalesIQ for 3" in silence.title
    assert "SalesIQ unreachable since" in unreachable.title

    record_failure(portal, ReconnectNeeded())
    portal.refresh_from_db()
    lifecycle.evaluate(portal, later(180))
    assert open_alerts(portal, AlertKind.RECONNECT_NEEDED)

    SalesIQClient(portal).list_departments()  # works again
    portal.refresh_from_db()
    portal.last_webhook_at = timezone.now()
    portal.save()
    lifecycle.evaluate(portal, later(181))
    for kind in (
        AlertKind.WEBHOOK_SILENCE,
        AlertKind.SALESIQ_UNREACHABLE,
        AlertKind.RECONNECT_NEEDED,
    ):
        assert open_alerts(portal, kind) == [], kind


def test_it_keeps_one_alert_per_condition_across_evaluators_and_restarts(simulator, portal):
    simulator.create_conversation(portal.screen_name, waiting_seconds=300)
    synced(portal)
    now = later()
    results = []
    barrier = threading.Barrier(4)

    def evaluator():
        from django.db import connection

        try:
            barrier.wait()
            results.append(len(lifecycle.evaluate(portal, now).raised))
        finally:
            connection.close()

    threads = [threading.Thread(target=evaluator) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(results) == 1
    # "A restart": nothing in memory, the database decides.
    assert lifecycle.evaluate(portal, later(2)).raised == []
    assert len(open_alerts(portal, AlertKind.LONG_WAIT)) == 1


def test_it_leaves_departments_out_of_a_scoped_rule(simulator, portal):
    state = simulator.state(portal.screen_name)["portals"][0]
    sales, support = state["departments"][0]["id"], state["departments"][1]["id"]
    rule(portal, AlertKind.LONG_WAIT, department_ids=[sales])
    simulator.create_conversation(portal.screen_name, department_id=support, waiting_seconds=300)
    synced(portal)
    lifecycle.evaluate(portal, later())
    assert open_alerts(portal, AlertKind.LONG_WAIT) == []
    simulator.create_conversation(portal.screen_name, department_id=sales, waiting_seconds=300)
    synced(portal)
    lifecycle.evaluate(portal, later())
    assert len(open_alerts(portal, AlertKind.LONG_WAIT)) == 1


def test_it_snoozes_and_acknowledges(simulator, portal, ada):
    simulator.create_conversation(portal.screen_name, waiting_seconds=300)
    synced(portal)
    lifecycle.evaluate(portal, later())
    (alert,) = open_alerts(portal, AlertKind.LONG_WAIT)
    lifecycle.snooze(alert, ada, 15)
    assert alert.snoozed_until > timezone.now() + timedelta(minutes=14)
    with pytest.raises(ValueError):
        lifecycle.snooze(alert, ada, 7)
    lifecycle.acknowledge(alert, ada)
    alert.refresh_from_db()
    assert alert.acknowledged_by_name == "ada" and alert.is_open  # a condition alert stays open


# --- escalation ------------------------------------------------------------------------------


class SmtpSink:
    """Just enough SMTP to receive a message: a local sink on a real port."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(5)
        self.port = self.server.getsockname()[1]
        self.messages: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn, conn.makefile("rwb") as stream:

                def say(line: str) -> None:
                    stream.write(line.encode() + b"\r\n")
                    stream.flush()

                say("220 sink ready")
                data: list[str] | None = None
                for raw in stream:
                    line = raw.decode(errors="replace").rstrip("\r\n")
                    if data is not None:
                        if line == ".":
                            self.messages.append("\n".join(data))
                            data = None
                            say("250 queued")
                        else:
                            data.append(line)
                    elif line.upper().startswith(("EHLO", "HELO")):
                        say("250 sink")
                    elif line.upper() == "DATA":
                        data = []
                        say("354 go on")
                    elif line.upper() == "QUIT":
                        say("221 bye")
                        break
                    else:
                        say("250 ok")

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def smtp_sink(settings):
    sink = SmtpSink()
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": sink.port, "timeout": 5},
        }
    }
    yield sink
    sink.close()


@pytest.fixture
def hook_endpoint(settings):
    """A receiver on 127.0.0.1, which the outbound session refuses unless it is allowed by
    name and port (SIQ_OUTBOUND_ALLOW_HOSTS), as it is here."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            status = 500 if self.path == "/broken" else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.SIQ_OUTBOUND_ALLOW_HOSTS = [f"127.0.0.1:{server.server_address[1]}"]
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()


def test_it_escalates_by_email_and_webhook_and_records_failures(
    simulator, portal, smtp_sink, hook_endpoint
):
    base, posted = hook_endpoint
    rule(
        portal,
        AlertKind.LONG_WAIT,
        escalate_after_minutes=5,
        escalate_emails="lead@example.org, boss@example.org",
        escalate_webhook_url=f"{base}/slack",
    )
    simulator.create_conversation(portal.screen_name, visitor_name="Zoë", waiting_seconds=300)
    synced(portal)
    lifecycle.evaluate(portal, later())
    assert escalation.escalate_due(portal, later(60)) == []  # not yet five minutes
    sent = escalation.escalate_due(portal, later(6 * 60))
    assert sorted(e.channel for e in sent) == ["email", "webhook"]
    assert all(e.ok for e in sent), [e.error for e in sent]
    assert "Zo" in smtp_sink.messages[0] and "lead@example.org" in smtp_sink.messages[0]
    assert posted[0]["text"].startswith("[Critical] Zoë has waited")
    # What is sent (and kept for the history) reads as of the escalation, not of the raise.
    assert "Zoë has waited 11m " in posted[0]["text"]
    assert "has waited 11m " in Alert.objects.get(kind=AlertKind.LONG_WAIT).title
    assert escalation.escalate_due(portal, later(20 * 60)) == []  # once per alert

    # A broken endpoint: the failure is kept and shown, not swallowed.
    rule(
        portal,
        AlertKind.LONG_CHAT,
        threshold=1,
        escalate_after_minutes=0,
        escalate_webhook_url=f"{base}/broken",
    )
    chat = Chat.objects.get(portal=portal)
    simulator.pickup(chat.remote_id)
    synced(portal)
    lifecycle.evaluate(portal, later(5))
    (failed,) = escalation.escalate_due(portal, later(10))
    assert not failed.ok and failed.error.startswith("HTTP 500")
    assert Escalation.objects.filter(ok=False).count() == 1


def test_it_records_an_email_it_could_not_send(simulator, portal, settings):
    settings.MAILERS = {}
    rule(portal, AlertKind.LONG_WAIT, escalate_after_minutes=0, escalate_emails="lead@example.org")
    simulator.create_conversation(portal.screen_name, waiting_seconds=300)
    synced(portal)
    lifecycle.evaluate(portal, later())
    (attempt,) = escalation.escalate_due(portal, later(5))
    assert not attempt.ok and "SMTP_URL" in attempt.error


def test_it_never_escalates_an_acknowledged_or_snoozed_alert(simulator, portal, ada, hook_endpoint):
    base, posted = hook_endpoint
    rule(
        portal, AlertKind.LONG_WAIT, escalate_after_minutes=1, escalate_webhook_url=f"{base}/slack"
    )
    for _ in range(2):
        simulator.create_conversation(portal.screen_name, waiting_seconds=300)
    synced(portal)
    lifecycle.evaluate(portal, later())
    first, second = open_alerts(portal, AlertKind.LONG_WAIT)
    lifecycle.acknowledge(first, ada)
    lifecycle.snooze(second, ada, 60)
    assert escalation.escalate_due(portal, later(5 * 60)) == []
    assert posted == []
    assert Operator.objects.filter(portal=portal).exists()
