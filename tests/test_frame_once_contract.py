"""Frame-once (SIQ_FRAME_ONCE=1) under the real daphne: the contract with its internals.

dashboard/server/frame_once.py leans on internals of daphne, autobahn and Twisted (pinned in
pyproject.toml). This test starts the real server process with frame-once on, opens several
live pages, sends them a change the way SalesIQ does (a signed webhook from the simulator) and
reads the raw frames: each page gets the same message, intact. The server checks the
internals on its first connection (``frame_once.contract_problems``: each attribute there,
of its type, prepareMessage framing as a browser reads it) and says so in its log; an upgrade
that changes any of them turns frame-once off and fails this test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version

import pytest
from django.conf import settings
from django.test import Client

from siq_integration import connecting
from tests.factories import make_admin
from tests.support.frame_once_server import MESSAGES
from tests.support.servers import WebSocket, free_port, serving
from tests.support.waits import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_frames_once_for_every_page_under_the_real_daphne(simulator, connected_portal, tmp_path):
    portal = connected_portal(open_chats=0)
    browser = Client()
    browser.force_login(make_admin("root"))
    cookie = browser.cookies["sessionid"].value
    visitor = "Zoë Ångström"  # not ASCII: frames count bytes, not characters

    with serving(simulator, tmp_path, SIQ_FRAME_ONCE="1", LOG_LEVEL="INFO") as base:
        port = int(base.rsplit(":", 1)[1])
        pages = [WebSocket(port, f"/ws/live/?portals={portal.pk}", cookie) for _ in range(4)]
        try:
            for page in pages:
                page.receive()  # the snapshot
            hook = f"{base}/webhooks/salesiq/{portal.pk}/"
            assert connecting.register_webhooks(portal, url=hook)
            simulator.create_conversation(portal.screen_name, visitor_name=visitor)
            got = [page.wait_for(visitor, timeout=20) for page in pages]
        finally:
            for page in pages:
                page.close()
    log = (tmp_path / "serve.log").read_text()

    assert len(set(got)) == 1  # every page the same message, whole
    assert 'hx-swap-oob="true"' in got[0]
    versions = ", ".join(f"{name} {version(name)}" for name in ("daphne", "twisted", "autobahn"))
    assert f"frame-once: on ({versions}; internals as expected)" in log, log[-3000:]
    assert "frame-once: off" not in log
    assert "Traceback" not in log


def test_a_page_not_reading_gets_a_big_message_whole_and_the_next_ones_after_it(tmp_path):
    """Frame-once writes to the socket itself and leaves to Twisted what the socket does not
    take; what comes next must wait behind it (Twisted's buffers), not overtake it."""
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.support.frame_once_server", str(port), "2"],
            cwd=settings.BASE_DIR,
            env={**os.environ, "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        wait_for(lambda: _listening(port), timeout=30, what="the frame-once server")
        reading = WebSocket(port, "/ws/", "none")
        idle = WebSocket(port, "/ws/", "none")  # reads nothing until everything is sent
        with ThreadPoolExecutor(max_workers=1) as thread:
            read = thread.submit(lambda: [reading.receive() for _ in MESSAGES])
            assert server.stdout.readline().strip() == "sent"
            idle.sock.settimeout(20)
            late = [idle.receive() for _ in MESSAGES]
            early = read.result(timeout=20)
        reading.close()
        idle.close()
    finally:
        server.terminate()
        server.wait(10)
    assert early == MESSAGES
    assert late == MESSAGES
    assert "frame-once: on (" in log.read_text(), log.read_text()[-2000:]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True
