"""API economy: a Free-plan portal (10 calls a minute, 1,000 a day) polled by serve's
worker. Runs alongside the other measurements, in a thread.

Calls come from the simulator's call log (the portal's API calls only, from the start of the
run); the simulator enforces 10 a minute too (a sliding minute), so an overrun would also be
refused there with 1023. Freshness is what the dashboard says: the JSON snapshot's
``data_age_seconds`` sampled every few seconds; and, because an age says nothing about a
change, one operator's presence is flipped in the simulator every so often and the snapshot
is watched until it shows the new status.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import requests

from .figures import summary

PRESENCE = {"available": "busy", "busy": "available"}


class Economy(threading.Thread):
    def __init__(
        self,
        *,
        sim: Any,
        serve_url: str,
        portal: Any,
        session_key: str,
        seconds: float,
        sample_every: float = 2.0,
        flip_every: float = 30.0,
    ) -> None:
        super().__init__(name="bench-economy", daemon=True)
        self.sim = sim
        self.url = f"{serve_url}/api/portals/{portal.pk}/snapshot.json"
        self.screen = portal.screen_name
        self.per_minute = portal.calls_per_minute
        self.per_day = portal.calls_per_day
        self.session_key = session_key
        self.seconds = seconds
        self.sample_every = sample_every
        self.flip_every = flip_every
        self.stopping = threading.Event()
        self.samples: list[dict[str, Any]] = []
        self.flips: list[dict[str, Any]] = []
        self.errors: list[str] = []
        calls = sim.calls()
        self.calls_from = calls[-1]["seq"] if calls else 0
        self.started = time.time()
        self.ended: float | None = None

    def run(self) -> None:
        http = requests.Session()
        http.cookies.set("sessionid", self.session_key, domain="127.0.0.1")
        operators = [op["id"] for op in self.sim.state(self.screen)["portals"][0]["operators"]]
        next_flip = time.time() + self.flip_every / 2
        turn = 0
        deadline = self.started + self.seconds
        while time.time() < deadline and not self.stopping.is_set():
            now = time.time()
            try:
                snapshot = http.get(self.url, timeout=30).json()
            except (requests.RequestException, ValueError) as error:
                self.errors.append(f"{type(error).__name__}: {error}"[:200])
                snapshot = None
            if snapshot is not None:
                statuses = {op["id"]: op["status"] for op in snapshot["operators"]}
                self.samples.append({"at": now, **snapshot["data_age_seconds"]})
                for flip in self.flips:
                    if flip["shown_at"] is None and statuses.get(flip["operator"]) == flip["to"]:
                        flip["shown_at"] = now
                if now >= next_flip and statuses:
                    operator = operators[turn % len(operators)]
                    turn += 1
                    to = PRESENCE.get(statuses.get(operator, ""), "available")
                    self.sim.set_operator_status(operator, to)
                    self.flips.append(
                        {"operator": operator, "to": to, "at": time.time(), "shown_at": None}
                    )
                    next_flip = now + self.flip_every
            self.stopping.wait(self.sample_every)
        self.ended = time.time()

    def result(self) -> dict[str, Any]:
        ended = self.ended or time.time()
        calls = [
            call
            for call in self.sim.calls(since=self.calls_from)
            if call["portal"] == self.screen and "/api/" in call["path"] and call["time"] <= ended
        ]
        times = sorted(call["time"] for call in calls)
        sliding = max(
            (sum(1 for t in times[i:] if t < start + 60) for i, start in enumerate(times)),
            default=0,
        )
        by_minute = Counter(int(t // 60) for t in times)
        minutes = (ended - self.started) / 60
        refused = sum(1 for call in calls if str(call["error_code"]) == "1023")
        ages = [s["operators"] for s in self.samples if s.get("operators") is not None]
        chat_ages = [s["chats"] for s in self.samples if s.get("chats") is not None]
        shown = [f["shown_at"] - f["at"] for f in self.flips if f["shown_at"] is not None]
        return {
            "seconds": round(ended - self.started, 1),
            "budget_per_minute": self.per_minute,
            "budget_per_day": self.per_day,
            "calls": len(times),
            "calls_per_minute": round(len(times) / minutes, 2) if minutes else None,
            "max_calls_in_any_60_s": sliding,
            "max_calls_in_a_clock_minute": max(by_minute.values(), default=0),
            "refused_by_salesiq_rate_limit": refused,
            "overruns": max(0, sliding - self.per_minute) + refused,
            "calls_by_path": dict(
                Counter(call["path"].rsplit("/", 1)[-1] or call["path"] for call in calls)
            ),
            "operator_data_age_s": summary(ages),
            "chat_data_age_s": summary(chat_ages),
            "status_changes": len(self.flips),
            "status_changes_shown": len(shown),
            "status_change_to_dashboard_s": summary(shown),
            "samples": len(self.samples),
            "sample_errors": self.errors[:5],
        }
