"""The visitor in Zoho CRM, in Chromium against `manage.py serve` (daphne and the worker) and
the simulator's SalesIQ and CRM: the drawer's panel, the row's marker and its filter,
"Create lead from this chat" reaching CRM, and a CRM outage never delaying a webhook's row."""

from __future__ import annotations

import time
import uuid

import pytest

from dashboard.models import Chat
from tests.support.browser import shown, sign_in, watched
from tests.support.crm import crm_connect
from tests.support.waits import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def an_email() -> str:
    return f"v{uuid.uuid4().hex[:8]}@visitors.example"


def arrive(simulator, portal, name: str, email: str) -> Chat:
    """A visitor starts a chat in SalesIQ; its webhook reaches the server, which stores it."""
    scene = simulator.create_conversation(
        portal.screen_name, visitor_name=name, visitor_email=email, question="Do you ship to Mars?"
    )
    return wait_for(
        lambda: Chat.objects.filter(portal=portal, remote_id=scene["id"]).first(),
        timeout=15,
        what=f"the chat of {name} reached the dashboard",
    )


@pytest.fixture
def crm_world(server, simulator, connected_portal):
    portal = crm_connect(simulator, connected_portal(open_chats=0, operators=4))
    return watched(server, portal)


def test_the_drawer_shows_a_contact_with_an_open_deal_and_the_row_is_marked(
    server, simulator, crm_world, page, screenshot
):
    portal = crm_world
    known, plain = an_email(), an_email()
    contact = simulator.crm_add_record(
        portal.screen_name,
        "Contacts",
        {"First_Name": "Grace", "Last_Name": "Hopper", "Email": known, "Account_Name": "Navy"},
    )
    simulator.crm_add_record(
        portal.screen_name,
        "Deals",
        {
            "Deal_Name": "Compiler licence",
            "Stage": "Negotiation/Review",
            "Amount": 125000,
            "Contact_Name": contact["id"],
        },
    )
    sign_in(page, server)
    big = arrive(simulator, portal, "Grace Hopper", known)
    other = arrive(simulator, portal, "Alan Turing", plain)

    marker = shown(page.locator(f"#chat-{big.pk} [data-crm-marker='deal']"))
    assert marker.inner_text() == "Big deal"
    assert page.locator(f"#chat-{other.pk} [data-crm-marker]").count() == 0

    page.select_option("select[data-filter='status']", "matters")
    page.locator(f"#chat-{other.pk}").wait_for(state="hidden", timeout=5_000)
    assert page.locator(f"#chat-{big.pk}").is_visible()
    page.select_option("select[data-filter='status']", "")

    page.click(f"#chat-{big.pk} .visitor-link")
    panel = shown(page.locator(f"#crm-{big.pk}[data-crm-state='found']"))
    text = panel.inner_text()
    assert "Grace Hopper" in text and "Navy" in text
    assert "Compiler licence — Negotiation/Review, 125,000" in text
    link = panel.locator("[data-crm-link]")
    assert link.get_attribute("href").endswith(f"/crm/tab/Contacts/{contact['id']}")
    screenshot("crm-drawer-contact")


def test_create_lead_reaches_crm_and_a_second_click_is_a_duplicate(
    server, simulator, crm_world, page, screenshot
):
    portal = crm_world
    email = an_email()
    sign_in(page, server)
    chat = arrive(simulator, portal, "Ada Lovelace", email)
    page.click(f"#chat-{chat.pk} .visitor-link")
    shown(page.locator(f"#crm-{chat.pk}[data-crm-state='not_found']"))
    assert "Not in CRM." in page.locator(f"#crm-{chat.pk}").inner_text()

    page.click(f"#crm-{chat.pk} [data-crm-create-lead]")
    done = shown(page.locator(f"#crm-{chat.pk} .action-outcome[data-state='done']"))
    assert "created in Zoho CRM for Ada Lovelace" in done.inner_text()
    leads = simulator.crm_state(portal.screen_name)["records"]["Leads"]
    (lead,) = [r for r in leads if r["Email"] == email]
    assert (lead["First_Name"], lead["Last_Name"], lead["Lead_Source"]) == (
        "Ada",
        "Lovelace",
        "Chat",
    )
    assert "Question: Do you ship to Mars?" in lead["Description"]
    assert f"?chat={chat.pk}" in lead["Description"]
    shown(page.locator(f"#crm-{chat.pk}[data-crm-state='found']"))

    page.click(f"#crm-{chat.pk} [data-crm-create-lead]")
    refused = shown(page.locator(f"#crm-{chat.pk} .action-outcome[data-state='refused']"))
    assert f"already has this e-mail as a lead (record {lead['id']}" in refused.inner_text()
    leads = simulator.crm_state(portal.screen_name)["records"]["Leads"]
    assert len([r for r in leads if r["Email"] == email]) == 1
    screenshot("crm-lead-duplicate")


def _row_delay(simulator, portal, page, name: str) -> float:
    """Seconds from SalesIQ starting a chat to its row on the page."""
    started = time.monotonic()
    scene = simulator.create_conversation(
        portal.screen_name, visitor_name=name, visitor_email=an_email()
    )
    page.wait_for_selector(f"#chats-body tr[data-visitor='{name}']", timeout=15_000)
    assert scene["id"]
    return time.monotonic() - started


def test_a_crm_outage_never_delays_a_webhooks_row(server, simulator, crm_world, page, capsys):
    portal = crm_world
    sign_in(page, server)
    healthy = [_row_delay(simulator, portal, page, f"Calm {n}") for n in range(3)]
    # CRM hangs 8 s on every call (the client waits up to SIQ_HTTP_READ_TIMEOUT, 15 s): the
    # worker's CRM job is stuck in a call whenever a webhook comes in.
    simulator.set_faults(portal="crm", latency_ms=8_000)
    arrive(simulator, portal, "Busy first", an_email())  # gives the job something to ask
    time.sleep(1)
    slow = [_row_delay(simulator, portal, page, f"Storm {n}") for n in range(3)]
    with capsys.disabled():
        print(
            f"\nwebhook → row on the page: CRM healthy {max(healthy) * 1000:.0f} ms worst, "
            f"CRM hanging 8 s {max(slow) * 1000:.0f} ms worst"
        )
    assert max(slow) < 2.0, slow
    # The CRM job was indeed waiting on CRM meanwhile.
    assert any(c["path"].startswith("/crm/") for c in simulator.calls())
