"""The simulated world: its starting scene, its seeded life, its scale, its control API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from salesiq_simulator import Simulator, demo_world
from tests.support.simulator import connect, v2

START = 1_750_000_000.0  # a fixed world clock for the deterministic runs


def _run(seed: int, steps: list[float]) -> dict[str, Any]:
    sim = Simulator(seed=seed, life=False, start_time=START)
    demo_world(sim)
    for now in steps:
        sim.step(now=now)
    state = sim.state()
    state.pop("data_centers")  # carries the (unbound) port, not part of the world
    return state


def test_it_gives_the_same_world_for_the_same_seed_and_steps() -> None:
    steps = [START + 17 * n for n in range(1, 120)]  # about 34 minutes of life
    first, second = _run(7, steps), _run(7, steps)
    assert first == second
    other = _run(8, steps)
    assert other != first
    # The same time reached in other slices plays the same world too.
    assert _run(7, [START + 30 * n for n in range(1, 68)] + [steps[-1]]) == first


def test_it_starts_with_long_chats_and_a_visitor_waiting_for_minutes() -> None:
    sim = Simulator(seed=2, life=False, start_time=START)
    demo_world(sim)
    portal = sim.state("zylker")["portals"][0]
    now_ms = START * 1000
    open_convs = [c for c in portal["conversations"] if c["status"] in ("waiting", "connected")]
    long_running = [
        c
        for c in open_convs
        if c["status"] == "connected" and now_ms - int(c["start_time"]) > 30 * 60_000
    ]
    waiting_long = [
        c
        for c in open_convs
        if c["status"] == "waiting" and now_ms - int(c["start_time"]) > 3 * 60_000
    ]
    assert len(long_running) >= 2
    assert len(waiting_long) >= 1
    assert len(portal["departments"]) == 3 and 10 <= len(portal["operators"]) <= 14
    assert all(3 <= op["max_chats"] <= 6 for op in portal["operators"])
    assert portal["operators"][0]["email"] == "admin@zylker.example"
    ref = sim.state("acme-ref")["portals"][0]
    assert ref["dialect"] == "reference" and ref["operators"]


def test_it_lives_arrivals_pickups_messages_closes_misses_and_ratings() -> None:
    sim = Simulator(seed=4, life=False, start_time=START)
    demo_world(sim)
    before = sim.state("zylker")["portals"][0]
    for n in range(1, 181):
        sim.step(now=START + 20 * n)  # one hour
    after = sim.state("zylker")["portals"][0]
    convs = after["conversations"]
    statuses = {c["status"] for c in convs}
    assert {"connected", "closed"} <= statuses
    assert len(convs) - len(before["conversations"]) >= 100  # a visitor every 20-30 s
    assert any(c["rating"] is not None and c["rating"] <= 2 and c["feedback"] for c in convs)
    assert any(c["status"] == "missed" for c in convs)
    assert any(c["transfer"] is not None for c in convs)
    assert any(c["message_count"] > 5 for c in convs)
    texts = " ".join([c["visitor"]["name"] for c in convs] + [c["question"] for c in convs])
    assert "<b>urgent</b>" in texts and "<script>" in texts
    assert any(ord(ch) > 127 for ch in texts)
    presences = [(o["id"], o["presence"]) for o in after["operators"]]
    assert presences != [(o["id"], o["presence"]) for o in before["operators"]]
    for op in after["operators"]:
        assert len(op["active_chats"]) <= op["max_chats"]


def test_it_ticks_by_itself_when_life_is_on() -> None:
    sim = Simulator(seed=9, life=True, tick_seconds=0.05)
    sim.add_portal("busy", operators=4, open_chats=0, visitor_interval=(0.1, 0.2))
    sim.start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if len(sim.state("busy")["portals"][0]["conversations"]) >= 3:
                break
            time.sleep(0.05)
        assert len(sim.state("busy")["portals"][0]["conversations"]) >= 3
    finally:
        sim.stop()


def test_it_lists_two_thousand_open_chats_and_five_hundred_operators() -> None:
    sim = Simulator(seed=1, life=False)
    sim.add_portal("scale", dialect="v2", dc="sim", operators=500, open_chats=2000)
    sim.start()
    try:
        token = connect(sim, as_user="admin@scale.example")["access_token"]
        session = requests.Session()
        url = sim.data_center("sim")["api_url"] + "/api/v2/scale/conversations"
        headers = {"Authorization": f"Zoho-oauthtoken {token}"}
        ids: list[str] = []
        index = 1
        while True:
            body = session.get(
                url,
                params={"status": "open", "page": index, "limit": 99},
                headers=headers,
                timeout=10,
            ).json()
            ids += [c["id"] for c in body["data"]]
            if not body["more_data_available"]:
                break
            index += 1
        assert len(ids) == 2000 == len(set(ids))
        assert index == 21
        operators = 0
        index = 1
        while True:
            page = v2(sim, token, "GET", "/scale/operators", params={"index": index})
            operators += len(page["data"])
            if not page["more_data_available"]:
                break
            index += 1
        assert operators == 500
    finally:
        sim.stop()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator(seed=6, life=False)
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.stop()


def post(sim: Simulator, path: str, body: dict[str, Any] | None = None, status: int = 200) -> Any:
    answer = requests.post(sim.base_url + path, json=body or {}, timeout=10)
    assert answer.status_code == status, answer.text
    return answer.json()


def test_it_makes_scenes_happen_over_the_control_api(sim: Simulator) -> None:
    portal = post(
        sim,
        "/_sim/portals",
        {"screen_name": "scene", "dialect": "v2", "dc": "sim-eu", "operators": 4, "open_chats": 0},
    )
    assert portal["dc"] == "sim-eu" and portal["conversations"] == []
    post(sim, "/_sim/portals", {"screen_name": "scene"}, status=409)
    post(sim, "/_sim/portals", {"screen_name": "x", "dialect": "v3"}, status=400)

    conv = post(
        sim,
        "/_sim/conversations",
        {"portal": "scene", "department": "Support", "visitor_name": "Zoë", "waiting_seconds": 300},
    )
    cid = conv["id"]
    assert conv["status"] == "waiting" and int(cid) > 2**53
    picked = post(sim, f"/_sim/conversations/{cid}/pickup")
    assert picked["status"] == "connected" and picked["attender_id"]
    post(sim, f"/_sim/conversations/{cid}/visitor-message", {"text": "<b>urgent</b>"})
    said = post(sim, f"/_sim/conversations/{cid}/operator-message", {"text": "On it"})
    assert said["last_message"] == {
        "sender_type": "operator",
        "text": "On it",
        "time": said["last_message"]["time"],
    }
    moved = post(sim, f"/_sim/conversations/{cid}/transfer", {"outcome": "accepted"})
    assert moved["transfer"]["status"] == "accepted"
    ended = post(sim, f"/_sim/conversations/{cid}/end")
    assert ended["status"] == "closed"
    post(sim, f"/_sim/conversations/{cid}/end", status=409)
    rated = post(sim, f"/_sim/conversations/{cid}/rate", {"rating": 1, "feedback": "slow"})
    assert (rated["rating"], rated["feedback"]) == (1, "slow")
    post(sim, f"/_sim/conversations/{cid}/rate", {"rating": 9}, status=400)

    other = post(sim, "/_sim/conversations", {"portal": "scene"})
    assert post(sim, f"/_sim/conversations/{other['id']}/miss")["status"] == "missed"
    post(sim, "/_sim/conversations/123/pickup", status=404)

    operator = sim.state("scene")["portals"][0]["operators"][1]
    changed = post(sim, f"/_sim/operators/{operator['id']}/status", {"status": "Busy"})
    assert changed["presence"] == "busy"
    post(sim, f"/_sim/operators/{operator['id']}/status", {"status": "napping"}, status=400)

    stepped = post(sim, "/_sim/step", {"seconds": 600})
    assert stepped["actions"] >= 1

    post(
        sim, "/_sim/accounts", {"email": "eve@scene.example", "dc": "sim-eu", "portals": ["scene"]}
    )
    users = requests.get(sim.base_url + "/_sim/accounts", timeout=5).json()["users"]
    assert any(u["email"] == "eve@scene.example" and u["dc"] == "sim-eu" for u in users)


def test_it_resets_to_the_seeded_world(sim: Simulator) -> None:
    sim.add_portal("again", operators=3, open_chats=4)
    first = sim.state("again")["portals"][0]
    token = connect(sim, as_user="admin@again.example")["access_token"]
    v2(
        sim,
        token,
        "POST",
        "/again/webhooks",
        json={"type": "data", "url": "https://h.example/x", "events": ["conversation.created"]},
    )
    sim.create_conversation("again")
    sim.step(900)
    assert post(sim, "/_sim/reset") == {"reset": True}
    again = sim.state("again")["portals"][0]
    assert [c["id"] for c in again["conversations"]] == [c["id"] for c in first["conversations"]]
    assert again["webhooks"] == [] and sim.calls() == []
    # Tokens survive a reset: a connected dashboard carries on.
    assert "data" in v2(sim, token, "GET", "/again/departments")
