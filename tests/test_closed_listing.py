"""Listing a day's ended chats: the simulator filters and pages as Zoho's "Get details of a
List of Conversations" page describes (and seed 003's "List Chats"), and keeps a day's ended
chats listable; the client reads them page by page and goes on from where it stopped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.utils import timezone

from salesiq_simulator import Simulator
from siq_integration.client import SalesIQClient
from tests.support.simulator import REFERENCE_SCOPES, auth, connect, last_seq, v2


@pytest.fixture
def sim_screen(simulator):
    screen = "reconsim"
    if screen not in {p["screen_name"] for p in simulator.state()["portals"]}:
        simulator.add_portal(screen, dialect="v2", dc="sim", operators=3, open_chats=0)
    token = connect(simulator, as_user=f"admin@{screen}.example")["access_token"]
    simulator.configure_accounts(auto_approve=False, approve_as="")

    def get(**params):
        return v2(simulator, token, "GET", f"/{screen}/conversations", params=params)

    return screen, get


def test_the_simulator_filters_by_status_start_and_update_time_as_zohos_page_says(
    simulator, sim_screen
):
    screen, get = sim_screen
    closed = simulator.create_conversation(screen, waiting_seconds=300)
    simulator.pickup(closed["id"])
    closed = simulator.end(closed["id"])
    missed = simulator.miss(simulator.create_conversation(screen, waiting_seconds=100)["id"])
    waiting = simulator.create_conversation(screen)

    def ids(**params):
        return {c["id"] for c in get(limit=99, **params)["data"]}

    mine = {closed["id"], missed["id"], waiting["id"]}
    assert ids(status="closed") & mine == {closed["id"]}
    assert ids(status="missed") & mine == {missed["id"]}
    assert ids(status="end") & mine == {closed["id"], missed["id"]}  # closed and missed
    # from_time: start time greater than (the bound itself excluded); to_time: lesser than.
    assert closed["id"] not in ids(from_time=closed["start_time"])
    assert closed["id"] in ids(from_time=str(int(closed["start_time"]) - 1))
    assert closed["id"] not in ids(to_time=closed["start_time"])
    assert missed["id"] in ids(to_time=str(int(missed["start_time"]) + 1))
    # updated_from_time / updated_till_time: updated after / before.
    changed = int(missed["last_modified_time"])
    assert missed["id"] not in ids(updated_from_time=str(changed))
    assert missed["id"] in ids(updated_from_time=str(changed - 1))
    assert missed["id"] not in ids(updated_till_time=str(changed))
    assert missed["id"] in ids(updated_till_time=str(changed + 1))
    # sort_by: in_time, end_time or updated_time, newest first; anything else is refused.
    by_start = [c["id"] for c in get(limit=99, sort_by="in_time")["data"] if c["id"] in mine]
    assert by_start == [waiting["id"], missed["id"], closed["id"]]
    refused = get(sort_by="size")["error"]
    assert (refused["code"], refused["param"]) == (1007, "sort_by")


def test_the_reference_simulator_bounds_chats_by_their_start_date(simulator):
    screen = "reconref"
    if screen not in {p["screen_name"] for p in simulator.state()["portals"]}:
        simulator.add_portal(screen, dialect="reference", dc="sim", operators=2, open_chats=0)
    token = connect(simulator, as_user=f"admin@{screen}.example", scopes=REFERENCE_SCOPES)[
        "access_token"
    ]
    simulator.configure_accounts(auto_approve=False, approve_as="")
    chat = simulator.create_conversation(screen, waiting_seconds=600)
    simulator.miss(chat["id"])
    started = datetime.fromtimestamp(int(chat["start_time"]) / 1000, tz=UTC)

    def listed(**params):
        return requests.get(
            f"{simulator.data_center('sim')['api_url']}/api/v2/chats",
            headers=auth(token),
            params={"status": "missed", "per_page": 100, **params},
            timeout=10,
        )

    def ids(**params):
        return {c["id"] for c in listed(**params).json()["data"]}

    def iso(moment: datetime) -> str:
        return moment.isoformat().replace("+00:00", "Z")

    assert chat["id"] in ids(from_date=iso(started - timedelta(seconds=1)))
    assert chat["id"] not in ids(from_date=iso(started + timedelta(seconds=1)))
    assert chat["id"] not in ids(to_date=iso(started - timedelta(seconds=1)))
    refused = listed(from_date="yesterday")
    assert refused.status_code == 400 and refused.json()["details"] == {"param": "from_date"}


def test_the_simulator_keeps_a_days_ended_chats_listable():
    start = datetime(2026, 12, 3, 9, 0, tzinfo=UTC).timestamp()
    sim = Simulator(seed=3, life=False, start_time=start)
    sim.add_portal("keeper", dialect="v2", dc="sim", operators=2, open_chats=0)
    sim.world.max_ended_per_portal = 2
    first = [sim.create_conversation("keeper")["id"] for _ in range(3)]
    for conversation in first:
        sim.end(conversation)

    def kept() -> set[str]:
        portal = sim.state("keeper")["portals"][0]
        return {c["id"] for c in portal["conversations"] if c["status"] == "closed"}

    assert kept() == set(first)  # over the cap, but ended today: still listed
    sim.clock.advance(27 * 3600)  # a day on (no life played meanwhile)
    later = sim.create_conversation("keeper")["id"]
    sim.end(later)
    assert kept() == {first[2], later}  # a day on, the oldest are let go


@pytest.mark.django_db
@pytest.mark.parametrize("dialect", ["v2", "reference"])
def test_the_client_reads_ended_chats_a_page_a_call_and_goes_on_where_it_stopped(
    simulator, connected_portal, dialect
):
    portal = connected_portal(dialect=dialect, open_chats=0, operators=3)
    screen = portal.screen_name
    closed = set()
    for _ in range(120):
        chat = simulator.create_conversation(screen, waiting_seconds=30)["id"]
        simulator.pickup(chat)
        simulator.end(chat)
        closed.add(chat)
    missed = {simulator.miss(simulator.create_conversation(screen)["id"])["id"]}
    simulator.create_conversation(screen)  # still waiting: not listed
    since = timezone.now() - timedelta(minutes=5)

    start = last_seq(simulator)
    client = SalesIQClient(portal)
    pages = client.closed_conversation_pages(arrived_since=since, changed_since=since)
    first = next(pages)
    pages.close()  # stopped after one page (its budget, say)
    assert client.calls == 1 and first.resume_at == (0, 2)
    rest = list(
        SalesIQClient(portal).closed_conversation_pages(
            arrived_since=since, changed_since=since, resume_at=first.resume_at
        )
    )
    assert [page.resume_at for page in rest] == [(1, 1), None]

    read = [c for page in [first, *rest] for c in page.conversations]
    assert len(read) == len({c.id for c in read}) == 121
    assert {c.id for c in read if c.status == "ended"} == closed
    assert {c.id for c in read if c.status == "missed"} == missed
    asked = [
        call["query"]
        for call in simulator.calls(start)
        if call.get("portal") == screen and call["method"] == "GET"
    ]
    pages_asked = [(q["status"], q["page"]) for q in asked]
    ended = "closed" if dialect == "v2" else "ended"
    assert pages_asked == [(ended, "1"), (ended, "2"), ("missed", "1")]
