"""The server's log: a refused request is one line; webhooks are summed up, not listed; the
demo's address and login come back now and then."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from dashboard import logs
from dashboard.models import Profile, Role
from dashboard.server import run

pytestmark = pytest.mark.django_db


def request(status: int, path: str) -> dict:
    return {"client": "127.0.0.1:5", "method": "POST", "status": status, "size": 9, "path": path}


def test_it_writes_a_refused_request_on_one_line_with_its_reason():
    """Without daphne's access log (another server, tests): Django's own line, and only it."""
    user = get_user_model().objects.create_user("wall", password="pw")
    Profile.objects.create(user=user, role=Role.VIEWER)
    browser = Client()
    browser.force_login(user)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        assert browser.get("/audit/").status_code == 403
    finally:
        logging.getLogger().removeHandler(handler)
    assert stream.getvalue().splitlines() == [
        "WARNING django.request: Forbidden (Permission denied): /audit/ "
        "(The audit trail is for Admins and Supervisors.)"
    ]


def test_it_writes_a_foreign_host_on_one_line_with_its_reason(monkeypatch):
    """A request for another host (a scanner, a misconfigured proxy) is refused in one line
    that says why, beside the access log too (which says only 400)."""
    monkeypatch.setitem(logs.access_log, "on", True)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        assert Client(HTTP_HOST="evil.example").get("/login/").status_code == 400
    finally:
        logging.getLogger().removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("ERROR django.security.DisallowedHost: Invalid HTTP_HOST header")
    assert "evil.example" in lines[0] and "Traceback" not in stream.getvalue()


def test_it_leaves_the_refusal_to_the_access_log_when_there_is_one(monkeypatch):
    monkeypatch.setitem(logs.access_log, "on", True)
    record = logging.LogRecord("django.request", logging.WARNING, "", 0, "Forbidden", (), None)
    record.status_code = 403
    assert logs.ClientErrorsOnOneLine().filter(record) is False
    record.status_code = 500  # the server's own fault keeps its line and traceback
    assert logs.ClientErrorsOnOneLine().filter(record) is True


def test_it_counts_webhooks_instead_of_listing_them():
    stream = io.StringIO()
    access = run.AccessLogWithoutQueries(stream)
    for _ in range(1233):
        access("http", "complete", request(200, "/webhooks/salesiq/p1/"))
    access("http", "complete", request(403, "/webhooks/salesiq/p1/?x=1"))
    access("http", "complete", request(400, "/webhooks/salesiq/p1/"))
    access("http", "complete", request(200, "/live/chats/4/"))
    assert stream.getvalue().count("\n") == 1 and '"POST /live/chats/4/" 200' in stream.getvalue()
    assert access.webhook_summary(300) == ("webhooks: 1,235 received, 2 refused in the last 5 min")
    assert access.webhook_summary(300) == ""  # counted afresh

    each = run.AccessLogWithoutQueries(stream, each_webhook=True)
    each("http", "complete", request(200, "/webhooks/salesiq/p1/"))
    assert '"POST /webhooks/salesiq/p1/" 200' in stream.getvalue()


def test_it_repeats_the_demos_login_with_each_summary(monkeypatch, caplog):
    monkeypatch.setattr(run, "SUMMARY_EVERY", 0.05)
    access = run.AccessLogWithoutQueries(io.StringIO())
    access("http", "complete", request(200, "/webhooks/salesiq/p1/"))
    summarise = run._summaries(access, "Demo: http://127.0.0.1:8000/ · sign in as admin")

    async def a_while() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(summarise(stop))
        await asyncio.sleep(0.12)
        stop.set()
        await running

    with caplog.at_level(logging.INFO, logger="dashboard.server.run"):
        asyncio.run(a_while())
    said = [record.getMessage() for record in caplog.records]
    assert said[0].startswith("webhooks: 1 received, 0 refused in the last")
    assert said.count("Demo: http://127.0.0.1:8000/ · sign in as admin") >= 2
