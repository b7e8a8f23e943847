"""Who else is in a chat, and lines edited or deleted, in Chromium against `manage.py serve`
and the simulator: SalesIQ sends its v2 webhooks (a supervisor joins, an operator is invited
and leaves, a line is edited, another deleted) and the open drawer shows each as it lands."""

from __future__ import annotations

import pytest

from dashboard.models import Chat, ChatMessage, Operator
from tests.support.browser import ARTIFACTS, poll, shown, sign_in, watched
from tests.support.waits import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def console_errors(page):
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    return errors


def said(locator) -> str:
    return " ".join(locator.text_content().split())


def test_the_drawer_shows_who_joined_and_lines_edited_or_deleted_in_salesiq(
    server, simulator, connected_portal, page, console_errors
):
    portal = watched(server, connected_portal(open_chats=0, operators=4))
    state = simulator.state(portal.screen_name)["portals"][0]
    attender, supervisor, invited = state["operators"][:3]
    remote = simulator.create_conversation(portal.screen_name, visitor_name="Léa Fontaine")["id"]
    simulator.pickup(remote, operator_id=attender["id"])
    simulator.visitor_message(remote, "My parcel never came <b>back</b>")
    simulator.operator_message(remote, "Hi Léa, how can I help?")
    poll(portal)
    chat = Chat.objects.get(portal=portal, remote_id=remote)
    sign_in(page, server)

    shown(page.locator(f"#chat-{chat.pk}")).click()
    transcript = page.locator(f"#transcript-{chat.pk} > li[id]")
    wait_for(lambda: transcript.count() == 3, timeout=15, what="the transcript in the drawer")
    people = page.locator(f"#drawer-people-{chat.pk}")
    assert people.is_hidden()  # nobody else is in the chat yet

    # A supervisor joins in SalesIQ, then an operator is invited in.
    simulator.add_participant(remote, supervisor["id"], role="supervisor")
    simulator.add_participant(remote, invited["id"])
    # Named as every screen names these operators.
    names = dict(Operator.objects.filter(portal=portal).values_list("remote_id", "display_name"))
    supervisor_name, invited_name = names[supervisor["id"]], names[invited["id"]]
    expected = f"Also in this chat: {supervisor_name} (supervisor), {invited_name}"
    wait_for(lambda: people.is_visible() and said(people) == expected, timeout=15, what=expected)

    # The invited operator leaves: only the supervisor stays listed.
    simulator.remove_participant(remote, invited["id"])
    alone = f"Also in this chat: {supervisor_name} (supervisor)"
    wait_for(lambda: said(people) == alone, timeout=15, what=alone)

    # The operator edits their line: the new text, marked edited, the old one on hover.
    simulator.edit_message(remote, "3", "Hi Léa, how may I help?")
    # (By id: the simulator may send all three lines in the same millisecond.)
    lines = dict(ChatMessage.objects.filter(chat=chat).values_list("remote_id", "pk"))
    answer = page.locator(f"#msg-{lines['3']}")
    wait_for(lambda: "how may I help" in said(answer), timeout=15, what="the edited line")
    mark = answer.locator("[data-line=edited]")
    assert said(mark) == "edited"
    assert mark.get_attribute("title") == "Before the edit: Hi Léa, how can I help?"
    assert "how can I help" not in said(answer)

    # The visitor's line after their opening question is deleted: it says so, and its text
    # is gone from the page.
    simulator.delete_message(remote, "2")
    parcel = page.locator(f"#msg-{lines['2']}")
    wait_for(lambda: "Message deleted" in said(parcel), timeout=15, what="the deleted line")
    assert "parcel" not in page.locator(f"#transcript-{chat.pk}").inner_html()
    assert transcript.count() == 3  # swapped in place, not added again

    # Opened again, the drawer reads the same from the server.
    page.click("[data-close-drawer]")
    shown(page.locator(f"#chat-{chat.pk}")).click()
    wait_for(lambda: transcript.count() == 3, timeout=15, what="the drawer again")
    assert said(page.locator(f"#drawer-people-{chat.pk}")) == alone
    assert "Message deleted" in said(parcel)
    assert said(answer.locator("[data-line=edited]")) == "edited"

    # How it looks: a laptop and a phone, both themes (screenshots under test-results/).
    ARTIFACTS.mkdir(exist_ok=True)
    for theme in ("light", "dark"):
        for width, height in ((1440, 900), (390, 844)):
            page.set_viewport_size({"width": width, "height": height})
            page.evaluate(f"localStorage.setItem('siq-theme', '{theme}')")
            page.reload()
            page.wait_for_selector("#connection[data-state=open]", timeout=15_000)
            shown(page.locator(f"#chat-{chat.pk}")).click()
            wait_for(lambda: transcript.count() == 3, timeout=15, what="the drawer")
            drawer = page.locator("#drawer")
            box = drawer.bounding_box()
            assert box is not None and box["x"] + box["width"] <= width + 1
            page.screenshot(path=str(ARTIFACTS / f"participants-drawer-{width}-{theme}.png"))
    assert console_errors == []
