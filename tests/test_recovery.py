"""SalesIQ back after an outage: `manage.py serve` notices within 15 s and tells the pages,
asking only one cheap question at a time while SalesIQ is down."""

from __future__ import annotations

import math
import os
import struct
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from dashboard.models import Chat, PortalSync
from dashboard.polling.poller import UNREACHABLE_PROBE_EVERY
from siq_integration import health
from siq_integration.models import Portal
from tests.support.servers import WebSocket
from tests.support.simulator import last_seq
from tests.support.waits import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

# Seconds: long enough for a doubling back-off (5, 10, 20, 40 s) to have grown past 15 s.
OUTAGE = 50.0
NOTICED_WITHIN = 15.0


class PatientWebSocket(WebSocket):
    """Answers daphne's pings (every 20 s), so the socket outlives a long outage."""

    def receive(self) -> str:
        parts: list[bytes] = []
        while True:
            first, second = self._exactly(2)
            size = second & 0x7F
            if size == 126:
                (size,) = struct.unpack("!H", self._exactly(2))
            elif size == 127:
                (size,) = struct.unpack("!Q", self._exactly(8))
            payload = self._exactly(size)
            opcode = first & 0x0F
            if opcode == 8:
                raise ConnectionError("the server closed the websocket")
            if opcode == 9:  # ping: a pong with the same payload, masked as clients must
                mask = os.urandom(4)
                masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                self.sock.sendall(bytes([0x8A, 0x80 | len(payload)]) + mask + masked)
                continue
            if opcode in (0, 1):
                parts.append(payload)
                if first & 0x80:
                    return b"".join(parts).decode()


def state_of(portal) -> health.State:
    return health.portal_health(Portal.objects.get(pk=portal.pk)).state


def test_it_notices_salesiq_is_back_within_15_s_and_tells_the_pages(
    simulator, connected_portal, server
):
    portal = connected_portal(open_chats=2)
    wait_for(
        lambda: Chat.objects.filter(portal=portal).count() == 2,
        timeout=20,
        what="the first poll",
    )
    admin = get_user_model().objects.create_superuser("root", password="pw")
    browser = Client()
    browser.force_login(admin)
    page = PatientWebSocket(
        server.port, f"/ws/live/?portals={portal.pk}", browser.cookies["sessionid"].value
    )
    try:
        page.receive()  # the snapshot
        start = last_seq(simulator)
        simulator.set_faults(portal=portal.screen_name, outage_seconds=OUTAGE, outage_mode="drop")
        down_at, down_wall = time.monotonic(), time.time()
        long_ago = timezone.now() - timedelta(hours=1)
        PortalSync.objects.filter(portal=portal).update(  # due now: the outage shows at once
            departments_polled_at=long_ago, operators_polled_at=long_ago, chats_polled_at=long_ago
        )
        page.wait_for('data-health="unreachable"', timeout=20)
        assert state_of(portal) == health.State.UNREACHABLE

        # SalesIQ answers again when the outage ends: the page hears it within 15 s.
        back_at = down_at + OUTAGE
        told = page.wait_for('data-health="connected"', timeout=OUTAGE + NOTICED_WITHIN + 5)
        noticed = time.monotonic() - back_at
        assert noticed <= NOTICED_WITHIN, f"noticed {noticed:.1f} s after SalesIQ came back"
        assert "unreachable" not in told
        assert state_of(portal) == health.State.CONNECTED
    finally:
        page.close()
        simulator.clear_faults()

    # Meanwhile: the failing poll's own attempts, then one probe at a time, no faster than
    # one every UNREACHABLE_PROBE_EVERY seconds (within a Free plan's 10 calls a minute).
    during = [
        call
        for call in simulator.calls(start)
        if call.get("portal") == portal.screen_name
        and down_wall <= call["time"] <= down_wall + OUTAGE
    ]
    allowed = 3 + math.ceil(OUTAGE / UNREACHABLE_PROBE_EVERY) + 1
    assert 0 < len(during) <= allowed, [c["path"] for c in during]
