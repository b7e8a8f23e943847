"""One-click assign from a waiting row: the best operator of each department on its queue row
(dashboard/figures/queues.py, by dashboard/actions/assign.py's rule, with no query per chat),
published when an operator's seats change in another department (figures/clock.py), and the
server's look again at the click (assign.stale_choice): a choice gone stale is refused in words
and nothing reaches SalesIQ."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard.actions import services
from dashboard.actions.assign import best_assignee
from dashboard.figures import clock, queues
from dashboard.models import Department, Operator
from dashboard.realtime import render
from dashboard.state import apply
from dashboard.state.changes import Changes
from tests.factories import make_admin, make_portal
from tests.support.figures import arrive
from tests.support.simulator import last_seq, synced

pytestmark = pytest.mark.django_db


@pytest.fixture
def portal():
    portal = make_portal("Zylker")
    now = timezone.now()
    for remote_id, name in (("d1", "Sales"), ("d2", "Billing"), ("d3", "Returns")):
        Department.objects.create(portal=portal, remote_id=remote_id, name=name, seen_at=now)
    return portal


def operator(portal, remote_id, name, departments, *, status="available", seats=3, idle=0):
    now = timezone.now()
    return Operator.objects.create(
        portal=portal,
        remote_id=remote_id,
        name=name,
        status=status,
        status_since=now - timedelta(minutes=idle),
        department_ids=departments,
        max_chats=seats,
        fact_at=now,
        source="poll",
    )


def rows_of(portal, **kwargs):
    apply.count_pending(portal.pk)
    return {row.department_id: row for row in queues.queue_rows([portal], **kwargs)}


def test_each_departments_queue_row_names_the_operator_the_rule_picks(portal):
    operator(portal, "op1", "Asha", ["d1"], seats=3, idle=5)
    operator(portal, "op2", "Ben", ["d1", "d2"], seats=3, idle=20)
    operator(portal, "op3", "Cleo", ["d2"], status="busy", seats=5)
    arrive(portal, "c0", "d1", 300, picked_after=5, operator="op2")  # Ben: 2 free of 3
    arrive(portal, "w1", "d1", 30)
    arrive(portal, "w2", "d1", 20)
    arrive(portal, "w3", "d2", 10)
    arrive(portal, "w4", "d3", 10)  # nobody serves Returns

    rows = rows_of(portal)

    # Sales: Asha has more free seats than Ben (3 to 2); Billing: only Ben is available.
    assert rows["d1"].assignee.operator.name == "Asha"
    assert rows["d2"].assignee.operator.name == "Ben"
    assert rows["d3"].assignee is None
    # The same choice the drawer makes for each of the department's waiting chats.
    from dashboard.models import Chat

    for chat in Chat.objects.filter(portal=portal, status="waiting"):
        best = best_assignee(chat)
        shown = rows[chat.department_id].assignee
        assert (best and best.operator.pk) == (shown and shown.operator.pk), chat.remote_id
    assert rows["d1"].assignee.reason == "Asha: available, in this department, 3 free seats of 3"
    # A publication of one department narrows its reads and still finds the same operator.
    only = rows_of(portal, only={(portal.pk, "d2")})
    assert only["d2"].assignee.operator.name == "Ben"


def test_the_choice_is_on_the_rendered_queue_row_and_none_where_nobody_waits(portal):
    operator(portal, "op1", "Asha", ["d1", "d2"])
    arrive(portal, "w1", "d1", 30)
    html = render.render_changes(Changes(portal.pk, queues={"d1", "d2"}))
    sales = html[html.index(f'id="queue-{portal.pk}-d1"') :].split("</tr>")[0]
    billing = html[html.index(f'id="queue-{portal.pk}-d2"') :].split("</tr>")[0]
    assert 'data-assign-to="op1"' in sales and 'data-assign-name="Asha"' in sales
    assert 'data-assign-why="Asha: available, in this department, 3 free seats of 3"' in sales
    assert "data-assign-since=" in sales
    # Nobody waits in Billing: nothing to label.
    assert "data-assign-to" not in billing


def test_the_choice_costs_no_query_per_waiting_chat(portal):
    for n in range(4):
        operator(portal, f"op{n}", f"Op {n}", ["d1", "d2"], seats=2, idle=n)
    arrive(portal, "w0", "d1", 30)
    apply.count_pending(portal.pk)
    with CaptureQueriesContext(connection) as one:
        queues.queue_rows([portal])
    for n in range(1, 30):
        arrive(portal, f"w{n}", "d1" if n % 2 else "d2", 30, counted=False)
    apply.count_pending(portal.pk)
    with CaptureQueriesContext(connection) as many:
        rows = queues.queue_rows([portal])
    assert len(many) == len(one), [q["sql"] for q in many]
    assert all(row.assignee is not None for row in rows if row.waiting)


def test_a_chat_taking_a_seat_republishes_every_department_of_its_operator(portal):
    """Ben serves Sales and Billing: a Sales chat he picks up takes one of his seats, so who
    is best in Billing may change too; Billing's row is due, not only Sales'."""
    operator(portal, "op2", "Ben", ["d1", "d2"], seats=1)
    operator(portal, "op3", "Cleo", ["d3"])
    crossings = clock.Crossings()
    now = timezone.now()
    crossings.due([portal], now)  # the first look only notes the time
    arrive(portal, "c1", "d1", 5, picked_after=1, operator="op2")
    due = crossings.due([portal], timezone.now() + timedelta(seconds=1))
    assert due[portal.pk] >= {"d1", "d2"} and "d3" not in due[portal.pk]


# --- the click: the server looks again --------------------------------------------------------


def a_free_operator(simulator, portal):
    """The department of the simulator's admin operator, every operator of it online, and the
    best of them: who the row would show."""
    me = Operator.objects.get(portal=portal, email=f"admin@{portal.screen_name}.example")
    department = me.department_ids[0]
    for op in Operator.objects.filter(portal=portal):
        if department in op.department_ids:
            simulator.set_operator_status(op.remote_id, "online")
    made = simulator.create_conversation(
        portal.screen_name, department_id=department, visitor_name="Wanda Waits"
    )
    synced(portal)
    from dashboard.models import Chat

    chat = Chat.objects.get(portal=portal, remote_id=made["id"])
    best = best_assignee(chat)
    assert best is not None
    return chat, best.operator


def assign(chat, target, key):
    return services.chat_transfer(
        key=key,
        user=make_admin(),
        chat=chat,
        department_id=chat.department_id,
        operator_id=target.remote_id,
        assign=True,
    )


def transfers(simulator, since):
    return [c for c in simulator.calls(since) if c["path"].endswith("/transfer")]


def test_an_operator_whose_seats_filled_meanwhile_is_refused_and_nothing_is_sent(
    simulator, connected_portal
):
    portal = synced(connected_portal(open_chats=1, operators=6))
    chat, ana = a_free_operator(simulator, portal)
    # Her last seat went a moment ago (another chat, another supervisor).
    held = chat.__class__.objects.filter(
        portal=portal, status__in=("waiting", "connected"), operator_id=ana.remote_id
    ).count()
    Operator.objects.filter(pk=ana.pk).update(max_chats=held)
    start = last_seq(simulator)

    action = assign(chat, ana, "stale-seat-1234567890")

    assert action.outcome == "refused" and action.error_code == "stale_choice"
    assert action.message == (
        f"{ana.shown_name} has no free seat any more: choose again. Nothing was sent to SalesIQ."
    )
    assert transfers(simulator, start) == []


def test_an_operator_gone_busy_meanwhile_is_refused_in_words(simulator, connected_portal):
    portal = synced(connected_portal(open_chats=1, operators=6))
    chat, ana = a_free_operator(simulator, portal)
    Operator.objects.filter(pk=ana.pk).update(status="busy")
    start = last_seq(simulator)

    action = assign(chat, ana, "stale-busy-1234567890")

    assert action.outcome == "refused"
    assert action.message.startswith(f"{ana.shown_name} is busy now: choose again.")
    assert transfers(simulator, start) == []


def test_an_operator_still_free_is_assigned_even_if_no_longer_the_very_best(
    simulator, connected_portal
):
    portal = synced(connected_portal(open_chats=1, operators=6))
    chat, ana = a_free_operator(simulator, portal)
    others = [
        op
        for op in Operator.objects.filter(portal=portal, status="available").exclude(pk=ana.pk)
        if chat.department_id in op.department_ids
    ]
    if not others:
        pytest.skip("the simulator's department has one operator")
    # Someone else now has far more room: Ana is still free, so the click stands.
    Operator.objects.filter(pk=others[0].pk).update(max_chats=50)
    assert best_assignee(chat).operator.pk == others[0].pk
    start = last_seq(simulator)

    action = assign(chat, ana, "still-free-1234567890")

    assert action.outcome in ("done", "pending") and action.state != "refused", action.message
    (call,) = transfers(simulator, start)
    assert call["json"]["operator_id"] == ana.remote_id


def test_an_assign_without_an_operator_is_refused_before_salesiq(simulator, connected_portal):
    portal = synced(connected_portal(open_chats=1, operators=6))
    chat, _ = a_free_operator(simulator, portal)
    start = last_seq(simulator)
    action = services.chat_transfer(
        key="no-operator-1234567890",
        user=make_admin(),
        chat=chat,
        department_id=chat.department_id,
        assign=True,
    )
    assert action.outcome == "refused" and "Choose an operator" in action.message
    assert transfers(simulator, start) == []


def test_a_chat_with_no_department_may_go_to_anyone_in_a_narrowed_publication_too(portal):
    operator(portal, "op1", "Asha", ["d1"], seats=2)
    operator(portal, "op2", "Ben", ["d2"], seats=5)
    arrive(portal, "w1", "", 30)
    full = rows_of(portal)
    narrowed = rows_of(portal, only={(portal.pk, "")})
    assert full[""].assignee.operator.name == "Ben"  # anyone: the most free seats
    assert narrowed[""].assignee.operator.name == "Ben"
