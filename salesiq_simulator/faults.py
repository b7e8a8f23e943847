"""Injected trouble: latency, random errors, forced rate limits, outages, targeted errors.

A fault set is scoped to a data centre and/or a portal (or everything); setting
faults for a scope replaces the earlier set for that same scope. Faults act at the
front door, before the request is authenticated: an outage does not look at tokens.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

ERROR_KINDS = ("5xx", "1001")
OUTAGE_MODES = ("503", "drop")


class FaultConfigError(ValueError):
    pass


@dataclass
class TargetedError:
    method: str | None
    path_regex: re.Pattern[str]
    code: int | str | None
    http_status: int | None
    times: int | None  # None: every time
    extra: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path_regex": self.path_regex.pattern,
            "code": self.code,
            "http_status": self.http_status,
            "times": self.times,
            **self.extra,
        }


@dataclass
class FaultSet:
    dc: str | None = None
    portal: str | None = None
    latency_ms: float = 0.0
    error_rate: float = 0.0
    error_kind: str = "5xx"
    rate_limited: bool = False
    outage_until: float | None = None
    outage_mode: str = "503"
    errors: list[TargetedError] = field(default_factory=list)

    def applies(self, dc: str | None, portal: str | None) -> bool:
        return (self.dc is None or self.dc == dc) and (self.portal is None or self.portal == portal)

    def describe(self) -> dict[str, Any]:
        return {
            "dc": self.dc,
            "portal": self.portal,
            "latency_ms": self.latency_ms,
            "error_rate": self.error_rate,
            "error_kind": self.error_kind,
            "rate_limited": self.rate_limited,
            "outage_until": self.outage_until,
            "outage_mode": self.outage_mode,
            "errors": [e.describe() for e in self.errors],
        }


@dataclass
class Verdict:
    """What the faults decided for one request."""

    latency: float = 0.0
    outage: str | None = None  # "503" | "drop"
    targeted: TargetedError | None = None
    rate_limited: bool = False
    random_error: str | None = None  # "5xx" | "1001"


class Faults:
    def __init__(self, seed: int) -> None:
        # Its own generator: faults must not shift the world's random sequence.
        self.rng = random.Random(seed ^ 0x5EED)
        self.sets: list[FaultSet] = []

    def clear(self) -> None:
        self.sets.clear()

    def describe(self) -> list[dict[str, Any]]:
        return [s.describe() for s in self.sets]

    def set(
        self,
        *,
        dc: str | None = None,
        portal: str | None = None,
        latency_ms: float = 0,
        error_rate: float = 0,
        error_kind: str = "5xx",
        rate_limited: bool = False,
        outage_seconds: float = 0,
        outage_mode: str = "503",
        errors: list[dict[str, Any]] | None = None,
    ) -> FaultSet:
        if error_kind not in ERROR_KINDS:
            raise FaultConfigError(f"error_kind must be one of {', '.join(ERROR_KINDS)}")
        if outage_mode not in OUTAGE_MODES:
            raise FaultConfigError(f"outage_mode must be one of {', '.join(OUTAGE_MODES)}")
        if not 0 <= float(error_rate) <= 1:
            raise FaultConfigError("error_rate must be between 0 and 1")
        targeted = [self._targeted(raw) for raw in errors or []]
        fault = FaultSet(
            dc=dc,
            portal=portal,
            latency_ms=float(latency_ms),
            error_rate=float(error_rate),
            error_kind=error_kind,
            rate_limited=bool(rate_limited),
            outage_until=time.time() + float(outage_seconds) if outage_seconds else None,
            outage_mode=outage_mode,
            errors=targeted,
        )
        self.sets = [s for s in self.sets if (s.dc, s.portal) != (dc, portal)]
        self.sets.append(fault)
        return fault

    @staticmethod
    def _targeted(raw: dict[str, Any]) -> TargetedError:
        if not isinstance(raw, dict) or "path_regex" not in raw:
            raise FaultConfigError("each error needs at least a path_regex")
        try:
            pattern = re.compile(str(raw["path_regex"]))
        except re.error as exc:
            raise FaultConfigError(f"bad path_regex: {exc}") from None
        if raw.get("code") is None and raw.get("http_status") is None:
            raise FaultConfigError("each error needs a code, or an http_status and a code")
        times = raw.get("times", 1)
        extra = {k: str(raw[k]) for k in ("json_key", "param", "header", "message") if k in raw}
        return TargetedError(
            method=str(raw["method"]).upper() if raw.get("method") else None,
            path_regex=pattern,
            code=raw.get("code"),
            http_status=int(raw["http_status"]) if raw.get("http_status") is not None else None,
            times=None if times is None else int(times),
            extra=extra,
        )

    def judge(
        self, *, dc: str | None, portal: str | None, method: str, path: str, api: bool
    ) -> Verdict:
        """Decide the faults for one request. ``api`` is False for the accounts server,
        where only latency, outages and targeted errors apply."""
        verdict = Verdict()
        now = time.time()
        active = [f for f in self.sets if f.applies(dc, portal)]
        for fault in active:
            verdict.latency = max(verdict.latency, fault.latency_ms / 1000.0)
            if (
                fault.outage_until is not None
                and now < fault.outage_until
                and verdict.outage is None
            ):
                verdict.outage = fault.outage_mode
        if verdict.outage:
            # Nothing else is looked at (or used up) while the service is down.
            return verdict
        for fault in active:
            if verdict.targeted is None:
                for target in fault.errors:
                    if target.method and target.method != method:
                        continue
                    if not target.path_regex.search(path):
                        continue
                    verdict.targeted = target
                    if target.times is not None:
                        target.times -= 1
                        if target.times <= 0:
                            fault.errors.remove(target)
                    break
            if api and fault.rate_limited:
                verdict.rate_limited = True
            if (
                api
                and fault.error_rate
                and verdict.random_error is None
                and self.rng.random() < fault.error_rate
            ):
                verdict.random_error = fault.error_kind
        return verdict
