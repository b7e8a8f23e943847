"""Waiting for something to happen, with a deadline that names what did not."""

from __future__ import annotations

import time
from collections.abc import Callable

TAKEOVER_LIMIT = 15.0  # seconds, as issue 7 will check


def wait_for(condition: Callable[[], object], *, timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout} s")
