"""The visitor in Zoho CRM on the dashboard: the lookup job, the row marker, the drawer's
panel, "Create lead from this chat" and the portal page, against the simulator's CRM."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from dashboard import crm
from dashboard.models import Action, ActionKind, Chat, CrmPerson
from tests.factories import make_admin, make_supervisor, make_viewer
from tests.support.crm import crm_connect
from tests.support.live import chat, fill
from tests.support.simulator import last_seq

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def crm_portal(simulator, sim_portal):
    portal = crm_connect(simulator, sim_portal())
    yield portal
    simulator.clear_faults()


def crm_calls(simulator, since: int, suffix: str = "") -> list[dict]:
    return [
        c
        for c in simulator.calls(since)
        if c["path"].startswith("/crm/") and c["path"].endswith(suffix)
    ]


def an_email() -> str:
    return f"v{uuid.uuid4().hex[:8]}@visitors.example"


def open_chat(portal, email: str, chat_id: str | None = None, **kw) -> Chat:
    chat_id = chat_id or f"c{uuid.uuid4().hex[:8]}"
    fill(portal, [chat(chat_id, visitor=kw.pop("visitor", "Grace Hopper"), **kw)])
    Chat.objects.filter(portal=portal, remote_id=chat_id).update(visitor_email=email)
    return Chat.objects.get(portal=portal, remote_id=chat_id)


def a_contact_with_a_deal(simulator, portal, email: str, amount: int = 125_000) -> dict:
    contact = simulator.crm_add_record(
        portal.screen_name,
        "Contacts",
        {"First_Name": "Grace", "Last_Name": "Hopper", "Email": email, "Account_Name": "Navy"},
    )
    simulator.crm_add_record(
        portal.screen_name,
        "Deals",
        {
            "Deal_Name": "Compiler licence",
            "Stage": "Negotiation/Review",
            "Amount": amount,
            "Contact_Name": contact["id"],
        },
    )
    return contact


def test_the_job_looks_a_visitor_up_once_and_marks_their_rows(simulator, crm_portal):
    email = an_email()
    a_contact_with_a_deal(simulator, crm_portal, email)
    first = open_chat(crm_portal, email)
    second = open_chat(crm_portal, email.upper())  # the same visitor, another chat
    plain = open_chat(crm_portal, an_email())
    since = last_seq(simulator)
    changed = crm.lookups_round(crm_portal)
    assert changed == {first.pk, second.pk}
    first.refresh_from_db()
    plain.refresh_from_db()
    assert first.crm_marker == "deal" and plain.crm_marker == ""
    person = CrmPerson.objects.get(portal=crm_portal, email=email)
    assert person.state == "found" and person.biggest_open_amount == Decimal("125000")
    # One Contacts search and one deals list for the visitor; plain: Contacts then Leads.
    assert len(crm_calls(simulator, since, "/Contacts/search")) == 2
    assert len(crm_calls(simulator, since, "/Deals")) == 1
    again = last_seq(simulator)
    assert crm.lookups_round(crm_portal) == set()
    assert crm_calls(simulator, again) == []  # cached: CRM is not asked again


def test_the_marker_follows_the_admins_amount(simulator, crm_portal):
    email = an_email()
    a_contact_with_a_deal(simulator, crm_portal, email, amount=5_000)
    row = open_chat(crm_portal, email)
    crm.lookups_round(crm_portal)
    row.refresh_from_db()
    assert row.crm_marker == ""  # 5,000 is not above the default 10,000
    crm_portal.crm_big_deal_amount = Decimal("1000")
    crm_portal.save()
    assert crm.lookups_round(crm_portal) == {row.pk}
    row.refresh_from_db()
    assert row.crm_marker == "deal"


def test_an_expired_lookup_is_asked_again(simulator, crm_portal, settings):
    email = an_email()
    open_chat(crm_portal, email)
    crm.lookups_round(crm_portal)
    assert CrmPerson.objects.get(email=email).state == "not_found"
    CrmPerson.objects.filter(email=email).update(expires_at=None)
    simulator.crm_add_record(crm_portal.screen_name, "Leads", {"Last_Name": "L", "Email": email})
    CrmPerson.objects.filter(email=email).update(
        expires_at=CrmPerson.objects.get(email=email).looked_up_at
    )
    crm.lookups_round(crm_portal)
    person = CrmPerson.objects.get(email=email)
    assert (person.state, person.module) == ("found", "Leads")


def test_a_crm_outage_is_a_failed_lookup_in_words_and_the_round_stops(simulator, crm_portal):
    for _ in range(3):
        open_chat(crm_portal, an_email())
    simulator.set_faults(portal="crm", outage_seconds=30)
    since = last_seq(simulator)
    crm.lookups_round(crm_portal)
    failed = CrmPerson.objects.filter(portal=crm_portal, state="failed")
    assert [p.error for p in failed] == ["Zoho CRM is not answering right now."]
    assert len(crm_calls(simulator, since)) == 1  # no hammering a CRM that is down


def test_a_portal_without_crm_is_never_asked(simulator, connected_portal):
    portal = connected_portal()
    open_chat(portal, an_email())
    since = last_seq(simulator)
    assert crm.lookups_round(portal) == set()
    assert crm_calls(simulator, since) == []


def test_the_drawer_panel_shows_the_contact_and_its_open_deal(simulator, crm_portal, client):
    email = an_email()
    contact = a_contact_with_a_deal(simulator, crm_portal, email)
    row = open_chat(crm_portal, email)
    client.force_login(make_supervisor("sup", crm_portal))
    pending = client.get(f"/live/chats/{row.pk}/crm/")
    assert b"Looking" in pending.content and b'hx-trigger="load delay:2s"' in pending.content
    crm.lookups_round(crm_portal)
    answer = client.get(f"/live/chats/{row.pk}/crm/").content.decode()
    assert "Grace Hopper" in answer and "Navy" in answer
    assert "Compiler licence" in answer and "125,000" in answer
    assert f"/crm/tab/Contacts/{contact['id']}" in answer
    assert "hx-trigger" not in answer.split("<form")[0]  # answered: no more polling


def test_create_lead_sends_the_chat_and_a_second_click_is_a_duplicate(
    simulator, crm_portal, client
):
    email = an_email()
    row = open_chat(crm_portal, email, visitor="Ada Lovelace")
    Chat.objects.filter(pk=row.pk).update(question="Do you ship to Mars?")
    client.force_login(make_supervisor("sup", crm_portal))
    since = last_seq(simulator)
    key = "lead-key-0123456789abc"
    first = client.post(f"/live/chats/{row.pk}/crm/lead/", {"idempotency_key": key})
    assert first.status_code == 200
    again = client.post(f"/live/chats/{row.pk}/crm/lead/", {"idempotency_key": key})
    assert again.status_code == 200  # the same key: the first outcome, no second call
    (call,) = crm_calls(simulator, since, "/Leads")
    sent = call["json"]["data"][0]
    assert (sent["First_Name"], sent["Last_Name"], sent["Email"]) == ("Ada", "Lovelace", email)
    assert "Question: Do you ship to Mars?" in sent["Description"]
    assert f"?chat={row.pk}" in sent["Description"]
    action = Action.objects.get(kind=ActionKind.CRM_LEAD, key=key)
    assert action.state == "done" and action.params["record_id"] in action.message
    second = client.post(
        f"/live/chats/{row.pk}/crm/lead/", {"idempotency_key": "lead-key-second-012345"}
    )
    refused = Action.objects.get(key="lead-key-second-012345")
    assert refused.state == "refused"
    assert f"already has this e-mail as a lead (record {action.params['record_id']}" in (
        refused.message
    )
    assert refused.message in second.content.decode().replace("&#x27;", "'")


def test_a_lead_crm_refuses_as_duplicate_names_the_record(simulator, crm_portal, client):
    email = an_email()
    lead = simulator.crm_add_record(
        crm_portal.screen_name, "Leads", {"Last_Name": "Known", "Email": email}
    )
    row = open_chat(crm_portal, email)  # not looked up yet: CRM itself refuses
    client.force_login(make_supervisor("sup", crm_portal))
    client.post(f"/live/chats/{row.pk}/crm/lead/", {"idempotency_key": "dup-key-0123456789ab"})
    action = Action.objects.get(key="dup-key-0123456789ab")
    assert action.state == "refused" and lead["id"] in action.message


def test_a_viewer_may_not_create_a_lead(simulator, crm_portal, client):
    row = open_chat(crm_portal, an_email())
    client.force_login(make_viewer("viewer", crm_portal))
    since = last_seq(simulator)
    answer = client.post(f"/live/chats/{row.pk}/crm/lead/", {"idempotency_key": "v" * 20})
    assert answer.status_code == 403
    assert crm_calls(simulator, since) == []
    assert "Create lead" not in client.get(f"/live/chats/{row.pk}/crm/").content.decode()


def test_the_portal_page_shows_crm_health_beside_salesiqs(simulator, crm_portal, client):
    client.force_login(make_admin())
    page = client.get(f"/portals/{crm_portal.pk}/").content.decode()
    assert 'data-crm-health="Added"' in page and "Remove CRM" in page
    simulator.set_faults(portal="crm", outage_seconds=30)
    open_chat(crm_portal, an_email())
    crm.lookups_round(crm_portal)
    page = client.get(f"/portals/{crm_portal.pk}/").content.decode()
    assert 'data-crm-health="Failing"' in page
    assert "Zoho CRM is not answering right now." in page


def test_adding_crm_asks_zoho_for_crms_scopes(simulator, connected_portal, client):
    portal = connected_portal()
    client.force_login(make_admin())
    page = client.get(f"/portals/{portal.pk}/").content.decode()
    assert 'data-crm-health="Not added"' in page
    answer = client.post(f"/portals/{portal.pk}/crm/add/")
    assert answer.status_code == 302
    assert "ZohoCRM.modules.leads.CREATE" in answer["Location"]
    assert "SalesIQ.conversations.READ" in answer["Location"]


def test_the_audit_names_the_chat_the_email_and_the_lead(simulator, crm_portal, client):
    email = an_email()
    row = open_chat(crm_portal, email, visitor="Ada Lovelace")
    client.force_login(make_supervisor("sup", crm_portal))
    client.post(f"/live/chats/{row.pk}/crm/lead/", {"idempotency_key": "audit-key-0123456789"})
    action = Action.objects.get(key="audit-key-0123456789")
    client.force_login(make_admin())
    page = client.get("/audit/").content.decode()
    assert "Create lead in Zoho CRM" in page
    assert f"e-mail {email}" in page and f"Zoho CRM lead {action.params['record_id']}" in page
    assert "Ada Lovelace" in page


def test_a_lead_left_pending_by_an_error_is_settled_in_words(simulator, crm_portal):
    from dashboard.actions import stuck
    from dashboard.actions.locks import begin

    row = open_chat(crm_portal, an_email())
    action, _ = begin(
        key="stuck-key-0123456789",
        user=make_supervisor("sup", crm_portal),
        portal=crm_portal,
        kind=ActionKind.CRM_LEAD,
        chat=row,
    )
    stuck.abandon_after_error("stuck-key-0123456789")
    action.refresh_from_db()
    assert action.state == "unclear"
    assert "create the lead in Zoho CRM" in action.message


def test_adding_crm_through_the_pages_stores_it_and_proves_it(simulator, connected_portal, client):
    from urllib.parse import urlsplit

    import requests

    portal = connected_portal()
    client.force_login(make_admin())
    consent = client.post(f"/portals/{portal.pk}/crm/add/")["Location"]
    simulator.configure_accounts(
        auto_approve=True, approve_as=f"admin@{portal.screen_name}.example"
    )
    try:
        back = requests.get(consent, allow_redirects=False, timeout=10).headers["Location"]
    finally:
        simulator.configure_accounts(auto_approve=False, approve_as="")
    parts = urlsplit(back)
    done = client.get(f"{parts.path}?{parts.query}", follow=True)
    page = done.content.decode()
    portal.refresh_from_db()
    assert portal.has_crm and portal.crm_api_domain == simulator.data_center("sim")["api_url"]
    assert f"Zoho CRM is added to {portal.name}, signed in as" in page
    assert 'data-crm-health="Working"' in page
