"""Event to screen: from the simulator sending a webhook to the change in a real Chromium page.

A driver thread makes scenes happen in the simulator at a fixed rate (a visitor arrives, is
picked up, writes, the chat ends); the simulator signs and posts each as a webhook and logs
when the request left (``sent_at``). In the page, a MutationObserver notes when each change
is first in the DOM (``performance.timeOrigin + performance.now()``, the same wall clock).
Meanwhile more websocket clients, in a process of their own, read everything they are sent.
The same measurement against the bare broadcast server (bench.floor) gives the floor.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salesiq_simulator import SimulatorError

from .cpu import CpuMeter
from .environment import Child
from .figures import summary

# Installed in the page once it is live: notes the first time each bench change shows.
OBSERVER = r"""
(() => {
  const origin = performance.timeOrigin;
  const seen = new Map();
  const visitorOf = new Map();
  const note = (key, t) => { if (!seen.has(key)) seen.set(key, t); };
  const look = (row, t) => {
    const visitor = row.dataset && row.dataset.visitor;
    if (!visitor || !visitor.startsWith("bench-")) return;
    visitorOf.set(row.id, visitor);
    note("new:" + visitor, t);
    if (row.dataset.status === "connected") note("connected:" + visitor, t);
    const preview = row.querySelector(".preview");
    const text = preview ? preview.textContent : "";
    if (text.startsWith("bench-msg-")) note("msg:" + text, t);
  };
  const observer = new MutationObserver((records) => {
    const t = origin + performance.now();
    for (const record of records) {
      if (record.type === "attributes") {
        if (record.target.tagName === "TR") look(record.target, t);
        continue;
      }
      record.addedNodes.forEach((node) => {
        if (node.nodeType !== 1) return;
        if (node.tagName === "TR") look(node, t);
        else node.querySelectorAll("tr[data-visitor]").forEach((row) => look(row, t));
      });
      record.removedNodes.forEach((node) => {
        if (node.nodeType !== 1 || node.tagName !== "TR" || !visitorOf.has(node.id)) return;
        if (!document.getElementById(node.id)) note("gone:" + visitorOf.get(node.id), t);
      });
    }
  });
  observer.observe(document.getElementById("live"), {
    childList: true, subtree: true, attributes: true, attributeFilter: ["data-status"],
  });
  window.__bench = { seen: () => Object.fromEntries(seen) };
})();
"""

CREATED = "conversation.created"
PICKED_UP = "conversation.attender.updated"
VISITOR_WROTE = "conversation.visitor.replied"
ENDED = "conversation.completed"


@dataclass
class Action:
    event: str  # the webhook it causes
    chat: str  # the conversation id (the delivery's entity_id)
    key: str  # what the page's observer notes when the change shows
    at: float  # time.time() when the scene was made
    measured: bool  # False during the warm-up


@dataclass
class _Chat:
    id: str
    visitor: str
    picked_up: bool = False
    said: int = 0


class Scenario:
    """Chats of bench visitors: created, picked up, a few visitor messages, ended; about
    ``keep_open`` of them open at any time, so every event changes a row of a small table."""

    def __init__(self, sim: Any, screen: str, *, prefix: str, keep_open: int = 40, seed: int = 7):
        self.sim = sim
        self.screen = screen
        self.prefix = prefix
        self.keep_open = keep_open
        self.rng = random.Random(seed)
        self.open: list[_Chat] = []
        self.visitors = 0
        self.lines = 0

    def step(self, measured: bool) -> Action | None:
        now = time.time()
        if len(self.open) < self.keep_open:
            self.visitors += 1
            visitor = f"bench-{self.prefix}{self.visitors:05d}"
            chat = self.sim.create_conversation(
                self.screen, visitor_name=visitor, question=f"bench question {self.visitors}"
            )
            self.open.append(_Chat(id=chat["id"], visitor=visitor))
            return Action(CREATED, chat["id"], f"new:{visitor}", now, measured)
        chat = self.rng.choice(self.open)
        if not chat.picked_up:
            chat.picked_up = True
            try:
                self.sim.pickup(chat.id)
            except SimulatorError:  # nobody free in its department: it ends unanswered
                return self._end(chat, now, measured)
            return Action(PICKED_UP, chat.id, f"connected:{chat.visitor}", now, measured)
        if chat.said < 2:
            chat.said += 1
            self.lines += 1
            text = f"bench-msg-{self.prefix}{self.lines:06d}"
            self.sim.visitor_message(chat.id, text)
            return Action(VISITOR_WROTE, chat.id, f"msg:{text}", now, measured)
        return self._end(chat, now, measured)

    def _end(self, chat: _Chat, now: float, measured: bool) -> Action:
        self.open.remove(chat)
        self.sim.end(chat.id)
        return Action(ENDED, chat.id, f"gone:{chat.visitor}", now, measured)


def drive(scenario: Scenario, *, rate: float, warmup: float, seconds: float) -> list[Action]:
    """Scenes at ``rate`` a second on an absolute schedule (a late one does not delay the
    next); the first ``warmup`` seconds are not measured."""
    actions: list[Action] = []
    total = int((warmup + seconds) * rate)
    first_measured = int(warmup * rate)
    started = time.monotonic()
    for index in range(total):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        action = scenario.step(measured=index >= first_measured)
        if action is not None:
            actions.append(action)
    return actions


def clock_offset(page: Any) -> tuple[float, float]:
    """(page clock - this process's clock, ± uncertainty) in ms, from the tightest of a few
    round trips. Both read the same system clock; this checks it."""
    best: tuple[float, float] | None = None
    for _ in range(7):
        before = time.time() * 1000
        theirs = page.evaluate("performance.timeOrigin + performance.now()")
        after = time.time() * 1000
        half = (after - before) / 2
        if best is None or half < best[1]:
            best = (theirs - (before + after) / 2, half)
    assert best is not None
    return round(best[0], 2), round(best[1], 2)


def measure(
    *,
    browser: Any,
    sim: Any,
    screen: str,
    label: str,
    page_url: str,
    ready_selector: str,
    cookie: dict[str, str] | None,
    ws_url: str,
    origin: str,
    cookies_file: Path | None,
    clients: int,
    rate: float,
    warmup: float,
    seconds: float,
    work: Path,
) -> dict[str, Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    if cookie:
        context.add_cookies([cookie])
    page = context.new_page()
    crowd: Child | None = None
    try:
        page.goto(page_url)
        page.wait_for_selector(ready_selector, state="attached", timeout=60_000)
        page.evaluate(OBSERVER)
        offset, uncertainty = clock_offset(page)

        args = ["-m", "bench.clients", "--url", ws_url, "--origin", origin, "--count", str(clients)]
        if cookies_file:
            args += ["--cookies", str(cookies_file)]
        crowd = Child(args, work / f"clients-{label}.log")
        connected = crowd.next(timeout=300)
        if connected["failed"]:
            raise RuntimeError(f"{connected['failed']} of {clients} clients failed: {connected}")

        scenario = Scenario(sim, screen, prefix=label[:1])
        deliveries_from = _last_delivery(sim)
        cpu = CpuMeter().start()
        done: list[Action] = []
        driver = threading.Thread(
            target=lambda: done.extend(drive(scenario, rate=rate, warmup=warmup, seconds=seconds)),
            name="bench-driver",
        )
        wall_started = time.monotonic()
        driver.start()
        # Keep Playwright's connection pumping while the driver runs.
        while driver.is_alive():
            page.wait_for_timeout(250)
        driven = time.monotonic() - wall_started
        cpu_used = cpu.stop()
        # Let the last deliveries arrive and show.
        deadline = time.monotonic() + 30
        while sim.deliveries_pending() and time.monotonic() < deadline:
            page.wait_for_timeout(250)
        page.wait_for_timeout(3000)
        seen = page.evaluate("window.__bench.seen()")
        page_stats = page.evaluate("window.SupervisorLive ? window.SupervisorLive.stats : null")
        crowd_stats = crowd.finish()
        crowd = None
        result = _latencies(done, sim.deliveries(since=deliveries_from), seen, offset, screen)
        result["dropped_after_the_run"] = _drop_backlog(sim)
        result.update(
            {
                "rate_per_second": rate,
                "seconds": seconds,
                "warmup_seconds": warmup,
                "events_driven": len(done),
                "driven_rate": round(len(done) / driven, 1),
                "clients": clients,
                "clients_connect": connected,
                "clients_read": crowd_stats,
                "page_stats": page_stats,
                "clock_offset_ms": offset,
                "clock_offset_uncertainty_ms": uncertainty,
                "cpu": cpu_used,
            }
        )
        return result
    finally:
        if crowd is not None:
            crowd.stop()
        context.close()


def _drop_backlog(sim: Any) -> int:
    """Webhooks still queued in the simulator when the run ended (the server fell behind):
    dropped, so they do not load the server during the next measurement."""
    backlog = sim.deliveries_pending()
    sim.pause_webhooks()  # queued deliveries are dropped as they come due
    try:
        deadline = time.monotonic() + 120
        while sim.deliveries_pending() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        sim.resume_webhooks()
    return backlog


def _last_delivery(sim: Any) -> int:
    log = sim.deliveries()
    return log[-1]["seq"] if log else 0


def _latencies(
    actions: list[Action],
    deliveries: list[dict[str, Any]],
    seen: dict[str, float],
    offset: float,
    screen: str,
) -> dict[str, Any]:
    sent: dict[tuple[str, str], deque[dict[str, Any]]] = defaultdict(deque)
    for delivery in deliveries:
        if delivery["portal"] == screen and delivery["attempt"] == 1:
            sent[(delivery["event"], delivery["entity_id"])].append(delivery)
    from_send: list[float] = []
    from_scene: list[float] = []
    answered: list[float] = []
    by_event: dict[str, list[float]] = defaultdict(list)
    unsent = failed = unseen = retried = superseded = 0
    unseen_by_event: dict[str, int] = defaultdict(int)
    # Each action's later actions on the same chat.
    after: dict[int, list[Action]] = {}
    by_chat: dict[str, list[Action]] = defaultdict(list)
    for action in reversed(actions):
        after[id(action)] = list(by_chat[action.chat])
        by_chat[action.chat].append(action)
    for action in actions:
        queued = sent.get((action.event, action.chat))
        delivery = queued.popleft() if queued else None
        if not action.measured:
            continue
        if delivery is None or delivery.get("sent_at") is None:
            unsent += 1
            continue
        if delivery["status"] != 200:
            failed += 1
        answered.append(delivery["duration_ms"])
        shown = seen.get(action.key)
        if shown is None:
            if any(later.key in seen for later in after[id(action)]):
                # The page went straight to a newer state of the chat (a visitor's line
                # replaced by the next one in the same message): nothing left to show.
                superseded += 1
                continue
            unseen += 1
            unseen_by_event[action.event] += 1
            continue
        # Both clocks are this machine's; the offset corrects what little they differ by.
        shown -= offset
        latency = shown - delivery["sent_at"] * 1000
        from_send.append(latency)
        from_scene.append(shown - action.at * 1000)
        by_event[action.event].append(latency)
    retried = sum(
        1 for delivery in deliveries if delivery["portal"] == screen and delivery["attempt"] > 1
    )
    return {
        "event_to_screen_ms": summary(from_send),
        "scene_to_screen_ms": summary(from_scene),
        # How long the server took to answer each webhook: the simulator, like SalesIQ, sends
        # the next one only then.
        "webhook_answer_ms": summary(answered),
        "by_event_ms": {event: summary(values) for event, values in sorted(by_event.items())},
        "measured_events": sum(1 for action in actions if action.measured),
        "not_sent": unsent,
        "refused_deliveries": failed,
        "retried_deliveries": retried,
        "never_shown": unseen,
        "never_shown_by_event": dict(unseen_by_event),
        "superseded_before_shown": superseded,
    }
