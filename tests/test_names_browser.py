"""Names in Chromium against `manage.py serve` and the simulator: two operators SalesIQ calls
by the same full name read the same, told apart the same way, in the operators panel, the
operator filter, the chats table and the transfer picker; and an alert's title follows its chat
through a transfer to the namesake (new department, new operator) while its clock ticks."""

from __future__ import annotations

import pytest

from dashboard.alerts.rules import ensure_rules
from dashboard.models import AlertKind, AlertRule, Chat, Department
from dashboard.templatetags.supervisor import iso
from tests.support.browser import poll, shown, sign_in, watched

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def console_errors(page):
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    return errors


def said(locator) -> str:
    """What an element says, as one line (a name and its mark are two boxes side by side)."""
    return " ".join(locator.text_content().split())


def local(email: str) -> str:
    return email.partition("@")[0]


def test_it_tells_namesakes_apart_the_same_way_and_an_alert_follows_a_transfer(
    server, simulator, connected_portal, page, console_errors
):
    portal = watched(server, connected_portal(open_chats=0, operators=6))
    rules = ensure_rules(portal)
    AlertRule.objects.filter(pk=rules[AlertKind.LONG_CHAT].pk).update(threshold=1)
    state = simulator.state(portal.screen_name)["portals"][0]
    first, second, third = state["operators"][1:4]
    for operator in (first, second, third):
        simulator.set_operator_status(operator["id"], "online")
    # SalesIQ calls two of them by the same full name (and by their first name alone).
    for operator in (first, second):
        simulator.update_operator(operator["id"], first_name="Ólafur", last_name="Novák")
    ours = f"Ólafur Novák ({local(first['email'])})"
    namesake = f"Ólafur Novák ({local(second['email'])})"

    # Léa's chat, two minutes old, is with the first Ólafur; Marta's with someone else.
    lea = simulator.create_conversation(
        portal.screen_name, visitor_name="Léa Fontaine", waiting_seconds=120
    )["id"]
    simulator.pickup(lea, operator_id=first["id"])
    marta = simulator.create_conversation(portal.screen_name, visitor_name="Marta")["id"]
    simulator.pickup(marta, operator_id=third["id"])
    poll(portal)
    chat = Chat.objects.get(portal=portal, remote_id=lea)
    other = Chat.objects.get(portal=portal, remote_id=marta)
    departments = dict(Department.objects.filter(portal=portal).values_list("remote_id", "name"))
    elsewhere = next(d for d in departments if d != chat.department_id)
    page.set_viewport_size({"width": 1440, "height": 900})
    sign_in(page, server)

    # The operators panel and the operator filter.
    for operator, name in ((first, ours), (second, namesake)):
        row = page.locator(f"#operators-body tr[data-operator='{operator['id']}']")
        assert row.get_attribute("data-name") == name
        assert said(row.locator(".op-name")) == name
    options = page.locator("select[data-filter='operator'] option").all_inner_texts()
    assert ours in options and namesake in options and "Ólafur" not in options
    page.select_option("select[data-filter='operator']", f"{portal.pk}:{first['id']}")
    visible = page.evaluate("SupervisorLive.visible('chats')")
    assert visible == [f"chat-{chat.pk}"]
    assert said(page.locator(f"#chat-{chat.pk} .c-operator")) == ours
    page.select_option("select[data-filter='operator']", "")

    # The transfer picker of Marta's chat lists both, named the same way.
    page.click(f"#chat-{other.pk} .visitor-link")
    page.click("#drawer [data-action-button=transfer]")
    form = shown(page.locator("#drawer .transfer-form"))
    picked = [said(name) for name in form.locator(".pick-name").all()]
    assert ours in picked and namesake in picked
    page.click("#drawer [data-close-drawer]")

    # The long chat's alert names the chat as it is, and its clock runs from the chat's start.
    row = shown(page.locator("#alerts-list li[data-kind=long_chat]"))
    title = row.locator(".alert-title")
    clock = title.locator("time[data-tick=elapsed]")
    assert clock.get_attribute("datetime") == iso(chat.started_at)
    assert title.inner_text().startswith("Léa Fontaine's chat has run ")
    assert title.inner_text().endswith(f"({departments[chat.department_id]})")
    assert row.locator(".alert-detail").inner_text() == f"With {ours}."
    before = clock.inner_text()
    page.wait_for_function(
        "([el, text]) => el.textContent !== text", arg=[clock.element_handle(), before]
    )

    # Transferred to the namesake in another department, through the picker; SalesIQ accepts.
    page.click(f"#chat-{chat.pk} .visitor-link")
    page.click("#drawer [data-action-button=transfer]")
    form = shown(page.locator("#drawer .transfer-form"))
    assert namesake in [said(name) for name in form.locator(".pick-name").all()]
    form.locator("select[name=department_id]").select_option(elsewhere)
    form.locator(f"input[name=operator_id][value='{second['id']}']").check()
    form.locator("button[type=submit]").click()
    outcome = shown(page.locator("#drawer .action-outcome[data-kind=transfer]"))
    assert f"waiting for {namesake} to accept" in outcome.inner_text()
    simulator.transfer(lea, outcome="accepted")

    page.wait_for_selector(f"#chat-{chat.pk}[data-operator='{second['id']}']", timeout=15_000)
    assert said(page.locator(f"#chat-{chat.pk} .c-operator")) == namesake
    detail = row.page.locator("#alerts-list li[data-kind=long_chat] .alert-detail")
    detail.filter(has_text=f"With {namesake}.").wait_for(timeout=15_000)
    title = page.locator("#alerts-list li[data-kind=long_chat] .alert-title")
    assert title.inner_text().startswith("Léa Fontaine's chat has run ")
    assert title.inner_text().endswith(f"({departments[elsewhere]})")
    assert title.locator("time").get_attribute("datetime") == iso(chat.started_at)
    # The same words in the chat drawer's copy of the alert and in the row's badge.
    drawer_row = page.locator("#drawer .drawer-alerts li[data-kind=long_chat]")
    assert f"With {namesake}." in drawer_row.inner_text()
    badge = page.locator(f"#chat-{chat.pk} .row-alert")
    badge.hover()
    assert badge.get_attribute("title").endswith(f"({departments[elsewhere]})")
    assert console_errors == []
