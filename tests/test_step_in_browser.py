"""Stepping in, in Chromium against `manage.py serve` and the simulator: message a visitor
(canned line, then SalesIQ's call log and every page's transcript), pick up a waiting chat,
assign one from its row in one click (the choice shown first; a double click sends once; a
choice gone stale refused in words; nobody free opens the picker), a double click on Send
that sends once, and a Viewer who sees none of it and is refused (403). Every test fails on a
console error."""

from __future__ import annotations

import pytest

from dashboard.actions.assign import best_assignee
from dashboard.models import Action, CannedLine, Chat, Operator, Role
from tests.support.browser import ARTIFACTS, shown, sign_in, watched
from tests.support.simulator import a_connected_chat, last_seq

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

POST_FROM_PAGE = """async ([path, fields]) => {
  const csrf = document.querySelector("[name=csrfmiddlewaretoken]").value;
  const body = new URLSearchParams({...fields, csrfmiddlewaretoken: csrf});
  const answer = await fetch(path, {method: "POST", body, headers: {"HX-Request": "true"}});
  return [answer.status, await answer.text()];
}"""


@pytest.fixture
def console_errors(page):
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    return errors


def open_chat(page, chat: Chat):
    page.click(f"#chat-{chat.pk} .visitor-link")
    drawer = page.locator(f"#drawer[data-chat='{chat.pk}']")
    drawer.wait_for(timeout=10_000)
    return drawer


def calls_to(simulator, since: int, suffix: str) -> list[dict]:
    return [c for c in simulator.calls(since) if c["path"].endswith(suffix)]


def conversation(simulator, portal, remote_id: str) -> dict:
    state = simulator.state(portal.screen_name)["portals"][0]
    return next(c for c in state["conversations"] if c["id"] == remote_id)


def me_of(portal) -> Operator:
    """The simulator's admin user is the portal's connected user, and an operator too."""
    return Operator.objects.get(portal=portal, email=f"admin@{portal.screen_name}.example")


def a_waiting_chat_on_the_page(page, simulator, portal, department_id: str) -> Chat:
    """A visitor arrives in SalesIQ now; its webhook puts the row on the page."""
    made = simulator.create_conversation(
        portal.screen_name, department_id=department_id, visitor_name="Wanda Waits"
    )
    page.wait_for_function(
        "id => !!document.querySelector(`#chats-body tr[data-status=waiting] .row-assign`)"
        " && [...document.querySelectorAll('#chats-body tr')].some(r => r.dataset.visitor === id)",
        arg="Wanda Waits",
        timeout=15_000,
    )
    return Chat.objects.get(portal=portal, remote_id=made["id"])


def test_it_messages_a_visitor_with_a_canned_line_and_every_page_sees_it(
    server, simulator, connected_portal, browser, page, console_errors, screenshot
):
    portal = watched(server, connected_portal(open_chats=2, operators=4))
    CannedLine.objects.create(portal=portal, text="Thanks for waiting — I'm on it.", position=0)
    chat, _ = a_connected_chat(simulator, portal)
    page.set_viewport_size({"width": 1440, "height": 900})
    sign_in(page, server)
    # A Supervisor of the portal watches the same chat from another browser.
    watching = browser.new_context(viewport={"width": 390, "height": 844})
    other = watching.new_page()
    other_errors: list[str] = []
    other.on("console", lambda m: other_errors.append(m.text) if m.type == "error" else None)
    sign_in(other, server, role=Role.SUPERVISOR, portals=[portal])
    open_chat(other, chat)

    drawer = open_chat(page, chat)
    form = shown(drawer.locator(".message-form"))
    assert "sends as" in form.inner_text() and "connected user" in form.inner_text()
    form.locator("[data-canned]").click()
    assert form.locator("textarea[name=text]").input_value() == "Thanks for waiting — I'm on it."
    screenshot("step-in-message-form")
    start = last_seq(simulator)
    form.locator("button[data-step-in=message]").click()

    outcome = shown(drawer.locator(".action-outcome[data-kind=message]"))
    assert outcome.get_attribute("data-state") == "done", outcome.inner_text()
    # It reached SalesIQ once, as the page's Send Message call, with the line.
    (call,) = calls_to(simulator, start, f"/conversations/{chat.remote_id}/messages")
    assert call["method"] == "POST"
    assert call["json"] == {"text": "Thanks for waiting — I'm on it."}
    assert conversation(simulator, portal, chat.remote_id)["last_message"]["text"] == (
        "Thanks for waiting — I'm on it."
    )
    # The line is in the transcript on both pages (SalesIQ's webhook brought it).
    line = f'#transcript-{chat.pk} li:has-text("Thanks for waiting — I\'m on it.")'
    page.locator(line).wait_for(timeout=15_000)
    other.locator(line).wait_for(timeout=15_000)
    assert page.locator(line).count() == 1 and other.locator(line).count() == 1
    assert form.locator("textarea[name=text]").input_value() == ""
    screenshot("step-in-message-sent")
    # The phone-sized page, in the dark theme, for a person to look at.
    other.evaluate("document.documentElement.setAttribute('data-theme', 'dark')")
    other.screenshot(path=str(ARTIFACTS / "step-in-390-dark.png"), full_page=True)
    assert not console_errors, console_errors
    assert not other_errors, other_errors
    watching.close()


def test_it_picks_up_a_waiting_chat(
    server, simulator, connected_portal, page, console_errors, screenshot
):
    portal = watched(server, connected_portal(open_chats=1, operators=4))
    me = me_of(portal)
    sign_in(page, server)
    chat = a_waiting_chat_on_the_page(page, simulator, portal, me.department_ids[0])

    drawer = open_chat(page, chat)
    button = shown(drawer.locator("button[data-step-in=pickup]"))
    assert "connected user" in button.get_attribute("title")
    start = last_seq(simulator)
    button.click()

    outcome = shown(drawer.locator(".action-outcome[data-kind=pickup]"))
    assert outcome.get_attribute("data-state") in ("done",), outcome.inner_text()
    (call,) = calls_to(simulator, start, f"/conversations/{chat.remote_id}/pickup")
    assert call["method"] == "PUT"
    now = conversation(simulator, portal, chat.remote_id)
    assert now["status"] == "connected" and now["attender_id"] == me.remote_id
    page.wait_for_selector(
        f"#chat-{chat.pk}[data-status=connected][data-operator='{me.remote_id}']", timeout=15_000
    )
    screenshot("step-in-picked-up")
    assert not console_errors, console_errors


def everyone_available(simulator, page, portal, department: str) -> None:
    """Every operator of ``department`` online in SalesIQ, and the page showing it."""
    for operator in Operator.objects.filter(portal=portal):
        if department in operator.department_ids:
            simulator.set_operator_status(operator.remote_id, "online")
    page.wait_for_function(
        "d => [...document.querySelectorAll('#operators-body tr')]"
        ".filter(r => r.dataset.departments.split(' ').includes(d))"
        ".every(r => r.dataset.status === 'available')",
        arg=department,
        timeout=15_000,
    )


def labelled(page, chat: Chat, prefix: str):
    """The waiting row's assign button, once its label starts with ``prefix``."""
    button = page.locator(f"#chat-{chat.pk} .row-assign")
    page.wait_for_function(
        "([id, prefix]) => { const b = document.querySelector(`#chat-${id} .row-assign`);"
        " return !!b && !b.hidden && b.textContent.startsWith(prefix); }",
        arg=[chat.pk, prefix],
        timeout=15_000,
    )
    return button


def held_pushes(page) -> dict:
    """The page's websocket, relayed through the test: while ``held["on"]``, what the server
    pushes waits here (the page keeps showing what it showed), then arrives in order on
    ``release``. Set before the page connects."""
    held: dict = {"on": False, "queue": [], "pages": []}

    def relay(ws):
        server = ws.connect_to_server()
        held["pages"].append(ws)

        def down(message):
            if held["on"]:
                held["queue"].append((ws, message))
            else:
                ws.send(message)

        server.on_message(down)
        ws.on_message(lambda message: server.send(message))

    def release():
        held["on"] = False
        for ws, message in held.pop("queue"):
            ws.send(message)
        held["queue"] = []

    held["release"] = release
    page.route_web_socket("**/ws/live/**", relay)
    return held


def test_it_assigns_a_waiting_chat_from_its_row_in_one_click_and_once(
    server, simulator, connected_portal, page, console_errors, screenshot
):
    portal = watched(server, connected_portal(open_chats=1, operators=6))
    department = me_of(portal).department_ids[0]
    page.set_viewport_size({"width": 1440, "height": 900})
    sign_in(page, server)
    everyone_available(simulator, page, portal, department)
    chat = a_waiting_chat_on_the_page(page, simulator, portal, department)

    # The choice is shown on the row before the click, with why, and it is the rule's.
    button = labelled(page, chat, "Assign to ")
    name = button.inner_text().removeprefix("Assign to ")
    assert name == best_assignee(chat).operator.shown_name
    title = button.get_attribute("title")
    assert f"{name}: available, in this department" in title and "One click sends" in title
    screenshot("step-in-assign-row")
    # SalesIQ slow to answer: the second click of a double click lands while the first is out.
    simulator.set_faults(portal=portal.screen_name, latency_ms=1500)
    start = last_seq(simulator)
    button.dblclick()

    toast = shown(page.locator(".toast"))
    simulator.clear_faults()
    assert toast.locator(".toast-title").inner_text().startswith("Assign Wanda Waits")
    assert toast.get_attribute("data-state") in ("pending", "done", "accepted"), toast.inner_text()
    # One transfer reached SalesIQ, to the operator the row named, in the chat's department.
    (call,) = calls_to(simulator, start, f"/conversations/{chat.remote_id}/transfer")
    target = Operator.objects.get(portal=portal, remote_id=call["json"]["operator_id"])
    assert target.shown_name == name and call["json"]["department_id"] == department
    assert conversation(simulator, portal, chat.remote_id)["transfer"]["status"] == "initiated"
    (action,) = Action.objects.filter(kind="transfer")
    assert action.params["assign"] is True and action.params["operator_id"] == target.remote_id
    assert page.locator("#drawer").count() == 0  # one click, no drawer
    # While the transfer is under way the row cannot send another.
    page.wait_for_function(
        "id => { const b = document.querySelector(`#chat-${id} .row-assign`);"
        " return !!b && b.disabled && /^(Sent to |Transfer under way)/.test(b.textContent); }",
        arg=chat.pk,
        timeout=15_000,
    )
    screenshot("step-in-assign-sent")
    assert not console_errors, console_errors


def test_a_choice_gone_stale_is_refused_in_words_and_nothing_is_sent(
    server, simulator, connected_portal, page, console_errors, screenshot
):
    portal = watched(server, connected_portal(open_chats=1, operators=6))
    department = me_of(portal).department_ids[0]
    held = held_pushes(page)
    page.set_viewport_size({"width": 1440, "height": 900})
    sign_in(page, server)
    everyone_available(simulator, page, portal, department)
    chat = a_waiting_chat_on_the_page(page, simulator, portal, department)
    button = labelled(page, chat, "Assign to ")
    label = button.inner_text()
    ana = Operator.objects.get(portal=portal, remote_id=button.get_attribute("data-assign-to"))

    # Ana's last seat goes in SalesIQ; the server knows, the page has not heard yet.
    held["on"] = True
    seats = Chat.objects.filter(
        portal=portal, status__in=("waiting", "connected"), operator_id=ana.remote_id
    ).count()
    simulator.update_operator(ana.remote_id, max_chats=seats)
    for _ in range(150):
        if Operator.objects.get(pk=ana.pk).max_chats == seats:
            break
        page.wait_for_timeout(100)
    assert Operator.objects.get(pk=ana.pk).max_chats == seats
    assert button.inner_text() == label
    start = last_seq(simulator)
    button.click()

    toast = shown(page.locator(".toast[data-state=refused]"))
    assert (
        f"{ana.shown_name} has no free seat any more: choose again. Nothing was sent to SalesIQ."
        in toast.inner_text()
    )
    screenshot("step-in-assign-stale")
    assert calls_to(simulator, start, "/transfer") == []
    assert conversation(simulator, portal, chat.remote_id)["status"] == "waiting"
    # Once the page hears, the row offers someone else (or the picker), never Ana again.
    held["release"]()
    page.wait_for_function(
        "([id, label]) => { const b = document.querySelector(`#chat-${id} .row-assign`);"
        " return !!b && b.textContent !== label && !b.disabled; }",
        arg=[chat.pk, label],
        timeout=15_000,
    )
    assert not console_errors, console_errors


def test_with_nobody_free_the_row_opens_the_picker(
    server, simulator, connected_portal, page, console_errors
):
    portal = watched(server, connected_portal(open_chats=1, operators=4))
    department = me_of(portal).department_ids[0]
    sign_in(page, server)
    for operator in Operator.objects.filter(portal=portal):
        if department in operator.department_ids:
            simulator.set_operator_status(operator.remote_id, "busy")
    chat = a_waiting_chat_on_the_page(page, simulator, portal, department)
    page.wait_for_function(
        "d => [...document.querySelectorAll('#operators-body tr')]"
        ".filter(r => r.dataset.departments.split(' ').includes(d))"
        ".every(r => r.dataset.status === 'busy')",
        arg=department,
        timeout=15_000,
    )
    button = labelled(page, chat, "Assign…")
    assert best_assignee(chat) is None
    start = last_seq(simulator)
    button.click()

    drawer = page.locator(f"#drawer[data-chat='{chat.pk}']")
    shown(drawer.locator(".transfer-form"))
    assert drawer.locator("button[data-assign-best]").count() == 0
    assert [c for c in simulator.calls(start) if c["method"] != "GET"] == []
    assert not console_errors, console_errors


def test_a_double_click_sends_the_message_once(
    server, simulator, connected_portal, page, console_errors
):
    portal = watched(server, connected_portal(open_chats=2, operators=4))
    chat, _ = a_connected_chat(simulator, portal)
    sign_in(page, server)
    drawer = open_chat(page, chat)
    form = shown(drawer.locator(".message-form"))
    form.locator("textarea[name=text]").fill("Only once, please")
    key = form.locator("input[name=idempotency_key]").input_value()
    simulator.set_faults(portal=portal.screen_name, latency_ms=1500)
    start = last_seq(simulator)

    form.locator("button[data-step-in=message]").dblclick()
    page.evaluate("() => document.querySelector('#drawer .message-form').requestSubmit()")
    shown(drawer.locator(".action-outcome[data-kind=message]"))
    simulator.clear_faults()
    # The same key posted again (a retry after a lost answer) sends nothing more either.
    status, text = page.evaluate(
        POST_FROM_PAGE,
        [f"/live/chats/{chat.pk}/message/", {"idempotency_key": key, "text": "Only once, please"}],
    )
    assert status == 200 and f'id="action-{Action.objects.get(key=key).pk}"' in text
    assert len(calls_to(simulator, start, f"/conversations/{chat.remote_id}/messages")) == 1
    assert Action.objects.filter(kind="message").count() == 1
    assert not console_errors, console_errors


def test_a_viewer_sees_no_step_in_buttons_and_is_refused(
    server, simulator, connected_portal, page, console_errors
):
    portal = watched(server, connected_portal(open_chats=2, operators=4))
    chat, _ = a_connected_chat(simulator, portal)
    sign_in(page, server, role=Role.VIEWER, portals=[portal])
    waiting = a_waiting_chat_on_the_page(page, simulator, portal, me_of(portal).department_ids[0])

    assert not page.locator(f"#chat-{waiting.pk} .row-assign").is_visible()
    drawer = open_chat(page, waiting)
    assert drawer.locator(".message-form, [data-step-in], [data-assign-best]").count() == 0
    assert "Pick up" not in drawer.inner_text() and "Message the visitor" not in drawer.inner_text()
    start = last_seq(simulator)
    for path, fields in (
        (f"/live/chats/{chat.pk}/message/", {"text": "Hi"}),
        (f"/live/chats/{waiting.pk}/pickup/", {}),
        (f"/live/chats/{waiting.pk}/assign/", {"operator_id": chat.operator_id}),
    ):
        status, _ = page.evaluate(
            POST_FROM_PAGE, [path, {"idempotency_key": "viewer-tries-1234567890", **fields}]
        )
        assert status == 403, path
    assert [c for c in simulator.calls(start) if c["method"] != "GET"] == []
    assert conversation(simulator, portal, waiting.remote_id)["status"] == "waiting"
    # The refused posts log a 403 in the console; nothing else may.
    assert all("403" in error for error in console_errors), console_errors
