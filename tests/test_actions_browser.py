"""Supervisor actions in Chromium against `manage.py serve` and the simulator: what the
supervisor clicks, what reached SalesIQ (the simulator's own state and call log), and what
the dashboard then shows, over its real websocket."""

from __future__ import annotations

import pytest

from dashboard.actions import status_rules, wording
from dashboard.actions.drain import operator_drain_plan
from dashboard.models import Action, Chat, Operator, Role
from tests.support.browser import poll, shown, sign_in, watched
from tests.support.simulator import (
    a_connected_chat,
    a_department_with_room,
    last_seq,
    oauth_connect,
)
from tests.support.waits import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def console_errors(page):
    """What the page logged as errors (htmx logs a swap that found no target)."""
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    return errors


def laptop(page) -> None:
    """The smallest screen a supervisor works on."""
    page.set_viewport_size({"width": 1366, "height": 768})


def dark(page) -> None:
    """The dark theme, as the toggle sets it (the toggle may be under the drawer)."""
    page.evaluate("document.documentElement.setAttribute('data-theme', 'dark')")


def open_chat(page, chat: Chat):
    page.click(f"#chat-{chat.pk} .visitor-link")
    drawer = page.locator(f"#drawer[data-chat='{chat.pk}']")
    drawer.wait_for(timeout=10_000)
    return drawer


def open_operator(page, operator: Operator):
    page.click(f"#op-{operator.pk} .op-name")
    panel = page.locator(f"#drawer[data-operator='{operator.pk}']")
    panel.wait_for(timeout=10_000)
    return panel


POST_FROM_PAGE = """async ([path, fields]) => {
  const csrf = document.querySelector("[name=csrfmiddlewaretoken]").value;
  const body = new URLSearchParams({...fields, csrfmiddlewaretoken: csrf});
  const answer = await fetch(path, {method: "POST", body, headers: {"HX-Request": "true"}});
  return [answer.status, await answer.text()];
}"""


def post_from_page(page, path: str, **fields: str) -> tuple[int, str]:
    """A form post as the page's own session would send it, bypassing the page's buttons."""
    status, text = page.evaluate(POST_FROM_PAGE, [path, fields])
    return status, text


def calls_to(simulator, since: int, suffix: str) -> list[dict]:
    return [c for c in simulator.calls(since) if c["path"].endswith(suffix)]


def conversation(simulator, portal, remote_id: str) -> dict:
    state = simulator.state(portal.screen_name)["portals"][0]
    return next(c for c in state["conversations"] if c["id"] == remote_id)


def presence(simulator, portal, remote_id: str) -> str:
    state = simulator.state(portal.screen_name)["portals"][0]
    return next(o["presence"] for o in state["operators"] if o["id"] == remote_id)


def own_operator(portal) -> Operator:
    """The simulator's admin user is the portal's connected user, and an operator too."""
    return Operator.objects.get(portal=portal, email=f"admin@{portal.screen_name}.example")


def tone_of(locator) -> tuple[str, str]:
    """(the outcome mark's colour, the theme's green) as the browser computes them."""
    return locator.evaluate(
        """el => {
             const probe = document.createElement("span");
             probe.style.color = "var(--ok)";
             el.appendChild(probe);
             const green = getComputedStyle(probe).color;
             probe.remove();
             return [getComputedStyle(el.querySelector(".outcome-mark")).backgroundColor, green];
           }"""
    )


def test_it_transfers_a_chat_with_the_department_operator_and_note_picked(
    server, simulator, connected_portal, page, console_errors, screenshot
):
    portal = watched(server, connected_portal(open_chats=3, operators=6))
    chat, state = a_connected_chat(simulator, portal)
    target = next(
        o
        for o in state["operators"]
        if o["presence"] == "online" and o["id"] != chat.operator_id and o["department_ids"]
    )
    department = target["department_ids"][-1]
    name = Operator.objects.get(portal=portal, remote_id=target["id"]).name
    laptop(page)
    sign_in(page, server)

    open_chat(page, chat)
    page.click("#drawer [data-action-button=transfer]")
    form = shown(page.locator("#drawer .transfer-form"))
    # The picker: the chat's own department first; best choices first, offline ones last.
    departments = form.locator("select[name=department_id] option").evaluate_all(
        "options => options.map(o => o.value)"
    )
    assert departments[0] == chat.department_id
    statuses = form.locator(".pick[data-status]").evaluate_all(
        "picks => picks.map(p => p.dataset.status)"
    )
    order = {"available": 0, "busy": 1, "away": 2, "offline": 3}
    assert statuses[0] == "available" and statuses == sorted(statuses, key=order.get)
    assert "Sending to SalesIQ" not in form.inner_text()
    screenshot("actions-transfer-form")

    form.locator("select[name=department_id]").select_option(department)
    form.locator(f"input[name=operator_id][value='{target['id']}']").check()
    form.locator("textarea[name=note]").fill("VIP – wants the <b>annual</b> plan")
    start = last_seq(simulator)
    form.locator("button[type=submit]").click()

    # SalesIQ took it, the new operator has not accepted: pending, in blue, never green.
    outcome = shown(page.locator("#drawer .action-outcome[data-kind=transfer]"))
    assert outcome.get_attribute("data-state") == "pending", outcome.inner_text()
    assert outcome.locator(".outcome-state").inner_text() == "PENDING"
    assert f"SalesIQ took the transfer; waiting for {name} to accept." in outcome.inner_text()
    mark, green = tone_of(outcome)
    assert mark != green
    screenshot("actions-outcome-pending")

    # It really reached SalesIQ, once, with what was picked.
    (call,) = calls_to(simulator, start, f"/conversations/{chat.remote_id}/transfer")
    assert call["method"] == "PUT"
    assert call["json"] == {
        "department_id": department,
        "operator_id": target["id"],
        "note": "VIP – wants the <b>annual</b> plan",
    }
    transfer = conversation(simulator, portal, chat.remote_id)["transfer"]
    assert transfer["status"] == "initiated" and transfer["to_operator"]["id"] == target["id"]
    # Every supervisor's row says a transfer is under way.
    page.wait_for_selector(f"#chat-{chat.pk} .transfer")

    # The new operator accepts in SalesIQ: its webhook completes the outcome in place, and the
    # row and the drawer follow.
    simulator.transfer(chat.remote_id, outcome="accepted")
    action = Action.objects.get(kind="transfer")
    accepted = shown(page.locator(f"#drawer #action-{action.pk}[data-state=accepted]"))
    assert "accepted the transfer" in page.inner_text("#drawer .action-outcome")
    assert accepted.locator(".outcome-state").inner_text() == "ACCEPTED"
    mark, green = tone_of(accepted)
    assert mark == green
    page.wait_for_selector(f"#chat-{chat.pk}[data-operator='{target['id']}']", timeout=15_000)
    assert name.split()[0] in page.inner_text(f"#drawer-head-{chat.pk}")
    screenshot("actions-outcome-accepted")
    assert not console_errors, console_errors


def test_it_tells_of_an_accepted_transfer_in_a_toast_once_the_drawer_is_closed(
    server, simulator, connected_portal, page, console_errors, screenshot
):
    portal = watched(server, connected_portal(open_chats=2, operators=5))
    chat, state = a_connected_chat(simulator, portal)
    target = next(
        o for o in state["operators"] if o["presence"] == "online" and o["id"] != chat.operator_id
    )
    sign_in(page, server)
    open_chat(page, chat)
    page.click("#drawer [data-action-button=transfer]")
    page.check(f"#drawer input[name=operator_id][value='{target['id']}']")
    page.click("#drawer .transfer-form button[type=submit]")
    page.wait_for_selector("#drawer .action-outcome[data-state=pending]")
    page.keyboard.press("Escape")
    page.wait_for_selector("#drawer", state="detached")

    simulator.transfer(chat.remote_id, outcome="accepted")
    toast = shown(page.locator(".toast[data-state=accepted]"))
    text = toast.inner_text()
    visitor = chat.visitor_name or "a visitor"
    assert f"Transfer of {visitor} accepted" in text
    assert "accepted the transfer." in text
    screenshot("actions-toast")
    # The pushed outcome found no element on the page and that is no error.
    assert not [e for e in console_errors if "#action-" in e], console_errors

    toast.locator("[data-open-chat]").click()  # straight back to the chat
    page.wait_for_selector(f"#drawer[data-chat='{chat.pk}']")

    # A declined transfer says so too, and stays until dismissed.
    page.click("#drawer [data-action-button=transfer]")
    page.click("#drawer .transfer-form button[type=submit]")  # anyone free in the department
    page.wait_for_selector("#drawer .action-outcome[data-state=pending]")
    page.click("#drawer [data-close-drawer]")
    simulator.transfer(chat.remote_id, outcome="rejected")
    declined = shown(page.locator(".toast[data-state=declined]"))
    assert f"Transfer of {visitor} declined" in declined.inner_text()
    assert "the chat stays where it was" in declined.inner_text()
    declined.locator(".toast-close").click()
    assert page.locator(".toast[data-state=declined]").count() == 0
    assert not [e for e in console_errors if "#action-" in e], console_errors


def test_it_lets_a_supervisor_end_a_chat_with_a_closing_message_and_everyone_sees_it_go(
    server, simulator, connected_portal, browser, page, screenshot
):
    portal = watched(server, connected_portal(dialect="reference", open_chats=3, operators=4))
    chat, _ = a_connected_chat(simulator, portal)
    sign_in(page, server, role=Role.SUPERVISOR, portals=[portal])
    # An Admin watches the same portal from another browser.
    watching = browser.new_context(viewport={"width": 1280, "height": 800})
    admin_page = watching.new_page()
    sign_in(admin_page, server)
    admin_page.locator(f"#chat-{chat.pk}").wait_for()

    open_chat(page, chat)
    page.click("#drawer [data-action-button=end]")
    form = shown(page.locator("#drawer .end-form"))
    assert "End the chat with" in form.inner_text()
    form.locator("textarea[name=message]").fill("Thanks for waiting – we'll e-mail you.")
    screenshot("actions-end-form")
    start = last_seq(simulator)
    form.locator("button[type=submit]").click()

    outcome = shown(page.locator("#drawer .action-outcome[data-kind=end]"))
    # SalesIQ's answer, or already its webhook confirming it (it can overtake the answer).
    assert outcome.get_attribute("data-state") in ("done", "confirmed"), outcome.inner_text()
    page.wait_for_selector(f"#chat-{chat.pk}", state="detached", timeout=10_000)
    # No more actions on an ended chat; the outcome stays.
    assert not page.is_visible("#drawer .drawer-tools")
    (call,) = calls_to(simulator, start, f"/chats/{chat.remote_id}/end")
    assert call["json"] == {"message": "Thanks for waiting – we'll e-mail you."}
    assert conversation(simulator, portal, chat.remote_id)["status"] == "closed"
    admin_page.locator(f"#chat-{chat.pk}").wait_for(state="detached", timeout=10_000)
    # The outcome is the acting supervisor's news only.
    assert admin_page.locator(".toast, .action-outcome").count() == 0
    watching.close()


def test_it_sets_the_connected_users_own_status(server, simulator, connected_portal, page):
    portal = watched(server, connected_portal(open_chats=1, operators=4))
    me = own_operator(portal)
    assert me.status == "available"
    sign_in(page, server)

    open_operator(page, me)
    start = last_seq(simulator)
    page.click("#drawer .status-form button[value=busy]")

    outcome = shown(page.locator("#drawer .action-outcome[data-kind=operator_status]"))
    assert outcome.get_attribute("data-state") == "done", outcome.inner_text()
    assert f"{me.shown_name} is now Busy." in outcome.inner_text()
    assert len(calls_to(simulator, start, f"/operators/{me.remote_id}/status")) == 1
    assert presence(simulator, portal, me.remote_id) == "busy"
    page.wait_for_selector(f"#op-{me.pk}[data-status=busy]")
    # The open panel follows the row.
    page.wait_for_selector("#drawer [data-panel-presence] .presence-busy")


def test_it_keeps_the_status_buttons_after_a_change(
    server, simulator, connected_portal, page, console_errors, screenshot
):
    portal = watched(server, connected_portal(open_chats=1, operators=4))
    me = own_operator(portal)
    laptop(page)
    sign_in(page, server)
    panel = open_operator(page, me)
    screenshot("actions-status-before")
    start = last_seq(simulator)

    panel.locator(".status-form button[value=busy]").click()
    outcome = shown(panel.locator(".status-outcome .action-outcome[data-kind=operator_status]"))
    assert outcome.get_attribute("data-state") == "done", outcome.inner_text()
    # The buttons are still there, Busy marked as the status now, Available one click away.
    shown(panel.locator(".status-form button[value=busy][aria-current=true]"))
    available = panel.locator(".status-form button[value=available]")
    assert available.is_visible() and available.is_enabled()
    screenshot("actions-status-after")
    dark(page)
    screenshot("actions-status-after-dark")

    # And a second change works too (the form got a fresh key with the first answer).
    available.click()
    shown(panel.locator(".status-outcome .action-outcome[data-state=done]:has-text('Available')"))
    shown(panel.locator(".status-form button[value=available][aria-current=true]"))
    assert len(calls_to(simulator, start, f"/operators/{me.remote_id}/status")) == 2
    assert presence(simulator, portal, me.remote_id) == "online"
    assert panel.locator(".status-outcome .action-outcome").count() == 1
    assert Action.objects.filter(kind="operator_status").count() == 2
    assert not console_errors, console_errors


def test_it_says_before_the_click_whose_status_salesiq_lets_it_set(
    server, simulator, connected_portal, page, console_errors, screenshot
):
    portal = watched(server, connected_portal(open_chats=0, operators=6))
    assert status_rules.learn_connected_user(portal) is not None
    me = own_operator(portal)
    someone = Operator.objects.filter(portal=portal, status="available").exclude(pk=me.pk).first()
    chat = simulator.create_conversation(
        portal.screen_name, department_id=someone.department_ids[0], visitor_name="Di Status"
    )["id"]
    simulator.pickup(chat, someone.remote_id)
    poll(portal)
    laptop(page)
    sign_in(page, server)

    panel = open_operator(page, someone)
    shown(panel.locator(".op-chats [data-open-chat]"))
    assert panel.locator(".status-form, button[name=status]").count() == 0
    rule = panel.locator("[data-status-rule]").inner_text()
    assert rule == (
        f"SalesIQ lets only {me.shown_name}, the user this portal is connected as, change their "
        f"own status here. Ask {someone.shown_name} to change it in SalesIQ, or drain their chats."
    )
    assert panel.locator("[data-drain-preview]").is_enabled()
    screenshot("actions-status-not-own")
    dark(page)
    screenshot("actions-status-not-own-dark")
    page.keyboard.press("Escape")

    # The connected user's own panel has the buttons, without a caveat.
    mine = open_operator(page, me)
    shown(mine.locator(".status-form button[name=status]"))
    assert mine.locator("[data-status-rule]").count() == 0
    assert not console_errors, console_errors


def test_it_says_salesiq_refuses_another_operators_status_and_offers_the_drain(
    server, simulator, sim_portal, page, screenshot
):
    # A grant that cannot say whom it acts as: the buttons are offered, with a caveat.
    simulator.configure_accounts(drop_scopes=["AaaServer.profile.READ"])
    try:
        portal = watched(server, oauth_connect(simulator, sim_portal(open_chats=0, operators=6)))
    finally:
        simulator.configure_accounts(drop_scopes=[])
    someone = (
        Operator.objects.filter(portal=portal, status="available")
        .exclude(pk=own_operator(portal).pk)
        .first()
    )
    chat = simulator.create_conversation(
        portal.screen_name, department_id=someone.department_ids[0], visitor_name="Cy Refusal"
    )["id"]
    simulator.pickup(chat, someone.remote_id)
    poll(portal)
    laptop(page)
    sign_in(page, server)

    open_operator(page, someone)
    assert "the dashboard does not know who that is" in page.inner_text("[data-status-rule]")
    screenshot("actions-operator-panel")
    page.click("#drawer .status-form button[value=busy]")

    outcome = shown(page.locator("#drawer .action-outcome[data-kind=operator_status]"))
    assert outcome.get_attribute("data-state") == "refused"
    assert wording.status_not_own(someone.shown_name) in outcome.inner_text()
    assert presence(simulator, portal, someone.remote_id) == "online"
    screenshot("actions-outcome-refused")
    dark(page)
    screenshot("actions-outcome-refused-dark")

    # What is possible instead is right below, one click away; it moves the chat, and says
    # that the status part was refused (without advising the drain it is).
    page.click("#drawer .drain-box [data-drain-preview]")
    shown(page.locator("#drawer .drain-form table.drain-plan"))
    assert "Cy Refusal" in page.inner_text("#drawer .drain-form")
    page.click("#drawer .drain-form button[type=submit]")
    drained = shown(page.locator("#drawer .drain-outcome"))
    target = Action.objects.get(kind="transfer").params["operator_name"]
    assert (
        f"0 of 1 chat moved so far; waiting for {target} to accept. SalesIQ did not let the "
        f"dashboard set {someone.shown_name} Busy." in drained.inner_text()
    )
    assert "drain their chats" not in drained.inner_text()
    assert drained.locator("[data-kind=drain]").get_attribute("data-state") == "pending"
    steps = drained.locator(".drain-steps .action-outcome").evaluate_all(
        "steps => steps.map(s => s.dataset.kind + ':' + s.dataset.state)"
    )
    assert steps == ["transfer:pending", "operator_status:refused"]
    assert conversation(simulator, portal, chat)["transfer"]["status"] == "initiated"
    screenshot("actions-drain-partial-dark")

    # The new operator accepts: the drain is said again, in place.
    simulator.transfer(chat, outcome="accepted")
    shown(page.locator("#drawer .drain-outcome > .action-outcome[data-state=partial]"))
    assert (
        f"1 of 1 chat moved. SalesIQ did not let the dashboard set {someone.shown_name} Busy."
        in page.inner_text("#drawer .drain-outcome > .action-outcome")
    )


def step_states(outcome) -> dict[str, str]:
    """A drain's steps as shown: {the visitor or operator: "kind:state"}."""
    return outcome.locator(".drain-steps .action-outcome").evaluate_all(
        "steps => Object.fromEntries(steps.map("
        "s => [s.dataset.subject, s.dataset.kind + ':' + s.dataset.state]))"
    )


def test_it_drains_an_operator_after_showing_who_gets_what(
    server, simulator, connected_portal, page, console_errors, screenshot
):
    portal = watched(server, connected_portal(open_chats=0, operators=6))
    me = own_operator(portal)
    sales = a_department_with_room(simulator, portal, me, need=2, sync=poll)
    names = []
    for visitor in ("Ana Draintest", "Bo Draintest"):
        chat = simulator.create_conversation(
            portal.screen_name, department_id=sales, visitor_name=visitor
        )["id"]
        simulator.pickup(chat, me.remote_id)
        names.append(chat)
    poll(portal)

    # The worker of `serve` polls too, and the webhooks arrive there as well: wait until the
    # live state agrees that both chats are theirs.
    def both_theirs() -> bool:
        theirs = Chat.objects.filter(portal=portal, remote_id__in=names, operator_id=me.remote_id)
        return theirs.filter(status="connected").count() == 2

    wait_for(both_theirs, timeout=15, what="both chats stored as the drained operator's")
    plan = operator_drain_plan(operator=me)
    # Who gets what, by the chat and the operator themselves (names may repeat).
    expected = {
        str(move.chat.pk): [move.to.shown_name, f"{move.chat.pk}:{move.to.pk}"]
        for move in plan.movable
    }
    goes_to = {move.chat.remote_id: move.to.remote_id for move in plan.movable}
    assert len(expected) == 2, (
        plan.moves,
        list(
            Chat.objects.filter(portal=portal).values_list(
                "remote_id", "status", "operator_id", "source", "fact_at", "updated_at"
            )
        ),
        names,
    )
    ana, bo = (Chat.objects.get(portal=portal, remote_id=remote) for remote in names)
    laptop(page)
    sign_in(page, server)
    dark(page)

    panel = open_operator(page, me)
    listed = "#drawer .op-chats [data-open-chat]"
    assert sorted(page.locator(listed).evaluate_all("bs => bs.map(b => b.dataset.openChat)")) == (
        sorted([str(ana.pk), str(bo.pk)])
    )
    page.click("#drawer [data-drain-preview]")
    preview = shown(page.locator("#drawer .drain-form"))
    shown_plan = preview.locator("tbody tr").evaluate_all(
        """rows => Object.fromEntries(rows.map(row => [row.dataset.chat, [
             row.querySelector('.plan-to').textContent,
             row.querySelector('input[name=move]').value]]))"""
    )
    assert shown_plan == expected
    assert "Move 2 chats and set Busy" in preview.inner_text()
    screenshot("actions-drain-preview")
    start = last_seq(simulator)
    preview.locator("button[type=submit]").click()

    # SalesIQ took both transfers; nobody has accepted yet: pending, and said so.
    outcome = shown(page.locator("#drawer .drain-outcome"))
    assert "0 of 2 chats moved so far; waiting for" in outcome.inner_text()
    drained = outcome.locator(".action-outcome[data-kind=drain]")
    assert drained.get_attribute("data-state") == "pending"
    assert step_states(outcome) == {
        "Ana Draintest": "transfer:pending",
        "Bo Draintest": "transfer:pending",
        me.shown_name: "operator_status:done",
    }
    screenshot("actions-drain-outcome")
    # The panel follows: Busy is now the current status.
    shown(page.locator("#drawer .status-form button[value=busy][aria-current=true]"))
    assert len(calls_to(simulator, start, "/transfer")) == 2
    for chat_id in names:
        assert (
            conversation(simulator, portal, chat_id)["transfer"]["to_operator"]["id"]
            == (goes_to[chat_id])
        )

    # Ana's new operator accepts: the chat is theirs, and leaves the drained operator's list.
    simulator.transfer(ana.remote_id, outcome="accepted")
    page.wait_for_selector(f"#chat-{ana.pk}[data-operator='{goes_to[ana.remote_id]}']")
    page.wait_for_selector(f"#drawer .op-chats [data-open-chat='{ana.pk}']", state="detached")
    assert page.locator(listed).evaluate_all("bs => bs.map(b => b.dataset.openChat)") == [
        str(bo.pk)
    ]
    assert panel.locator("[data-panel-chat-count]").inner_text() == "1"
    # Bo's declines: the drain is said again, in place, and Bo's chat stays in the list.
    simulator.transfer(bo.remote_id, outcome="rejected")
    corrected = shown(page.locator("#drawer .drain-outcome > .action-outcome[data-state=partial]"))
    assert (
        "1 of 2 chats moved; the transfer of Bo Draintest was declined. "
        f"{me.shown_name} is now Busy." in corrected.inner_text()
    )
    assert step_states(outcome) == {
        "Ana Draintest": "transfer:accepted",
        "Bo Draintest": "transfer:declined",
        me.shown_name: "operator_status:done",
    }
    assert page.locator(listed).evaluate_all("bs => bs.map(b => b.dataset.openChat)") == [
        str(bo.pk)
    ]
    screenshot("actions-drain-corrected-dark")
    assert presence(simulator, portal, me.remote_id) == "busy"
    page.wait_for_selector(f"#op-{me.pk}[data-status=busy]")
    assert not console_errors, console_errors


def test_it_acts_once_however_often_the_button_is_clicked(
    server, simulator, connected_portal, page, screenshot
):
    portal = watched(server, connected_portal(open_chats=2, operators=4))
    chat, _ = a_connected_chat(simulator, portal)
    sign_in(page, server)
    open_chat(page, chat)
    page.click("#drawer [data-action-button=end]")
    form = shown(page.locator("#drawer .end-form"))
    assert "SalesIQ v2 ends a chat without a closing message" in form.inner_text()
    key = form.locator("input[name=idempotency_key]").input_value()
    simulator.set_faults(portal=portal.screen_name, latency_ms=1500)
    start = last_seq(simulator)

    # Two submits in the same instant, then a double click: the first one is under way at
    # once (disabled, "Sending to SalesIQ…"), the others go nowhere.
    page.evaluate(
        "() => { const f = document.querySelector('#drawer .end-form');"
        " f.requestSubmit(); f.requestSubmit(); }"
    )
    assert form.locator("fieldset").evaluate("fieldset => fieldset.disabled")
    assert form.locator("button[type=submit]").inner_text() == "Sending to SalesIQ…"
    screenshot("actions-pending")
    form.locator("button[type=submit]").dblclick(force=True)
    shown(page.locator("#drawer .action-outcome[data-kind=end]"))
    simulator.clear_faults()

    # The form posted again with its key (a retry after a lost answer) acts no more either.
    again = post_from_page(page, f"/live/chats/{chat.pk}/end/", idempotency_key=key)
    action = Action.objects.get(key=key)
    assert again[0] == 200 and f'id="action-{action.pk}"' in again[1]
    assert len(calls_to(simulator, start, f"/conversations/{chat.remote_id}/close")) == 1
    assert Action.objects.filter(kind="end").count() == 1
    assert conversation(simulator, portal, chat.remote_id)["status"] == "closed"


def test_it_shows_a_viewer_no_action_buttons(server, simulator, connected_portal, page):
    portal = watched(server, connected_portal(open_chats=2, operators=4))
    chat, _ = a_connected_chat(simulator, portal)
    sign_in(page, server, role=Role.VIEWER, portals=[portal])

    drawer = open_chat(page, chat)
    assert drawer.locator(".drawer-tools").count() == 0
    assert "Transfer" not in drawer.inner_text() and "End chat" not in drawer.inner_text()
    page.keyboard.press("Escape")
    panel = open_operator(page, own_operator(portal))
    assert panel.locator("form, [data-drain-preview], button[type=submit]").count() == 0

    # And the server refuses anyway.
    status, _ = post_from_page(
        page, f"/live/chats/{chat.pk}/end/", idempotency_key="viewer-tries-1234567890"
    )
    assert status == 403
    assert conversation(simulator, portal, chat.remote_id)["status"] == "connected"
