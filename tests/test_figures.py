"""The service figures' definitions at their edges (dashboard/figures/definitions.py) and
their counting as facts are applied (dashboard/figures/counting.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from dashboard.figures import counting
from dashboard.figures.definitions import (
    Contribution,
    Outcome,
    Tally,
    Target,
    contribution,
    day_start,
    figures,
    next_day_start,
    percentile,
    quarter_start,
    tally_of,
)
from dashboard.models import Chat, Operator, OperatorTally, ServiceSettings, ServiceTally
from dashboard.state import apply
from siq_integration.models import Portal
from siq_integration.normalised import (
    ChatStatus,
    Conversation,
    EventKind,
    Message,
    OperatorStatus,
    SenderType,
    Visitor,
    WebhookEvent,
)

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def chat(**fields):
    base = dict(
        status="waiting",
        started_at=T0,
        attended_at=None,
        ended_at=None,
        first_response_at=None,
        rating=None,
        operator_id="",
        department_id="d1",
        served_department_id="",
    )
    return SimpleNamespace(**{**base, **fields})


# --- what one chat adds ------------------------------------------------------------------------


def test_a_chat_picked_up_in_the_millisecond_it_arrived_took_no_time_and_is_within_any_target():
    part = contribution(chat(status="connected", attended_at=T0, operator_id="op1"))
    assert part.outcome == Outcome.ANSWERED and part.wait == 0
    result = figures(tally_of([part]), Target(seconds=0))
    assert result.within_target == 1 and result.service_level == 100.0


def test_an_answer_time_counts_whole_seconds_and_the_target_includes_its_last_second():
    on_time = contribution(chat(status="connected", attended_at=at(60.9), operator_id="a"))
    late = contribution(chat(status="connected", attended_at=at(61), operator_id="a"))
    assert (on_time.wait, late.wait) == (60, 61)
    result = figures(tally_of([on_time, late]), Target(seconds=60))
    assert (result.within_target, result.judged, result.service_level) == (1, 2, 50.0)


def test_a_chat_over_before_the_target_is_abandoned_and_after_it_missed_and_apart():
    left_early = contribution(chat(status="ended", ended_at=at(59)))
    left_late = contribution(chat(status="missed", ended_at=at(60)))
    answered = contribution(
        chat(status="ended", attended_at=at(5), ended_at=at(300), operator_id="a")
    )
    result = figures(tally_of([left_early, left_late, answered]), Target(seconds=60))
    assert (result.offered, result.answered, result.abandoned, result.missed) == (3, 1, 1, 1)
    # Abandoned chats are on neither side of the service level; missed ones count against.
    assert (result.within_target, result.judged) == (1, 2)
    assert result.handle_average == 295.0


def test_chats_waiting_past_the_target_now_count_against_the_service_level():
    answered = contribution(chat(status="connected", attended_at=at(10), operator_id="a"))
    result = figures(tally_of([answered]), Target(seconds=60), waiting_past_target=3)
    assert result.service_level == 25.0


def test_no_chat_to_judge_gives_no_service_level_not_a_hundred_percent():
    waiting = contribution(chat())
    result = figures(tally_of([waiting]), Target())
    assert result.offered == 1 and result.service_level is None and result.answer_p90 is None


def test_a_chat_first_seen_connected_is_answered_but_not_timed():
    part = contribution(chat(status="connected", operator_id="a"))
    tally = tally_of([part])
    assert (tally.answered, tally.answered_untimed, tally.answer_waits) == (1, 1, {})
    assert figures(tally, Target()).service_level is None


def test_a_chat_over_with_an_operator_but_no_pickup_time_is_answered_not_missed():
    part = contribution(chat(status="ended", operator_id="a", ended_at=at(400)))
    assert part.outcome == Outcome.ANSWERED and part.wait is None
    result = figures(tally_of([part]), Target())
    assert (result.answered, result.missed, result.judged) == (1, 0, 0)


def test_a_chat_transferred_after_its_pickup_stays_in_the_department_that_picked_it_up():
    part = contribution(
        chat(
            status="connected",
            attended_at=at(3),
            operator_id="b",
            department_id="d2",
            served_department_id="d1",
        )
    )
    assert part.department == "d1" and part.operator == "b"


def test_a_chat_transferred_while_waiting_counts_in_the_department_it_waits_in_last():
    assert contribution(chat(department_id="d2")).department == "d2"


def test_first_response_and_ratings():
    part = contribution(
        chat(
            status="ended",
            attended_at=at(10),
            first_response_at=at(25),
            ended_at=at(70),
            rating=4,
            operator_id="a",
        )
    )
    poor = contribution(
        chat(status="ended", attended_at=at(10), ended_at=at(20), rating=2, operator_id="a")
    )
    result = figures(tally_of([part, poor]), Target())
    assert result.response_average == 15.0
    assert (result.rated, result.rating_average, result.rated_good_share) == (2, 3.0, 50.0)


def test_the_90th_percentile_is_the_nearest_rank():
    waits = {str(s): 1 for s in range(1, 11)}  # 1..10 s
    assert percentile(waits, 0.9) == 9
    assert percentile({"5": 1}, 0.9) == 5
    assert percentile({"1": 9, "100": 1}, 0.9) == 1
    assert percentile({"1": 8, "100": 2}, 0.9) == 100


def test_taking_a_contribution_away_leaves_nothing_behind():
    tally = Tally()
    part = contribution(
        chat(status="ended", attended_at=at(4), ended_at=at(9), rating=5, operator_id="a")
    )
    tally.add(part)
    tally.add(part, -1)
    assert tally == Tally()


def test_a_contribution_survives_its_round_trip_through_json():
    part = contribution(
        chat(status="ended", attended_at=at(4), ended_at=at(9), rating=5, operator_id="a")
    )
    assert Contribution.from_json(part.as_json()) == part


# --- the business day --------------------------------------------------------------------------


def test_midnight_in_the_portal_zone_starts_the_day_not_midnight_in_utc():
    # 23:30 UTC on 22 November is 00:30 on the 23rd in Berlin.
    late = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)
    assert day_start(late, BERLIN) == datetime(2026, 11, 22, 23, 0, tzinfo=UTC)
    just_before = datetime(2026, 11, 22, 22, 59, 59, 999000, tzinfo=UTC)
    assert day_start(just_before, BERLIN) == datetime(2026, 11, 21, 23, 0, tzinfo=UTC)


def test_a_daylight_saving_day_is_23_or_25_hours_long():
    spring = day_start(datetime(2026, 3, 29, 12, 0, tzinfo=UTC), BERLIN)
    autumn = day_start(datetime(2026, 10, 25, 12, 0, tzinfo=UTC), BERLIN)
    assert next_day_start(spring, BERLIN) - spring == timedelta(hours=23)
    assert next_day_start(autumn, BERLIN) - autumn == timedelta(hours=25)


def test_quarters_line_up_with_local_quarters_in_a_half_hour_zone():
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+5:30
    start = quarter_start(datetime(2026, 11, 22, 4, 44, 59, tzinfo=UTC))
    assert start.astimezone(kolkata).minute in (0, 15, 30, 45)
    assert start == datetime(2026, 11, 22, 4, 30, tzinfo=UTC)


# --- counting as facts are applied ----------------------------------------------------------


@pytest.fixture
def portal(db):
    return Portal.objects.create(name="Zylker", data_center="us", screen_name="zylker")


def conv(id="c1", status=ChatStatus.WAITING, **fields):
    base = dict(
        id=id,
        status=status,
        visitor=Visitor(id="$" + id, name="Zoë"),
        started_at=T0,
        department_id="d1",
        department_name="Sales",
    )
    return Conversation(**{**base, **fields})


def apply_at(portal, kind, conversation, seconds, key):
    event = WebhookEvent(
        kind=kind,
        name=key,
        dedupe_key=key,
        occurred_at=at(seconds),
        conversation=conversation,
        chat_id=conversation.id,
    )
    return apply.apply_event(portal, event, received_at=at(seconds))


def stored_tally(portal, span="day", department="d1") -> Tally:
    apply.count_pending(portal.pk)  # as the worker's queues job does within a second
    rows = ServiceTally.objects.filter(portal=portal, span=span, department_id=department)
    total = Tally()
    for row in rows:
        total.merge(Tally.of(row))
    return total


def recomputed(portal) -> Tally:
    return tally_of(filter(None, (contribution(c) for c in Chat.objects.filter(portal=portal))))


def test_a_chats_life_is_counted_once_however_often_its_facts_arrive(portal):
    waiting = conv()
    picked = conv(
        status=ChatStatus.CONNECTED, operator_id="op1", operator_name="Asha", attended_at=at(20)
    )
    ended = replace(picked, status=ChatStatus.ENDED, ended_at=at(200), rating=5)
    apply_at(portal, EventKind.CHAT_CREATED, waiting, 0, "k1")
    assert stored_tally(portal).offered == 1
    apply_at(portal, EventKind.CHAT_ATTENDER_CHANGED, picked, 20, "k2")
    apply_at(portal, EventKind.CHAT_ENDED, ended, 200, "k3")
    # The same end again (a poll after the webhook) changes nothing.
    before = (stored_tally(portal), Chat.objects.get().counted)
    assert counting.count_chats(portal.pk, [Chat.objects.get().pk]) == set()
    apply_at(portal, EventKind.CHAT_ENDED, ended, 201, "k4")
    assert (stored_tally(portal), Chat.objects.get().counted) == before
    tally = stored_tally(portal)
    assert tally == recomputed(portal)
    assert (tally.offered, tally.answered, tally.answer_waits, tally.handled, tally.rated_good) == (
        1,
        1,
        {"20": 1},
        1,
        1,
    )
    assert stored_tally(portal, span="quarter") == tally
    op = OperatorTally.objects.get(portal=portal, operator_id="op1")
    assert (op.answered, op.handled, op.handle_seconds) == (1, 1, 180.0)


def test_a_chat_transferred_while_waiting_moves_between_departments(portal):
    apply_at(portal, EventKind.CHAT_CREATED, conv(), 0, "k1")
    moved = conv(department_id="d2", department_name="Billing")
    apply_at(portal, EventKind.TRANSFER_ACCEPTED, moved, 10, "k2")
    assert stored_tally(portal, department="d1").offered == 0
    assert stored_tally(portal, department="d2").offered == 1


def test_the_operators_first_line_after_the_pickup_is_the_first_response(portal):
    picked = conv(
        status=ChatStatus.CONNECTED, operator_id="op1", operator_name="Asha", attended_at=at(20)
    )
    apply_at(portal, EventKind.CHAT_ATTENDER_CHANGED, picked, 20, "k1")
    line = Message(
        id="m1", chat_id="c1", sender_type=SenderType.OPERATOR, text="Hello", sent_at=at(32)
    )
    apply_at(portal, EventKind.OPERATOR_MESSAGE, replace(picked, last_message=line), 32, "k2")
    assert Chat.objects.get().first_response_at == at(32)
    assert stored_tally(portal).response_seconds == 12.0


def test_the_day_a_chat_counts_in_is_the_portals_business_day(portal):
    ServiceSettings.objects.create(portal=portal, time_zone="Europe/Berlin")
    late = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)  # 00:30 on the 23rd in Berlin
    apply_at(portal, EventKind.CHAT_CREATED, conv(started_at=late), 0, "k1")
    apply.count_pending(portal.pk)
    day = ServiceTally.objects.get(portal=portal, span="day")
    assert day.start == datetime(2026, 11, 22, 23, 0, tzinfo=UTC)


def test_time_in_each_status_is_counted_at_each_change_and_split_at_midnight(portal):
    Operator.objects.create(
        portal=portal,
        remote_id="op1",
        name="Asha",
        status=OperatorStatus.AVAILABLE,
        status_since=datetime(2026, 11, 21, 23, 0, tzinfo=UTC),
        fact_at=T0,
        source="poll",
    )
    op = Operator.objects.get()
    counting.count_statuses(portal.pk, [op.pk])
    Operator.objects.filter(pk=op.pk).update(
        status="busy", status_since=datetime(2026, 11, 22, 1, 0, tzinfo=UTC)
    )
    counting.count_statuses(portal.pk, [op.pk])
    days = {t.start.day: t.status_seconds for t in OperatorTally.objects.filter(portal=portal)}
    assert days == {21: {"available": 3600.0}, 22: {"available": 3600.0}}
    assert Operator.objects.get().counted_status == "busy"
