"""The scale-out cluster: daphne and worker processes on PostgreSQL and Redis, or a skip."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from django.conf import settings

POSTGRES_URL = os.environ.get(
    "SIQ_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)


REDIS_URL = os.environ.get("SIQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path
    url: str = ""

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def postgres_or_skip():
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3, autocommit=True) as probe:
            probe.execute("SELECT 1")
    except Exception as error:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL} ({type(error).__name__})")


def redis_or_skip():
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as error:
        pytest.skip(f"Redis is not reachable at {REDIS_URL} ({type(error).__name__})")


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@dataclass
class Cluster:
    env: dict[str, str]
    database_url: str
    logs: Path
    processes: list[Process] = field(default_factory=list)
    portals: dict[str, dict] = field(default_factory=dict)  # "roomy"/"tight" → id, screen
    workers_started_seq: int = 0  # the simulator's last call before the workers began

    # --- running manage.py -----------------------------------------------------------------

    def manage(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=settings.BASE_DIR,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stderr}"
        return result.stdout

    def start(self, name: str, *args: str) -> Process:
        log = self.logs / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                [sys.executable, "manage.py", *args],
                cwd=settings.BASE_DIR,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def serve(self, name: str, port: int) -> Process:
        process = self.start(
            name, "serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)
        )
        process.url = f"http://127.0.0.1:{port}"
        return process

    def web(self, name: str) -> Process:
        return next(p for p in self.processes if p.name == name)

    @property
    def workers(self) -> list[Process]:
        return [p for p in self.processes if p.name.startswith("worker")]

    def tails(self) -> str:
        return "".join(
            f"\n--- {process.name} ({process.log}) ---\n{process.tail()}\n"
            for process in self.processes
        )

    def stop_all(self) -> None:
        for process in self.processes:
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait(10)

    # --- the shared database, read-only from here ----------------------------------------

    def sql(self, query: str, *params) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as db:
            return db.execute(query, params).fetchall()

    def one(self, query: str, *params):
        rows = self.sql(query, *params)
        return rows[0][0] if rows else None

    def lease_holder(self, portal: str) -> str:
        return (
            self.one(
                "SELECT lease_holder FROM dashboard_portalsync WHERE portal_id = %s",
                self.portals[portal]["id"],
            )
            or ""
        )


def post_form(desk: requests.Session, url: str, data: dict) -> requests.Response:
    return desk.post(
        url, data={**data, "csrfmiddlewaretoken": desk.cookies["csrftoken"]}, timeout=60
    )


def healthy(url: str) -> bool:
    try:
        answer = requests.get(f"{url}/healthz", timeout=3)
    except requests.RequestException:
        return False
    return answer.ok and answer.json().get("channel_layer") == "ok"


UA = re.compile(r"^salesiq-supervisor/\S+ \((?P<who>[^)]+)\)$")


def identity(holder_or_agent: str) -> str:
    """host:pid, from a lease holder (host:pid:random) or our User-Agent."""
    match = UA.match(holder_or_agent)
    if match:
        return match["who"]
    return holder_or_agent.rsplit(":", 1)[0]


def process_identity(process: Process) -> str:
    import socket

    return f"{socket.gethostname()[:60]}:{process.pid}"


@contextmanager
def fresh_cluster(name: str, logs: Path) -> Iterator[Cluster]:
    """A Cluster on a PostgreSQL database and a Redis prefix of its own (``name`` plus a
    random run id), both removed afterwards; skips without PostgreSQL or Redis."""
    postgres_or_skip()
    redis_or_skip()
    import psycopg
    import redis

    run = uuid.uuid4().hex[:10]
    database = f"siq_{name.replace('-', '_')}_{run}"
    prefix = f"siq-{name}-{run}:"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    database_url = with_database(POSTGRES_URL, database)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_ALLOW_ASYNC_UNSAFE", "SIQ_TEST_DB_NAME"}
    }
    cluster = Cluster(
        env={
            **env,
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "REDIS_PREFIX": prefix,
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        },
        database_url=database_url,
        logs=logs,
    )
    try:
        yield cluster
    finally:
        cluster.stop_all()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [database],
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{database}"')
        store = redis.Redis.from_url(REDIS_URL)
        keys = list(store.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            store.delete(*keys)
