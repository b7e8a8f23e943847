"""The simulator's Zoho CRM over HTTP on a real port: v8 shapes, envelopes and errors."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.support.crm import CRM_SCOPES, crm_url
from tests.support.simulator import auth, connect


@pytest.fixture
def crm_user(simulator):
    """A Zoho user of its own (so a CRM of its own) and a token with the CRM scopes."""
    email = f"crm-{uuid.uuid4().hex[:8]}@example.com"
    simulator.add_user(email, "sim", name="Patricia Boyle")
    token = connect(simulator, as_user=email, scopes=CRM_SCOPES)
    yield email, token
    simulator.configure_accounts(auto_approve=False, approve_as="")
    simulator.clear_faults()


def get(simulator, token, path, **params):
    return requests.get(crm_url(simulator, path), params=params, headers=auth(token), timeout=5)


def test_it_gives_the_token_the_data_centres_api_domain(simulator, crm_user):
    _email, token = crm_user
    assert token["api_domain"] == simulator.data_center("sim")["api_url"]


def test_it_finds_a_contact_by_email_with_ids_as_strings_beyond_2_53(simulator, crm_user):
    email, token = crm_user
    contact = simulator.crm_add_record(
        email,
        "Contacts",
        {
            "First_Name": "Ada",
            "Last_Name": "Lovelace",
            "Email": "ada@analytical.example",
            "Account_Name": "Analytical Engines",
        },
    )
    answer = get(
        simulator, token["access_token"], "/Contacts/search", email="ADA@analytical.example"
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["info"]["count"] == 1 and body["info"]["more_records"] is False
    found = body["data"][0]
    assert found["id"] == contact["id"]
    assert isinstance(found["id"], str) and int(found["id"]) > 2**53
    assert found["Full_Name"] == "Ada Lovelace"
    assert found["Account_Name"]["name"] == "Analytical Engines"
    assert found["Owner"]["name"] == "Patricia Boyle"
    # The raw body carries the id in quotes: a float parser could not round it.
    assert f'"id": "{contact["id"]}"' in answer.text


def test_it_answers_204_without_a_body_when_the_search_finds_nothing(simulator, crm_user):
    _email, token = crm_user
    answer = get(simulator, token["access_token"], "/Leads/search", email="nobody@example.com")
    assert answer.status_code == 204
    assert answer.content == b""


def test_it_lists_a_contacts_deals_and_needs_fields(simulator, crm_user):
    email, token = crm_user
    contact = simulator.crm_add_record(
        email, "Contacts", {"Last_Name": "Hopper", "Email": "grace@navy.example"}
    )
    simulator.crm_add_record(
        email,
        "Deals",
        {
            "Deal_Name": "Compiler licence",
            "Stage": "Negotiation/Review",
            "Amount": 125000,
            "Contact_Name": contact["id"],
        },
    )
    path = f"/Contacts/{contact['id']}/Deals"
    answer = get(simulator, token["access_token"], path, fields="Deal_Name,Stage,Amount")
    assert answer.status_code == 200
    (deal,) = answer.json()["data"]
    assert deal["Deal_Name"] == "Compiler licence" and deal["Amount"] == 125000
    assert set(deal) == {"id", "Deal_Name", "Stage", "Amount"}
    missing = get(simulator, token["access_token"], path)
    assert missing.status_code == 400
    assert missing.json()["code"] == "REQUIRED_PARAM_MISSING"


def test_it_inserts_a_lead_then_refuses_the_same_email_naming_the_record(simulator, crm_user):
    _email, token = crm_user
    lead = {"Last_Name": "Turing", "First_Name": "Alan", "Email": "alan@bletchley.example"}
    first = requests.post(
        crm_url(simulator, "/Leads"),
        json={"data": [lead]},
        headers=auth(token["access_token"]),
        timeout=5,
    )
    assert first.status_code == 201, first.text
    created = first.json()["data"][0]
    assert created["code"] == "SUCCESS" and int(created["details"]["id"]) > 2**53
    again = requests.post(
        crm_url(simulator, "/Leads"),
        json={"data": [lead]},
        headers=auth(token["access_token"]),
        timeout=5,
    )
    assert again.status_code == 400
    refused = again.json()["data"][0]
    assert refused["code"] == "DUPLICATE_DATA"
    assert refused["details"]["duplicate_record"]["id"] == created["details"]["id"]


def test_it_answers_207_when_only_some_records_go_in(simulator, crm_user):
    _email, token = crm_user
    answer = requests.post(
        crm_url(simulator, "/Leads"),
        json={"data": [{"Last_Name": "Ok", "Email": "ok@example.com"}, {"Email": "x@y.z"}]},
        headers=auth(token["access_token"]),
        timeout=5,
    )
    assert answer.status_code == 207
    codes = [row["code"] for row in answer.json()["data"]]
    assert codes == ["SUCCESS", "MANDATORY_NOT_FOUND"]


def test_it_lists_users(simulator, crm_user):
    email, token = crm_user
    answer = get(simulator, token["access_token"], "/users", type="ActiveUsers")
    assert answer.status_code == 200
    assert answer.json()["users"][0]["email"] == email


def test_it_refuses_a_bad_token_and_a_missing_scope(simulator, crm_user):
    answer = get(simulator, "1000.nope", "/Contacts/search", email="a@b.c")
    assert answer.status_code == 401 and answer.json()["code"] == "INVALID_TOKEN"
    email, _token = crm_user
    narrow = connect(simulator, as_user=email, scopes="ZohoCRM.users.READ")
    answer = get(simulator, narrow["access_token"], "/Contacts/search", email="a@b.c")
    assert answer.status_code == 401 and answer.json()["code"] == "OAUTH_SCOPE_MISMATCH"


def test_it_stops_at_the_24_hour_credit_limit(simulator, crm_user):
    email, token = crm_user
    state = simulator.crm_state(email)
    used = state["credits_per_day"] - state["credits_left"]
    simulator.crm_configure(email, credits_per_day=used + 2)
    statuses = [get(simulator, token["access_token"], "/users").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    last = get(simulator, token["access_token"], "/users").json()
    assert last["code"] == "TOO_MANY_REQUESTS" and "24 hour" in last["message"]


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "INVALID_DATA"),
        (401, "INVALID_TOKEN"),
        (403, "NO_PERMISSION"),
        (404, "INVALID_URL_PATTERN"),
        (405, "INVALID_REQUEST_METHOD"),
        (413, "REQUEST_ENTITY_TOO_LARGE"),
        (415, "UNSUPPORTED_MEDIA_TYPE"),
        (429, "TOO_MANY_REQUESTS"),
        (500, "INTERNAL_ERROR"),
    ],
)
def test_it_injects_each_error_of_seed_002(simulator, crm_user, status, code):
    _email, token = crm_user
    simulator.set_faults(
        portal="crm", errors=[{"path_regex": "^/crm/v8/Contacts/search", "http_status": status}]
    )
    answer = get(simulator, token["access_token"], "/Contacts/search", email="a@b.c")
    assert answer.status_code == status
    body = answer.json()
    assert body["code"] == code and body["status"] == "error" and body["message"]
    # Used once, then gone: the next search is answered normally (204).
    again = get(simulator, token["access_token"], "/Contacts/search", email="a@b.c")
    assert again.status_code == 204


def test_a_crm_outage_leaves_salesiq_alone(simulator, crm_user):
    _email, token = crm_user
    simulator.set_faults(portal="crm", outage_seconds=30)
    answer = get(simulator, token["access_token"], "/users")
    assert answer.status_code == 503
    portals = requests.get(
        simulator.data_center("sim")["api_url"] + "/api/v2/portals",
        headers=auth(token["access_token"]),
        timeout=5,
    )
    assert portals.status_code == 200


def test_the_control_api_adds_records_and_sets_credits(simulator, crm_user):
    email, token = crm_user
    control = simulator.base_url + "/_sim/crm"
    added = requests.post(
        control + "/records",
        json={
            "who": email,
            "module": "Leads",
            "fields": {"Last_Name": "Noether", "Email": "e@n.de"},
        },
        timeout=5,
    )
    assert added.status_code == 200, added.text
    found = get(simulator, token["access_token"], "/Leads/search", email="e@n.de")
    assert found.json()["data"][0]["id"] == added.json()["id"]
    bad = requests.post(control + "/records", json={"who": email, "module": "Nope"}, timeout=5)
    assert bad.status_code == 400 and "module" in bad.json()["error"]
    configured = requests.post(control, json={"who": email, "credits_per_day": 7}, timeout=5)
    assert configured.json()["credits_per_day"] == 7
    state = requests.get(control, params={"who": email}, timeout=5).json()
    assert [r["Last_Name"] for r in state["records"]["Leads"]] == ["Noether"]
