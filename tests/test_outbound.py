"""Escalation webhooks cannot be turned against the server's own network (issue 13,
"request forgery"): the rule form refuses internal addresses in words; a URL forced into
the database anyway reaches nothing (a real receiver on a real port counts connections);
a public name resolving to 127.0.0.1 is refused after resolution; a redirect from an
allowed host to a loopback address is refused; what the receiver answered is kept to a
status and a short reason, shown to Admins only, and addresses are shown masked."""

from __future__ import annotations

import csv
import io
import socket
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from dashboard import outbound
from dashboard.alerts import escalation
from dashboard.alerts.rules import ensure_rules
from dashboard.models import Alert, AlertKind, AlertRule, Escalation, Profile, Role
from siq_integration.models import Portal

pytestmark = pytest.mark.django_db

SECRET_BODY = "internal-service-secret-4f9a"
SLACK_PATH = "/services/T0ABC/B0DEF/s3cretPathPart"


class Receiver(ThreadingHTTPServer):
    """A local HTTP service on a real port that counts every connection made to it (so a
    refused call is seen to reach nothing, not even a TLS hello) and the requests it read.
    ``redirects`` maps a path to (status, Location)."""

    daemon_threads = True

    def __init__(self, *, status: int = 200, delay: float = 0.0) -> None:
        self.connections = 0
        self.requests: list[str] = []
        self.redirects: dict[str, tuple[int, str]] = {}
        self.status, self.delay = status, delay
        self.huge_redirect_body = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                outer.requests.append(self.path)
                if outer.delay:
                    time.sleep(outer.delay)
                if self.path in outer.redirects:
                    code, location = outer.redirects[self.path]
                    self.send_response(code)
                    self.send_header("Location", location)
                    if outer.huge_redirect_body:  # a gigabyte announced, trickling in
                        self.send_header("Content-Length", str(10**9))
                        self.end_headers()
                        for _ in range(30):
                            self.wfile.write(b"x" * 65536)
                            self.wfile.flush()
                            time.sleep(0.1)
                        return
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = f'{{"error": "{SECRET_BODY}"}}'.encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET = _answer

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def handle_error(self, request, client_address) -> None:
        pass  # a client that hung up (the timeout test): nothing to report

    def verify_request(self, request, client_address) -> bool:
        self.connections += 1
        return True

    def url(self, path: str = "/hook", *, scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}{path}"


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def portal():
    return Portal.objects.create(name="Zylker", data_center="sim", screen_name="zylker")


@pytest.fixture
def people(portal):
    make = get_user_model().objects.create_user
    users = {}
    for name, role in (("adele", Role.ADMIN), ("sam", Role.SUPERVISOR), ("vic", Role.VIEWER)):
        user = make(name, password="pw-for-tests-1")
        Profile.objects.create(user=user, role=role).portals.set([portal])
        users[name] = user
    return users


@pytest.fixture
def fake_dns(monkeypatch):
    """Names of our choosing resolve where we say, at the socket.getaddrinfo level (what
    both the form's check and requests-hardened's adapter call)."""
    names: dict[str, str] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        key = host.decode() if isinstance(host, bytes) else host
        if key in names:
            return real(names[key], port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


def form_data(portal, **changes):
    data = {}
    for kind, rule in ensure_rules(portal).items():
        if rule.enabled:
            data[f"{kind}-enabled"] = "on"
        data[f"{kind}-threshold"] = rule.threshold
        data[f"{kind}-severity"] = rule.severity
    data.update(changes)
    return data


def due_alert(portal, url: str) -> Alert:
    """An open, unacknowledged alert whose rule escalates to ``url`` at once."""
    rule = ensure_rules(portal)[AlertKind.LONG_WAIT]
    AlertRule.objects.filter(pk=rule.pk).update(escalate_after_minutes=0, escalate_webhook_url=url)
    raised = timezone.now() - timedelta(minutes=5)
    return Alert.objects.create(
        portal=portal,
        rule=rule,
        kind=rule.kind,
        severity=rule.severity,
        target="chat:77",
        title="Zoë has waited 5m 00s for pickup",
        raised_at=raised,
        changed_at=raised,
    )


def escalate(portal) -> Escalation:
    (attempt,) = escalation.escalate_due(portal, timezone.now())
    attempt.refresh_from_db()
    return attempt


# --- the form ---------------------------------------------------------------------------------


def test_an_admin_cannot_save_a_webhook_to_a_local_service(client, portal, people, receiver):
    client.force_login(people["adele"])  # an Admin, not a superuser
    for url, words in [
        (receiver.url(), "loopback"),
        (receiver.url(scheme="https"), "loopback"),
        (f"https://[::1]:{receiver.port}/hook", "loopback"),
        ("https://169.254.169.254/latest/meta-data/", "metadata"),
        ("https://[fd00:ec2::254]/latest/meta-data/", "metadata"),
        ("https://10.0.0.7/hook", "private"),
        ("https://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://hooks.slack.com/services/x", "https://"),
        ("https://user:pw@hooks.slack.com/services/x", "user name or password"),
    ]:
        response = client.post(
            f"/portals/{portal.pk}/alerts/",
            form_data(
                portal,
                **{
                    "long_wait-escalate_after_minutes": 5,
                    "long_wait-escalate_webhook_url": url,
                },
            ),
        )
        assert response.status_code == 200, url  # the form again, with what is wrong
        page = response.content.decode()
        assert words in page, (url, page[page.find("error") - 200 : page.find("error") + 300])
        rule = AlertRule.objects.get(portal=portal, kind=AlertKind.LONG_WAIT)
        assert rule.escalate_webhook_url == "", url
    assert receiver.connections == 0


def test_the_form_still_takes_an_allowed_host_and_a_public_address(
    client, portal, people, receiver, settings, fake_dns
):
    settings.SIQ_OUTBOUND_ALLOW_HOSTS = [f"127.0.0.1:{receiver.port}"]
    fake_dns["hooks.example.com"] = "93.184.215.14"  # a public address
    client.force_login(people["adele"])
    for url in (receiver.url(), "https://hooks.example.com/services/T/B/X"):
        response = client.post(
            f"/portals/{portal.pk}/alerts/",
            form_data(portal, **{"long_wait-escalate_webhook_url": url}),
        )
        assert response.status_code == 302, url
        rule = AlertRule.objects.get(portal=portal, kind=AlertKind.LONG_WAIT)
        assert rule.escalate_webhook_url == url


def test_a_public_name_resolving_to_loopback_is_refused(portal, receiver, fake_dns):
    fake_dns["hooks.partner.example"] = "127.0.0.1"
    url = receiver.url(scheme="https", host="hooks.partner.example")
    # Refused when saving...
    assert "loopback" in outbound.refusal(url)
    # ...and, forced into the database, when sending: the address is checked after
    # resolution and the receiver on 127.0.0.1 sees no connection at all.
    due_alert(portal, url)
    attempt = escalate(portal)
    assert not attempt.ok and attempt.http_status is None
    assert "loopback" in attempt.error
    assert receiver.connections == 0


# --- the session ----------------------------------------------------------------------------


def test_a_loopback_webhook_forced_into_the_database_reaches_nothing(portal, receiver):
    due_alert(portal, receiver.url())
    attempt = escalate(portal)
    assert receiver.connections == 0 and receiver.requests == []
    assert not attempt.ok
    assert attempt.error.startswith("The address leads to this server itself (a loopback")
    assert "SIQ_OUTBOUND_ALLOW_HOSTS" in attempt.error


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/latest/meta-data/",
        "https://192.168.1.10/hook",
        "http://evil.example\\@127.0.0.1/hook",
        "https://a:b@hooks.slack.com/x",
    ],
)
def test_the_session_refuses_before_connecting(url):
    reply = outbound.post_json(url, b"{}")
    assert not reply.ok and reply.status is None
    assert reply.reason and len(reply.reason) <= outbound.REASON_LIMIT


def test_a_redirect_from_an_allowed_host_to_loopback_is_refused(
    portal, receiver, settings, fake_dns
):
    redirector = Receiver()
    try:
        settings.SIQ_OUTBOUND_ALLOW_HOSTS = [f"127.0.0.1:{redirector.port}"]
        fake_dns["internal.partner.example"] = "127.0.0.1"
        redirector.redirects = {
            "/to-http": (307, receiver.url()),
            "/to-https": (307, receiver.url(scheme="https")),
            "/to-name": (308, receiver.url(scheme="https", host="internal.partner.example")),
        }
        for path in ("/to-http", "/to-https", "/to-name"):
            Alert.objects.all().delete()
            due_alert(portal, redirector.url(path))
            attempt = escalate(portal)
            assert not attempt.ok and "loopback" in attempt.error, (path, attempt.error)
        assert redirector.requests == ["/to-http", "/to-https", "/to-name"]
        assert receiver.connections == 0
    finally:
        redirector.shutdown()
        redirector.server_close()


def test_a_redirect_body_is_never_read(settings, receiver):
    """A redirect announcing a gigabyte (and trickling it for 3 s) is left unread: the
    next hop follows at once rather than after the whole body or the read timeout."""
    redirector = Receiver()
    try:
        redirector.huge_redirect_body = True
        redirector.redirects = {"/big": (307, receiver.url())}
        settings.SIQ_OUTBOUND_ALLOW_HOSTS = [
            f"127.0.0.1:{redirector.port}",
            f"127.0.0.1:{receiver.port}",
        ]
        started = time.monotonic()
        reply = outbound.post_json(redirector.url("/big"), b"{}")
        took = time.monotonic() - started
        assert reply.ok and receiver.requests == ["/hook"], reply
        assert took < 1.5, took
    finally:
        redirector.shutdown()
        redirector.server_close()


def test_redirects_stop_after_three(settings):
    hops = Receiver()
    try:
        settings.SIQ_OUTBOUND_ALLOW_HOSTS = [f"127.0.0.1:{hops.port}"]
        hops.redirects = {f"/{n}": (307, hops.url(f"/{n + 1}")) for n in range(10)}
        reply = outbound.post_json(hops.url("/0"), b"{}")
        assert not reply.ok and reply.reason == "The address redirected more than 3 times."
        assert hops.requests == ["/0", "/1", "/2", "/3"]
    finally:
        hops.shutdown()
        hops.server_close()


def test_a_slow_receiver_times_out(settings):
    slow = Receiver(delay=2.0)
    try:
        settings.SIQ_OUTBOUND_ALLOW_HOSTS = [f"127.0.0.1:{slow.port}"]
        settings.SIQ_OUTBOUND_TIMEOUT = 0.3
        started = time.monotonic()
        reply = outbound.post_json(slow.url(), b"{}")
        assert time.monotonic() - started < 1.5
        assert reply.reason == "The address did not answer within 0.3 seconds."
    finally:
        slow.shutdown()
        slow.server_close()


def test_an_allowed_host_is_allowed_by_name_and_port_only(settings, receiver):
    settings.SIQ_OUTBOUND_ALLOW_HOSTS = [f"127.0.0.1:{receiver.port + 1}"]
    assert not outbound.post_json(receiver.url(), b"{}").ok
    assert receiver.connections == 0
    settings.SIQ_OUTBOUND_ALLOW_HOSTS = ["127.0.0.1"]  # any port
    reply = outbound.post_json(receiver.url(), b"{}")
    assert reply.ok and reply.status == 200 and receiver.requests == ["/hook"]


# --- what is kept and shown -------------------------------------------------------------------


def test_the_reply_is_kept_short_and_shown_to_admins_only(client, portal, people, settings):
    failing = Receiver(status=500)
    try:
        settings.SIQ_OUTBOUND_ALLOW_HOSTS = [f"127.0.0.1:{failing.port}"]
        url = failing.url(SLACK_PATH)
        alert = due_alert(portal, url)
        attempt = escalate(portal)
    finally:
        failing.shutdown()
        failing.server_close()
    assert failing.requests == [SLACK_PATH]
    assert not attempt.ok and attempt.http_status == 500
    assert attempt.error == "HTTP 500 Internal Server Error"  # the status line, not the body
    assert SECRET_BODY not in attempt.error

    for who in ("vic", "sam", "adele"):
        client.force_login(people[who])
        pages = {
            "detail": client.get(f"/alerts/{alert.pk}/").content.decode(),
            "history": client.get("/alerts/").content.decode(),
        }
        body = b"".join(client.get("/alerts.csv").streaming_content).decode("utf-8-sig")
        (row,) = list(csv.DictReader(io.StringIO(body)))
        pages["csv"] = row["escalations"]
        for name, text in pages.items():
            assert SECRET_BODY not in text, (who, name)
            assert "s3cretPathPart" not in text and "T0ABC" not in text, (who, name)
            assert f"http://127.0.0.1:{failing.port}/…" in text, (who, name)
            if who == "adele":
                assert "HTTP 500 Internal Server Error" in text, (who, name)
            else:
                assert "HTTP 500" not in text and "Internal Server Error" not in text, (who, name)
                assert "failed" in text.lower(), (who, name)
        if who != "adele":
            assert row["escalations"] == f"Webhook to http://127.0.0.1:{failing.port}/…: failed"


def test_the_rule_page_still_shows_the_whole_address_to_admins(client, portal, people):
    rule = ensure_rules(portal)[AlertKind.LONG_WAIT]
    AlertRule.objects.filter(pk=rule.pk).update(
        escalate_webhook_url=f"https://hooks.slack.com{SLACK_PATH}"
    )
    client.force_login(people["adele"])
    assert SLACK_PATH in client.get(f"/portals/{portal.pk}/alerts/").content.decode()


def test_masking():
    assert outbound.masked("https://hooks.slack.com/services/T/B/X") == "https://hooks.slack.com/…"
    assert outbound.masked("http://10.0.0.1:8080/x?y=1") == "http://10.0.0.1:8080/…"
    assert outbound.masked("https://[::1]/x") == "https://[::1]/…"
    assert outbound.masked("https://user:pw@h/x") == "…"
