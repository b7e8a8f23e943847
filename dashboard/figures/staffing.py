"""How many operators a department needs to hold its service-level target, against how many
it has: "Billing: need 2 more operators".

Erlang C, with every operator counted as ``seats_per_operator`` servers (an operator taking 3
chats at once is 3 seats) and the chat's handle time as the service time. The arrival rate of
the last window (30 minutes) is taken to hold for the next one. docs/staffing.md says what the
model assumes, where it is wrong for chats, and how to read the advice.

Pure: plain numbers in, plain numbers and words out; no Django, no database, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

# Reasons that mean "the data cannot say yet", as opposed to "the target is out of reach".
NO_CHATS = "no chats in the last {window}"
NO_HANDLE_TIME = "no handle time yet today"


# --- the formulas -----------------------------------------------------------------------------


def _erlang_b_by_servers(traffic: float) -> Iterator[tuple[int, float]]:
    """(n, Erlang B of n servers) for n = 1, 2, 3 … without end.

    The recursion B(n) = A·B(n-1) / (n + A·B(n-1)), B(0) = 1 keeps every value in [0, 1], so
    nothing overflows where A^n / n! would (A = 1,000 Erlangs is fine); one step per server,
    which lets a search over the number of servers reuse every step it has made."""
    blocking = 1.0
    servers = 0
    while True:
        servers += 1
        blocking = traffic * blocking / (servers + traffic * blocking)
        yield servers, blocking


def _erlang_c_from_b(servers: int, traffic: float, blocking: float) -> float:
    """Erlang C from Erlang B of the same servers and traffic (traffic < servers)."""
    return servers * blocking / (servers - traffic * (1.0 - blocking))


def _check_load(servers: int, traffic: float) -> None:
    if servers < 0:
        raise ValueError("The number of seats cannot be negative.")
    if traffic < 0 or math.isnan(traffic):
        raise ValueError("The chat load cannot be negative.")


def erlang_c(servers: int, traffic: float) -> float:
    """The probability that a chat waits for a seat: ``servers`` seats, ``traffic`` Erlangs
    (arrivals per second times service seconds). 1.0 when traffic >= servers: the queue then grows
    without end and every chat waits."""
    _check_load(servers, traffic)
    if traffic >= servers:
        return 1.0
    if traffic == 0:
        return 0.0
    for n, blocking in _erlang_b_by_servers(traffic):
        if n == servers:
            return _erlang_c_from_b(servers, traffic, blocking)
    raise AssertionError("unreachable: the recursion runs without end")  # pragma: no cover


def _level(servers: int, traffic: float, wait_chance: float, handle: float, target: float) -> float:
    """The service-level formula itself, for traffic < servers and a known wait chance."""
    return 1.0 - wait_chance * math.exp(-(servers - traffic) * target / handle)


def service_level(
    servers: int, traffic: float, handle_seconds: float, target_seconds: float
) -> float:
    """The share of chats picked up within ``target_seconds``:
    1 - C · exp(-(servers - traffic) · target / handle). 0.0 when traffic >= servers (the
    formula has no meaning there, and no share of chats can be promised)."""
    _check_load(servers, traffic)
    if not handle_seconds > 0:
        raise ValueError("The handle time must be more than 0 seconds.")
    if target_seconds < 0:
        raise ValueError("The target time cannot be negative.")
    if traffic >= servers:
        return 0.0
    return _level(servers, traffic, erlang_c(servers, traffic), handle_seconds, target_seconds)


# --- the advice -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Advice:
    """What one department needs against what it has.

    ``needed`` is None when there is no advice, and ``reason`` says why in words: not enough
    data yet (no chats, no handle time) or a target out of reach. ``handle_seconds`` is the
    handle time as measured (None when there is none); ``expected_level`` is the share of chats
    picked up within the target with ``needed`` operators."""

    needed: int | None
    available: int
    seats_per_operator: int
    arrivals_per_hour: float
    handle_seconds: float | None
    expected_level: float | None
    reason: str

    @property
    def short(self) -> int:
        """How many operators are missing (0 when there are enough, or no advice)."""
        if self.needed is None:
            return 0
        return max(0, self.needed - self.available)

    def sentence(self, department_name: str) -> str:
        """ "Billing: need 2 more operators", "Billing: enough operators (3 needed,
        4 available)", "Billing: not enough data yet (no chats in the last 30 minutes)"."""
        if self.needed is None:
            if self.arrivals_per_hour == 0 or self.handle_seconds is None:
                return f"{department_name}: not enough data yet ({self.reason})"
            return f"{department_name}: target out of reach ({self.reason})"
        if self.short:
            noun = "operator" if self.short == 1 else "operators"
            return f"{department_name}: need {self.short} more {noun}"
        return (
            f"{department_name}: enough operators "
            f"({self.needed} needed, {self.available} available)"
        )


def _window_words(seconds: float) -> str:
    """ "30 minutes", "1 minute", "90 seconds": the window as a supervisor says it."""
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute" if minutes == 1 else f"{minutes} minutes"
    whole = round(seconds)
    return f"{whole} second" if whole == 1 else f"{whole} seconds"


def _check_advice_inputs(
    *,
    arrivals: int,
    window_seconds: float,
    seats_per_operator: int,
    available: int,
    target_seconds: float,
    target_share: float,
    concurrency_slowdown: float,
    max_operators: int,
) -> None:
    if arrivals < 0:
        raise ValueError("The number of chats cannot be negative.")
    if not window_seconds > 0:
        raise ValueError("The period the chats were counted over must be longer than 0 seconds.")
    if seats_per_operator < 1:
        raise ValueError("Each operator must be able to take at least 1 chat at a time.")
    if available < 0:
        raise ValueError("The number of available operators cannot be negative.")
    if target_seconds < 0:
        raise ValueError("The target time cannot be negative.")
    if not 0 < target_share <= 1:
        raise ValueError(
            "The service-level target must be a share above 0 and up to 1 (0.8 = 80 %)."
        )
    if not concurrency_slowdown >= 1:
        raise ValueError("The slowdown for concurrent chats must be 1.0 (none) or more.")
    if max_operators < 1:
        raise ValueError("The most operators to consider must be at least 1.")


def advise(
    *,
    arrivals: int,
    window_seconds: float,
    handle_seconds: float | None,
    seats_per_operator: int,
    available: int,
    target_seconds: float,
    target_share: float,
    concurrency_slowdown: float = 1.0,
    max_operators: int = 500,
) -> Advice:
    """The fewest operators (each ``seats_per_operator`` seats) that pick up ``target_share``
    of the chats within ``target_seconds``, at the rate of ``arrivals`` chats over the last
    ``window_seconds``, each taking ``handle_seconds``.

    ``concurrency_slowdown`` is how much longer a chat takes when its operator carries all of
    their seats at once than when it is their only one (1.3: 30 % longer). It multiplies the
    handle time only when an operator has more than one seat; leave it at 1.0 when the handle
    time was itself measured while operators carried that many chats (docs/staffing.md)."""
    _check_advice_inputs(
        arrivals=arrivals,
        window_seconds=window_seconds,
        seats_per_operator=seats_per_operator,
        available=available,
        target_seconds=target_seconds,
        target_share=target_share,
        concurrency_slowdown=concurrency_slowdown,
        max_operators=max_operators,
    )
    measured_handle = handle_seconds if handle_seconds is not None and handle_seconds > 0 else None

    def no_advice(reason: str) -> Advice:
        return Advice(
            needed=None,
            available=available,
            seats_per_operator=seats_per_operator,
            arrivals_per_hour=arrivals * 3600 / window_seconds,
            handle_seconds=measured_handle,
            expected_level=None,
            reason=reason,
        )

    if arrivals == 0:
        return no_advice(NO_CHATS.format(window=_window_words(window_seconds)))
    if measured_handle is None:
        return no_advice(NO_HANDLE_TIME)
    if target_share >= 1:
        # Under Poisson arrivals some chat always has a chance to wait, with any number of
        # operators: a search would only stop at max_operators and blame the staff.
        return no_advice(
            "no number of operators picks up every chat in time; set a target below 100 %"
        )

    slowdown = concurrency_slowdown if seats_per_operator > 1 else 1.0
    service_seconds = measured_handle * slowdown
    traffic = arrivals / window_seconds * service_seconds
    most_seats = max_operators * seats_per_operator
    for seats, blocking in _erlang_b_by_servers(traffic):
        if seats > most_seats:
            break
        if seats % seats_per_operator or seats <= traffic:
            continue
        wait_chance = _erlang_c_from_b(seats, traffic, blocking)
        level = _level(seats, traffic, wait_chance, service_seconds, target_seconds)
        if level >= target_share:
            return Advice(
                needed=seats // seats_per_operator,
                available=available,
                seats_per_operator=seats_per_operator,
                arrivals_per_hour=arrivals * 3600 / window_seconds,
                handle_seconds=measured_handle,
                expected_level=level,
                reason="",
            )
    return no_advice(f"more than {max_operators} operators would be needed")
