"""The live page in Chromium: sorting, filtering, rows placed by live messages, the key
figures, the drawer, freshness, themes, the wallboard, and a real websocket end to end.

The page is served by `manage.py serve --no-worker` in a child process on the test
database (a file), so it speaks websockets. Its channel layer lives in that child: the
end-to-end test drives changes into it the way SalesIQ does, by a signed webhook from the
simulator. Tests of the browser's own behaviour hand messages to the htmx ws extension's
socket (the code path a real message takes), rendered by dashboard.realtime.publish.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.template.loader import render_to_string
from django.utils import timezone

from dashboard import selectors
from dashboard.models import Chat, ChatMessage
from dashboard.models import Operator as Operator_
from dashboard.realtime import render
from dashboard.state import apply
from dashboard.templatetags.supervisor import row_cache
from siq_integration import connecting
from siq_integration.client import SalesIQClient
from siq_integration.normalised import (
    ChatStatus,
    Message,
    Operator,
    OperatorStatus,
    OperatorSync,
    SenderType,
)
from tests.factories import (
    make_portal,
    owner,
)
from tests.support.browser import console_errors, no_push, open_live, order, row_id, send
from tests.support.live import NASTY, chat, disconnected, fill, staff, world
from tests.support.servers import (
    ws_server,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

__all__ = ["console_errors", "no_push", "owner", "ws_server"]  # fixtures from tests/support


def shown(page, table: str = "chats") -> list[str]:
    return page.evaluate(
        f"[...document.querySelectorAll('#{table}-body > tr:not([hidden])')].map(r => r.id)"
    )


def kpi(page, name: str) -> str:
    return page.inner_text(f"[data-kpi='{name}']")


def test_it_puts_the_longest_wait_first_and_sorts_by_a_column(ws_server, page, owner, screenshot):
    world(make_portal())
    open_live(page, ws_server, owner)

    expected = [row_id(r) for r in ("w15", "w10", "w5", "c30", "c20")]
    assert order(page) == expected
    assert page.evaluate("SupervisorLive.order('chats')") == expected
    assert page.get_attribute("th[data-sort='wait']", "aria-sort") == "descending"
    screenshot("live-light")

    page.click("th[data-sort='visitor'] .sort")
    assert order(page) == [row_id(r) for r in ("w5", "w10", "w15", "c20", "c30")]
    assert page.get_attribute("th[data-sort='visitor']", "aria-sort") == "ascending"
    page.click("th[data-sort='visitor'] .sort")
    assert order(page) == [row_id(r) for r in ("c30", "c20", "w15", "w10", "w5")]
    assert "sort=visitor" in page.url and "dir=reverse" in page.url

    page.reload()  # the sort is in the address, so it survives a reload
    page.wait_for_function("window.SupervisorLive && SupervisorLive.stats.messages > 0")
    assert order(page) == [row_id(r) for r in ("c30", "c20", "w15", "w10", "w5")]

    # Operators: who needs attention first (Ben is away with a chat), then available, busy or
    # away, offline.
    assert operator_names(page) == ["Ben Okafor", "Asha Rao", "Chloé Karimi"]


def operator_names(page) -> list[str]:
    return page.evaluate(
        "[...document.querySelectorAll('#operators-body > tr')].map(r => r.dataset.name)"
    )


def test_it_puts_operators_who_need_attention_first(ws_server, page, owner, screenshot):
    portal = make_portal()
    asha = ("o1", "Asha Rao")
    talking = [
        *(chat(f"a{n}", status=ChatStatus.CONNECTED, operator=asha) for n in range(5)),
        chat("b1", status=ChatStatus.CONNECTED, operator=("o2", "Ben Okafor")),
        chat("c1", status=ChatStatus.CONNECTED, operator=("o3", "Chloé Karimi")),
        chat("w1", minutes=2),
    ]
    fill(portal, talking)
    now = timezone.now()

    def op(remote: str, name: str, status: OperatorStatus, seats: int) -> Operator:
        return Operator(remote, name, "", status, department_ids=("d1",), max_chats=seats)

    everyone = [
        op("o1", "Asha Rao", OperatorStatus.AVAILABLE, 4),
        op("o2", "Ben Okafor", OperatorStatus.AWAY, 3),
        op("o3", "Chloé Karimi", OperatorStatus.OFFLINE, 5),
        op("o4", "Dee Park", OperatorStatus.AVAILABLE, 4),
        op("o5", "Eli Moss", OperatorStatus.OFFLINE, 4),
    ]
    apply.apply_operators(
        portal, OperatorSync(operators=everyone, sync_time=None, complete=True), taken_at=now
    )
    for remote, minutes in (("o1", 40), ("o2", 10), ("o3", 30)):
        Operator_.objects.filter(portal=portal, remote_id=remote).update(
            status_since=now - timedelta(minutes=minutes)
        )
    page.set_viewport_size({"width": 1440, "height": 900})
    open_live(page, ws_server, owner)

    # Over capacity (available for 40 min), offline with a chat for 30, away with one for 10;
    # then the rest: available, busy or away, offline.
    assert operator_names(page) == [
        "Asha Rao",
        "Chloé Karimi",
        "Ben Okafor",
        "Dee Park",
        "Eli Moss",
    ]
    status = page.locator("#operators-table th.o-status")
    assert status.get_attribute("aria-sort") == "other"
    assert status.get_attribute("title").startswith("Needs attention first: over capacity")
    assert "osort" not in page.url
    screenshot("live-operators-attention")

    # Available first, a click away; the address keeps it, and another click goes back.
    page.click("#operators-table th.o-status .sort")
    assert operator_names(page) == [
        "Asha Rao",
        "Dee Park",
        "Ben Okafor",
        "Chloé Karimi",
        "Eli Moss",
    ]
    assert status.get_attribute("title").startswith("Available first")
    assert "osort=status" in page.url
    page.reload()
    page.wait_for_function("window.SupervisorLive && SupervisorLive.stats.messages > 0")
    assert operator_names(page)[:2] == ["Asha Rao", "Dee Park"]
    page.click("#operators-table th.o-status .sort")
    assert operator_names(page)[:2] == ["Asha Rao", "Chloé Karimi"]
    assert "osort" not in page.url

    # The other sorts are where they were; an old address still works.
    page.click("#operators-table th.o-name .sort")
    assert operator_names(page) == [
        "Asha Rao",
        "Ben Okafor",
        "Chloé Karimi",
        "Dee Park",
        "Eli Moss",
    ]
    page.goto(f"{ws_server}/?osort=load")
    page.wait_for_function("window.SupervisorLive && SupervisorLive.stats.messages > 0")
    assert operator_names(page)[0] == "Asha Rao"  # 5 of 4 seats

    # Back within capacity: Asha leaves the front as the change arrives.
    page.goto(f"{ws_server}/")
    page.wait_for_function("window.SupervisorLive && SupervisorLive.stats.messages > 0")
    ended = chat("a0", status=ChatStatus.ENDED, operator=asha)
    apply.apply_conversation(portal, ended, fact_at=timezone.now(), source="webhook")
    gone = Chat.objects.get(portal=portal, remote_id="a0")
    row = Operator_.objects.get(portal=portal, remote_id="o1")
    send(
        page,
        render.render_changes(
            apply.Changes(portal.pk, chats={gone.pk}, operators={row.pk}, meta=True)
        ),
    )
    page.wait_for_function(
        f"document.getElementById('op-{row.pk}').dataset.attention === '0'", timeout=5_000
    )
    assert operator_names(page) == [
        "Chloé Karimi",
        "Ben Okafor",
        "Asha Rao",
        "Dee Park",
        "Eli Moss",
    ]


def test_it_filters_and_counts_only_what_is_shown(ws_server, page, owner):
    portal = make_portal()
    world(portal)
    open_live(page, ws_server, owner)
    assert kpi(page, "open") == "5"
    assert kpi(page, "waiting") == "3"
    assert re.fullmatch(r"15m \d\ds", kpi(page, "longest-wait"))
    assert [kpi(page, k) for k in ("available", "busy", "offline")] == ["1", "1", "1"]
    # Open chats over the seats of available operators: Asha's 4 (Ben is away, Chloé offline).
    assert kpi(page, "utilisation") == "125%"

    page.select_option("select[data-filter='department']", f"{portal.pk}:d2")
    assert shown(page) == [row_id("w10"), row_id("c20")]
    assert kpi(page, "open") == "2" and kpi(page, "waiting") == "1"
    assert re.fullmatch(r"10m \d\ds", kpi(page, "longest-wait"))
    # Operators of that department only: Ben (away counts as busy) and Chloé (offline).
    assert [kpi(page, k) for k in ("available", "busy", "offline")] == ["0", "1", "1"]
    assert page.inner_text("[data-count='chats']") == "2 of 5"
    assert kpi(page, "utilisation") == "\u2013" and kpi(page, "capacity") == "nobody available"

    page.select_option("select[data-filter='status']", "waiting")
    assert shown(page) == [row_id("w10")]
    page.select_option("select[data-filter='department']", "")
    assert shown(page) == [row_id(r) for r in ("w15", "w10", "w5")]
    page.select_option("select[data-filter='status']", "awaiting")
    assert shown(page) == [row_id("c30"), row_id("c20")]  # the visitor wrote last in both

    page.select_option("select[data-filter='status']", "")
    page.select_option("select[data-filter='operator']", f"{portal.pk}:o1")
    assert shown(page) == [row_id("c30")]
    page.click("[data-clear-filters]")
    assert len(shown(page)) == 5
    page.select_option("select[data-filter='presence']", "online")
    assert len(shown(page, "operators")) == 2


def test_it_counts_operators_as_the_server_says(ws_server, page, owner, monkeypatch):
    """The operator figures are sums of what each row shown says it counts as (the server's
    selectors.operator_figure): a snapshot rendered with another definition (away as
    offline) changes the tiles, with no rule of the page's own about statuses."""
    portal = make_portal()
    world(portal)
    open_live(page, ws_server, owner)
    assert [kpi(page, k) for k in ("available", "busy", "offline")] == ["1", "1", "1"]

    away_as_offline = {**selectors.OPERATOR_FIGURES, OperatorStatus.AWAY: "offline"}
    monkeypatch.setattr(selectors, "OPERATOR_FIGURES", away_as_offline)
    row_cache.clear()  # rows rendered under the old definition
    send(
        page,
        render_to_string(
            "live/parts.html#snapshot", {**selectors.live_context([portal]), "oob": True}
        ),
    )
    assert [kpi(page, k) for k in ("available", "busy", "offline")] == ["1", "0", "2"]
    assert kpi(page, "utilisation") == "125%"  # Asha's 4 seats, as before


def test_it_places_rows_that_messages_add_change_and_delete(ws_server, page, owner):
    portal = make_portal()
    world(portal)
    open_live(page, ws_server, owner)
    sorts = page.evaluate("SupervisorLive.stats.fullSorts")

    def push(*conversations, ended=()):
        pks = set()
        for conversation in conversations:
            apply.apply_conversation(portal, conversation, fact_at=timezone.now(), source="webhook")
            pks.add(Chat.objects.get(portal=portal, remote_id=conversation.id).pk)
        send(page, render.render_changes(apply.Changes(portal.pk, chats=pks, meta=True)))

    # A chat the page has never seen, waiting 12 minutes: between 15 and 10.
    push(chat("w12", visitor="New", minutes=12, department=("d2", "Support")))
    assert order(page)[:4] == [row_id(r) for r in ("w15", "w12", "w10", "w5")]
    assert kpi(page, "open") == "6" and kpi(page, "waiting") == "4"

    # One waiting 40 minutes goes first, and the longest wait says so.
    push(chat("w40", visitor="Old", minutes=40))
    assert order(page)[0] == row_id("w40")
    assert re.fullmatch(r"40m \d\ds", kpi(page, "longest-wait"))

    # Picked up: it leaves the waiting chats for its place among the connected ones.
    push(chat("w15", status=ChatStatus.CONNECTED, visitor="Cy", minutes=15,
              operator=("o1", "Asha Rao")))  # fmt: skip
    assert order(page) == [row_id(r) for r in ("w40", "w12", "w10", "w5", "c30", "c20", "w15")]
    assert kpi(page, "waiting") == "4"

    # Ended: the row goes, and the figures with it.
    push(chat("w40", status=ChatStatus.ENDED, visitor="Old", minutes=40))
    assert row_id("w40") not in order(page)
    assert kpi(page, "open") == "6" and kpi(page, "waiting") == "3"
    assert re.fullmatch(r"12m \d\ds", kpi(page, "longest-wait"))

    # A filter applies to rows that arrive after it was set.
    page.select_option("select[data-filter='department']", f"{portal.pk}:d1")
    push(chat("w7", visitor="Filtered out", minutes=7, department=("d2", "Support")))
    assert page.is_hidden(f"#{row_id('w7')}")
    assert row_id("w7") in order(page)

    # None of this re-sorted the table: each row was put in its place.
    assert page.evaluate("SupervisorLive.stats.fullSorts") == sorts
    assert page.evaluate("SupervisorLive.stats.maxMs") < 500


def test_it_opens_the_drawer_and_keeps_it_current(ws_server, page, owner, screenshot):
    portal = make_portal()
    fill(portal, [chat("c1", status=ChatStatus.CONNECTED, visitor=NASTY, minutes=8,
                       operator=("o1", "Asha Rao"), last="Where is my order?")])  # fmt: skip
    item = Chat.objects.get(remote_id="c1")
    apply.apply_transcript(
        item,
        [Message("m1", "c1", SenderType.VISITOR, "Where is my order?", timezone.now(),
                 sender_name="Visitor")],
        fetched_at=timezone.now(),
    )  # fmt: skip
    open_live(page, ws_server, owner)

    page.click(f"#chat-{item.pk} .visitor-link")
    drawer = page.wait_for_selector("#drawer")
    assert page.inner_text(".drawer-head h2") == NASTY  # the visitor's text, as text
    assert page.inner_text(".drawer-kicker") == NASTY
    assert "Where is my order?" in drawer.inner_text()
    assert page.evaluate("document.querySelector('#drawer script')") is None

    # A new line arrives while the drawer is open.
    line = ChatMessage.objects.create(
        chat=item, remote_id="m2", sender_type="operator", sender_name="Asha Rao",
        text="It ships today.", sent_at=timezone.now(),
    )  # fmt: skip
    send(page, render.render_changes(apply.Changes(portal.pk, messages={line.pk})))
    assert page.inner_text(f"#transcript-{item.pk} > li:last-child p") == "It ships today."

    # A snapshot (every reconnect sends one) leaves the drawer open.
    snapshot = render_to_string(
        "live/parts.html#snapshot", {**selectors.live_context([portal]), "oob": True}
    )
    send(page, snapshot)
    assert page.is_visible("#drawer")
    assert "selected" in page.get_attribute(f"#chat-{item.pk}", "class")
    screenshot("live-drawer")

    page.keyboard.press("Escape")
    assert page.query_selector("#drawer") is None
    page.click(f"#chat-{item.pk}")
    page.wait_for_selector("#drawer")
    page.click(".live-title")  # outside the drawer (the key figures sit under it now)
    assert page.query_selector("#drawer") is None
    page.click(f"#chat-{item.pk}")
    page.wait_for_selector("#drawer")
    page.click("[data-close-drawer]")
    assert page.query_selector("#drawer") is None


def transcript(page, pk: int) -> list[str]:
    return page.evaluate(
        f"[...document.querySelectorAll('#transcript-{pk} > li[id]')].map(li => li.id)"
    )


def lines(item: Chat, *texts: str, start: int = 0) -> list[ChatMessage]:
    at = timezone.now() - timedelta(minutes=5)
    return [
        ChatMessage.objects.create(
            chat=item,
            remote_id=f"m{start + i}",
            sender_type="visitor",
            sender_name="Ada",
            text=text,
            sent_at=at + timedelta(seconds=start + i),
        )
        for i, text in enumerate(texts)
    ]


def test_it_shows_each_transcript_line_once_when_the_push_lands_after_the_drawer(
    ws_server, page, owner
):
    # Opening a drawer loads the transcript and publishes its lines; the drawer shows them
    # too. When the push lands after the drawer is shown, its lines were appended again.
    portal = make_portal()
    fill(portal, [chat("c1", status=ChatStatus.CONNECTED, operator=("o1", "Asha Rao"))])
    item = Chat.objects.get(remote_id="c1")
    Chat.objects.filter(pk=item.pk).update(transcript_loaded_at=timezone.now())
    first = lines(item, "Hello", "Is anyone there?", "My order is late")
    open_live(page, ws_server, owner)
    page.click(f"#chat-{item.pk} .visitor-link")
    page.wait_for_selector(f"#transcript-{item.pk}")
    ids = [f"msg-{line.pk}" for line in first]
    assert transcript(page, item.pk) == ids

    send(page, render.render_changes(apply.Changes(portal.pk, messages={m.pk for m in first})))
    (newer,) = lines(item, "Hello again", start=3)
    send(page, render.render_changes(apply.Changes(portal.pk, messages={newer.pk})))
    page.wait_for_selector(f"#msg-{newer.pk}")
    assert transcript(page, item.pk) == [*ids, f"msg-{newer.pk}"]
    send(page, render.render_changes(apply.Changes(portal.pk, messages={newer.pk})))
    assert transcript(page, item.pk) == [*ids, f"msg-{newer.pk}"]


def test_it_keeps_lines_pushed_while_the_drawer_loads(ws_server, page, owner):
    portal = make_portal()
    fill(portal, [chat("c1", status=ChatStatus.CONNECTED, operator=("o1", "Asha Rao"))])
    item = Chat.objects.get(remote_id="c1")
    Chat.objects.filter(pk=item.pk).update(transcript_loaded_at=timezone.now())
    first = lines(item, "Hello", "Is anyone there?")
    open_live(page, ws_server, owner)
    held = []
    page.route(f"**/live/chats/{item.pk}/", lambda route: held.append(route))
    page.click(f"#chat-{item.pk} .visitor-link")
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    (route,) = held
    answer = route.fetch()  # the drawer as the server rendered it: the first two lines

    # Before the drawer is on the page: the same lines again (the drawer's own load published
    # them), and a line written after the drawer was rendered.
    (later,) = lines(item, "Still waiting", start=2)
    everything = {line.pk for line in [*first, later]}
    send(page, render.render_changes(apply.Changes(portal.pk, messages=everything)))
    route.fulfill(response=answer)
    page.wait_for_selector(f"#msg-{later.pk}", timeout=5_000)
    assert transcript(page, item.pk) == [f"msg-{line.pk}" for line in [*first, later]]


IN_VIEW = """(selector) => {
  const el = document.querySelector(selector), box = el.getBoundingClientRect();
  const view = document.querySelector("#drawer [data-drawer-scroll]").getBoundingClientRect();
  return box.height > 0 && box.top >= view.top && box.bottom <= view.bottom;
}"""


def test_it_opens_a_chat_at_its_head_and_follows_new_lines_only_from_the_end(
    ws_server, page, owner, screenshot
):
    portal = make_portal()
    fill(portal, [chat("c1", status=ChatStatus.CONNECTED, operator=("o1", "Asha Rao"))])
    item = Chat.objects.get(remote_id="c1")
    Chat.objects.filter(pk=item.pk).update(
        transcript_loaded_at=timezone.now(), question="Where is order 1042?"
    )
    talk = lines(item, *(f"Line {n} of a long talk about an order" for n in range(40)))
    open_live(page, ws_server, owner)
    page.click(f"#chat-{item.pk} .visitor-link")
    page.wait_for_selector(f"#transcript-{item.pk}")

    # At the head: status, operator, department and the question, all in view.
    assert page.evaluate("document.querySelector('#drawer [data-drawer-scroll]').scrollTop") == 0
    assert page.evaluate(IN_VIEW, "#drawer .drawer-status")
    status = page.inner_text("#drawer .drawer-status")
    assert "Connected" in status and "Asha Rao" in status and "Sales" in status
    assert page.evaluate(IN_VIEW, "#drawer .facts")
    assert "Where is order 1042?" in page.inner_text("#drawer .facts")
    assert not page.evaluate(IN_VIEW, f"#msg-{talk[-1].pk}")
    screenshot("live-drawer-head")

    # Not at the end: a new line does not move the reader; the way to it is offered.
    (newer,) = lines(item, "A new line", start=40)
    send(page, render.render_changes(apply.Changes(portal.pk, messages={newer.pk})))
    page.wait_for_selector(f"#msg-{newer.pk}", state="attached")
    assert page.evaluate("document.querySelector('#drawer [data-drawer-scroll]').scrollTop") == 0
    latest = page.locator("#drawer [data-jump-latest]")
    assert latest.is_visible() and latest.inner_text().startswith("Latest message")

    latest.click()
    page.wait_for_function(f"({IN_VIEW})('#msg-{newer.pk}')")
    assert latest.is_hidden()
    # At the end: the next line is followed.
    (last,) = lines(item, "And another", start=41)
    send(page, render.render_changes(apply.Changes(portal.pk, messages={last.pk})))
    page.wait_for_function(f"({IN_VIEW})('#msg-{last.pk}')")
    assert latest.is_hidden()


PICKS = """[...document.querySelectorAll('#drawer .pick[data-departments]')].map(p =>
  [p.querySelector('.pick-name').textContent, p.dataset.suggested === '1',
   p.dataset.inDepartment === '1', p.querySelector('input').checked])"""


def test_it_reranks_the_transfer_picker_for_the_department_picked(
    ws_server, page, owner, screenshot
):
    portal = make_portal()
    fill(portal, [chat("c1", status=ChatStatus.CONNECTED, operator=("o1", "Asha Rao"))])
    staff(
        portal,
        ("o1", "Asha Rao", OperatorStatus.AVAILABLE, ("d1",), 4),
        ("o2", "Ben Okafor", OperatorStatus.AVAILABLE, ("d2",), 4),
        ("o3", "Chloé Karimi", OperatorStatus.AVAILABLE, ("d1",), 4),
        ("o4", "Dev Iyer", OperatorStatus.BUSY, ("d1", "d2"), 4),
        ("o5", "Eli Moss", OperatorStatus.OFFLINE, ("d2",), 4),
        ("o6", "Fay Lund", OperatorStatus.AVAILABLE, ("d2",), 4),
    )
    item = Chat.objects.get(remote_id="c1")
    Chat.objects.filter(pk=item.pk).update(transcript_loaded_at=timezone.now())
    page.set_viewport_size({"width": 1440, "height": 900})
    open_live(page, ws_server, owner)
    page.click(f"#chat-{item.pk} .visitor-link")
    page.click("#drawer [data-action-button=transfer]")
    page.wait_for_selector("#drawer .transfer-form")

    def picked() -> list[tuple[str, bool, bool, bool]]:
        return [tuple(pick) for pick in page.evaluate(PICKS)]

    # Sales, the chat's own: Chloé first; Asha, who has the chat, is not offered at all.
    before = picked()
    assert [name for name, *_ in before] == [
        "Chloé Karimi", "Ben Okafor", "Fay Lund", "Dev Iyer", "Eli Moss",
    ]  # fmt: skip

    page.select_option("#drawer select[name=department_id]", "d2")
    after = picked()
    assert [name for name, *_ in after] == [
        "Ben Okafor", "Fay Lund", "Chloé Karimi", "Dev Iyer", "Eli Moss",
    ]  # fmt: skip
    # Nobody "not in this department" above a suggested operator.
    suggested = [n for n, (_, is_suggested, _, _) in enumerate(after) if is_suggested]
    elsewhere = [n for n, (_, _, inside, _) in enumerate(after) if not inside]
    assert suggested == [0, 1] and min(elsewhere) > max(suggested)
    assert page.is_visible("#drawer .pick[data-in-department='0'] .pick-elsewhere")
    screenshot("transfer-picker-after-department-change")

    page.select_option("#drawer select[name=department_id]", "d1")
    assert picked() == before


def test_it_tags_rows_with_their_portal_when_several_are_shown(ws_server, page, owner):
    zylker, acme = make_portal("Zylker"), make_portal("Acme")
    fill(zylker, [chat("z1", visitor="Zed")])
    fill(acme, [chat("a1", visitor="Abe", minutes=9)])
    open_live(page, ws_server, owner)

    assert page.inner_text(f"#{row_id('z1')} [data-portal-tag]") == "Zylker"
    assert page.inner_text(f"#{row_id('a1')} [data-portal-tag]") == "Acme"
    assert page.is_visible(f"#{row_id('a1')} [data-portal-tag]")
    options = page.evaluate(
        "[...document.querySelectorAll(\"select[data-filter='operator'] option\")]"
        ".map(o => o.textContent)"
    )
    assert "Asha Rao · Acme" in options and "Asha Rao · Zylker" in options

    page.select_option("select[data-portal-select]", str(acme.pk))
    page.wait_for_url(f"**/?portal={acme.pk}")
    page.wait_for_function("window.SupervisorLive && SupervisorLive.stats.messages > 0")
    assert order(page) == [row_id("a1")]
    assert page.is_hidden(f"#{row_id('a1')} [data-portal-tag]")


def test_it_counts_only_live_portals_and_names_one_needing_an_admin_once(
    ws_server, page, owner, screenshot
):
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    zylker, acme = make_portal("Zylker"), make_portal("Acme")
    world(zylker)
    fill(acme, [chat("a1", visitor="Abe", minutes=40), chat("a2", visitor="Al", minutes=35)])
    disconnected(acme)
    open_live(page, ws_server, owner)

    # Only Zylker is live: its 5 chats and 3 operators, nothing of Acme's.
    assert kpi(page, "open") == "5" and kpi(page, "waiting") == "3"
    assert re.fullmatch(r"15m \d\ds", kpi(page, "longest-wait"))  # not Acme's 40 minutes
    assert [kpi(page, k) for k in ("available", "busy", "offline")] == ["1", "1", "1"]
    assert set(order(page)) == {row_id(r) for r in ("w15", "w10", "w5", "c30", "c20")}
    assert page.inner_text("[data-count='operators']") == "3"
    # Acme is said once, in one place, with the way to fix it; no banner anywhere.
    notes = page.locator("#admin-notes > li:visible")
    assert notes.count() == 1
    assert notes.inner_text() == "Acme needs an admin: connect it again or delete it on its page."
    assert notes.locator("a").get_attribute("href") == f"/portals/{acme.pk}/"
    assert page.locator(".banner:visible").count() == 0
    assert page.is_hidden("#chats-panel .stale-pill")  # Acme is not "stale": it is not live
    screenshot("live-one-portal-disconnected")
    assert errors == []


def test_it_marks_data_stale_when_it_gets_old(ws_server, page, owner, connected_portal, screenshot):
    portal = connected_portal()
    world(portal)
    page.clock.install()
    open_live(page, ws_server, owner)
    assert page.get_attribute("#chats-panel", "data-stale") is None
    assert "updated" in page.inner_text("[data-age-of='chats']")
    assert page.is_hidden("#stale-note")

    page.clock.fast_forward("03:00")
    page.clock.run_for(1000)

    assert page.get_attribute("#chats-panel", "data-stale") == "all"
    assert page.get_attribute("#operators-panel", "data-stale") == "all"
    assert page.is_visible("#chats-panel .stale-pill")
    assert "min ago" in page.inner_text("[data-age-of='chats']")
    note = page.inner_text("#stale-note")
    assert f"No fresh chats or operators from {portal.name} for 3 min" in note
    assert "may be out of date" in note
    opacity = page.evaluate(
        "getComputedStyle(document.querySelector('#chats-panel .table-wrap')).opacity"
    )
    assert float(opacity) < 1
    screenshot("live-stale")


def test_it_remembers_the_dark_theme(ws_server, page, owner, screenshot):
    world(make_portal())
    open_live(page, ws_server, owner)
    background = "getComputedStyle(document.body).backgroundColor"
    light = page.evaluate(background)
    assert page.get_attribute("html", "data-theme") is None

    page.click("[data-theme-toggle]")
    assert page.get_attribute("html", "data-theme") == "dark"
    assert page.get_attribute("[data-theme-toggle]", "aria-pressed") == "true"
    assert page.evaluate(background) != light

    page.reload()
    page.wait_for_function("window.SupervisorLive")
    assert page.get_attribute("html", "data-theme") == "dark"
    assert page.evaluate("localStorage.getItem('siq-theme')") == "dark"
    page.wait_for_function("SupervisorLive.stats.messages > 0")
    screenshot("live-dark")


def test_it_shows_a_wallboard_for_across_the_room(ws_server, page, owner, screenshot):
    world(make_portal())
    page.set_viewport_size({"width": 1920, "height": 1080})
    open_live(page, ws_server, owner)
    normal = page.evaluate(
        "parseFloat(getComputedStyle(document.querySelector('.kpi-value')).fontSize)"
    )

    page.goto(f"{ws_server}/?wallboard=1")
    page.wait_for_function("window.SupervisorLive && SupervisorLive.stats.messages > 0")

    assert page.get_attribute("html", "data-theme") == "dark"
    assert page.is_hidden(".controls") and page.is_hidden(".topbar")
    big = page.evaluate(
        "parseFloat(getComputedStyle(document.querySelector('.kpi-value')).fontSize)"
    )
    assert big > 1.5 * normal
    assert page.query_selector("#drawer-slot") is None
    page.click(f"#{row_id('w15')}", force=True)
    page.wait_for_timeout(300)
    assert page.query_selector("#drawer") is None
    assert page.is_hidden(f"#{row_id('c20')} .c-last")
    assert re.fullmatch(r"\d\d?:\d\d( [AP]M)?", page.inner_text("[data-wall-clock]"))
    screenshot("live-wallboard")


def test_it_reconnects_when_the_socket_closes(ws_server, page, owner):
    world(make_portal())
    open_live(page, ws_server, owner)
    before = page.evaluate("SupervisorLive.stats.messages")

    # A clean close (1000) is one the ws extension would not retry by itself.
    page.evaluate(
        "document.getElementById('live')['htmx-internal-data'].webSocket.socket.close(1000)"
    )
    page.wait_for_selector("#connection[data-state='closed']")
    assert page.inner_text("#connection .connection-state") == "Reconnecting…"

    page.wait_for_selector("#connection[data-state='open']", timeout=10_000)
    assert page.inner_text("#connection .connection-state") == "Live"
    page.wait_for_function(f"SupervisorLive.stats.messages > {before}")  # a fresh snapshot
    assert re.search(r"· (just now|\d+ s ago)", page.inner_text("#connection"))
    assert "Last message from the server" in page.get_attribute("[data-connection-age]", "title")


def test_it_updates_through_a_real_websocket_end_to_end(
    ws_server, page, owner, simulator, connected_portal, screenshot
):
    portal = connected_portal(open_chats=3)
    assert connecting.register_webhooks(portal, url=f"{ws_server}/webhooks/salesiq/{portal.pk}/")
    client = SalesIQClient(portal)
    now = timezone.now()
    apply.apply_departments(portal, client.list_departments(), taken_at=now)
    apply.apply_operators(portal, client.list_operators(), taken_at=now)
    apply.apply_chats(portal, client.list_open_conversations(), taken_at=now, complete=True)
    open_live(page, ws_server, owner)
    rows_before = len(order(page))
    waiting_before = int(kpi(page, "waiting"))

    # SalesIQ reports a visitor who has waited an hour: the signed webhook reaches the
    # server's process, which applies it and pushes the row over the websocket.
    created = simulator.create_conversation(
        portal.screen_name, visitor_name="Zoë <i>End-to-End</i>", waiting_seconds=3600
    )
    page.wait_for_selector("#chats-body > tr[data-visitor='Zoë <i>End-to-End</i>']", timeout=15_000)
    first = page.evaluate("document.querySelector('#chats-body > tr').dataset.visitor")
    assert first == "Zoë <i>End-to-End</i>"  # the longest wait, first
    assert page.inner_text("#chats-body > tr:first-child .visitor-link") == "Zoë <i>End-to-End</i>"
    assert len(order(page)) == rows_before + 1
    assert int(kpi(page, "waiting")) == waiting_before + 1
    assert re.fullmatch(r"1h 00m", kpi(page, "longest-wait"))
    screenshot("live-end-to-end")

    simulator.end(created["id"])
    page.wait_for_function(
        "!document.querySelector(\"#chats-body > tr[data-visitor='Zoë <i>End-to-End</i>']\")",
        timeout=15_000,
    )
    assert int(kpi(page, "waiting")) == waiting_before
    assert Chat.objects.get(portal=portal, remote_id=created["id"]).status in ("ended", "missed")


def test_it_shows_old_chats_ticking(ws_server, page, owner):
    portal = make_portal()
    fill(portal, [chat("w1", minutes=2)])
    Chat.objects.filter(remote_id="w1").update(waiting_since=timezone.now() - timedelta(minutes=4))
    open_live(page, ws_server, owner)
    cell = f"#{row_id('w1')} .c-wait time"
    first = page.inner_text(cell)
    page.wait_for_timeout(2100)
    assert page.inner_text(cell) != first
    assert page.get_attribute(cell, "data-level") == "bad"  # over three minutes: red


def test_it_orders_alerts_marks_their_rows_and_counts_them_in_the_title(
    ws_server, page, owner, screenshot
):
    from dashboard.alerts import lifecycle
    from dashboard.alerts.rules import ensure_rules
    from dashboard.models import Alert, AlertKind, Operator

    portal = make_portal()
    world(portal)
    rules = ensure_rules(portal)
    now = timezone.now()

    def alert(kind, target, minutes, **fields):
        chat_row = Chat.objects.filter(portal=portal, remote_id=target).first()
        operator = Operator.objects.filter(portal=portal, remote_id=target).first()
        return Alert.objects.create(
            portal=portal,
            rule=rules[kind],
            kind=kind,
            severity=rules[kind].severity,
            target=target,
            chat=chat_row,
            operator=operator,
            title=f"{kind} on {target}",
            detail="Something to look at",
            raised_at=now - timedelta(minutes=minutes),
            **fields,
        )

    waited = alert(AlertKind.LONG_WAIT, "w15", 1)  # critical
    away = alert(AlertKind.OPERATOR_AWAY_WITH_CHATS, "o2", 3)  # warning, older
    seen = alert(AlertKind.LONG_CHAT, "c30", 9, acknowledged_at=now, acknowledged_by_name="ada")
    dozing = alert(
        AlertKind.UNANSWERED, "c20", 5, snoozed_until=now + timedelta(seconds=3),
        snoozed_by_name="ada",
    )  # fmt: skip
    page.set_viewport_size({"width": 1366, "height": 768})
    open_live(page, ws_server, owner)

    # What needs someone first, critical before warning; then snoozed, then acknowledged.
    assert page.evaluate("SupervisorLive.alerts()") == [
        f"alert-{waited.pk}:open",
        f"alert-{away.pk}:open",
        f"alert-{dozing.pk}:snoozed",
        f"alert-{seen.pk}:acknowledged",
    ]
    assert page.title().startswith("(2) ")
    assert page.inner_text("[data-alerts-summary]") == (
        "2 need attention · 1 snoozed · 1 acknowledged"
    )
    # Badges in the worst open alert's tone; muted where every alert is taken care of.
    levels = page.evaluate(
        """[...document.querySelectorAll("tr[data-alert-level]")].map(r =>
             [r.id, r.dataset.alertLevel, r.querySelector(".row-alert").textContent].join(":"))"""
    )
    assert sorted(levels) == sorted(
        [
            f"{row_id('w15')}:critical:!",
            f"op-{away.operator_id}:warning:!",
            f"{row_id('c30')}:quiet:!",
            f"{row_id('c20')}:quiet:!",
        ]
    )
    screenshot("alerts-panel-light")

    # The snooze runs out: the alert is back in front and counted.
    page.wait_for_function(
        f"SupervisorLive.alerts().includes('alert-{dozing.pk}:open')", timeout=10_000
    )
    assert page.title().startswith("(3) ")
    assert page.get_attribute(f"#{row_id('c20')}", "data-alert-level") == "warning"

    # Resolved: gone from the panel, and its row's badge with it.
    lifecycle._resolve([waited], timezone.now(), "An operator picked the chat up.")
    send(page, render.render_alerts([waited.pk]))
    page.wait_for_selector(f"#alert-{waited.pk}", state="detached")
    assert page.query_selector(f"#{row_id('w15')} .row-alert") is None
    assert page.get_attribute(f"#{row_id('w15')}", "data-alert-level") is None
    # A row the server sends again (it changed) keeps its badge.
    c20 = Chat.objects.get(remote_id="c20")
    send(page, render.render_changes(apply.Changes(portal.pk, chats={c20.pk})))
    page.wait_for_function(
        f"document.querySelector('#{row_id('c20')} .row-alert') !== null", timeout=5_000
    )

    page.evaluate("document.documentElement.setAttribute('data-theme', 'dark')")
    screenshot("alerts-panel-dark")
    page.goto(f"{ws_server}/?wallboard=1")
    page.wait_for_function("window.SupervisorLive && SupervisorLive.stats.messages > 0")
    assert page.is_hidden(f"#alert-{away.pk} [data-alert-ack]")  # no buttons on a wall
    assert (
        page.is_hidden("[data-signal-tools]") or page.query_selector("[data-signal-tools]") is None
    )
    page.set_viewport_size({"width": 1920, "height": 1080})
    screenshot("alerts-wallboard")


def test_it_takes_its_wait_and_stale_thresholds_from_the_page(ws_server, page, owner):
    """The thresholds are the server's (data-* on #live), not numbers of the script's own:
    with others there, the same waits take other tones."""
    world(make_portal())
    open_live(page, ws_server, owner)
    w15 = row_id("w15")  # waiting 15 minutes: red by default
    assert page.get_attribute(f"#{w15} time[data-tick=wait]", "data-level") == "bad"
    assert page.get_attribute("[data-kpi-tile='longest-wait']", "data-tone") == "bad"

    # The same page again, its thresholds changed as it is parsed (before any script runs).
    page.add_init_script(
        """new MutationObserver((records, observer) => {
             const live = document.getElementById("live");
             if (!live) return;
             observer.disconnect();
             const names = ["staleAfter", "waitWarn", "waitBad"];
             window.hadThresholds = names.every((name) => name in live.dataset);
             Object.assign(live.dataset, { waitWarn: "3000", waitBad: "6000" });
           }).observe(document, { childList: true, subtree: true });"""
    )
    page.reload()
    page.wait_for_function("window.SupervisorLive && SupervisorLive.stats.messages > 0")
    assert page.evaluate("window.hadThresholds") is True
    assert not page.get_attribute(f"#{w15} time[data-tick=wait]", "data-level")
    assert not page.get_attribute("[data-kpi-tile='longest-wait']", "data-tone")


def test_it_takes_its_utilisation_tones_from_the_page(ws_server, page, owner):
    """Utilisation turns amber and red at the server's thresholds (data-utilisation-warn and
    data-utilisation-bad on #live, selectors.thresholds), not at numbers of the script's own."""
    world(make_portal())
    open_live(page, ws_server, owner)
    assert kpi(page, "utilisation") == "125%"  # 5 open chats, Asha's 4 seats: red by default
    assert page.get_attribute("[data-kpi-tile='utilisation']", "data-tone") == "bad"

    page.add_init_script(
        """new MutationObserver((records, observer) => {
             const live = document.getElementById("live");
             if (!live) return;
             observer.disconnect();
             const names = ["utilisationWarn", "utilisationBad"];
             window.hadThresholds = names.every((name) => name in live.dataset);
             Object.assign(live.dataset, { utilisationWarn: "120", utilisationBad: "130" });
           }).observe(document, { childList: true, subtree: true });"""
    )
    page.reload()
    page.wait_for_function("window.SupervisorLive && SupervisorLive.stats.messages > 0")
    assert page.evaluate("window.hadThresholds") is True
    assert kpi(page, "utilisation") == "125%"
    assert page.get_attribute("[data-kpi-tile='utilisation']", "data-tone") == "warn"


def test_it_shows_the_wait_of_a_waiting_chat_without_its_own_mark(ws_server, page, owner):
    """A waiting chat whose waiting_since is empty has waited since it started (the server's
    Chat.waited_since): its clock, its place, the drawer and the longest wait all say so."""
    portal = make_portal()
    world(portal)
    Chat.objects.filter(portal=portal, remote_id="w15").update(waiting_since=None)
    open_live(page, ws_server, owner)

    w15 = row_id("w15")
    assert re.fullmatch(r"15m \d\ds", page.inner_text(f"#{w15} .c-wait"))
    assert order(page)[0] == w15
    assert re.fullmatch(r"15m \d\ds", kpi(page, "longest-wait"))
    assert kpi(page, "longest-note") == "3 visitors waiting"

    page.click(f"#{w15} .visitor-link")
    page.wait_for_selector("#drawer")
    assert re.fullmatch(r"15m \d\ds", page.inner_text("#drawer .facts time[data-tick=wait]"))


def test_it_takes_since_when_a_visitor_waits_from_the_server(
    ws_server, page, owner, monkeypatch, request
):
    """The rows' data-waiting-since is the whole definition: a snapshot rendered with another
    one (only a chat's own mark counts) moves the longest wait and the order with it, with no
    fallback of the page's own."""
    portal = make_portal()
    world(portal)
    Chat.objects.filter(portal=portal, remote_id="w15").update(waiting_since=None)
    open_live(page, ws_server, owner)
    assert re.fullmatch(r"15m \d\ds", kpi(page, "longest-wait"))

    def own_mark_only(chat):
        return chat.waiting_since if chat.status == "waiting" else None

    monkeypatch.setattr(Chat, "waited_since", property(own_mark_only))
    row_cache.clear()  # rows rendered under the old definition
    request.addfinalizer(row_cache.clear)  # and none rendered under this one kept after
    send(
        page,
        render_to_string(
            "live/parts.html#snapshot", {**selectors.live_context([portal]), "oob": True}
        ),
    )
    page.wait_for_function(
        f"!document.querySelector('#{row_id('w15')} .c-wait time')", timeout=5_000
    )
    assert re.fullmatch(r"10m \d\ds", kpi(page, "longest-wait"))
    assert kpi(page, "waiting") == "3"  # still waiting: the status says so, not the clock
    assert order(page)[:3] == [row_id(r) for r in ("w10", "w5", "w15")]


def test_it_names_itself_on_its_socket_and_on_every_request(ws_server, page, owner):
    """One id per page: in the websocket's address (page=) and as X-Live-Page on each htmx
    request, so the server can leave out of this page's pushes what its answers carried."""
    world(make_portal())
    sockets: list[str] = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    open_live(page, ws_server, owner)

    assert len(sockets) == 1
    ids = re.findall(r"[?&]page=([^&]+)", sockets[0])
    assert len(ids) == 1 and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", ids[0]), sockets[0]

    with page.expect_request(lambda request: "/live/chats/" in request.url) as asked:
        page.click(f"#{row_id('w5')}")
    assert asked.value.headers.get("x-live-page") == ids[0]

    page.reload()  # another page load is another page
    page.wait_for_function("window.SupervisorLive && SupervisorLive.stats.messages > 0")
    assert re.findall(r"[?&]page=([^&]+)", sockets[-1]) != ids
