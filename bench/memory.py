"""Memory: the serve process's resident memory per connected idle websocket client.

A few clients connect and leave first (whatever a first connection loads is not a
client's cost); then RSS is read, a thousand signed-in clients connect to the live page's
socket (each gets what a page gets on connect) and stay idle, and RSS is read again.
Runs first, on a fresh serve, so freed memory of earlier phases cannot hide the cost.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import psutil

from .environment import Child


def _rss(process: psutil.Process, samples: int = 3) -> int:
    values = []
    for _ in range(samples):
        values.append(process.memory_info().rss)
        time.sleep(0.5)
    return int(statistics.median(values))


def measure(
    *,
    serve_pid: int,
    ws_url: str,
    origin: str,
    cookies_file: Path,
    clients: int,
    work: Path,
) -> dict[str, Any]:
    process = psutil.Process(serve_pid)
    base = ["-m", "bench.clients", "--url", ws_url, "--origin", origin, "--cookies"]
    warm = Child([*base, str(cookies_file), "--count", "20"], work / "clients-memory-warm.log")
    warm.next(timeout=120)
    warm.finish()
    time.sleep(2)
    before = _rss(process)
    crowd = Child(
        [*base, str(cookies_file), "--count", str(clients), "--batch", "50"],
        work / "clients-memory.log",
    )
    try:
        connected = crowd.next(timeout=600)
        time.sleep(5)
        after = _rss(process)
        connections = sum(
            1 for c in process.net_connections(kind="tcp") if c.status == psutil.CONN_ESTABLISHED
        )
    finally:
        read = crowd.finish()
    per_client = (after - before) / max(1, connected["connected"])
    return {
        "clients": clients,
        "connected": connected,
        "established_at_server": connections,
        "rss_before_mb": round(before / 2**20, 1),
        "rss_after_mb": round(after / 2**20, 1),
        "per_client_kb": round(per_client / 1024, 1),
        "clients_read": read,
    }
