"""The throw-away world a run measures: secrets, a SQLite file, the simulator, Django, serve.

Nothing here touches the developer's var/db.sqlite3 or var/demo.env: every run gets a fresh
directory under var/bench/ with its own database file and freshly generated secrets, and the
serve process gets an environment built from scratch for it (REDIS_URL and DATABASE_URL of
the shell are not inherited: the figures are the embedded default's).
"""

from __future__ import annotations

import json
import os
import queue
import resource
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

BASE_DIR = Path(__file__).resolve().parent.parent
BENCH_DIR = BASE_DIR / "var" / "bench"
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
REDIRECT_URI = "http://127.0.0.1/oauth/callback/"  # never followed: the redirect is read
# Variables of the shell that would change what is measured.
NOT_INHERITED = (
    "DATABASE_URL",
    "REDIS_URL",
    "DJANGO_DEBUG",
    "SMTP_URL",
    "PUBLIC_BASE_URL",
    "SIQ_TEST_DB_NAME",
    "SIQ_HTTP_METHODS",
    "SIQ_ACTION_RESERVE_SHARE",
)


def raise_open_files(wanted: int = 20_000) -> int:
    """A thousand websockets need more descriptors than a default shell allows; children
    (serve, the clients) inherit the raised limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def bench_env(work: Path, sim_data_centers: str) -> dict[str, str]:
    """The environment of this process's Django and of serve: fresh secrets, the run's
    SQLite file, the simulator's data centres."""
    from cryptography.fernet import Fernet

    env = {key: value for key, value in os.environ.items() if key not in NOT_INHERITED}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "dashboard.settings",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "ZOHO_CLIENT_ID": "1000.SIMULATOR",
            "ZOHO_CLIENT_SECRET": "sim-secret",  # the simulator's client, not a secret
            "SIQ_EXTRA_DATA_CENTERS": sim_data_centers,
            "DATABASE_URL": f"sqlite:///{work / 'db.sqlite3'}",
            "SIQ_VAR_DIR": str(work),
            "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "OAUTHLIB_INSECURE_TRANSPORT": "1",  # every data centre is on loopback
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    # Playwright's sync API keeps an event loop in this thread; the ORM calls here are sync.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)


class Serve:
    """`manage.py serve` in a child process: daphne and the worker, in-memory layer."""

    def __init__(self, env: dict[str, str], log: Path, port: int) -> None:
        self.env = env
        self.log = log
        self.port = port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                cwd=BASE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve stopped at start-up; see {self.log}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"serve did not answer /healthz within 60 s; see {self.log}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Child:
    """A helper process that speaks one JSON object a line on stdout."""

    def __init__(self, args: list[str], log: Path) -> None:
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, *args],
            cwd=BASE_DIR,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)

    def next(self, timeout: float) -> dict[str, Any]:
        try:
            return json.loads(self._lines.get(timeout=timeout))
        except queue.Empty:
            raise RuntimeError(f"{self.process.args} said nothing within {timeout} s") from None

    def finish(self, timeout: float = 30) -> dict[str, Any]:
        """SIGTERM, then its last word."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.next(timeout)
        finally:
            self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


# --- the dashboard's side: a user, sessions, portals -------------------------------------------


def make_admin() -> tuple[Any, str]:
    from django.contrib.auth import get_user_model

    password = secrets.token_urlsafe(12)
    user = get_user_model().objects.create_superuser("bench", "bench@example.org", password)
    return user, password


def session_keys(user: Any, count: int) -> list[str]:
    """Signed-in sessions of ``user``, as a login would leave them (no password hashing)."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    keys = []
    for _ in range(count):
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        keys.append(session.session_key)
    return keys


def connect_portal(
    sim: Any,
    *,
    screen: str,
    name: str,
    plan: str,
    calls_per_minute: int,
    calls_per_day: int,
    webhook_url: str | None,
) -> Any:
    """The Connect button's OAuth flow against the simulator (which approves it), then the
    webhook registration (v2: a signing key) pointing at ``webhook_url`` (``{portal}`` in it
    becomes the portal's id)."""
    from siq_integration import connecting, oauth
    from siq_integration.models import Portal

    portal = Portal.objects.create(
        name=name,
        data_center="sim",
        dialect="v2",
        screen_name=screen,
        plan=plan,
        calls_per_minute=calls_per_minute,
        calls_per_day=calls_per_day,
    )
    session: dict = {}
    url = oauth.start_authorization(session=session, portal=portal, redirect_uri=REDIRECT_URI)
    sim.configure_accounts(auto_approve=True, approve_as=f"admin@{screen}.example")
    try:
        answer = requests.get(url, allow_redirects=False, timeout=10)
    finally:
        sim.configure_accounts(auto_approve=False, approve_as="")
    if answer.status_code != 302:
        raise RuntimeError(f"the simulator did not approve {screen} ({answer.status_code})")
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    params = {key: values[0] for key, values in query.items()}
    authorization = oauth.complete_authorization(
        session=session, params=params, redirect_uri=REDIRECT_URI
    )
    outcome = connecting.complete_connection(portal, authorization)
    if not isinstance(outcome, Portal):
        raise RuntimeError(f"connecting {screen} needs a screen name: {outcome}")
    if webhook_url and not connecting.register_webhooks(
        portal, url=webhook_url.format(portal=portal.pk)
    ):
        raise RuntimeError(f"registering the webhook of {screen} failed: {portal.webhook_error}")
    portal.refresh_from_db()
    return portal


def wait_until(condition, *, timeout: float, what: str, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise RuntimeError(f"{what} did not happen within {timeout:.0f} s")
