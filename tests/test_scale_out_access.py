"""Access that ends in one process closes the live page open on another, through Redis.

Two real daphne processes (`manage.py serve --no-worker`) on a fresh PostgreSQL database and a
Redis key prefix of their own, as in tests/test_scale_out.py (whose helpers this reuses, but
not its cluster: no portals or workers are needed here). An admin deactivates a user through
the Users page on daphne A; that user's live page, open on daphne B, closes at once.

Needs PostgreSQL and Redis (127.0.0.1 by default; SIQ_TEST_POSTGRES_URL and SIQ_TEST_REDIS_URL
move them) and skips, naming what is missing, without them.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator

import pytest
import requests

from dashboard.realtime.consumers import ACCESS_ENDED
from tests.support.cluster import (
    Cluster,
    fresh_cluster,
    healthy,
    post_form,
)
from tests.support.servers import WebSocket, free_port
from tests.support.waits import wait_for

pytestmark = pytest.mark.scale_out

ADMIN_PASSWORD = "scale-out-password-1"  # throw-away test logins
USER_PASSWORD = "another-long-passphrase"


class Page(WebSocket):
    """A live page's socket that also reports how it was closed."""

    def closed_with(self, *, timeout: float) -> int:
        """The close code the server sends within ``timeout`` s (other messages are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"the socket was still open after {timeout} s")
            self.sock.settimeout(left)
            try:
                first, second = self._exactly(2)
            except TimeoutError:
                raise AssertionError(f"the socket was still open after {timeout} s") from None
            size = second & 0x7F
            if size == 126:
                (size,) = struct.unpack("!H", self._exactly(2))
            elif size == 127:
                (size,) = struct.unpack("!Q", self._exactly(8))
            payload = self._exactly(size)
            if first & 0x0F == 8:
                return struct.unpack("!H", payload[:2])[0]


def sign_in(base_url: str, username: str, password: str) -> requests.Session:
    desk = requests.Session()
    desk.get(f"{base_url}/login/", timeout=10).raise_for_status()
    answer = post_form(desk, f"{base_url}/login/", {"username": username, "password": password})
    assert answer.ok and "/login/" not in answer.url, f"signing in as {username} failed"
    return desk


@pytest.fixture(scope="module")
def two_daphnes(tmp_path_factory) -> Iterator[Cluster]:
    logs = tmp_path_factory.mktemp("scale-out-access")
    with fresh_cluster("scale-out-access", logs) as cluster:
        try:
            cluster.manage("migrate", "--no-input", "-v", "0")
            cluster.manage(
                "createsuperuser",
                "--no-input",
                "--username",
                "ada",
                "--email",
                "ada@example.org",
                env={"DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD},
            )
            for name in ("daphne-a", "daphne-b"):
                web = cluster.serve(name, free_port())
                wait_for(lambda web=web: healthy(web.url), timeout=40, what=f"{name} healthy")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{cluster.tails()}") from None
        yield cluster


def test_a_user_deactivated_on_daphne_a_loses_their_page_on_daphne_b(two_daphnes):
    a, b = two_daphnes.web("daphne-a"), two_daphnes.web("daphne-b")
    admin = sign_in(a.url, "ada", ADMIN_PASSWORD)
    added = post_form(
        admin,
        f"{a.url}/users/add/",
        {
            "username": "sam",
            "first_name": "Sam",
            "last_name": "Okafor",
            "email": "sam@example.com",
            "role": "supervisor",
            "password1": USER_PASSWORD,
            "password2": USER_PASSWORD,
        },
    )
    assert added.ok and added.url.endswith("/users/"), added.url
    sam_id = two_daphnes.one("SELECT id FROM auth_user WHERE username = 'sam'")

    # Sam's live page, on daphne B.
    sam = sign_in(b.url, "sam", USER_PASSWORD)
    page = Page(int(b.url.rsplit(":", 1)[1]), "/ws/live/", sam.cookies["sessionid"])
    try:
        page.receive()  # the snapshot: the page is live
        # The admin, on daphne A, deactivates Sam (the form posts no is_active).
        started = time.monotonic()
        edited = post_form(
            admin,
            f"{a.url}/users/{sam_id}/edit/",
            {
                "first_name": "Sam",
                "last_name": "Okafor",
                "email": "sam@example.com",
                "role": "supervisor",
                "new_password1": "",
                "new_password2": "",
            },
        )
        assert edited.ok and edited.url.endswith("/users/"), edited.url
        assert two_daphnes.one("SELECT is_active FROM auth_user WHERE id = %s", sam_id) is False
        assert page.closed_with(timeout=5) == ACCESS_ENDED
        print(f"closed on daphne B {time.monotonic() - started:.3f} s after posting to A")
    finally:
        page.close()
    # HTTP on B agrees: Sam's session no longer signs him in.
    assert "/login/" in sam.get(f"{b.url}/", timeout=10).url
