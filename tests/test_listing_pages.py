"""Listings page as each of Zoho's pages documents, and a listing whose pages repeat stops.

Zoho's "Get details of a List of Conversations" names `page` and `limit` (at most 99); the
operators list pages by `index`. A SalesIQ (or a proxy) that ignores the page parameter
answers page 1 again and again: the listing stops there, keeps what it read, counts nothing
twice and says so.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import responses
from django.utils import timezone

from dashboard.models import Chat, Department, PortalSync
from dashboard.polling.runner import Worker
from dashboard.state import apply
from siq_integration import client as client_module
from siq_integration.client import SalesIQClient
from siq_integration.models import Portal
from siq_integration.normalised import ChatStatus, Conversation, Visitor
from tests.support.simulator import connect, last_seq, v2

API = "https://salesiq.zoho.eu/api/v2/zylker"


# --- against the simulator, on a real port ------------------------------------------------


@pytest.mark.django_db
def test_it_pages_conversations_by_page_and_operators_by_index(simulator, connected_portal):
    portal = connected_portal(open_chats=150, operators=45)
    start = last_seq(simulator)
    client = SalesIQClient(portal)
    chats = client.list_open_conversations()
    operators = client.list_operators().operators

    state = simulator.state(portal.screen_name)["portals"][0]
    assert len(chats) == 150 == len({chat.id for chat in chats})
    assert {chat.id for chat in chats} == set(state["open_conversation_ids"])
    assert len({op.id for op in operators}) == 45 == len(operators)
    assert client.notices == [] and client.incomplete == set()

    calls = [c for c in simulator.calls(start) if c["method"] == "GET"]
    listings = [c["query"] for c in calls if c["path"].endswith("/conversations")]
    assert [(q.get("page"), q.get("limit"), "index" in q) for q in listings] == [
        ("1", "99", False),
        ("2", "99", False),
    ]
    directory = [c["query"] for c in calls if c["path"].endswith("/operators")]
    assert [q.get("index") for q in directory] == ["1", "2", "3"]
    assert all("page" not in q for q in directory)


def test_the_simulator_pages_conversations_by_page_as_zohos_page_says(sim_v2):
    """`index` means nothing on the conversations list: asked for page 2 that way, it
    answers page 1 (what made the old client count chats twice)."""
    get = sim_v2
    first = get(page=1, limit=99)
    second = get(page=2, limit=99)
    by_index = get(index=2, limit=99)
    assert len(first["data"]) == 99 and first["more_data_available"] is True
    assert len(second["data"]) == 21 and second["more_data_available"] is False
    assert not {c["id"] for c in first["data"]} & {c["id"] for c in second["data"]}
    assert [c["id"] for c in by_index["data"]] == [c["id"] for c in first["data"]]
    assert get(page=1, limit=100)["error"]["code"] == 1007  # at most 99


@pytest.fixture
def sim_v2(simulator):
    screen = "pagesco"
    simulator.add_portal(screen, dialect="v2", dc="sim", operators=6, open_chats=120)
    token = connect(simulator, as_user=f"admin@{screen}.example")["access_token"]
    simulator.configure_accounts(auto_approve=False, approve_as="")

    def get(**params):
        return v2(
            simulator, token, "GET", f"/{screen}/conversations", params={"status": "open", **params}
        )

    return get


# --- against a SalesIQ whose pages repeat (HTTP faked at the library level) ---------------


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
    return portal


def raw_chat(n: int) -> dict:
    return {
        "id": str(466756000000969000 + n),
        "status": "waiting",
        "chat_status": {"state_key": "waiting"},
        "visitor": {"id": f"${n}", "name": f"Visitor {n}"},
    }


def repeating(items, *, more=True):
    """A listing that answers the same page whatever page is asked for."""
    return {"object": "list", "data": items, "more_data_available": more, "sync_time": "1"}


@responses.activate
def test_a_listing_whose_pages_repeat_stops_counts_nothing_twice_and_says_so(portal, caplog):
    responses.get(f"{API}/conversations", json=repeating([raw_chat(n) for n in range(99)]))
    client = SalesIQClient(portal)
    with caplog.at_level(logging.WARNING, logger="siq_integration.client"):
        chats = client.list_open_conversations()

    assert len(chats) == 99 == len({chat.id for chat in chats})
    assert len(responses.calls) == 2  # page 1, then page 2 that was page 1 again: stop
    assert client.incomplete == {"conversations"}
    (notice,) = client.notices
    assert notice.startswith("SalesIQ sent the same chats again on page 2 of its list")
    assert "kept the 99 it had" in notice
    assert "stopped at page 2" in caplog.text and "repeated ids" in caplog.text


@responses.activate
def test_a_page_that_overlaps_the_last_one_in_part_is_read_on(portal):
    # A chat came in while we read: everything shifted by one, page 2 starts with page 1's
    # last chat. Nothing is wrong; that chat counts once and the listing goes on.
    pages = {"1": list(range(0, 99)), "2": list(range(98, 150))}
    for number, ids in pages.items():
        responses.get(
            f"{API}/conversations",
            match=[responses.matchers.query_param_matcher({"page": number}, strict_match=False)],
            json=repeating([raw_chat(n) for n in ids], more=number == "1"),
        )
    client = SalesIQClient(portal)
    chats = client.list_open_conversations()
    assert len(chats) == 150 == len({chat.id for chat in chats})
    assert client.notices == [] and client.incomplete == set()


@responses.activate
def test_a_directory_whose_pages_repeat_removes_nobody(portal):
    operators = [
        {"id": str(900 + n), "email_id": f"op{n}@z.example", "first_name": f"Op{n}"}
        for n in range(20)
    ]
    responses.get(f"{API}/operators", json=repeating(operators))
    client = SalesIQClient(portal)
    sync = client.list_operators()
    assert len(sync.operators) == 20 == len({op.id for op in sync.operators})
    assert sync.complete is False  # so operators beyond page 1 are not removed
    assert "same operators again on page 2" in client.notices[0]


@responses.activate
def test_the_worker_keeps_what_it_read_and_tells_the_portal_page(portal, monkeypatch):
    monkeypatch.setattr(client_module, "MAX_PAGES", 5)
    now = timezone.now()
    # What the dashboard knew: an open chat SalesIQ would list past page 1, a department.
    Department.objects.create(portal=portal, remote_id="d2", name="Sales", seen_at=now)
    far = Conversation(
        id="466756000000999999",
        status=ChatStatus.WAITING,
        visitor=Visitor(id="$far", name="Far down the list"),
        started_at=now - timedelta(minutes=5),
    )
    apply.apply_conversation(portal, far, fact_at=now - timedelta(minutes=5), source="poll")

    responses.get(f"{API}/departments", json=repeating([{"id": "d1", "name": "Support"}]))
    responses.get(f"{API}/operators", json=repeating([], more=False))
    responses.get(f"{API}/conversations", json=repeating([raw_chat(n) for n in range(99)]))
    Worker().run_once()

    # Read once each; the chat past page 1 is not closed as a ghost, nor the department lost.
    assert Chat.objects.filter(portal=portal).count() == 100
    assert Chat.objects.get(remote_id=far.id).status == "waiting"
    assert set(Department.objects.values_list("remote_id", flat=True)) == {"d1", "d2"}
    said = PortalSync.objects.get(portal=portal).last_poll_error
    assert "SalesIQ sent the same chats again on page 2" in said
    assert "SalesIQ sent the same departments again on page 2" in said
    conversations = [c for c in responses.calls if "/conversations" in c.request.url]
    assert len(conversations) == 2
