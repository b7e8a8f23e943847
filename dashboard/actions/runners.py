"""Which process runs an action ("host:pid"), and whether that process is gone."""

from __future__ import annotations

import os
import socket


def runner_name() -> str:
    """This process, as an action's ``runner`` names it: "host:pid"."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}"


def runner_gone(runner: str) -> bool:
    """Whether the process that ran an action ("host:pid") is known to be dead: only a
    process of this host can be checked; any other counts as alive (``STUCK_AFTER``)."""
    host, _, pid = runner.rpartition(":")
    if host != socket.gethostname()[:60] or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: asks whether it exists, sends nothing
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, ValueError):
        return False
    return False
