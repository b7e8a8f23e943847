"""Three `manage.py siq_worker` processes share 30 portals on PostgreSQL and Redis: each
holds about a third, and when one is killed the other two take its portals within 15 s.

The portals carry a grant that never reaches Zoho (its refresh is blocked for a day, as in
tests.conftest.live_portal): this is about who holds which lease, not what is polled.
Needs PostgreSQL and Redis (see tests/test_scale_out.py) and skips without them.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.support.cluster import (
    Cluster,
    fresh_cluster,
    identity,
    process_identity,
)
from tests.support.waits import TAKEOVER_LIMIT, wait_for

pytestmark = pytest.mark.scale_out

PORTALS = 30
WORKERS = 3
SLACK = 3  # a worker holds its share, give or take this many

MAKE_PORTALS = f"""
from datetime import timedelta
from django.utils import timezone
from siq_integration.models import Portal
now = timezone.now()
for n in range({PORTALS}):
    Portal.objects.create(
        name=f"Portal {{n}}",
        screen_name=f"balance{{n}}",
        data_center="us",
        refresh_token_encrypted=Portal._write("not-a-real-grant"),
        connected_at=now,
        token_refresh_blocked_until=now + timedelta(days=1),
    )
"""


@pytest.fixture
def cluster(tmp_path) -> Iterator[Cluster]:
    with fresh_cluster("balance", tmp_path) as cluster:
        cluster.manage("migrate", "--no-input", "-v", "0")
        cluster.manage("shell", "-c", MAKE_PORTALS)
        yield cluster


def leases(cluster: Cluster) -> Counter:
    """Portals held, by host:pid of the holder ("" for none)."""
    rows = cluster.sql(
        "SELECT p.id, COALESCE(s.lease_holder, '') FROM siq_integration_portal p "
        "LEFT JOIN dashboard_portalsync s ON s.portal_id = p.id"
    )
    return Counter(identity(holder) if holder else "" for _, holder in rows)


def balanced(counts: Counter, holders: set[str]) -> bool:
    share = PORTALS / len(holders)
    return set(counts) == holders and all(
        share - SLACK <= counts[holder] <= share + SLACK for holder in holders
    )


def test_three_workers_share_thirty_portals_and_two_take_over_from_a_killed_one(cluster):
    workers = [cluster.start(f"worker-{n}", "siq_worker") for n in range(1, WORKERS + 1)]
    everyone = {process_identity(w) for w in workers}
    try:
        wait_for(
            lambda: balanced(leases(cluster), everyone),
            timeout=60,
            what=f"{WORKERS} workers holding {PORTALS // WORKERS}±{SLACK} leases each",
        )
        # And it stays so: nobody keeps grabbing and handing back.
        for _ in range(5):
            time.sleep(0.5)
            assert balanced(leases(cluster), everyone), leases(cluster)

        dying, *survivors = workers
        dying.popen.send_signal(signal.SIGKILL)
        dying.popen.wait(10)
        killed_at = time.monotonic()
        left = {process_identity(w) for w in survivors}
        wait_for(
            lambda: balanced(leases(cluster), left),
            timeout=TAKEOVER_LIMIT,
            what=f"the two survivors holding all {PORTALS} leases within {TAKEOVER_LIMIT} s",
        )
        print(f"takeover after {time.monotonic() - killed_at:.1f} s: {leases(cluster)}")
        for worker in survivors:
            assert worker.popen.poll() is None, f"{worker.name} stopped:\n{worker.tail()}"
            assert "Traceback" not in worker.log.read_text(), worker.tail()
    except AssertionError as error:
        raise AssertionError(f"{error}\n{leases(cluster)}\n{cluster.tails()}") from None

    # A clean stop hands everything back at once.
    for worker in survivors:
        worker.popen.send_signal(signal.SIGTERM)
    for worker in survivors:
        assert worker.popen.wait(15) == 0
    assert leases(cluster) == {"": PORTALS}
