"""The CRM client against the simulator's Zoho CRM over HTTP on a real port."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from siq_integration import exceptions as exc
from siq_integration.crm import CrmClient, credits_used_today
from tests.support.crm import crm_connect
from tests.support.simulator import last_seq

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def crm_portal(simulator, sim_portal):
    portal = crm_connect(simulator, sim_portal())
    yield portal
    simulator.clear_faults()


def crm_calls(simulator, since: int) -> list[dict]:
    return [c for c in simulator.calls(since) if c["path"].startswith("/crm/")]


def an_email() -> str:
    return f"v{uuid.uuid4().hex[:8]}@visitors.example"


def test_adding_crm_stores_the_data_centres_api_domain_and_scopes(simulator, crm_portal):
    assert crm_portal.has_crm
    assert crm_portal.crm_api_domain == simulator.data_center("sim")["api_url"]
    assert "ZohoCRM.modules.leads.CREATE" in crm_portal.granted_scopes
    # SalesIQ's scopes stay: one grant serves both.
    assert "SalesIQ.conversations.READ" in crm_portal.granted_scopes


def test_a_portal_without_crm_is_refused_before_any_call(simulator, connected_portal):
    portal = connected_portal()
    assert not portal.has_crm
    with pytest.raises(exc.CrmNotConnected) as raised:
        CrmClient(portal)
    assert "not connected to Zoho CRM" in raised.value.user_message


def test_it_finds_a_contact_with_open_deals_and_a_link(simulator, crm_portal):
    email = an_email()
    contact = simulator.crm_add_record(
        crm_portal.screen_name,
        "Contacts",
        {
            "First_Name": "Grace",
            "Last_Name": "Hopper",
            "Email": email,
            "Account_Name": "Navy Labs",
            "owner": "Kate Boyle",
        },
    )
    for name, stage, amount in (
        ("Compiler licence", "Negotiation/Review", 125000),
        ("Old support", "Closed Won", 9000),
    ):
        simulator.crm_add_record(
            crm_portal.screen_name,
            "Deals",
            {"Deal_Name": name, "Stage": stage, "Amount": amount, "Contact_Name": contact["id"]},
        )
    person = CrmClient(crm_portal).find_person(email.upper())
    assert person is not None
    assert (person.kind, person.name, person.company, person.owner) == (
        "contact",
        "Grace Hopper",
        "Navy Labs",
        "Kate Boyle",
    )
    assert person.record_id == contact["id"] and int(person.record_id) > 2**53
    assert [d.name for d in person.open_deals] == ["Compiler licence"]
    assert person.biggest_open_amount == Decimal("125000")
    assert person.is_customer  # a won deal
    assert person.url.endswith(f"/crm/tab/Contacts/{contact['id']}")


def test_it_falls_back_to_a_lead(simulator, crm_portal):
    email = an_email()
    simulator.crm_add_record(
        crm_portal.screen_name,
        "Leads",
        {
            "Last_Name": "Lamarr",
            "Email": email,
            "Company": "Frequency Hop",
            "Lead_Status": "Contacted",
        },
    )
    since = last_seq(simulator)
    person = CrmClient(crm_portal).find_person(email)
    assert (person.kind, person.company, person.lead_status) == (
        "lead",
        "Frequency Hop",
        "Contacted",
    )
    assert person.deals == () and not person.is_customer
    paths = [c["path"] for c in crm_calls(simulator, since)]
    assert paths == ["/crm/v8/Contacts/search", "/crm/v8/Leads/search"]


def test_not_in_crm_is_an_answer(simulator, crm_portal):
    assert CrmClient(crm_portal).find_person(an_email()) is None


def test_create_lead_sends_the_fields_and_a_second_is_a_duplicate(simulator, crm_portal):
    email = an_email()
    client = CrmClient(crm_portal)
    since = last_seq(simulator)
    created = client.create_lead(
        first_name="Ada",
        last_name="Lovelace",
        email=email,
        company="Analytical",
        description="Asked: do you ship to Mars?",
    )
    (call,) = crm_calls(simulator, since)
    assert (call["method"], call["path"]) == ("POST", "/crm/v8/Leads")
    row = call["json"]["data"][0]
    assert row == {
        "First_Name": "Ada",
        "Last_Name": "Lovelace",
        "Email": email,
        "Company": "Analytical",
        "Description": "Asked: do you ship to Mars?",
        "Lead_Source": "Chat",
    }
    assert created.url.endswith(f"/crm/tab/Leads/{created.record_id}")
    with pytest.raises(exc.CrmDuplicate) as raised:
        client.create_lead(last_name="Lovelace", email=email)
    assert raised.value.record_id == created.record_id
    assert created.record_id in raised.value.user_message
    assert "already has this e-mail as a lead" in raised.value.user_message


SENTENCES = [
    (400, None, exc.CrmInvalidData, "Zoho CRM refused the data the dashboard sent."),
    (401, "OAUTH_SCOPE_MISMATCH", exc.CrmScopeMissing, "without a permission the dashboard"),
    (403, None, exc.CrmPermissionDenied, "CRM profile is not allowed to do that"),
    (404, None, exc.CrmNotFound, "does not know that address"),
    (405, None, exc.CrmRequestRefused, "refused the kind of request"),
    (413, None, exc.CrmTooLarge, "refused the request as too large"),
    (415, None, exc.CrmRequestRefused, "refused the kind of request"),
    (429, None, exc.CrmCreditsExhausted, "credits for the last 24 hours are used up"),
    (500, None, exc.CrmUnavailable, "Zoho CRM is not answering right now."),
    (207, None, exc.CrmPartlyDone, "did only part of the request"),
]


@pytest.mark.parametrize(("status", "code", "kind", "sentence"), SENTENCES)
def test_each_seed_002_error_ends_on_its_sentence(
    simulator, crm_portal, status, code, kind, sentence
):
    error = {"path_regex": "^/crm/v8/Contacts/search", "http_status": status, "times": 2}
    if code:
        error["code"] = code
    simulator.set_faults(portal="crm", errors=[error])
    with pytest.raises(kind) as raised:
        CrmClient(crm_portal).find_person(an_email())
    assert sentence in raised.value.user_message
    assert raised.value.http_status == status


def test_an_invalid_token_is_refreshed_once(simulator, crm_portal):
    simulator.set_faults(
        portal="crm", errors=[{"path_regex": "^/crm/", "http_status": 401, "times": 1}]
    )
    assert CrmClient(crm_portal).find_person(an_email()) is None  # refreshed, asked again
    simulator.set_faults(
        portal="crm", errors=[{"path_regex": "^/crm/", "http_status": 401, "times": 2}]
    )
    with pytest.raises(exc.CrmTokenInvalid) as raised:
        CrmClient(crm_portal).find_person(an_email())
    assert "no longer accepts this portal's sign-in" in raised.value.user_message


def test_the_concurrency_limit_has_its_own_sentence(simulator, crm_portal):
    simulator.set_faults(
        portal="crm",
        errors=[
            {
                "path_regex": "^/crm/",
                "http_status": 429,
                "message": "The concurrency limit of the user for the app is exceeded",
            }
        ],
    )
    with pytest.raises(exc.CrmConcurrencyLimited) as raised:
        CrmClient(crm_portal).find_person(an_email())
    assert "busy with other requests from this Zoho account" in raised.value.user_message


def test_the_daily_credit_limit_stops_calls_until_the_pause_ends(simulator, crm_portal):
    state = simulator.crm_state(crm_portal.screen_name)
    simulator.crm_configure(
        crm_portal.screen_name, credits_per_day=state["credits_per_day"] - state["credits_left"]
    )
    with pytest.raises(exc.CrmCreditsExhausted):
        CrmClient(crm_portal).find_person(an_email())
    crm_portal.refresh_from_db()
    assert crm_portal.crm_paused_until is not None
    since = last_seq(simulator)
    with pytest.raises(exc.CrmCreditsExhausted) as raised:
        CrmClient(crm_portal).find_person(an_email())
    assert "resume at" in raised.value.user_message
    assert crm_calls(simulator, since) == []  # nothing sent while paused
    simulator.crm_configure(crm_portal.screen_name, credits_per_day=5_000)


def test_the_dashboards_own_crm_budget_holds_calls_back(simulator, crm_portal):
    crm_portal.crm_credits_per_day = credits_used_today(crm_portal) + 1
    crm_portal.save()
    client = CrmClient(crm_portal)
    since = last_seq(simulator)
    with pytest.raises(exc.CrmBudgetExhausted) as raised:
        client.find_person(an_email())  # the Contacts search spends the last credit
    assert "used today's Zoho CRM budget" in raised.value.user_message
    assert raised.value.never_sent
    assert [c["path"] for c in crm_calls(simulator, since)] == ["/crm/v8/Contacts/search"]


def test_a_crm_outage_is_crms_health_not_salesiqs(simulator, crm_portal):
    simulator.set_faults(portal="crm", outage_seconds=30)
    with pytest.raises(exc.CrmUnavailable) as raised:
        CrmClient(crm_portal).find_person(an_email())
    assert raised.value.user_message == "Zoho CRM is not answering right now."
    crm_portal.refresh_from_db()
    assert crm_portal.crm_current_error == "Zoho CRM is not answering right now."
    assert crm_portal.current_error == ""  # SalesIQ's health is untouched


def test_check_names_the_connected_crm_user(simulator, crm_portal):
    name = CrmClient(crm_portal).check()
    assert name  # the portal admin's name, as Zoho Accounts knows them
    crm_portal.refresh_from_db()
    assert crm_portal.crm_last_success_at is not None
