"""Each operator's figures for today (dashboard/figures/operators.py): a day of chats and
status changes applied as SalesIQ's facts arrive, midnight in the portal's zone, a chat
transferred to a colleague, the row that renders again only when a figure changes, the pushed
drawer head and the JSON snapshot."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from dashboard import selectors
from dashboard.figures.operators import definitions_in_words, operator_figures
from dashboard.models import Operator, OperatorTally, ServiceSettings
from dashboard.realtime import render
from dashboard.state import apply
from dashboard.state.changes import Changes
from dashboard.templatetags.supervisor import render_row, row_cache, row_key
from siq_integration.normalised import (
    ChatStatus,
    Conversation,
    EventKind,
    Message,
    OperatorStatus,
    OperatorSync,
    SenderType,
    Visitor,
    WebhookEvent,
)
from siq_integration.normalised import Operator as RemoteOperator
from tests.factories import make_portal, owner

pytestmark = pytest.mark.django_db

__all__ = ["owner"]  # a fixture from tests/factories.py

# 09:00 in Berlin (UTC+1 in November): the business day started at 23:00 UTC the day before.
T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
BERLIN_DAY = datetime(2026, 11, 21, 23, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch):
    """The server's clock, moved by the test (applying facts and counting read it)."""
    now = {"at": T0}
    monkeypatch.setattr(timezone, "now", lambda: now["at"])
    return now


@pytest.fixture
def portal(clock):
    portal = make_portal()
    ServiceSettings.objects.create(portal=portal, time_zone="Europe/Berlin")
    return portal


def presence(portal, clock, when: datetime, **statuses: OperatorStatus) -> apply.Changes:
    """An operators poll at ``when`` saying each operator's status (changed at ``when``)."""
    clock["at"] = when
    listed = [
        RemoteOperator(remote, remote.capitalize(), f"{remote}@z.example", status, modified_at=when)
        for remote, status in statuses.items()
    ]
    return apply.apply_operators(portal, OperatorSync(listed, None, False), taken_at=when)


def conv(chat_id: str, arrived: datetime, **fields) -> Conversation:
    base = dict(
        id=chat_id,
        status=ChatStatus.WAITING,
        visitor=Visitor(id="$" + chat_id, name="Zoë"),
        started_at=arrived,
        department_id="d1",
        department_name="Sales",
    )
    return Conversation(**{**base, **fields})


def event(
    portal, clock, kind: EventKind, conversation: Conversation, when: datetime, *, counted=True
):
    """Applied, and (``counted``) counted as the worker's queues job counts it within a
    second."""
    clock["at"] = when
    key = f"{conversation.id}-{kind}-{when.isoformat()}"
    changes = apply.apply_event(
        portal,
        WebhookEvent(
            kind=kind,
            name=key,
            dedupe_key=key,
            occurred_at=when,
            conversation=conversation,
            chat_id=conversation.id,
        ),
        received_at=when,
    )
    if counted:
        apply.count_pending(portal.pk)
    return changes


def life(portal, clock, chat_id, *, arrived, picked, by, first_line=None, ended=None, rating=None):
    """A chat's life as its webhooks tell it: arrival, pickup, first line, end with a rating."""
    waiting = conv(chat_id, arrived)
    event(portal, clock, EventKind.CHAT_CREATED, waiting, arrived)
    connected = replace(
        waiting,
        status=ChatStatus.CONNECTED,
        operator_id=by,
        operator_name=by.capitalize(),
        attended_at=picked,
    )
    event(portal, clock, EventKind.CHAT_ATTENDER_CHANGED, connected, picked)
    if first_line is not None:
        line = Message(f"m-{chat_id}", chat_id, SenderType.OPERATOR, "Hello", first_line)
        event(
            portal,
            clock,
            EventKind.OPERATOR_MESSAGE,
            replace(connected, last_message=line),
            first_line,
        )
    if ended is not None:
        over = replace(connected, status=ChatStatus.ENDED, ended_at=ended, rating=rating)
        event(portal, clock, EventKind.CHAT_ENDED, over, ended)
    return connected


def text(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


def figures_of(portal, remote_id: str, now: datetime):
    apply.count_pending(portal.pk)  # as the worker's queues job does within a second
    return operator_figures([portal], now)[(portal.pk, remote_id)]


def test_it_reads_a_day_of_chats_and_status_changes(portal, clock):
    presence(portal, clock, at(0), asha=OperatorStatus.AVAILABLE, ben=OperatorStatus.AVAILABLE)
    life(portal, clock, "c1", arrived=at(0), picked=at(10), by="asha", first_line=at(25),
         ended=at(310), rating=5)  # fmt: skip
    life(portal, clock, "c2", arrived=at(100), picked=at(130), by="asha", first_line=at(140),
         ended=at(700), rating=3)  # fmt: skip
    life(portal, clock, "c3", arrived=at(200), picked=at(205), by="asha")  # still open
    missed = conv("c4", at(300))
    event(portal, clock, EventKind.CHAT_CREATED, missed, at(300))
    event(portal, clock, EventKind.CHAT_MISSED, replace(missed, status=ChatStatus.MISSED,
          ended_at=at(420)), at(420))  # fmt: skip
    presence(portal, clock, at(1000), asha=OperatorStatus.BUSY)
    presence(portal, clock, at(1600), asha=OperatorStatus.AVAILABLE)

    asha = figures_of(portal, "asha", at(2000))
    # Two ended (handled), three answered; the missed chat is nobody's.
    assert (asha.handled, asha.answered) == (2, 3)
    assert asha.response_average == (15 + 10) / 2  # c3 has no first line yet
    assert asha.handle_average == (300 + 570) / 2
    assert (asha.rating_average, asha.rated, asha.rated_good_share) == (4.0, 2, 50.0)
    assert asha.day_start == BERLIN_DAY and asha.time_zone == "Europe/Berlin"
    # Available from her first sighting to 1000 s, busy 600 s, available again since 1600 s.
    assert asha.seconds_in_status(at(2000)) == {
        "available": 1000.0 + 400.0,
        "busy": 600.0,
        "away": 0.0,
        "offline": 0.0,
    }
    running = [time for time in asha.status_times if time.ticking_from is not None]
    assert [(t.status, t.ticking_from) for t in running] == [("available", at(600))]

    ben = figures_of(portal, "ben", at(2000))
    assert (ben.handled, ben.answered, ben.response_average, ben.rating_average) == (
        0,
        0,
        None,
        None,
    )
    assert ben.seconds_in_status(at(2000))["available"] == 2000.0


def test_only_time_passing_changes_no_field_so_the_row_is_not_rendered_again(portal, clock):
    presence(portal, clock, at(0), asha=OperatorStatus.AVAILABLE)
    life(portal, clock, "c1", arrived=at(0), picked=at(10), by="asha", first_line=at(28),
         ended=at(370), rating=4)  # fmt: skip
    clock["at"] = at(400)
    before = selectors.operator_views([portal])[0]
    clock["at"] = at(4000)
    later = selectors.operator_views([portal])[0]
    assert later.figures == before.figures and row_key(later) == row_key(before)
    assert later.figures.seconds_in_status(at(4000))["available"] == 4000.0

    row_cache.clear()
    html = render_row("live/parts.html#operator_row", "view", later, oob=False)
    assert "1 handled · FRT 18s · ★4.0" in text(html)
    assert 'id="op-head-' not in html  # the drawer's head goes only with pushed rows

    # A rating changed afterwards moves the figure, and so the row's key.
    rated = conv("c1", at(0), status=ChatStatus.ENDED, operator_id="asha", attended_at=at(10),
                 ended_at=at(370), rating=2)  # fmt: skip
    event(portal, clock, EventKind.CHAT_RATED, rated, at(4010))
    again = selectors.operator_views([portal])[0]
    assert row_key(again) != row_key(later)
    assert "★2.0" in text(render_row("live/parts.html#operator_row", "view", again, oob=False))


def test_midnight_in_the_portals_zone_splits_the_status_time_and_the_chats(portal, clock):
    # 23:00 Berlin: available. A chat arrives before midnight and ends after it.
    evening = datetime(2026, 11, 22, 22, 0, tzinfo=UTC)
    midnight = datetime(2026, 11, 22, 23, 0, tzinfo=UTC)  # 00:00 on the 23rd in Berlin
    presence(portal, clock, evening, asha=OperatorStatus.AVAILABLE)
    life(portal, clock, "late", arrived=midnight - timedelta(minutes=10),
         picked=midnight - timedelta(minutes=9), by="asha", ended=midnight + timedelta(minutes=10),
         rating=5)  # fmt: skip

    # Before the status changes, today's time runs from midnight, not from 23:00.
    after_midnight = figures_of(portal, "asha", midnight + timedelta(minutes=15))
    assert after_midnight.day_start == midnight
    assert after_midnight.seconds_in_status(midnight + timedelta(minutes=15))["available"] == 900.0
    # The chat counts on the day it arrived: yesterday.
    assert (after_midnight.handled, after_midnight.rated) == (0, 0)
    assert figures_of(portal, "asha", midnight - timedelta(minutes=1)).handled == 1

    presence(portal, clock, midnight + timedelta(minutes=30), asha=OperatorStatus.BUSY)
    today = figures_of(portal, "asha", midnight + timedelta(hours=1))
    assert today.seconds_in_status(midnight + timedelta(hours=1)) == {
        "available": 1800.0,
        "busy": 1800.0,
        "away": 0.0,
        "offline": 0.0,
    }
    # Yesterday kept its hour before midnight.
    days = {t.start: t.status_seconds for t in OperatorTally.objects.filter(portal=portal)}
    assert days[evening.replace(hour=23) - timedelta(days=1)]["available"] == 3600.0

    # In UTC the same moments make another day: midnight in UTC is an hour later.
    ServiceSettings.objects.filter(portal=portal).update(time_zone="UTC")
    in_utc = figures_of(portal, "asha", midnight + timedelta(minutes=15))
    assert in_utc.day_start == datetime(2026, 11, 22, 0, 0, tzinfo=UTC) and in_utc.handled == 0


def test_a_chat_transferred_to_a_colleague_moves_its_figures_and_both_rows(portal, clock):
    presence(portal, clock, at(0), asha=OperatorStatus.AVAILABLE, ben=OperatorStatus.AVAILABLE)
    connected = life(portal, clock, "c1", arrived=at(0), picked=at(10), by="asha",
                     first_line=at(20))  # fmt: skip
    assert figures_of(portal, "asha", at(30)).answered == 1

    moved = replace(connected, operator_id="ben", operator_name="Ben")
    changes = event(portal, clock, EventKind.TRANSFER_ACCEPTED, moved, at(60))
    asha, ben = figures_of(portal, "asha", at(70)), figures_of(portal, "ben", at(70))
    assert (asha.answered, asha.response_average) == (0, None)
    assert (ben.answered, ben.response_average) == (1, 10.0)
    pks = dict(Operator.objects.values_list("remote_id", "pk"))
    assert {pks["asha"], pks["ben"]} <= changes.operators

    ended = replace(moved, status=ChatStatus.ENDED, ended_at=at(400))
    event(portal, clock, EventKind.CHAT_ENDED, ended, at(400))
    assert figures_of(portal, "ben", at(410)).handle_average == 390.0
    assert figures_of(portal, "asha", at(410)).handled == 0


def test_a_rating_after_the_end_publishes_the_operators_row_with_its_drawer_head(portal, clock):
    presence(portal, clock, at(0), asha=OperatorStatus.AVAILABLE)
    connected = life(portal, clock, "c1", arrived=at(0), picked=at(10), by="asha",
                     ended=at(100))  # fmt: skip
    rated = replace(connected, status=ChatStatus.ENDED, ended_at=at(100), rating=5)
    applied = event(portal, clock, EventKind.CHAT_RATED, rated, at(130), counted=False)
    asha = Operator.objects.get(remote_id="asha")
    assert asha.pk not in applied.operators  # her load did not move
    # Only her figures did, once counted, and that is enough to push her row.
    _, moved = apply.count_pending(portal.pk)
    assert moved == {asha.pk}
    changes = Changes(portal.pk, figures=moved)

    html = render.render_changes(changes)
    assert f'<tr id="op-{asha.pk}"' in html
    assert f'id="meta-{portal.pk}"' not in html  # nothing else about the portal moved
    assert f'<div id="op-head-{asha.pk}" class="drawer-head operator-head"' in html
    head = html[html.index(f'id="op-head-{asha.pk}"') :]
    assert 'hx-swap-oob="true"' in head.split(">", 1)[0]
    assert '<dd data-op-figure="rating">★ 5.0' in head

    # A fact that moves nobody's figures pushes nobody's row for it.
    line = Message("m9", "c1", SenderType.VISITOR, "Thanks", at(140))
    quiet = event(portal, clock, EventKind.VISITOR_MESSAGE, replace(rated, last_message=line),
                  at(140))  # fmt: skip
    assert asha.pk not in quiet.operators


def test_the_operator_drawer_shows_every_figure_with_its_definition(portal, clock, client, owner):
    presence(portal, clock, at(0), asha=OperatorStatus.AVAILABLE)
    life(portal, clock, "c1", arrived=at(0), picked=at(10), by="asha", first_line=at(22),
         ended=at(190), rating=5)  # fmt: skip
    presence(portal, clock, at(300), asha=OperatorStatus.BUSY)
    clock["at"] = at(360)
    client.force_login(owner)
    asha = Operator.objects.get(remote_id="asha")
    html = client.get(f"/live/operators/{asha.pk}/").content.decode()

    words = definitions_in_words()
    for name, label in (("handled", "Chats handled"), ("response", "First response"),
                        ("handle", "Handle time"), ("rating", "Rating")):  # fmt: skip
        assert f'<dt title="{words[name]}">{label}</dt>'.replace("'", "&#x27;") in html
    assert '<dd data-op-figure="handled">1</dd>' in html
    assert "12s" in html and "3m 00s" in html
    # Available 300 s, closed; busy running since 300 s: it ticks from there.
    assert (
        '<span class="status-time-label">Available</span> <span class="status-time-closed">5m 00s'
        in html
    )
    busy_from = (at(300)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert f'<time data-tick="elapsed" datetime="{busy_from}"' in html


def test_the_json_snapshot_gives_each_operators_figures(portal, clock, client, owner):
    presence(portal, clock, at(0), asha=OperatorStatus.AVAILABLE)
    life(portal, clock, "c1", arrived=at(0), picked=at(10), by="asha", first_line=at(22),
         ended=at(190), rating=4)  # fmt: skip
    presence(portal, clock, at(300), asha=OperatorStatus.AWAY)
    clock["at"] = at(420)
    client.force_login(owner)
    data = client.get(f"/api/portals/{portal.pk}/snapshot.json").json()
    (asha,) = data["operators"]
    assert asha["seconds_in_current_status"] == 120.0
    assert asha["today"] == {
        "day_start": BERLIN_DAY.isoformat(),
        "time_zone": "Europe/Berlin",
        "chats_handled": 1,
        "chats_answered": 1,
        "first_response_average_seconds": 12.0,
        "handle_average_seconds": 180.0,
        "rating_average": 4.0,
        "ratings": 1,
        "ratings_good_percent": 100.0,
        "seconds_in_status": {"available": 300.0, "busy": 0.0, "away": 120.0, "offline": 0.0},
    }


def test_two_portals_with_the_same_operator_id_keep_their_own_day_and_figures(portal, clock):
    other = make_portal("Acme")  # no settings saved: the portal's day is UTC's
    presence(portal, clock, at(0), asha=OperatorStatus.AVAILABLE)
    presence(other, clock, at(0), asha=OperatorStatus.BUSY)
    life(portal, clock, "c1", arrived=at(0), picked=at(10), by="asha", ended=at(70))

    both = operator_figures([portal, other], at(100))
    here, there = both[(portal.pk, "asha")], both[(other.pk, "asha")]
    assert (here.handled, here.day_start) == (1, BERLIN_DAY)
    assert (there.handled, there.day_start, there.time_zone) == (0, T0.replace(hour=0), "UTC")
    assert there.seconds_in_status(at(100))["busy"] == 100.0
    assert not ServiceSettings.objects.filter(portal=other).exists()  # reading wrote nothing


def test_an_operator_stored_before_status_time_was_counted_says_so(portal, clock, client, owner):
    presence(portal, clock, at(0), asha=OperatorStatus.AVAILABLE)
    Operator.objects.update(counted_status="", counted_since=None)  # as older versions left it
    clock["at"] = at(60)
    asha = figures_of(portal, "asha", at(60))
    assert not asha.status_counted and asha.seconds_in_status(at(60))["available"] == 0.0
    client.force_login(owner)
    html = client.get(f"/live/operators/{Operator.objects.get().pk}/").content.decode()
    assert "Counted from Asha's next change of status." in html
    assert '<ul class="status-times" hidden>' in html
