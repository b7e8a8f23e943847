"""Shared fixtures: a real simulator on a real port, Django pointed at it, Chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import ARTIFACTS
from tests.support.servers import Server
from tests.support.simulator import oauth_connect

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Real hashing costs half a second a user by design; tests need none of that."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def forget_refused_webhooks():
    """Refused webhook deliveries are rate-limited per address in memory: each test starts
    with every window empty."""
    from dashboard import ingest

    ingest.forget_refusals()


@pytest.fixture(scope="session")
def simulator() -> Iterator:
    """One simulator for the session, life off: tests make scenes happen explicitly."""
    from salesiq_simulator import Simulator

    sim = Simulator(seed=1, life=False)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def sim_settings(settings, simulator):
    """Django settings whose data-centre table includes the simulator's data centres."""
    from siq_integration.datacenters import build_table

    settings.SIQ_DATA_CENTERS = build_table(simulator.extra_data_centers_json())
    return settings


def _chromium_path() -> str | None:
    path = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if os.path.exists(path):
        return path
    return shutil.which("chromium")


@pytest.fixture(scope="session")
def browser() -> Iterator:
    path = _chromium_path()
    if path is None:
        pytest.skip(
            "Chromium is not installed here (make test installs it: apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; Django's ORM calls from the
    # test body are still synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def screenshot(page, request):
    """Save a screenshot under test-results/ for a person to look at."""

    def take(name: str | None = None) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name or request.node.name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


# --- portals on the simulator ------------------------------------------------------------


@pytest.fixture
def sim_portal(simulator, sim_settings, db):
    """Make a portal in the simulator and its Django twin, unconnected.

    ``sim_portal(dialect="reference", open_chats=250, calls_per_minute=5)``: keyword
    arguments the simulator's add_portal knows go there, the others to the Django model.
    """
    import uuid

    from siq_integration.models import Portal

    sim_keys = {
        "operators",
        "departments",
        "open_chats",
        "rate_limit_per_minute",
        "operator_status_for_others",
        "close_method",
        "operator_status_method",
        "strict_webhook_urls",
    }

    def make(*, dialect: str = "v2", dc: str = "sim", **options):
        screen = f"p{uuid.uuid4().hex[:10]}"
        sim_options = {k: v for k, v in options.items() if k in sim_keys}
        sim_options.setdefault("open_chats", 3)
        simulator.add_portal(screen, dialect=dialect, dc=dc, **sim_options)
        model_options = {k: v for k, v in options.items() if k not in sim_keys}
        model_options.setdefault("calls_per_minute", 1000)
        model_options.setdefault("calls_per_day", 100_000)
        return Portal.objects.create(
            name=f"Portal {screen}",
            data_center=dc,
            dialect=dialect,
            screen_name=screen,
            **model_options,
        )

    return make


@pytest.fixture
def connected_portal(simulator, sim_portal):
    def make(**options):
        return oauth_connect(simulator, sim_portal(**options))

    return make


@pytest.fixture
def server(simulator, tmp_path):
    """`manage.py serve` (daphne and the worker) in a child process, on the test database and
    the simulator; its log is serve.log in the test's tmp_path."""
    server = Server(simulator, tmp_path / "serve.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        simulator.clear_faults()


@pytest.fixture
def webhook_receiver():
    """A local HTTP endpoint that records what is posted to it (raw bytes and headers)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[tuple[dict[str, str], bytes]] = []
    arrived = threading.Condition()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with arrived:
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                arrived.notify_all()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    class Receiver:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        deliveries = received

        def wait_for_events(self, names, timeout: float = 10.0):
            """Every delivery until each of ``names`` has arrived at least once."""
            import json as _json

            def seen():
                return {_json.loads(body).get("event") for _, body in received}

            with arrived:
                arrived.wait_for(lambda: set(names) <= seen(), timeout=timeout)
            missing = set(names) - seen()
            assert not missing, f"never delivered: {sorted(missing)}"
            return list(received)

        def wait_for(self, count: int, timeout: float = 10.0):
            with arrived:
                arrived.wait_for(lambda: len(received) >= count, timeout=timeout)
            assert len(received) >= count, f"{len(received)} of {count} deliveries arrived"
            return received[:count]

    try:
        yield Receiver()
    finally:
        server.shutdown()
        server.server_close()


def pytest_sessionfinish(session, exitstatus):
    """SQLite's WAL side files outlive the test database when a thread still had it open."""
    name = os.environ.get("SIQ_TEST_DB_NAME")
    if name:
        for suffix in ("-wal", "-shm"):
            Path(name + suffix).unlink(missing_ok=True)
