"""Pure parts of the CRM client: record links, deal states, error mapping."""

from __future__ import annotations

from decimal import Decimal

from siq_integration import exceptions as exc
from siq_integration.crm import Deal, Person, _error_for, record_url


def test_it_links_zohoapis_hosts_to_crms_web_app():
    assert (
        record_url("https://www.zohoapis.eu", "Contacts", "5725767000000412001")
        == "https://crm.zoho.eu/crm/tab/Contacts/5725767000000412001"
    )
    assert (
        record_url("https://www.zohoapis.com.au", "Leads", "1")
        == "https://crm.zoho.com.au/crm/tab/Leads/1"
    )
    assert record_url("http://127.0.0.1:9/dc/sim", "Leads", "1") == (
        "http://127.0.0.1:9/dc/sim/crm/tab/Leads/1"
    )


def test_closed_stages_are_not_open_and_won_makes_a_customer():
    deals = (
        Deal("1", "A", "Qualification", Decimal("10")),
        Deal("2", "B", "Closed Lost", Decimal("99")),
        Deal("3", "C", "Closed Won", None),
    )
    person = Person("Contacts", "9", "N", "e@x", "Co", "Owner", deals=deals)
    assert [d.record_id for d in person.open_deals] == ["1"]
    assert person.biggest_open_amount == Decimal("10")
    assert person.is_customer


def test_a_duplicate_names_the_record_and_its_owner():
    failure = _error_for(
        400,
        {
            "code": "DUPLICATE_DATA",
            "details": {
                "api_name": "Email",
                "duplicate_record": {
                    "id": "5725767000000412009",
                    "module": {"api_name": "Leads"},
                    "Owner": {"name": "Kate Boyle", "id": "1"},
                },
            },
            "message": "duplicate data",
            "status": "error",
        },
    )
    assert isinstance(failure, exc.CrmDuplicate)
    assert failure.user_message == (
        "Zoho CRM already has this e-mail as a lead (record 5725767000000412009, owned by "
        "Kate Boyle); no new lead was made."
    )


def test_an_invalid_value_names_the_field_in_words():
    failure = _error_for(
        400, {"code": "INVALID_DATA", "details": {"api_name": "Last_Name"}, "message": "x"}
    )
    assert failure.user_message == "Zoho CRM refused the value of “Last Name”."


def test_a_bare_429_is_the_credit_limit_and_names_when_to_ask_again():
    failure = _error_for(429, None)
    assert isinstance(failure, exc.CrmCreditsExhausted)
    assert failure.retry_at is not None
    assert "asks CRM again after" in failure.user_message


def test_a_lead_from_a_chat_without_a_start_time_or_last_name_still_has_its_fields():
    from datetime import UTC, datetime

    from dashboard.crm import lead_fields
    from dashboard.models import Chat

    chat = Chat(
        visitor_name="Cher",
        visitor_email=" Cher@Example.com ",
        visitor_details={"Company": "Believe Ltd"},
        question="",
        started_at=None,
        fact_at=datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
    )
    fields = lead_fields(chat, link_back="https://dash.example/?chat=7")
    assert fields["first_name"] == "" and fields["last_name"] == "Cher"
    assert fields["email"] == "Cher@Example.com" and fields["company"] == "Believe Ltd"
    assert fields["description"] == (
        "From a SalesIQ chat started 2026-01-02 03:04 UTC.\n"
        "Chat in the supervisor dashboard: https://dash.example/?chat=7"
    )
