"""The machine, the table, the JSON file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .environment import BASE_DIR

TARGETS = {
    "event_to_screen_p99_ms": 100,
    "ingest_per_second": 300,
    "render_server_ms": 300,
    "memory_per_client_kb": 100,
    "budget_overruns": 0,
}


def ingest_clean(ingest: dict[str, Any]) -> bool:
    """Whether the ingest run lost, doubled or mis-applied nothing: every accepted delivery
    stored once and applied, every chat ending as SalesIQ says, and every visitor or
    operator line a delivery carried in its transcript (a run that does not say how many
    lines it lost is not called clean)."""
    faults = (
        "lost",
        "stored_twice",
        "not_applied",
        "chats_disagreeing_with_salesiq",
        "messages_lost",
    )
    return all(ingest.get(name) == 0 for name in faults)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=BASE_DIR, capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine(chromium_version: str) -> dict[str, Any]:
    import django

    return {
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "cpu": _cpu_model(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "chromium": chromium_version,
        "commit": _git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _met(value: float | None, target: float, *, at_most: bool) -> str:
    if value is None:
        return "n/a"
    return "yes" if (value <= target if at_most else value >= target) else "NO"


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, measured, target, met?) for the table."""
    table: list[tuple[str, str, str, str]] = []
    screen = results.get("event_to_screen")
    floor = results.get("floor")
    if screen:
        e2s = screen["event_to_screen_ms"]
        table.append(
            (
                f"Event to screen, {screen['rate_per_second']:g}/s, "
                f"{screen['clients']} more clients (ms)",
                f"p50 {e2s['p50']} · p95 {e2s['p95']} · p99 {e2s['p99']}",
                f"p99 ≤ {TARGETS['event_to_screen_p99_ms']}",
                _met(e2s["p99"], TARGETS["event_to_screen_p99_ms"], at_most=True),
            )
        )
        if screen["never_shown"] or screen["not_sent"]:
            table.append(
                (
                    "  events never shown / not sent",
                    f"{screen['never_shown']} / {screen['not_sent']}",
                    "0",
                    "NO",
                )
            )
    if floor:
        f = floor["event_to_screen_ms"]
        table.append(
            (
                "Floor: bare websockets broadcast (ms)",
                f"p50 {f['p50']} · p95 {f['p95']} · p99 {f['p99']}",
                "",
                "",
            )
        )
    if screen and floor:
        ratio = results.get("event_to_screen_ratio", {})
        table.append(
            (
                "  dashboard ÷ floor",
                f"p50 x{ratio.get('p50')} · p99 x{ratio.get('p99')}",
                "",
                "",
            )
        )
    ingest = results.get("ingest")
    if ingest:
        table.append(
            (
                f"Ingest, {ingest['connections']} connections (webhooks/s applied)",
                f"{ingest['applied_per_second']} (answered {ingest['accepted_per_second']}/s)",
                f"≥ {TARGETS['ingest_per_second']}",
                _met(ingest["applied_per_second"], TARGETS["ingest_per_second"], at_most=False),
            )
        )
        table.append(
            (
                "  lost · stored twice · not applied · wrong end state · lines lost",
                f"{ingest['lost']} · {ingest['stored_twice']} · {ingest['not_applied']} · "
                f"{ingest['chats_disagreeing_with_salesiq']} · {ingest.get('messages_lost', '?')}",
                "0",
                "yes" if ingest_clean(ingest) else "NO",
            )
        )
    render = results.get("render")
    if render:
        server = render["server_ms"]
        table.append(
            (
                f"Render GET /, {render['open_chats']} chats, {render['operators']} operators (ms)",
                f"median {server['p50']} · p95 {server['p95']} · {render['queries']} queries",
                f"≤ {TARGETS['render_server_ms']}",
                _met(server["p50"], TARGETS["render_server_ms"], at_most=True),
            )
        )
        table.append(
            (
                "  in-process (no daphne, no gzip) (ms)",
                f"median {render['in_process_ms']['p50']}",
                "",
                "",
            )
        )
        if "queue_view_ms" in render:
            queue = render["queue_view_ms"]
            table.append(
                (
                    f"Queue view, {render['queue_rows']} departments, {render['open_chats']} "
                    "chats (ms)",
                    f"median {queue['p50']} · p95 {queue['p95']}",
                    f"≤ {TARGETS['render_server_ms']}",
                    _met(queue["p50"], TARGETS["render_server_ms"], at_most=True),
                )
            )
        table.append(
            (
                "  Chromium time to usable (live-ready, ms)",
                f"median {render['chromium_usable_ms']['p50']}",
                "",
                "",
            )
        )
    memory = results.get("memory")
    if memory:
        table.append(
            (
                f"Memory per idle websocket, {memory['clients']} clients (KB)",
                f"{memory['per_client_kb']} ({memory['rss_before_mb']} → "
                f"{memory['rss_after_mb']} MB)",
                f"≤ {TARGETS['memory_per_client_kb']}",
                _met(memory["per_client_kb"], TARGETS["memory_per_client_kb"], at_most=True),
            )
        )
    economy = results.get("api_economy")
    if economy:
        table.append(
            (
                f"API economy, Free plan, {economy['seconds'] / 60:.1f} min (calls/min)",
                f"{economy['calls_per_minute']} · max {economy['max_calls_in_any_60_s']} in "
                f"any 60 s · {economy['overruns']} overruns",
                "0 overruns",
                "yes" if economy["overruns"] == TARGETS["budget_overruns"] else "NO",
            )
        )
        age = economy["operator_data_age_s"]
        lag = economy["status_change_to_dashboard_s"]
        table.append(
            (
                "  operator status age (s) · a change shown after (s)",
                f"median {age['p50']} · max {age['max']} · change median {lag['p50']} · "
                f"max {lag['max']} ({economy['status_changes_shown']}/"
                f"{economy['status_changes']})",
                "",
                "",
            )
        )
    return table


def print_table(results: dict[str, Any]) -> str:
    table = rows(results)
    headers = ("Figure", "Measured", "Target", "Met")
    widths = [max(len(row[i]) for row in [headers, *table]) for i in range(4)]
    lines = [" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(headers))]
    lines.append("-+-".join("-" * width for width in widths))
    for row in table:
        lines.append(" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
    text = "\n".join(line.rstrip() for line in lines)
    print(text, flush=True)
    return text


def write(results: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"results-{stamp}.json"
    text = json.dumps(results, indent=2, ensure_ascii=False, default=str)
    path.write_text(text + "\n")
    (out / "latest.json").write_text(text + "\n")
    return path
