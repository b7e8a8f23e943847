"""Where the machine's CPU went during a measurement: this run's processes by role, and
everything else (other people's work on a shared machine: the noise)."""

from __future__ import annotations

import os
import time
from collections import defaultdict
from typing import Any

import psutil


def _role(process: psutil.Process) -> str:
    try:
        line = " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "gone"
    if process.pid == os.getpid():
        return "bench (simulator, driver)"
    if "manage.py serve" in line:
        return "serve"
    if "bench.clients" in line:
        return "websocket clients"
    if "bench.floor" in line:
        return "floor server"
    if "chromium" in line or "chrome" in line:
        return "chromium"
    if "playwright" in line or process.name() == "node":
        return "playwright driver"
    return "other of this run"


def _ours() -> list[psutil.Process]:
    me = psutil.Process()
    return [me, *me.children(recursive=True)]


def _times(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    return times.user + times.system


def _busy() -> float:
    times = psutil.cpu_times()
    return times.user + times.nice + times.system + times.irq + times.softirq


def _steal() -> float:
    """Time the hypervisor gave this VM's CPUs to someone else."""
    return getattr(psutil.cpu_times(), "steal", 0.0)


class CpuMeter:
    """``start()`` … ``stop()``: CPU seconds per wall second (1.0 = one core) by role."""

    def start(self) -> CpuMeter:
        self.processes = {p.pid: p for p in _ours()}
        self.before = {pid: _times(p) for pid, p in self.processes.items()}
        self.busy = _busy()
        self.steal = _steal()
        self.wall = time.monotonic()
        self.load = os.getloadavg()
        return self

    def stop(self) -> dict[str, Any]:
        wall = time.monotonic() - self.wall
        by_role: dict[str, float] = defaultdict(float)
        for process in _ours():
            if process.pid not in self.processes:
                continue  # started during the measurement: not comparable
            used = _times(process) - self.before[process.pid]
            by_role[_role(process)] += used
        ours = sum(by_role.values())
        total = _busy() - self.busy
        shares = {role: round(used / wall, 2) for role, used in sorted(by_role.items())}
        shares["everything else on the machine"] = round(max(0.0, total - ours) / wall, 2)
        return {
            "cores": os.cpu_count(),
            "busy_cores": round(total / wall, 2),
            "stolen_by_the_hypervisor_cores": round((_steal() - self.steal) / wall, 2),
            "by_role": shares,
            "load_average_before": [round(x, 2) for x in self.load],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        }
