"""How often the worker polls a portal: a pure function of the portal's load and budget.

Every background call spends the portal's budget (siq_integration.budget), which is
shared with supervisors' actions and has two windows: calls per minute and calls per
day, each minus a reserve only actions may use. The plan spends at most ``HEADROOM``
of what the background may still use, so retries and the odd extra page stay inside
the budget, and paces the day's allowance over the hours left in it (on a Free plan
the day, not the minute, is what runs out first).

Within that, v2 operator presence comes only from polling (v2 has no presence
webhook), so operators get a bigger share; open chats are reconciled often while
webhooks are silent or unhealthy and rarely while they flow; departments and the full
operators list (v2 incremental polls never report a deleted operator) take small fixed
shares. The same rules give a Free plan a slower plan, never an over-budget one.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime

from siq_integration import dialects
from siq_integration.health import WEBHOOKS_FLOWING_WITHIN

# Spend at most this share of what the background may use: room for retries.
HEADROOM = 0.8

# The fastest each poll is worth doing, budget allowing.
OPERATORS_BEST = 10.0  # presence is only known by polling (v2)
PUSHED_OPERATORS_BEST = 15.0  # presence arrives by webhook when they work (reference)…
PUSHED_OPERATORS_FLOWING = 60.0  # …so while they flow, polling only reconciles
CHATS_BEST_SILENT = 20.0  # webhooks silent, refused or absent: polling is the truth
CHATS_BEST_FLOWING = 120.0  # webhooks flow: polling only catches what they missed
DEPARTMENTS_BEST = 600.0
FULL_OPERATORS_BEST = 600.0

# Shares of the budget the slow, fixed polls may take at most.
DEPARTMENTS_SHARE = 0.05
FULL_OPERATORS_SHARE = 0.10
# Operators' share of the rest when operators and chats both want more than there is:
# more where presence is only known by polling.
OPERATORS_WEIGHT_POLLED = 0.6
OPERATORS_WEIGHT_PUSHED = 0.5


class WebhookState(enum.StrEnum):
    FLOWING = "flowing"  # a verified delivery within health.WEBHOOKS_FLOWING_WITHIN
    SILENT = "silent"  # registered, nothing verified lately (a quiet portal is silent too)
    REFUSED = "refused"  # the latest delivery failed verification
    NONE = "none"  # not registered: polling is all there is


def webhook_state(
    *,
    registered: bool,
    last_delivery_at: datetime | None,
    last_delivery_ok: bool | None,
    now: datetime,
) -> WebhookState:
    if not registered:
        return WebhookState.NONE
    if last_delivery_at is not None and last_delivery_ok is False:
        return WebhookState.REFUSED
    if (
        last_delivery_at is not None
        and last_delivery_ok
        and now - last_delivery_at <= WEBHOOKS_FLOWING_WITHIN
    ):
        return WebhookState.FLOWING
    return WebhookState.SILENT


@dataclass(frozen=True)
class Load:
    """What the plan depends on."""

    dialect: str  # "v2" or "reference"
    calls_per_minute: int
    calls_per_day: int
    reserved_per_minute: int  # budget.reserved(calls_per_minute)
    reserved_per_day: int  # budget.reserved(calls_per_day)
    open_chats: int
    operators: int
    departments: int = 1
    webhooks: WebhookState = WebhookState.NONE
    used_today: int = 0  # every call of today, actions included
    seconds_left_today: float = 86_400.0
    full_operators_age: float | None = None  # seconds since the last full list; None: never


@dataclass(frozen=True)
class Plan:
    operators_every: float  # seconds; math.inf when the budget allows none
    chats_every: float
    departments_every: float
    full_operators_every: float
    full_operators: bool  # this operators poll should be the full list
    operators_cost: int  # calls for one operators poll (incremental in v2)
    full_operators_cost: int
    chats_cost: int  # calls for one complete listing of open chats
    departments_cost: int
    background_per_minute: int  # what the minute window allows the background
    budget_per_minute: float  # what the plan may spend: HEADROOM x min(minute, day pace)
    calls_per_minute: float  # what the plan spends, on average

    @property
    def chats_fit_in_a_minute(self) -> bool:
        """False when one listing needs more calls than a minute allows the background
        (2,000 chats on a Free plan): it then spans minutes and is not a snapshot."""
        return self.chats_cost <= self.background_per_minute


def _pages(items: int, size: int) -> int:
    return max(1, math.ceil(items / size))


def chats_listing_cost(dialect: str, open_chats: int) -> int:
    """Calls for one complete listing of open chats."""
    shape = dialects.get(dialect)
    queries = len(shape.open_conversation_queries())
    # Several queries (reference: waiting, then active) each take at least one page; their
    # pages add up to at most one more per extra query than the chats would fill together.
    return max(queries, math.ceil(open_chats / shape.page_size) + queries - 1)


def _every(cost: int, rate_per_minute: float) -> float:
    """Seconds between polls costing ``cost`` calls to spend ``rate_per_minute``; rounded up,
    so the real rate only ever comes out lower."""
    if rate_per_minute <= 0:
        return math.inf
    return float(math.ceil(cost * 60 / rate_per_minute))


def _rate(cost: int, every: float) -> float:
    return 0.0 if math.isinf(every) else cost * 60 / every


def plan(load: Load) -> Plan:
    shape = dialects.get(load.dialect)
    full_lists_only = not shape.lists_operator_changes  # every operators poll is the full list
    background_minute = max(0, load.calls_per_minute - load.reserved_per_minute)
    day_left = max(0, load.calls_per_day - load.reserved_per_day - load.used_today)
    day_pace = day_left / max(load.seconds_left_today / 60, 1.0)
    budget = HEADROOM * min(background_minute, day_pace)

    chats_cost = chats_listing_cost(load.dialect, load.open_chats)
    full_cost = _pages(load.operators, shape.small_page_size)
    # Changes since the last sync: rarely more than a page.
    operators_cost = full_cost if full_lists_only else 1
    if shape.departments_by_brand:
        departments_cost = 1 + _pages(load.departments, shape.page_size)  # brands, then one
    else:
        departments_cost = _pages(load.departments, shape.small_page_size)

    departments_every = max(DEPARTMENTS_BEST, _every(departments_cost, budget * DEPARTMENTS_SHARE))
    # A full list replaces an incremental poll: only the extra pages cost anything.
    full_extra = full_cost - operators_cost
    full_every = (
        max(FULL_OPERATORS_BEST, _every(full_extra, budget * FULL_OPERATORS_SHARE))
        if full_extra > 0
        else FULL_OPERATORS_BEST
    )
    fixed = _rate(departments_cost, departments_every) + _rate(full_extra, full_every)
    available = max(0.0, budget - fixed)

    flowing = load.webhooks is WebhookState.FLOWING
    if shape.presence_by_webhook:
        operators_best = PUSHED_OPERATORS_FLOWING if flowing else PUSHED_OPERATORS_BEST
    else:
        operators_best = OPERATORS_BEST
    chats_best = CHATS_BEST_FLOWING if flowing else CHATS_BEST_SILENT
    operators_want = operators_cost * 60 / operators_best
    chats_want = chats_cost * 60 / chats_best
    # Each gets at least its weighted share when both want more than there is; what one
    # does not need, the other may use.
    weight = OPERATORS_WEIGHT_PUSHED if shape.presence_by_webhook else OPERATORS_WEIGHT_POLLED
    operators_rate = min(operators_want, max(available * weight, available - chats_want))
    chats_rate = min(chats_want, available - operators_rate)

    operators_every = max(operators_best, _every(operators_cost, operators_rate))
    chats_every = max(chats_best, _every(chats_cost, chats_rate))
    if full_lists_only:
        full_every = operators_every
    full_due = load.full_operators_age is None or load.full_operators_age >= full_every
    spent = (
        _rate(operators_cost, operators_every)
        + _rate(chats_cost, chats_every)
        + _rate(departments_cost, departments_every)
        + (0.0 if full_lists_only else _rate(full_extra, full_every))
    )
    return Plan(
        operators_every=operators_every,
        chats_every=chats_every,
        departments_every=departments_every,
        full_operators_every=full_every,
        full_operators=full_lists_only or full_due,
        operators_cost=operators_cost,
        full_operators_cost=full_cost,
        chats_cost=chats_cost,
        departments_cost=departments_cost,
        background_per_minute=background_minute,
        budget_per_minute=budget,
        calls_per_minute=spent,
    )
