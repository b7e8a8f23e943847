"""Servers the tests start: `manage.py serve` in a child process, a websocket client, ports."""

from __future__ import annotations

import base64
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection

from tests.support.waits import wait_for


def child_env(simulator) -> dict[str, str]:
    if connection.vendor != "sqlite":
        pytest.skip("the worker process test shares the SQLite test database file")
    return {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
        "SIQ_EXTRA_DATA_CENTERS": simulator.extra_data_centers_json(),
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """`manage.py serve` in a child process, on the test database and the simulator."""

    def __init__(self, simulator, log: Path) -> None:
        self.port = free_port()
        self.env = child_env(simulator)
        self.log = log
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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
                cwd=settings.BASE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def healthy() -> bool:
            try:
                return requests.get(f"{self.url}/healthz", timeout=2).ok
            except requests.RequestException:
                return False

        wait_for(healthy, timeout=30, what="serve answering /healthz")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class WebSocket:
    """Just enough of a websocket client to read what the server pushes."""

    def __init__(self, port: int, path: str, cookie: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n"
                f"Cookie: sessionid={cookie}\r\n\r\n"
            ).encode()
        )
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += self._exactly(1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("the server closed the websocket")
            data += chunk
        return data

    def receive(self) -> str:
        """The next text message (server frames are never masked)."""
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
            if opcode in (0, 1):
                parts.append(payload)
                if first & 0x80:
                    return b"".join(parts).decode()

    def wait_for(self, text: str, *, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            message = self.receive()
            if text in message:
                return message
        raise AssertionError(f"no websocket message with {text!r} within {timeout} s")

    def close(self) -> None:
        self.sock.close()


@contextmanager
def serving(simulator, log_dir: Path, *, worker: bool = False, **extra_env: str) -> Iterator[str]:
    """`manage.py serve --no-worker` (or, ``worker``, with the worker) on the test database;
    yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
        "SIQ_EXTRA_DATA_CENTERS": simulator.extra_data_centers_json(),
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        **extra_env,
    }
    log_path = log_dir / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "serve",
                *(() if worker else ("--no-worker",)),
                "--port",
                str(port),
            ],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"serve stopped at start-up: {log_path.read_text()[-2000:]}")
            try:
                requests.get(f"{base}/login/", timeout=1)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    pytest.fail(f"serve did not answer within 30 s: {log_path.read_text()[-2000:]}")
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def ws_server(django_db_setup, simulator, tmp_path_factory):
    """`manage.py serve --no-worker` on the test database: daphne with websockets."""
    with serving(simulator, tmp_path_factory.mktemp("serve")) as base:
        yield base
