"""Gaps in today's figures and reading the ended chats back (dashboard/figures/reconcile.py),
with SalesIQ faked at the library level (responses)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import pytest
import responses
from django.utils import timezone
from responses import matchers

from dashboard import jobs
from dashboard.figures import reconcile
from dashboard.figures.definitions import day_start
from dashboard.models import Chat, PortalSync, ServiceSettings, ServiceTally, TallySpan
from dashboard.polling.poller import Poller
from dashboard.state import apply
from dashboard.times import Clock
from siq_integration import budget, dialects
from siq_integration.models import Portal
from siq_integration.normalised import ChatStatus, Conversation, Visitor
from tests.support.zones import far_from_midnight

API = "https://salesiq.zoho.eu/api/v2/zylker"
CONVERSATIONS = f"{API}/conversations"
ZONE = far_from_midnight(timezone.now())


@pytest.fixture
def portal(db):
    portal = Portal(
        name="Zylker",
        data_center="eu",
        dialect="v2",
        screen_name="zylker",
        calls_per_minute=1000,
        calls_per_day=100_000,
        accounts_url="https://accounts.zoho.eu",
        token_expires_at=timezone.now() + timedelta(hours=1),
        connected_at=timezone.now(),
    )
    portal.access_token_encrypted = Portal._write("1000.first")
    portal.refresh_token_encrypted = Portal._write("1000.refresh")
    portal.save()
    PortalSync.objects.create(portal=portal)
    ServiceSettings.objects.create(portal=portal, time_zone=ZONE)
    return portal


def ms(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


def ended(n: int, *, start, end, picked=None, status="closed", department="d1", rating=None):
    """A v2 conversation as SalesIQ lists it once it is over."""
    raw = {
        "id": str(466756000000969000 + n),
        "status": status,
        "chat_status": {"state_key": status, "status_key": "closed"},
        "visitor": {"id": f"${n}", "name": f"Visitor {n}"},
        "department": {"id": department, "name": "Sales"},
        "start_time": ms(start),
        "end_time": ms(end),
        "last_modified_time": ms(end),
        "rating": rating,
    }
    if picked is not None:
        raw["attended_time"] = ms(picked)
        raw["attender"] = {"id": "op1", "name": "Ann Lee"}
    return raw


def listing(items, *, more=False):
    return {"object": "list", "data": items, "more_data_available": more, "sync_time": "1"}


def answer(status: str, items, *, page: int = 1, more=False) -> None:
    responses.get(
        CONVERSATIONS,
        match=[
            matchers.query_param_matcher({"status": status, "page": str(page)}, strict_match=False)
        ],
        json=listing(items, more=more),
    )


def asked() -> list[dict[str, str]]:
    """The queries of the conversation listings asked for, in order."""
    return [
        dict(parse_qsl(urlsplit(call.request.url).query))
        for call in responses.calls
        if call.request.url.startswith(CONVERSATIONS)
    ]


def day_tally(portal, department="d1") -> ServiceTally | None:
    apply.count_pending(portal.pk)  # as the worker's queues job does within a second
    today = day_start(timezone.now(), ZoneInfo(ZONE))
    return ServiceTally.objects.filter(
        portal=portal, department_id=department, span=TallySpan.DAY, start=today
    ).first()


def sync_of(portal) -> PortalSync:
    return PortalSync.objects.get(portal=portal)


def reconciler() -> reconcile.Reconciler:
    return reconcile.Reconciler(jobs.apply_ended)


# --- a gap: the dashboard was down ---------------------------------------------------------------


def test_it_notes_a_gap_when_it_takes_a_portal_nothing_was_heard_of_for_a_while(portal):
    now = timezone.now()
    PortalSync.objects.filter(portal=portal).update(
        last_event_at=now - timedelta(minutes=20), operators_polled_at=now - timedelta(minutes=12)
    )
    Poller(stopping=threading.Event()).taken({portal.pk}, now)
    sync = sync_of(portal)
    assert sync.figures_gap_from == now - timedelta(minutes=12)  # the last thing heard
    assert sync.figures_gap_until == now


@pytest.mark.parametrize("heard", [timedelta(minutes=2), None])
def test_it_notes_no_gap_for_a_portal_heard_of_lately_or_never(portal, heard):
    now = timezone.now()
    PortalSync.objects.filter(portal=portal).update(chats_polled_at=now - heard if heard else None)
    Poller(stopping=threading.Event()).taken({portal.pk}, now)
    assert sync_of(portal).figures_gap_from is None
    assert reconcile.incomplete(portal, now) is None


def test_a_gap_widens_to_cover_every_gap_noted_and_one_going_on_keeps_it_open(portal):
    t = timezone.now() - timedelta(hours=1)
    reconcile.record_gap(portal.pk, since=t, until=t + timedelta(minutes=10))
    reconcile.record_gap(portal.pk, since=t - timedelta(minutes=10), until=t + timedelta(minutes=5))
    sync = sync_of(portal)
    assert (sync.figures_gap_from, sync.figures_gap_until) == (
        t - timedelta(minutes=10),
        t + timedelta(minutes=10),
    )
    reconcile.record_gap(portal.pk, since=t + timedelta(minutes=20), until=None)
    sync = sync_of(portal)
    assert (sync.figures_gap_from, sync.figures_gap_until) == (t - timedelta(minutes=10), None)


# --- a gap: webhooks were silent while chats were open -----------------------------------------


def open_chat(portal, started: datetime) -> None:
    chat = Conversation(
        id="466756000000999001",
        status=ChatStatus.WAITING,
        visitor=Visitor(id="$open", name="Still waiting"),
        started_at=started,
        department_id="d1",
    )
    apply.apply_conversation(portal, chat, fact_at=started, source="poll")


@responses.activate
def test_a_silence_while_chats_are_open_is_a_gap_read_back_once_webhooks_resume(portal):
    now = timezone.now()
    silent_from = now - timedelta(minutes=10)
    Portal.objects.filter(pk=portal.pk).update(
        webhook_id="w1",
        webhook_registered_at=now - timedelta(hours=2),
        last_webhook_at=silent_from,
        last_webhook_ok=True,
    )
    portal.refresh_from_db()
    open_chat(portal, now - timedelta(minutes=15))

    # The page's own definition of silence: since the last delivery, while chats are open.
    assert jobs.silent_since(portal, now) == silent_from
    reconcile.note_webhooks(portal, now, silent_since=jobs.silent_since(portal, now))
    sync = sync_of(portal)
    assert (sync.figures_gap_from, sync.figures_gap_until) == (silent_from, None)
    said = reconcile.incomplete(portal, now)
    assert said.startswith("Today's figures may be missing chats since ")
    assert "while SalesIQ's webhooks are silent" in said

    reconciler().reconcile(portal, now)  # still silent: nothing is read back yet
    assert len(responses.calls) == 0

    # A delivery arrives: the silence is over, and so is the gap.
    later = now + timedelta(seconds=30)
    Portal.objects.filter(pk=portal.pk).update(last_webhook_at=later)
    portal.refresh_from_db()
    assert jobs.silent_since(portal, later) is None
    reconcile.note_webhooks(portal, later, silent_since=None)
    assert sync_of(portal).figures_gap_until == later


def test_a_quiet_portal_with_no_chat_open_is_not_silent(portal):
    now = timezone.now()
    Portal.objects.filter(pk=portal.pk).update(
        webhook_id="w1",
        webhook_registered_at=now - timedelta(hours=2),
        last_webhook_at=now - timedelta(hours=1),
    )
    portal.refresh_from_db()
    assert jobs.silent_since(portal, now) is None


# --- reading back ------------------------------------------------------------------------------


@responses.activate
def test_it_reads_todays_ended_and_missed_chats_back_once_and_clears_the_gap(portal):
    now = timezone.now()
    gap_from = now - timedelta(minutes=30)
    reconcile.record_gap(portal.pk, since=gap_from, until=now - timedelta(minutes=1))
    m = timedelta(minutes=1)
    answer(
        "closed",
        [
            ended(1, start=now - 40 * m, picked=now - 39 * m, end=now - 20 * m, rating=5),
            ended(2, start=now - 25 * m, picked=now - 23 * m, end=now - 10 * m),
        ],
    )
    answer("missed", [ended(3, start=now - 12 * m, end=now - 4 * m, status="missed")])

    said = reconcile.incomplete(portal, now)
    assert said.endswith(": reading them back from SalesIQ.")
    reconciler().reconcile(portal, now)

    queries = asked()
    assert [q["status"] for q in queries] == ["closed", "missed"]
    today = day_start(now, ZoneInfo(ZONE))
    for query in queries:
        # Chats that arrived today (start time greater than the bound, so a millisecond
        # before midnight), changed since a little before the gap began.
        assert query["from_time"] == str(int(ms(today)) - 1)
        assert query["updated_from_time"] == str(int(ms(gap_from - reconcile.OVERLAP)) - 1)
        assert (query["page"], query["limit"]) == ("1", "99")

    tally = day_tally(portal)
    assert (tally.offered, tally.answered, tally.handled) == (3, 2, 2)
    assert tally.answer_waits == {"60": 1, "120": 1}
    assert tally.unanswered_waits == {"480": 1}
    assert (tally.rated, tally.rating_sum) == (1, 5)
    assert tally.handle_seconds == pytest.approx(19 * 60 + 13 * 60)
    sync = sync_of(portal)
    assert (sync.figures_gap_from, sync.figures_gap_until) == (None, None)
    assert sync.figures_reconciled_at == now
    assert reconcile.incomplete(portal, now) is None

    # The same gap again: the same chats are listed, and counted once still.
    reconcile.record_gap(portal.pk, since=gap_from, until=now)
    reconciler().reconcile(portal, now + timedelta(seconds=1))
    assert len(asked()) == 4
    again = day_tally(portal)
    assert (again.offered, again.answered, again.handled) == (3, 2, 2)
    assert again.answer_waits == tally.answer_waits
    assert again.unanswered_waits == tally.unanswered_waits


@responses.activate
def test_an_end_the_dashboard_only_guessed_takes_salesiqs_own_account(portal):
    now = timezone.now().replace(microsecond=0)  # SalesIQ's times are whole milliseconds
    m = timedelta(minutes=1)
    # Seen waiting before the dashboard went down; when it came back, SalesIQ no longer
    # listed the chat open, so it was closed with a guess: missed, ended when polled.
    waiting = Conversation(
        id=str(466756000000969001),
        status=ChatStatus.WAITING,
        visitor=Visitor(id="$1", name="Visitor 1"),
        started_at=now - 20 * m,
        department_id="d1",
    )
    apply.apply_conversation(portal, waiting, fact_at=now - 20 * m, source="poll")
    apply.apply_chats(portal, [], taken_at=now - 2 * m, complete=True)
    chat = Chat.objects.get(portal=portal)
    assert (chat.status, chat.inferred_end) == ("missed", True)
    assert day_tally(portal).unanswered_waits == {str(18 * 60): 1}

    # SalesIQ's account: picked up after a minute, over ten minutes before the guess.
    reconcile.record_gap(portal.pk, since=now - 25 * m, until=now - 2 * m)
    answer("closed", [ended(1, start=now - 20 * m, picked=now - 19 * m, end=now - 12 * m)])
    answer("missed", [])
    reconciler().reconcile(portal, now)

    chat.refresh_from_db()
    assert (chat.status, chat.inferred_end, chat.operator_id) == ("ended", False, "op1")
    assert chat.ended_at == now - 12 * m
    tally = day_tally(portal)
    assert (tally.offered, tally.answered, tally.unanswered_waits) == (1, 1, {})
    assert tally.handle_seconds == pytest.approx(7 * 60)


@responses.activate
def test_it_takes_at_most_its_share_of_each_minute_and_goes_on_where_it_stopped(portal):
    # 20 calls a minute: actions keep 6, the background has 14, reading back 20 % of that.
    Portal.objects.filter(pk=portal.pk).update(calls_per_minute=20)
    portal.refresh_from_db()
    assert reconcile.Reconciler(jobs.apply_ended).calls_left(portal, timezone.now()) == 2
    now = timezone.now().replace(second=5, microsecond=0)
    reconcile.record_gap(portal.pk, since=now - timedelta(hours=1), until=now)
    start = now - timedelta(minutes=50)
    answer("closed", [ended(n, start=start, end=now) for n in range(99)], page=1, more=True)
    answer("closed", [ended(n, start=start, end=now) for n in range(99, 198)], page=2, more=True)
    answer("closed", [ended(n, start=start, end=now) for n in range(198, 208)], page=3)
    answer("missed", [ended(300, start=start, end=now, status="missed")], page=1)

    job = reconciler()
    job.reconcile(portal, now)
    assert [(q["status"], q["page"]) for q in asked()] == [("closed", "1"), ("closed", "2")]
    job.reconcile(portal, now + timedelta(seconds=30))  # the same minute: its share is spent
    assert len(asked()) == 2
    assert sync_of(portal).figures_gap_from is not None
    assert reconcile.incomplete(portal, now).endswith(": reading them back from SalesIQ.")

    job.reconcile(portal, now + timedelta(seconds=60))  # the next minute: on from page 3
    assert [(q["status"], q["page"]) for q in asked()] == [
        ("closed", "1"),
        ("closed", "2"),
        ("closed", "3"),
        ("missed", "1"),
    ]
    assert sync_of(portal).figures_gap_from is None
    assert day_tally(portal).offered == 209


@responses.activate
def test_with_the_budget_spent_it_waits_and_says_until_when(portal):
    Portal.objects.filter(pk=portal.pk).update(calls_per_minute=10)
    portal.refresh_from_db()
    now = timezone.now()
    reconcile.record_gap(portal.pk, since=now - timedelta(minutes=30), until=now)
    budget.charge(portal, calls=10 - budget.reserved(10), priority=budget.Priority.BACKGROUND)

    reconciler().reconcile(portal, now)
    assert len(responses.calls) == 0  # refused by the budget before anything was sent
    sync = sync_of(portal)
    next_minute = timezone.now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    assert sync.figures_retry_at == next_minute
    assert sync.figures_waiting_for == reconcile.WAITING_FOR_BUDGET
    clock = Clock(zone=UTC)
    said = reconcile.incomplete(portal, now, clock=clock)
    assert said.endswith(
        f": reading them back from SalesIQ once the call budget allows, at {next_minute:%H:%M}."
    )
    # Until then each round leaves SalesIQ alone.
    reconciler().reconcile(portal, now + timedelta(seconds=1))
    assert len(responses.calls) == 0


@responses.activate
def test_when_salesiq_fails_it_tries_again_later_and_says_so(portal):
    now = timezone.now()
    reconcile.record_gap(portal.pk, since=now - timedelta(minutes=30), until=now)
    responses.get(CONVERSATIONS, status=503)
    reconciler().reconcile(portal, now)
    assert len(responses.calls) == 1  # no retry here: the next attempt is a later round
    sync = sync_of(portal)
    assert sync.figures_gap_from is not None
    assert sync.figures_waiting_for == reconcile.WAITING_FOR_SALESIQ
    said = reconcile.incomplete(portal, now, clock=Clock(zone=UTC))
    retry = sync.figures_retry_at
    assert said.endswith(f": SalesIQ did not give them back; trying again at {retry:%H:%M}.")


@responses.activate
def test_a_portal_whose_salesiq_lists_no_ended_chats_says_it_cannot_be_reconciled(
    portal, monkeypatch
):
    monkeypatch.setattr(dialects.V2, "lists_closed_conversations", False)
    now = timezone.now()
    reconcile.record_gap(portal.pk, since=now - timedelta(minutes=30), until=now)
    reconciler().reconcile(portal, now)
    assert len(responses.calls) == 0
    said = reconcile.incomplete(portal, now)
    assert "they cannot be reconciled on this portal" in said


@responses.activate
def test_a_gap_of_an_earlier_day_leaves_today_alone(portal):
    now = timezone.now()
    today = day_start(now, ZoneInfo(ZONE))
    reconcile.record_gap(
        portal.pk, since=today - timedelta(hours=3), until=today - timedelta(hours=1)
    )
    assert reconcile.incomplete(portal, now) is None
    reconciler().reconcile(portal, now)
    assert len(responses.calls) == 0
    assert sync_of(portal).figures_gap_from is None


def test_the_sentence_names_the_gap_in_the_viewers_clock_from_todays_start_at_most(portal):
    now = datetime(2026, 12, 3, 10, 50, tzinfo=UTC)
    ServiceSettings.objects.filter(portal=portal).update(time_zone="UTC")
    reconcile.record_gap(
        portal.pk, since=datetime(2026, 12, 3, 10, 5, tzinfo=UTC), until=now - timedelta(minutes=10)
    )
    assert reconcile.incomplete(portal, now, clock=Clock(zone=UTC)) == (
        "Today's figures may be missing chats from 10:05 to 10:40: reading them back from SalesIQ."
    )
    # In the viewer's own zone and clock; a gap that began yesterday is told from midnight.
    reconcile.record_gap(portal.pk, since=datetime(2026, 12, 2, 22, 0, tzinfo=UTC), until=now)
    berlin = Clock(zone=ZoneInfo("Europe/Berlin"), hour12=True)
    assert reconcile.incomplete(portal, now, clock=berlin) == (
        "Today's figures may be missing chats from 1:00 AM to 11:50 AM: reading them back "
        "from SalesIQ."
    )


def test_the_worker_runs_it_as_a_job_of_its_own(portal):
    found = {job.name: job for job in jobs.default_jobs(jobs.Health())}
    assert found["reconcile"].every == reconcile.RECONCILE_EVERY
    assert isinstance(found["reconcile"].run, jobs.ReconcileFigures)


@responses.activate
def test_the_job_tells_the_pages_when_the_figures_are_whole_again(portal, monkeypatch):
    told = []
    monkeypatch.setattr(
        jobs.publish, "meta", lambda pk, **said: told.append((pk, said.get("figures_note")))
    )
    now = timezone.now()
    reconcile.record_gap(portal.pk, since=now - timedelta(minutes=30), until=now)
    answer("closed", [])
    answer("missed", [])
    job = jobs.ReconcileFigures()
    job.reconcile(portal)
    # "may be missing chats" is no longer true: the note goes with the portal's meta.
    assert told == [(portal.pk, True)]
    job.reconcile(portal)
    assert told == [(portal.pk, True)]  # nothing changed: nothing to tell
