"""One action at a time per chat (and per operator): what the dashboard holds while SalesIQ
has not answered, how an idempotency key is bound to its action, and what becomes of an
action whose process died before SalesIQ answered.

The parallel tests send real requests through Django (one thread per supervisor) to the
simulator on a real port, slowed down so that every submit arrives while the first one is
still on its way to SalesIQ.
"""

from __future__ import annotations

import html
import re
import threading
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client
from django.utils import timezone

from dashboard.models import Action
from tests.support.actions import calls_to, post, scene
from tests.support.live import make_due
from tests.support.simulator import last_seq, synced

pytestmark = pytest.mark.django_db

PARALLEL = 10


@pytest.fixture(autouse=True)
def no_faults_left(simulator):
    yield
    simulator.clear_faults()


def supervisors(n: int) -> list:
    make = get_user_model().objects.create_superuser
    return [
        make(
            f"sup{i}",
            f"sup{i}@example.org",
            "pw-for-tests-1",
            first_name="Sam",
            last_name=f"Lee{i}",
        )
        for i in range(n)
    ]


def text_of(response) -> str:
    return html.unescape(response.content.decode())


def all_at_once(users, submit) -> list:
    """``submit(client, n)`` for each user, each in a thread of its own, released together."""
    browsers = []
    for user in users:
        browser = Client()
        browser.force_login(user)
        browsers.append(browser)
    together = threading.Barrier(len(browsers))
    answers: list = [None] * len(browsers)

    def run(n: int) -> None:
        try:
            together.wait(timeout=20)
            answers[n] = submit(browsers[n], n)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(browsers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("kind", "suffix", "doing"),
    [
        ("transfer", "/transfer", "transferring this chat"),
        ("end", "/close", "ending this chat"),
        ("status", "/status", "changing {me}'s status"),
    ],
)
def test_it_sends_one_of_ten_parallel_actions_on_a_chat(
    simulator, connected_portal, kind, suffix, doing
):
    world = scene(simulator, connected_portal, "v2")
    portal = world["portal"]
    users = supervisors(PARALLEL)
    # SalesIQ takes its time: every other submit arrives while the first is on its way.
    simulator.set_faults(portal=portal.screen_name, latency_ms=1500)
    start = last_seq(simulator)

    answers = all_at_once(
        users, lambda browser, n: post(browser, world, kind, key=f"parallel-{kind}-key-{n:04d}")
    )

    assert [answer.status_code for answer in answers] == [200] * PARALLEL
    assert len(calls_to(simulator, portal, start, suffix)) == 1
    sent = Action.objects.exclude(error_code="in_flight")
    (winner,) = sent
    assert winner.outcome == "done", winner.message
    refused = Action.objects.filter(error_code="in_flight")
    assert refused.count() == PARALLEL - 1
    doing = doing.format(me=world["me"].shown_name)
    said = f"Sam Lee{users.index(winner.user)} is already {doing}."
    for action in refused:
        assert action.state == "refused" and action.message.startswith(said), action.message
    for answer in answers:
        number = int(re.search(r'data-action="(\d+)"', answer.content.decode())[1])
        if number != winner.pk:
            assert said in text_of(answer)
    # The lock is let go with SalesIQ's answer: the next action on the chat is judged anew.
    assert not Action.objects.filter(outcome="pending").exists()


# --- a key is bound to its action and target ------------------------------------------------


@pytest.mark.parametrize("kind", ["end", "transfer"])
def test_it_refuses_a_key_reused_for_another_chat(simulator, connected_portal, kind):
    from dashboard.models import Chat

    world = scene(simulator, connected_portal, "v2")
    (ada,) = supervisors(1)
    browser = Client()
    browser.force_login(ada)
    key = f"bound-{kind}-key-0123456789"
    first = post(browser, world, kind, key=key)
    assert first.status_code == 200

    def another():
        return (
            Chat.objects.filter(portal=world["portal"], status="connected")
            .exclude(pk=world["chat"].pk)
            .exclude(operator_id=world["target"].remote_id)
            .first()
        )

    other = another()
    if other is None:
        # The simulator's world is random: now and then it has no such chat. One is made.
        made = simulator.create_conversation(world["portal"].screen_name)["id"]
        simulator.pickup(made, world["chat"].operator_id)
        synced(world["portal"])
        other = another()
    start = last_seq(simulator)

    again = post(browser, {**world, "chat": other}, kind, key=key)

    assert again.status_code == 409
    assert "already used for another chat" in text_of(again)
    assert "nothing was sent to SalesIQ" in text_of(again)
    assert calls_to(simulator, world["portal"], start) == []
    other.refresh_from_db()
    assert other.is_open and other.transfer_status in ("", None)
    assert Action.objects.filter(key=key).count() == 1
    # The same form for the same chat is still a retry: the first outcome, nothing sent.
    retry = post(browser, world, kind, key=key)
    assert retry.status_code == 200
    assert f'data-action="{Action.objects.get(key=key).pk}"' in retry.content.decode()
    assert calls_to(simulator, world["portal"], start) == []


# --- an action whose process died -----------------------------------------------------------


def dead_runner() -> str:
    """ "host:pid" of a process of this host that has exited, as kill -9 leaves it."""
    import socket
    import subprocess

    child = subprocess.Popen(["true"])  # noqa: S607 - a throw-away process, only its pid matters
    child.wait()
    return f"{socket.gethostname()[:60]}:{child.pid}"


def left_in_flight(
    world, user, kind: str, *, runner: str | None = None, key: str = "", sent: bool = True
) -> Action:
    """What a process killed between SalesIQ's call and its answer leaves: the request went
    out (to the simulator, for real; not with ``sent=False``), the record is pending and holds
    its chat or operator."""
    from dashboard.actions import locks
    from siq_integration.client import SalesIQClient

    portal, chat, target = world["portal"], world["chat"], world["target"]
    client = SalesIQClient(portal)
    if not sent:
        client = type("Killed", (), {"__getattr__": lambda self, name: lambda *a, **k: None})()
    if kind == "transfer":
        params = {
            "department_id": world["department"],
            "department_name": "",
            "operator_id": target.remote_id,
            "operator_name": target.shown_name,
            "note": "",
        }
        client.transfer(
            chat.remote_id, department_id=world["department"], operator_id=target.remote_id
        )
        fields = {"chat": chat, "operator_remote_id": target.remote_id}
        lock_target = {"chat": chat, "operator": None}
    elif kind == "end":
        params = {"message": ""}
        client.close(chat.remote_id)
        fields = {"chat": chat}
        lock_target = {"chat": chat, "operator": None}
    elif kind == "drain":
        params = {"moves": [], "set_busy": True, "busy_note": ""}
        fields = {
            "operator_remote_id": world["me"].remote_id,
            "operator_label": world["me"].shown_name,
        }
        lock_target = {"chat": None, "operator": world["me"]}
    else:
        from siq_integration.normalised import OperatorStatus as RemoteStatus

        params = {"status": "busy"}
        client.set_operator_status(world["me"].remote_id, RemoteStatus("busy"))
        fields = {
            "operator_remote_id": world["me"].remote_id,
            "operator_label": world["me"].shown_name,
        }
        lock_target = {"chat": None, "operator": world["me"]}
    if "chat" in fields:
        fields.update(chat_remote_id=chat.remote_id, chat_label=chat.visitor_name or "a visitor")
    return Action.objects.create(
        key=key or f"killed-{kind}-key-0123456789",
        user=user,
        username=user.get_full_name(),
        portal=portal,
        kind=kind,
        params=params,
        lock_key=locks.lock_for(portal, kind, **lock_target),
        runner=runner or dead_runner(),
        **fields,
    )


@pytest.mark.parametrize(
    ("kind", "event"),
    [("transfer", "conversation.transfer.accepted"), ("end", "conversation.completed")],
)
def test_salesiqs_confirming_webhook_settles_an_action_left_in_flight(
    simulator, connected_portal, webhook_receiver, django_capture_on_commit_callbacks, kind, event
):
    from dashboard import ingest
    from siq_integration import connecting

    world = scene(simulator, connected_portal, "v2")
    portal = world["portal"]
    connecting.register_webhooks(portal, url=webhook_receiver.url)
    (sam,) = supervisors(1)
    action = left_in_flight(world, sam, kind)
    if kind == "transfer":
        simulator.transfer(world["chat"].remote_id, outcome="accepted")

    for headers, body in webhook_receiver.wait_for_events([event]):
        with django_capture_on_commit_callbacks(execute=True):
            assert ingest.receive_one(ingest.Delivery(portal.pk, body, headers)).status == 200

    action.refresh_from_db()
    assert action.outcome == "done" and action.finished_at is not None
    assert action.state == ("accepted" if kind == "transfer" else "done")
    assert action.confirmation == event
    # It no longer holds the chat: the next action on it is judged on its own.
    assert not Action.objects.filter(outcome="pending").exists()


@pytest.mark.parametrize("kind", ["transfer", "end", "operator_status"])
def test_a_later_poll_settles_an_action_left_in_flight(simulator, connected_portal, kind):
    from dashboard.models import Chat, Operator
    from dashboard.polling.runner import Worker

    world = scene(simulator, connected_portal, "v2")
    portal = world["portal"]
    (sam,) = supervisors(1)
    action = left_in_flight(world, sam, kind)
    if kind == "transfer":
        simulator.transfer(world["chat"].remote_id, outcome="accepted")  # no webhooks here
    # The chat's last fact is older than the grace a poll gives before it closes a chat.
    Chat.objects.filter(pk=world["chat"].pk).update(fact_at=timezone.now() - timedelta(minutes=5))

    make_due(portal, "chats", "operators")
    Worker().run_once()

    action.refresh_from_db()
    assert action.outcome == "done", action.message
    assert "SalesIQ's list of" in action.message
    if kind == "transfer":
        assert action.state == "accepted"
        assert Chat.objects.get(pk=world["chat"].pk).operator_id == world["target"].remote_id
    elif kind == "end":
        assert action.state == "done" and not Chat.objects.get(pk=world["chat"].pk).is_open
    else:
        assert action.state == "done"
        assert Operator.objects.get(pk=world["me"].pk).status == "busy"


def test_the_sweep_says_no_clear_answer_after_the_bound(simulator, connected_portal):
    from dashboard.actions import stuck
    from dashboard.polling.runner import Worker

    world = scene(simulator, connected_portal, "v2")
    (sam,) = supervisors(1)
    elsewhere = "another-host:4242"  # cannot be checked from here: only time tells
    old = left_in_flight(
        world, sam, "end", runner=elsewhere, key="old-end-key-0123456789", sent=False
    )
    Action.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - stuck.stuck_after() - timedelta(seconds=5)
    )
    world2 = {
        **world,
        "chat": world["chat"]
        .__class__.objects.exclude(pk=world["chat"].pk)
        .filter(portal=world["portal"], status="connected")
        .first(),
    }
    young = left_in_flight(
        world2, sam, "end", runner=elsewhere, key="young-end-key-01234567", sent=False
    )
    dead = left_in_flight(world, sam, "operator_status", key="dead-status-key-0123456", sent=False)

    Worker().run_once()  # its tick sweeps

    old.refresh_from_db(), young.refresh_from_db(), dead.refresh_from_db()
    assert (old.state, old.error_code) == ("unclear", "abandoned")
    assert "no answer within 2 minutes" in old.message and "end the chat" in old.message
    assert young.state == "pending", "inside the bound, a live runner is waited for"
    assert (dead.state, dead.error_code) == ("unclear", "abandoned")
    assert "The dashboard stopped before SalesIQ answered" in dead.message


def test_a_retry_of_a_dead_processs_action_answers_at_once(simulator, connected_portal):
    world = scene(simulator, connected_portal, "v2")
    (sam,) = supervisors(1)
    browser = Client()
    browser.force_login(sam)
    action = left_in_flight(world, sam, "transfer", key=KEY_KILLED)
    start = last_seq(simulator)

    began = time.monotonic()
    answer = post(browser, world, "transfer", key=KEY_KILLED)
    took = time.monotonic() - began

    assert answer.status_code == 200
    assert took < 2.0, f"the retry waited {took:.1f} s for a process that is gone"
    action.refresh_from_db()
    assert action.state == "unclear"
    assert "The dashboard stopped before SalesIQ answered" in text_of(answer)
    assert calls_to(simulator, world["portal"], start) == [], "a retry never sends again"
    # A new action on the chat is no longer held up by the dead one.
    ended = post(browser, world, "end", key="after-the-kill-key-0123")
    assert "already" not in text_of(ended)
    assert len(calls_to(simulator, world["portal"], start, "/close")) == 1


KEY_KILLED = "killed-retry-key-0123456789"


# --- refusals by role are counted, not stored, and rate-limited -----------------------------


def test_a_viewers_refusals_are_counted_not_stored_and_slowed_down(simulator, connected_portal):
    from dashboard.actions import refusals
    from dashboard.models import Profile, RefusalTally, Role

    world = scene(simulator, connected_portal, "v2")
    portal = world["portal"]
    ann = get_user_model().objects.create_user("ann", password="pw-for-tests-1", first_name="Ann")
    Profile.objects.create(user=ann, role=Role.VIEWER).portals.set([portal])
    viewer = Client()
    viewer.force_login(ann)
    typed = "Ω" + "spam " * 100  # 500 characters a try, as the attack typed
    start = last_seq(simulator)

    answers = []
    for n in range(37):
        answers.append(
            viewer.post(
                f"/live/chats/{world['chat'].pk}/transfer/",
                {
                    "idempotency_key": f"viewer-try-{n:04d}-0123456789",
                    "department_id": world["department"],
                    "operator_id": world["target"].remote_id,
                    "note": typed[:500],
                },
            )
        )

    codes = [answer.status_code for answer in answers]
    assert codes == [403] * refusals.REFUSALS_PER_MINUTE + [429] * (
        37 - refusals.REFUSALS_PER_MINUTE
    ) or (
        # The minute may turn during the run: its count starts again.
        set(codes) == {403, 429} and codes.count(429) >= 37 - 2 * refusals.REFUSALS_PER_MINUTE
    ), codes
    slowed = answers[-1]
    assert 0 < int(slowed["Retry-After"]) <= 60
    assert "Wait a minute; nothing was sent to SalesIQ." in text_of(slowed)
    assert calls_to(simulator, portal, start) == []
    # Counted on one line; nothing of what was typed kept anywhere.
    assert not Action.objects.exists()
    (tally,) = RefusalTally.objects.all()
    assert (tally.count, tally.kind, tally.role, tally.username) == (
        37,
        "transfer",
        "Viewer",
        "Ann",
    )
    assert "spam" not in repr(RefusalTally.objects.values().get())

    # The audit shows the line, in words.
    admin = get_user_model().objects.create_superuser("ada", "ada@example.org", "pw-for-tests-1")
    desk = Client()
    desk.force_login(admin)
    page = text_of(desk.get("/audit/"))
    assert re.search(
        r"Viewer Ann was refused 37 transfers between <time[^>]*>[^<]+</time> and", page
    )
    assert "spam" not in page
    # Filters apply: another kind of action hides it.
    assert "was refused" not in text_of(desk.get("/audit/?kind=end"))


def test_a_drain_waits_for_a_status_change_of_its_operator_in_flight(simulator, connected_portal):
    from dashboard.actions import stuck
    from dashboard.actions.drain import operator_drain

    world = scene(simulator, connected_portal, "v2")
    sam, ann = supervisors(2)
    me = world["me"]
    # Sam's status change of this operator is on its way to SalesIQ (in another process).
    held = left_in_flight(world, sam, "operator_status", runner="another-host:4242", sent=False)
    start = last_seq(simulator)

    drain = operator_drain(key="drain-while-held-0123", user=ann, operator=me, moves=[])

    assert (drain.state, drain.error_code) == ("refused", "in_flight")
    assert drain.message.startswith(f"Sam Lee0 is already changing {me.shown_name}'s status.")
    assert calls_to(simulator, world["portal"], start) == []
    assert not drain.steps.exists()
    # Once it is settled, the drain holds the operator and its own status step goes through.
    stuck.abandon(held)
    drain = operator_drain(key="drain-after-held-0123", user=ann, operator=me, moves=[])
    (step,) = drain.steps.all()
    assert step.kind == "operator_status" and step.lock_key == ""
    assert len(calls_to(simulator, world["portal"], start, "/status")) == 1


def test_an_unexpected_error_lets_go_of_the_chat_at_once(simulator, connected_portal, monkeypatch):
    from dashboard.state import apply

    world = scene(simulator, connected_portal, "v2")
    (sam,) = supervisors(1)
    browser = Client(raise_request_exception=False)
    browser.force_login(sam)

    def broken(*args, **kwargs):
        raise RuntimeError("the disk is full")

    # SalesIQ ends the chat; storing its answer fails.
    monkeypatch.setattr(apply, "apply_conversation", broken)
    monkeypatch.setattr(apply, "mark_chat_ended", broken)
    answer = post(browser, world, "end", key="crash-end-key-0123456789")

    assert answer.status_code == 500
    action = Action.objects.get(key="crash-end-key-0123456789")
    assert (action.state, action.error_code) == ("unclear", "abandoned")
    assert action.message.startswith("Something went wrong in the dashboard")
    assert "disk" not in action.message + action.error_detail  # the log has the detail
    assert not Action.objects.filter(outcome="pending").exists()


def test_a_long_drain_is_stuck_only_once_its_newest_step_is(simulator, connected_portal):
    from dashboard.actions import stuck

    world = scene(simulator, connected_portal, "v2")
    (sam,) = supervisors(1)
    elsewhere = "another-host:4242"
    drain = left_in_flight(world, sam, "drain", runner=elsewhere, sent=False, key="long-drain-1")
    step = left_in_flight(world, sam, "end", runner=elsewhere, sent=False, key="long-drain-1:t1")
    Action.objects.filter(pk=step.pk).update(parent=drain)
    long_ago = timezone.now() - stuck.stuck_after() - timedelta(minutes=5)
    Action.objects.filter(pk=drain.pk).update(created_at=long_ago)

    stuck.sweep_stuck()
    drain.refresh_from_db()
    assert drain.state == "pending", "its newest step is young: the drain is still going"

    Action.objects.filter(pk=step.pk).update(created_at=long_ago)
    stuck.sweep_stuck()
    drain.refresh_from_db(), step.refresh_from_db()
    assert step.state == "unclear" and drain.outcome == "failed"
    assert "drain the operator" in drain.message
