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

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client

from dashboard.models import Action
from tests.conftest import last_seq
from tests.test_actions_errors import calls_to, post, scene

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
    other = (
        Chat.objects.filter(portal=world["portal"], status="connected")
        .exclude(pk=world["chat"].pk)
        .exclude(operator_id=world["target"].remote_id)
        .first()
    )
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
