"""The SalesIQ simulator over HTTP: Zoho Accounts, the v2 dialect, the reference dialect.

Every test talks to a real simulator on a real port with ``requests``; the Python API
is only used to set scenes up.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from salesiq_simulator import Simulator
from tests.support.simulator import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT,
    REFERENCE_SCOPES,
    V2_SCOPES,
    auth,
    authorize,
    connect,
    exchange,
    refresh,
    v2,
    v2_error,
)

# ----- helpers shared by the simulator test files ---------------------------------------------


# ----- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator(seed=3, life=False)
    simulator.add_portal("zylker", dialect="v2", dc="sim", operators=6)
    simulator.add_portal("acme-ref", dialect="reference", dc="sim", operators=4)
    simulator.add_portal("eurocorp", dialect="v2", dc="sim-eu", operators=3)
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.stop()


@pytest.fixture
def token(sim: Simulator) -> str:
    return connect(sim, as_user="admin@zylker.example")["access_token"]


# ----- Zoho Accounts ---------------------------------------------------------------------------


def test_it_runs_the_oauth_round_trip_with_auto_approve(sim: Simulator) -> None:
    sim.configure_accounts(auto_approve=True)
    callback = authorize(sim, state="xyz")
    assert callback["state"] == "xyz"
    assert callback["location"] == "sim"
    assert callback["accounts-server"] == sim.data_center("sim")["accounts_url"]

    body = exchange(callback["accounts-server"], callback["code"]).json()
    assert body["token_type"] == "Bearer"
    # The data centre's API host (Zoho CRM answers there), as www.zohoapis.<dc> is at Zoho.
    assert body["api_domain"] == sim.data_center("sim")["api_url"]
    assert body["expires_in"] == 3600
    assert body["refresh_token"] and body["access_token"]

    portals = v2(sim, body["access_token"], "GET", "/portals")
    assert [p["screenname"] for p in portals["data"]] == ["zylker"]

    # The code is single-use.
    again = exchange(callback["accounts-server"], callback["code"]).json()
    assert again == {"error": "invalid_code"}


def test_it_shows_a_consent_page_with_accept_and_deny(sim: Simulator) -> None:
    url = sim.data_center("sim")["accounts_url"] + "/oauth/v2/auth"
    params = {
        "scope": V2_SCOPES,
        "client_id": CLIENT_ID,
        "response_type": "code",
        "access_type": "offline",
        "redirect_uri": REDIRECT,
        "state": "s<1>",
    }
    page = requests.get(url, params=params, timeout=5)
    assert page.status_code == 200
    assert "text/html" in page.headers["Content-Type"]
    assert "SalesIQ.conversations.UPDATE" in page.text
    assert 'value="accept"' in page.text and 'value="deny"' in page.text
    assert "admin@eurocorp.example" in page.text  # the account picker lists every DC's users
    assert "s<1>" not in page.text  # echoed parameters are escaped

    denied = requests.post(
        url, params=params, data={"decision": "deny"}, allow_redirects=False, timeout=5
    )
    assert denied.status_code == 302
    query = parse_qs(urlsplit(denied.headers["Location"]).query)
    assert query["error"] == ["access_denied"] and query["state"] == ["s<1>"]

    accepted = requests.post(
        url,
        params=params,
        data={"decision": "accept", "account": "admin@acme-ref.example"},
        allow_redirects=False,
        timeout=5,
    )
    query = parse_qs(urlsplit(accepted.headers["Location"]).query)
    assert query["location"] == ["sim"] and query["code"][0].startswith("1000.")

    unknown = requests.get(url, params={**params, "client_id": "1000.NOPE"}, timeout=5)
    assert unknown.status_code == 400 and "text/html" in unknown.headers["Content-Type"]


def test_it_exchanges_a_code_only_at_the_data_centre_of_the_user(sim: Simulator) -> None:
    sim.configure_accounts(auto_approve=True, approve_as="admin@eurocorp.example")
    # The US-style page was used, but the user lives in sim-eu: Zoho's multi-DC callback.
    callback = authorize(sim, dc="sim")
    assert callback["location"] == "sim-eu"
    assert callback["accounts-server"] == sim.data_center("sim-eu")["accounts_url"]

    wrong = exchange(sim.data_center("sim")["accounts_url"], callback["code"]).json()
    assert wrong == {"error": "invalid_code"}
    right = exchange(callback["accounts-server"], callback["code"]).json()
    token = right["access_token"]

    assert v2(sim, token, "GET", "/portals", dc="sim-eu")["data"][0]["screenname"] == "eurocorp"
    # The token is only good at its own DC.
    assert v2_error(v2(sim, token, "GET", "/portals", dc="sim")) == 1008


def test_it_answers_token_errors_as_zoho_does(sim: Simulator) -> None:
    sim.configure_accounts(auto_approve=True)
    callback = authorize(sim)
    accounts = callback["accounts-server"]
    assert exchange(accounts, callback["code"], client_secret="wrong").json() == {
        "error": "invalid_client"
    }
    assert exchange(accounts, callback["code"], redirect_uri="http://elsewhere/cb").json() == {
        "error": "invalid_redirect_uri"
    }
    assert exchange(accounts, callback["code"], grant_type="password").json() == {
        "error": "unsupported_grant_type"
    }
    assert refresh(accounts, "1000.unknown.token").json() == {"error": "invalid_code"}
    # None of those used the code up.
    assert "access_token" in exchange(accounts, callback["code"]).json()


def test_it_issues_a_refresh_token_on_first_consent_or_prompt_consent(sim: Simulator) -> None:
    sim.configure_accounts(auto_approve=True, approve_as="admin@zylker.example")
    first = authorize(sim, prompt=False)
    assert "refresh_token" in exchange(first["accounts-server"], first["code"]).json()
    second = authorize(sim, prompt=False)
    assert "refresh_token" not in exchange(second["accounts-server"], second["code"]).json()
    third = authorize(sim, prompt=True)
    assert "refresh_token" in exchange(third["accounts-server"], third["code"]).json()


def test_it_allows_ten_access_tokens_per_refresh_token_in_ten_minutes(sim: Simulator) -> None:
    tokens = connect(sim)
    accounts = sim.data_center("sim")["accounts_url"]
    issued = []
    for _ in range(10):
        body = refresh(accounts, tokens["refresh_token"]).json()
        assert "refresh_token" not in body
        issued.append(body["access_token"])
    assert len(set(issued)) == 10
    blocked = refresh(accounts, tokens["refresh_token"])
    assert blocked.status_code == 400
    assert blocked.json() == {
        "error": "Access Denied",
        "error_description": "You have made too many requests continuously. "
        "Please try again after some time.",
    }
    # Another refresh token of the same user has its own allowance.
    other = connect(sim)
    assert "access_token" in refresh(accounts, other["refresh_token"]).json()


def test_it_kills_access_tokens_when_their_refresh_token_is_revoked(sim: Simulator) -> None:
    tokens = connect(sim)
    accounts = sim.data_center("sim")["accounts_url"]
    refreshed = refresh(accounts, tokens["refresh_token"]).json()["access_token"]
    assert "data" in v2(sim, refreshed, "GET", "/portals")

    answer = requests.post(
        accounts + "/oauth/v2/token/revoke", params={"token": tokens["refresh_token"]}, timeout=5
    )
    assert answer.json() == {"status": "success"}
    assert v2_error(v2(sim, refreshed, "GET", "/portals")) == 1008
    assert v2_error(v2(sim, tokens["access_token"], "GET", "/portals")) == 1008
    assert refresh(accounts, tokens["refresh_token"]).json() == {"error": "invalid_code"}


def test_it_expires_access_tokens_after_the_configured_ttl(sim: Simulator) -> None:
    sim.configure_accounts(token_ttl=1)
    tokens = connect(sim)
    assert tokens["expires_in"] == 1
    assert "data" in v2(sim, tokens["access_token"], "GET", "/portals")
    time.sleep(1.2)
    assert v2_error(v2(sim, tokens["access_token"], "GET", "/portals")) == 1008
    fresh = refresh(sim.data_center("sim")["accounts_url"], tokens["refresh_token"]).json()
    assert "data" in v2(sim, fresh["access_token"], "GET", "/portals")


def test_it_gives_expires_in_in_milliseconds_in_legacy_mode(sim: Simulator) -> None:
    sim.configure_accounts(legacy_expires_in=True, token_ttl=3600)
    tokens = connect(sim)
    assert tokens["expires_in"] == 3_600_000
    assert tokens["expires_in_sec"] == 3600


def test_it_invalidates_every_access_token_on_demand_over_http(sim: Simulator) -> None:
    zylker = connect(sim, as_user="admin@zylker.example")
    euro = connect(sim, as_user="admin@eurocorp.example")
    answer = requests.post(
        sim.base_url + "/_sim/tokens/invalidate", json={"portal": "zylker"}, timeout=5
    )
    assert answer.json()["invalidated"] >= 1
    assert v2_error(v2(sim, zylker["access_token"], "GET", "/portals")) == 1008
    assert "data" in v2(sim, euro["access_token"], "GET", "/portals", dc="sim-eu")
    # The refresh token still works: the client can recover by refreshing.
    fresh = refresh(sim.data_center("sim")["accounts_url"], zylker["refresh_token"]).json()
    assert "data" in v2(sim, fresh["access_token"], "GET", "/portals")


def test_it_never_logs_token_values_or_secrets(sim: Simulator, token: str) -> None:
    tokens = connect(sim)
    refresh(sim.data_center("sim")["accounts_url"], tokens["refresh_token"])
    v2(sim, token, "GET", "/zylker/conversations", params={"status": "open"})
    calls = requests.get(sim.base_url + "/_sim/calls", timeout=5).json()
    dumped = json.dumps(calls)
    for secret in (token, tokens["access_token"], tokens["refresh_token"], CLIENT_SECRET):
        assert secret not in dumped
    listing = [c for c in calls if c["path"] == "/api/v2/zylker/conversations"][-1]
    assert listing["portal"] == "zylker" and listing["status"] == 200
    assert re.fullmatch(r"[0-9a-f]{8}", listing["token"])
    assert listing["query"] == {"status": "open"}
    later = requests.get(
        sim.base_url + "/_sim/calls", params={"since": listing["seq"] - 1}, timeout=5
    ).json()
    assert later[0]["seq"] == listing["seq"]


# ----- v2 --------------------------------------------------------------------------------------


def test_it_checks_v2_requests_in_the_documented_order(sim: Simulator, token: str) -> None:
    api = sim.data_center("sim")["api_url"] + "/api/v2"

    def raw(path: str, headers: dict[str, str], method: str = "GET") -> dict[str, Any]:
        answer = requests.request(method, api + path, headers=headers, timeout=5)
        assert answer.status_code == 200  # v2 errors are HTTP 200
        return answer.json()

    assert raw("/zylker/conversations", {}) == {
        "error": {"code": 1002, "message": "Invalid authorization header."}
    }
    assert v2_error(raw("/zylker/conversations", {"Authorization": f"Bearer {token}"})) == 1002
    assert v2_error(raw("/nope/conversations", auth("1000.garbage"))) == 1008
    assert v2_error(raw("/nope/conversations", auth(token))) == 1005
    assert v2_error(raw("/eurocorp/conversations", auth(token))) == 1005  # another DC
    assert v2_error(raw("/acme-ref/conversations", auth(token))) == 1005  # not a v2 portal
    assert v2_error(raw("/zylker/visitors", auth(token))) == 1006
    assert v2_error(raw("/zylker/conversations", auth(token), "DELETE")) == 1004

    sim.add_user("reader@zylker.example", "sim", drop_scopes=["SalesIQ.conversations.UPDATE"])
    reader = connect(sim, as_user="reader@zylker.example")["access_token"]
    some = sim.state("zylker")["portals"][0]["open_conversation_ids"][0]
    body = raw(f"/zylker/conversations/{some}/close", auth(reader), "POST")
    assert body == {"error": {"code": 1009, "message": "Invalid OAuthScope."}}
    assert "data" in raw(f"/zylker/conversations/{some}", auth(reader))


def test_it_answers_v2_envelopes_with_string_ids_above_2_53(sim: Simulator, token: str) -> None:
    answer = requests.get(
        sim.data_center("sim")["api_url"] + "/api/v2/zylker/conversations",
        params={"status": "open", "limit": 5},
        headers=auth(token),
        timeout=5,
    )

    def no_big_numbers(text: str) -> int:
        # Small integers (chat_status.state, status_code) are fine; ids must be strings.
        assert int(text) < 2**31, f"a bare JSON number {text}"
        return int(text)

    body = answer.json(parse_int=no_big_numbers)
    assert body["url"] == "/api/v2/zylker/conversations"
    assert body["object"] == "list"
    assert body["sync_time"].isdigit()
    assert isinstance(body["more_data_available"], bool)
    for conv in body["data"]:
        assert isinstance(conv["id"], str) and int(conv["id"]) > 2**53
        assert conv["visitor"]["id"].startswith("$")
        assert conv["status"] in ("waiting", "connected")
        assert conv["chat_status"]["status_key"] == "open"
        assert conv["start_time"].isdigit()
        assert ("attender" in conv) == (conv["status"] == "connected")

    one = v2(sim, token, "GET", f"/zylker/conversations/{body['data'][0]['id']}")
    assert one["object"] == "conversation" and "sync_time" not in one
    assert one["data"]["id"] == body["data"][0]["id"]
    assert v2_error(v2(sim, token, "GET", "/zylker/conversations/466756000009999999")) == 1019


def test_it_pages_conversations_and_says_when_more_data_is_available(sim: Simulator) -> None:
    sim.add_portal("bigco", dialect="v2", dc="sim", operators=10, open_chats=45)
    token = connect(sim, as_user="admin@bigco.example")["access_token"]
    seen: list[str] = []
    index = 1
    while True:
        body = v2(
            sim,
            token,
            "GET",
            "/bigco/conversations",
            params={"status": "open", "page": index, "limit": 20},
        )
        seen += [c["id"] for c in body["data"]]
        if not body["more_data_available"]:
            break
        assert len(body["data"]) == 20
        index += 1
    assert index == 3 and len(seen) == 45 == len(set(seen))
    waiting = v2(
        sim, token, "GET", "/bigco/conversations", params={"status": "waiting", "limit": 99}
    )
    assert all(c["status"] == "waiting" for c in waiting["data"])
    assert v2(sim, token, "GET", "/bigco/conversations", params={"limit": 100})["error"] == {
        "code": 1007,
        "message": "Invalid datatypes found in params",
        "param": "limit",
    }
    assert (
        v2(sim, token, "GET", "/bigco/conversations", params={"status": "bogus"})["error"]["param"]
        == "status"
    )


def test_it_transfers_and_closes_v2_conversations(sim: Simulator, token: str) -> None:
    portal = sim.state("zylker")["portals"][0]
    depts = {d["name"]: d["id"] for d in portal["departments"]}
    conv = sim.create_conversation("zylker", department="Sales", visitor_name="<b>urgent</b>")
    cid = conv["id"]
    sim.pickup(cid)

    path = f"/zylker/conversations/{cid}/transfer"
    assert v2(sim, token, "PUT", path, json={})["error"] == {
        "code": 1015,
        "message": "Either the input stream is invalid or absent",
        "json_key": "department_id",
    }
    assert v2_error(v2(sim, token, "PUT", path, json={"department_id": "1"})) == 1025
    bad_op = {"department_id": depts["Support"], "operator_id": "2"}
    assert v2_error(v2(sim, token, "PUT", path, json=bad_op)) == 1020
    assert v2_error(v2(sim, token, "POST", path, json={"department_id": depts["Support"]})) == 1004

    moved = v2(sim, token, "PUT", path, json={"department_id": depts["Support"], "note": "over"})
    assert moved["object"] == "conversation"
    assert moved["data"]["transfer"]["status"] == "initiated"
    assert moved["data"]["transfer"]["to_department"]["id"] == depts["Support"]
    settled = sim.transfer(cid, outcome="rejected")
    assert settled["transfer"]["status"] == "rejected"

    closed = v2(sim, token, "POST", f"/zylker/conversations/{cid}/close")["data"]
    assert closed["status"] == "closed" and closed["end_time"].isdigit()
    assert v2_error(v2(sim, token, "POST", f"/zylker/conversations/{cid}/close")) == 1019
    assert v2_error(v2(sim, token, "PUT", path, json={"department_id": depts["Support"]})) == 1019

    messages = v2(sim, token, "GET", f"/zylker/conversations/{cid}/messages")
    assert messages["data"][0]["sender"]["type"] == "visitor"
    assert [int(m["sequence_id"]) for m in messages["data"]] == sorted(
        int(m["sequence_id"]) for m in messages["data"]
    )


def test_it_refuses_bodies_that_are_not_json(sim: Simulator, token: str) -> None:
    cid = sim.state("zylker")["portals"][0]["open_conversation_ids"][0]
    path = f"/zylker/conversations/{cid}/transfer"
    form = v2(sim, token, "PUT", path, data={"department_id": "1"})
    assert form["error"] == {
        "code": 1054,
        "message": "Invalid header value",
        "header": "Content-Type",
    }
    broken = v2(
        sim, token, "PUT", path, data="{not json", headers={"Content-Type": "application/json"}
    )
    assert v2_error(broken) == 1015


def test_it_uses_the_configured_close_method(sim: Simulator) -> None:
    sim.add_portal("putco", dialect="v2", dc="sim", operators=3, open_chats=3, close_method="PUT")
    token = connect(sim, as_user="admin@putco.example")["access_token"]
    cid = sim.state("putco")["portals"][0]["open_conversation_ids"][0]
    assert v2_error(v2(sim, token, "POST", f"/putco/conversations/{cid}/close")) == 1004
    assert v2(sim, token, "PUT", f"/putco/conversations/{cid}/close")["data"]["status"] == "closed"


def test_it_lets_operators_set_only_their_own_status(sim: Simulator, token: str) -> None:
    operators = v2(sim, token, "GET", "/zylker/operators")
    assert operators["object"] == "list" and "sync_time" in operators
    me = next(o for o in operators["data"] if o["email_id"] == "admin@zylker.example")
    other = next(o for o in operators["data"] if o["id"] != me["id"])
    assert me["role"] == "Administrator" and me["status_code"] in (0, 1, 2, 3)

    mine = v2(sim, token, "PUT", f"/zylker/operators/{me['id']}/status", json={"status": "Busy"})
    assert mine["data"]["status_code"] == 3 and mine["data"]["status_message"] == "Busy"
    bad = v2(sim, token, "PUT", f"/zylker/operators/{me['id']}/status", json={"status": "Asleep"})
    assert bad["error"]["code"] == 1007 and bad["error"]["json_key"] == "status"
    theirs = v2(
        sim, token, "PUT", f"/zylker/operators/{other['id']}/status", json={"status": "Busy"}
    )
    assert v2_error(theirs) == 1016
    unknown = v2(sim, token, "PUT", "/zylker/operators/42/status", json={"status": "Busy"})
    assert v2_error(unknown) == 1020


def test_it_lists_only_operators_changed_since_last_sync_time(sim: Simulator, token: str) -> None:
    first = v2(sim, token, "GET", "/zylker/operators")
    assert len(first["data"]) == 6 and first["more_data_available"] is False
    changed = first["data"][3]["id"]
    sim.set_operator_status(changed, "Offline" if first["data"][3]["status_code"] else "Available")
    since = v2(
        sim, token, "GET", "/zylker/operators", params={"last_sync_time": first["sync_time"]}
    )
    assert [o["id"] for o in since["data"]] == [changed]
    depts = v2(sim, token, "GET", "/zylker/departments")
    assert {d["name"] for d in depts["data"]} == {"Sales", "Support", "Billing"}
    assert set(depts["data"][0]) == {"id", "name", "display_name", "is_enabled"}


def test_it_pages_operators_twenty_at_a_time(sim: Simulator) -> None:
    sim.add_portal("crowd", dialect="v2", dc="sim", operators=45, open_chats=0)
    token = connect(sim, as_user="admin@crowd.example")["access_token"]
    sizes = []
    for index in (1, 2, 3):
        body = v2(sim, token, "GET", "/crowd/operators", params={"index": index})
        sizes.append((len(body["data"]), body["more_data_available"]))
    assert sizes == [(20, True), (20, True), (5, False)]


def test_it_manages_v2_webhooks_and_their_keys(sim: Simulator, token: str) -> None:
    create = {
        "type": "data",
        "url": "https://hooks.example/siq",
        "events": ["conversation.created", "conversation.completed"],
        "version": "1",
    }
    hook = v2(sim, token, "POST", "/zylker/webhooks", json=create)["data"]
    assert hook["url"] == create["url"] and hook["public_keys"] == []
    assert v2_error(v2(sim, token, "POST", "/zylker/webhooks", json=create)) == 1014
    bad_event = {**create, "url": "https://hooks.example/2", "events": ["chat.started"]}
    assert (
        v2(sim, token, "POST", "/zylker/webhooks", json=bad_event)["error"]["json_key"] == "events"
    )
    no_url = v2(sim, token, "POST", "/zylker/webhooks", json={"events": create["events"]})
    assert no_url["error"] == {
        "code": 1015,
        "message": "Either the input stream is invalid or absent",
        "json_key": "url",
    }

    keys_path = f"/zylker/webhooks/{hook['id']}/keys"
    one = v2(sim, token, "POST", keys_path)["data"]["public_keys"]
    two = v2(sim, token, "POST", keys_path)["data"]["public_keys"]
    assert len(one) == 1 and len(two) == 2 and two[0]["id"] == one[0]["id"]
    assert v2_error(v2(sim, token, "POST", keys_path)) == 1017
    left = v2(sim, token, "DELETE", f"{keys_path}/{two[0]['id']}")["data"]["public_keys"]
    assert [k["id"] for k in left] == [two[1]["id"]]

    assert len(v2(sim, token, "GET", "/zylker/webhooks")["data"]) == 1
    v2(sim, token, "DELETE", f"/zylker/webhooks/{hook['id']}")
    assert v2(sim, token, "GET", "/zylker/webhooks")["data"] == []
    assert v2_error(v2(sim, token, "DELETE", f"/zylker/webhooks/{hook['id']}")) == 1019


def test_it_refuses_webhook_urls_with_a_port_when_strict(sim: Simulator) -> None:
    sim.add_portal("strict", dialect="v2", dc="sim", operators=2, strict_webhook_urls=True)
    token = connect(sim, as_user="admin@strict.example")["access_token"]
    body = {"type": "data", "url": "http://127.0.0.1:8000/hook", "events": ["conversation.created"]}
    answer = v2(sim, token, "POST", "/strict/webhooks", json=body)
    assert answer["error"]["code"] == 1007 and answer["error"]["json_key"] == "url"


def test_it_locks_a_v2_caller_out_after_too_many_calls(sim: Simulator) -> None:
    sim.add_portal("tiny", dialect="v2", dc="sim", operators=2, rate_limit_per_minute=5)
    token = connect(sim, as_user="admin@tiny.example")["access_token"]
    codes = [
        "ok" if "data" in (b := v2(sim, token, "GET", "/tiny/departments")) else v2_error(b)
        for _ in range(7)
    ]
    assert codes == ["ok"] * 5 + [1023, 1023]
    assert v2(sim, token, "GET", "/tiny/departments")["error"]["message"].startswith("Too many")
    sim.clear_faults()  # also lifts IP locks, but the minute's budget is still spent
    assert v2_error(v2(sim, token, "GET", "/tiny/departments")) == 1023


# ----- reference -------------------------------------------------------------------------------


@pytest.fixture
def ref_token(sim: Simulator) -> str:
    return connect(sim, as_user="admin@acme-ref.example", scopes=REFERENCE_SCOPES)["access_token"]


def ref(sim: Simulator, token: str | None, method: str, path: str, **kw: Any) -> requests.Response:
    headers = auth(token) if token else {}
    answer = requests.request(
        method,
        f"{sim.data_center('sim')['api_url']}/api/v2{path}",
        headers=headers,
        timeout=10,
        **kw,
    )
    for header in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        assert answer.headers[header].isdigit(), header
    return answer


def test_it_speaks_the_reference_dialect(sim: Simulator, ref_token: str) -> None:
    listing = ref(sim, ref_token, "GET", "/chats", params={"status": "active", "per_page": 2})
    body = listing.json()
    assert listing.status_code == 200 and body["status"] == "success"
    assert body["pagination"]["page"] == 1 and body["pagination"]["per_page"] == 2
    assert body["pagination"]["total"] >= len(body["data"])
    chat = body["data"][0]
    assert chat["status"] == "active" and chat["type"] == "live_chat"
    assert chat["started_at"].endswith("Z") and isinstance(chat["id"], str)
    assert set(chat["visitor_info"]) == {"name", "email", "city", "country"}

    one = ref(sim, ref_token, "GET", f"/chats/{chat['id']}").json()["data"]
    assert one["transcript"][0]["sender_type"] == "visitor"
    transcript = ref(sim, ref_token, "GET", f"/chats/{chat['id']}/transcript").json()["data"]
    assert transcript == one["transcript"]

    operators = ref(sim, ref_token, "GET", "/operators").json()
    assert {o["status"] for o in operators["data"]} <= {"online", "away", "busy", "offline"}
    assert operators["pagination"]["total"] == 4
    brands = ref(sim, ref_token, "GET", "/brands").json()["data"]
    departments = ref(sim, ref_token, "GET", f"/brands/{brands[0]['id']}/departments").json()
    assert {d["name"] for d in departments["data"]} == {"Sales", "Support", "Billing"}


def test_it_answers_reference_errors_with_http_statuses(sim: Simulator, ref_token: str) -> None:
    def error(answer: requests.Response) -> tuple[int, str]:
        body = answer.json()
        assert body["status"] == "error" and "message" in body and "details" in body
        return answer.status_code, body["code"]

    assert error(ref(sim, None, "GET", "/chats")) == (401, "INVALID_TOKEN")
    assert error(ref(sim, "1000.bad", "GET", "/chats")) == (401, "INVALID_TOKEN")
    assert error(ref(sim, ref_token, "GET", "/chats/42")) == (404, "RESOURCE_NOT_FOUND")
    assert error(ref(sim, ref_token, "GET", "/chats", params={"per_page": 101})) == (
        400,
        "INVALID_REQUEST",
    )

    chats = ref(sim, ref_token, "GET", "/chats", params={"status": "active"}).json()["data"]
    target = chats[0]["id"]
    ops = ref(sim, ref_token, "GET", "/operators").json()["data"]
    offline = next(
        o for o in ops if o["status"] == "offline" or o["email"] != "admin@acme-ref.example"
    )
    sim.set_operator_status(offline["id"], "offline")
    assert error(ref(sim, ref_token, "POST", f"/chats/{target}/transfer", json={})) == (
        400,
        "REQUIRED_FIELD_MISSING",
    )
    assert error(
        ref(
            sim, ref_token, "POST", f"/chats/{target}/transfer", json={"operator_id": offline["id"]}
        )
    ) == (400, "OPERATOR_OFFLINE")
    sim.set_operator_status(offline["id"], "online")
    moved = ref(
        sim,
        ref_token,
        "POST",
        f"/chats/{target}/transfer",
        json={"operator_id": offline["id"], "message": "hi"},
    ).json()["data"]
    assert moved["operator_id"] == offline["id"]

    ended = ref(sim, ref_token, "POST", f"/chats/{target}/end", json={"message": "bye"}).json()
    assert ended["data"]["status"] == "ended" and ended["data"]["ended_at"]
    assert error(ref(sim, ref_token, "POST", f"/chats/{target}/end", json={})) == (
        400,
        "CHAT_NOT_ACTIVE",
    )

    hook = {"name": "h", "url": "https://h.example/x", "events": ["chat.started"], "secret": "s"}
    assert ref(sim, ref_token, "POST", "/webhooks", json=hook).status_code == 201
    assert error(ref(sim, ref_token, "POST", "/webhooks", json=hook)) == (409, "DUPLICATE_RESOURCE")

    sim.add_user("nochats@acme-ref.example", "sim", portals=["acme-ref"])
    narrow = connect(sim, as_user="nochats@acme-ref.example", scopes="SalesIQ.operators.READ")
    assert error(ref(sim, narrow["access_token"], "GET", "/chats")) == (403, "INVALID_OAUTH_SCOPE")


def test_it_answers_429_with_rate_limit_headers_in_the_reference_dialect(
    sim: Simulator,
) -> None:
    sim.add_portal(
        "small-ref", dialect="reference", dc="sim-eu", operators=2, rate_limit_per_minute=3
    )
    token = connect(sim, as_user="admin@small-ref.example", dc="sim-eu", scopes=REFERENCE_SCOPES)[
        "access_token"
    ]
    url = sim.data_center("sim-eu")["api_url"] + "/api/v2/operators"
    answers = [requests.get(url, headers=auth(token), timeout=5) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert all(a.headers["X-RateLimit-Limit"] == "3" for a in answers)
    reset = int(answers[-1].headers["X-RateLimit-Reset"])
    assert time.time() < reset <= time.time() + 61
    assert answers[-1].json()["code"] == "RATE_LIMIT_EXCEEDED"
