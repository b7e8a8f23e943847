"""Two real `manage.py siq_worker` processes: one polls, the other takes over when it dies.

The processes share the test database: settings keep SQLite tests in a real file (named
by SIQ_TEST_DB_NAME), and a transactional test commits what it writes, so a child
pointed at that file with DATABASE_URL sees the connected portal and the test sees the
leases. No second database to migrate, no second OAuth round trip.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from dashboard.models import Chat, PortalSync
from tests.support.servers import child_env
from tests.support.waits import TAKEOVER_LIMIT, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def pid_of(holder: str) -> int:
    return int(holder.split(":")[1])


@pytest.fixture
def start_worker(simulator, tmp_path) -> Iterator[Callable[[], subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    env = child_env(simulator)

    def start() -> subprocess.Popen:
        log = (tmp_path / f"worker-{len(started)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "manage.py", "siq_worker", "--tick", "0.5"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        process.log_path = Path(log.name)  # type: ignore[attr-defined]
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_it_polls_from_exactly_one_process_and_hands_over_when_it_is_killed(
    simulator, connected_portal, start_worker
):
    portal = connected_portal(open_chats=3)
    workers = {process.pid: process for process in (start_worker(), start_worker())}

    holder = wait_for(
        lambda: PortalSync.objects.filter(portal=portal).exclude(lease_holder="").first(),
        timeout=20,
        what="a worker taking the portal's lease",
    ).lease_holder
    wait_for(
        lambda: Chat.objects.filter(portal=portal).count() == 3,
        timeout=10,
        what="the open chats arriving",
    )
    first = workers[pid_of(holder)]
    (second,) = [process for process in workers.values() if process is not first]
    # For a while both run: the lease never changes hands and only one says it polls.
    for _ in range(10):
        assert PortalSync.objects.get(portal=portal).lease_holder == holder
        time.sleep(0.2)
    logs = {process.pid: process.log_path.read_text() for process in workers.values()}
    assert "now polls portal" in logs[first.pid]
    assert "now polls portal" not in logs[second.pid]
    assert "browsers connected to other processes will not see updates" in logs[second.pid]

    # Sudden death: no chance to release the lease.
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    killed_at = time.monotonic()
    # A visitor arrives meanwhile; the survivor must find it by polling.
    created = simulator.create_conversation(portal.screen_name)
    PortalSync.objects.filter(portal=portal).update(
        chats_polled_at=timezone.now() - timedelta(hours=1)
    )
    wait_for(
        lambda: pid_of(PortalSync.objects.get(portal=portal).lease_holder or "x:0") == second.pid,
        timeout=TAKEOVER_LIMIT,
        what="the survivor taking over",
    )
    takeover = time.monotonic() - killed_at
    wait_for(
        lambda: Chat.objects.filter(portal=portal, remote_id=created["id"]).exists(),
        timeout=10,
        what="the survivor polling",
    )
    print(f"takeover after {takeover:.1f} s")  # shown with -s

    second.send_signal(signal.SIGTERM)
    assert second.wait(15) == 0
    assert PortalSync.objects.get(portal=portal).lease_holder == ""  # released on the way out
    assert "Traceback" not in second.log_path.read_text()
