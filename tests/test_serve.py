"""`manage.py serve`: daphne and the worker in one process, stopped cleanly by SIGTERM."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client
from django.utils import timezone

from dashboard.models import Chat, PortalSync
from dashboard.polling.runner import Worker
from dashboard.realtime import fanout
from tests.support.servers import WebSocket, child_env, free_port
from tests.support.waits import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_serves_and_polls_in_one_process_and_stops_cleanly(
    simulator, connected_portal, tmp_path
):
    portal = connected_portal(open_chats=4)
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=settings.BASE_DIR,
            env=child_env(simulator),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def healthy() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok
            except requests.RequestException:
                return False

        wait_for(healthy, timeout=30, what="/healthz answering")
        wait_for(
            lambda: Chat.objects.filter(portal=portal).count() == 4,
            timeout=15,
            what="the simulator's open chats arriving through the worker",
        )
        holder = PortalSync.objects.get(portal=portal).lease_holder
        assert holder.split(":")[1] == str(process.pid)

        # What the worker polls reaches a browser through the in-memory channel layer:
        # only true when it publishes on daphne's own event loop.
        admin = get_user_model().objects.create_superuser("root", password="pw")
        browser = Client()
        browser.force_login(admin)
        socket_ = WebSocket(
            port, f"/ws/live/?portals={portal.pk}", browser.cookies["sessionid"].value
        )
        try:
            socket_.receive()  # the snapshot
            simulator.create_conversation(portal.screen_name, visitor_name="Wanda Latecomer")
            PortalSync.objects.filter(portal=portal).update(
                chats_polled_at=timezone.now() - timedelta(hours=1)
            )
            socket_.wait_for("Wanda Latecomer", timeout=15)
        finally:
            socket_.close()

        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
        assert time.monotonic() - started < 15
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    output = log_path.read_text()
    assert f"Serving on http://127.0.0.1:{port}/ (with the worker)" in output
    assert "Traceback" not in output
    assert PortalSync.objects.get(portal=portal).lease_holder == ""  # released at shutdown


def test_it_publishes_what_it_polls_on_the_servers_event_loop(connected_portal, monkeypatch):
    """The fan-out sends to pages on their own loop (and the in-memory layer only wakes
    consumers reliably from its own loop)."""
    portal = connected_portal(open_chats=2)
    loops_sent_on: list[asyncio.AbstractEventLoop] = []
    real_group_send = fanout.group_send

    async def group_send(group, message):
        loops_sent_on.append(asyncio.get_running_loop())
        return await real_group_send(group, message)

    monkeypatch.setattr(fanout, "group_send", group_send)

    def chats_so_far() -> int:
        try:
            return Chat.objects.filter(portal=portal).count()
        finally:
            connections.close_all()  # asgiref's thread would keep the test database open

    count_chats = sync_to_async(chats_so_far)

    async def serve_for_a_while() -> asyncio.AbstractEventLoop:
        stop = asyncio.Event()
        worker = Worker()
        running = asyncio.create_task(worker.run_on_loop(stop, tick_seconds=0.2))
        deadline = time.monotonic() + 15
        while await count_chats() < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        stop.set()
        await running
        return asyncio.get_running_loop()

    # A thread of its own: browser tests leave Playwright's loop running in this one.
    with ThreadPoolExecutor(max_workers=1) as thread:
        server_loop = thread.submit(asyncio.run, serve_for_a_while()).result(timeout=60)
    assert Chat.objects.filter(portal=portal).count() == 2
    assert loops_sent_on, "nothing was published"
    assert all(loop is server_loop for loop in loops_sent_on)
    assert PortalSync.objects.get(portal=portal).lease_holder == ""


def test_it_logs_a_refusal_in_one_line_and_sums_up_webhooks(simulator, connected_portal, tmp_path):
    """A 403 is one line (no traceback); webhook deliveries are counted, not listed, and the
    count is said at shutdown; other requests keep their access-log line."""
    from dashboard.models import InboxEvent, Profile, Role
    from siq_integration import connecting

    portal = connected_portal(open_chats=0)
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=settings.BASE_DIR,
            env=child_env(simulator),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            try:
                return requests.get(f"{base}/healthz", timeout=2).ok
            except requests.RequestException:
                return False

        wait_for(healthy, timeout=30, what="/healthz answering")
        viewer = get_user_model().objects.create_user("wall", password="pw")
        Profile.objects.create(user=viewer, role=Role.VIEWER).portals.set([portal])
        browser = Client()
        browser.force_login(viewer)
        session = {"sessionid": browser.cookies["sessionid"].value}
        refused = requests.get(f"{base}/audit/", cookies=session, timeout=10)
        assert refused.status_code == 403

        assert connecting.register_webhooks(portal, url=f"{base}/webhooks/salesiq/{portal.pk}/")
        for n in range(3):
            simulator.create_conversation(portal.screen_name, visitor_name=f"Hook {n}")
        wait_for(
            lambda: InboxEvent.objects.filter(portal=portal).count() >= 3,
            timeout=15,
            what="three deliveries stored",
        )
        for _ in range(2):  # not signed: refused
            bogus = requests.post(f"{base}/webhooks/salesiq/{portal.pk}/", data=b"{}", timeout=10)
            assert bogus.status_code >= 400
        assert requests.get(f"{base}/login/", timeout=10).ok

        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    lines = log_path.read_text().splitlines()
    assert "Traceback" not in "\n".join(lines)
    assert [line for line in lines if "/audit/" in line] == [
        next(line for line in lines if '"GET /audit/" 403' in line)
    ]
    assert not [line for line in lines if "/webhooks/" in line]
    (summary,) = [line for line in lines if "webhooks:" in line]
    counted = re.search(r"webhooks: (\d+) received, (\d+) refused in the last \d+ (s|min)", summary)
    assert counted, summary
    assert int(counted[1]) >= 5 and int(counted[2]) == 2
    assert any('"GET /login/" 200' in line for line in lines)
