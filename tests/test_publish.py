"""The one publisher: what changed reaches the pages after its transaction commits, once,
never when it rolls back; the alert rules follow as a hook; the webhook lane's holding
rule; an action's outcome to its supervisor's pages but the one that has it."""

from __future__ import annotations

import asyncio
import json
import threading
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from dashboard import ingest
from dashboard.models import Action, Chat, InboxEvent
from dashboard.realtime import fanout, publish, render
from dashboard.state import apply
from dashboard.state.changes import Changes
from tests.factories import live_portal
from tests.support.live import chat, fill

pytestmark = pytest.mark.django_db(transaction=True)


class Boom(Exception):
    pass


@pytest.fixture
def published(monkeypatch) -> list[Changes]:
    """What the publisher rendered and sent, one entry per publication."""
    sent: list[Changes] = []
    monkeypatch.setattr(publish, "publish", sent.append)
    return sent


@pytest.fixture
def portal():
    return live_portal(name="Zylker", screen_name="zylker", dialect="reference")


def stored(portal, *chat_ids: str) -> list[int]:
    """Pending inbox events (reference dialect), as a delivery leaves them."""
    at = timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    ids = []
    for chat_id in chat_ids:
        payload = {
            "event": "chat.missed",
            "timestamp": at,
            "data": {"chat_id": chat_id, "visitor_name": "Ada", "started_at": at, "ended_at": at},
        }
        row = InboxEvent.objects.create(
            portal=portal,
            dedupe_key=f"missed-{chat_id}",
            event_name="chat.missed",
            kind="chat_missed",
            body=json.dumps(payload),
            received_at=timezone.now(),
        )
        ids.append(row.pk)
    return ids


def test_it_never_publishes_what_a_rolled_back_transaction_applied(portal, published, monkeypatch):
    # Each event is applied, then its action confirmed, in one transaction: the
    # confirmation fails, so the transaction and what it applied roll back.
    monkeypatch.setattr(ingest.outcomes, "confirm", mock.Mock(side_effect=Boom))

    assert ingest.apply_stored_together(stored(portal, "c-1", "c-2")) == 0

    assert not Chat.objects.exists()
    assert published == []


def test_it_drops_the_changes_of_a_savepoint_that_rolled_back(portal, published):
    with publish.together(), transaction.atomic():
        kept = apply.apply_conversation(portal, chat("kept"), fact_at=timezone.now(), source="poll")
        try:
            with transaction.atomic():
                apply.apply_conversation(
                    portal, chat("undone"), fact_at=timezone.now(), source="poll"
                )
                raise Boom
        except Boom:
            pass
        assert published == []  # not before the commit

    assert [changes.chats for changes in published] == [kept.chats]
    assert Chat.objects.get().remote_id == "kept"


def test_it_publishes_each_change_after_its_commit_and_at_once_outside_one(portal, published):
    with transaction.atomic():
        apply.apply_conversation(portal, chat("a"), fact_at=timezone.now(), source="poll")
        assert published == []
    assert len(published) == 1

    publish.meta(portal.pk)  # no transaction: now
    assert published[-1] == Changes(portal.pk, meta=True)


def test_it_publishes_what_commits_together_once_per_portal(portal, published):
    other = live_portal(name="Acme", screen_name="acme")
    with publish.together():
        for name in ("a", "b"):
            apply.apply_conversation(portal, chat(name), fact_at=timezone.now(), source="poll")
        apply.apply_conversation(other, chat("c"), fact_at=timezone.now(), source="poll")
        assert published == []

    assert sorted(len(changes.chats) for changes in published) == [1, 2]
    assert {changes.portal_id for changes in published} == {portal.pk, other.pk}


def test_it_runs_the_hooks_after_each_publication(portal, monkeypatch):
    seen: list[str] = []
    monkeypatch.setattr(publish, "publish", lambda changes: seen.append("published"))
    monkeypatch.setattr(publish, "_hooks", [lambda changes: seen.append("hook")])

    apply.apply_conversation(portal, chat("a"), fact_at=timezone.now(), source="poll")

    assert seen == ["published", "hook"]


def test_it_raises_the_missed_chat_alert_as_a_hook_and_publishes_it(portal, published):
    ingest.apply_stored(stored(portal, "c-9")[0])

    first, then = published  # the chat, then the alert the hook raised
    assert first.chats and not first.alerts
    assert then.alerts and then.portal_id == portal.pk


def test_it_holds_changes_for_the_lane_until_its_rule_says_publish(portal, published):
    hold = publish.Hold()
    with hold.collecting():
        apply.apply_conversation(portal, chat("a"), fact_at=timezone.now(), source="poll")
    assert hold and not hold.due()  # within HOLD_WITHIN, one application
    for name in "bcdefgh":
        with hold.collecting():
            apply.apply_conversation(portal, chat(name), fact_at=timezone.now(), source="poll")
    assert hold.due()  # HOLD_LIMIT applications
    assert published == []

    hold.release()
    assert [len(changes.chats) for changes in published] == [8]
    assert not hold and not hold.due()


def test_it_publishes_what_is_held_once_held_long_enough(portal, published, monkeypatch):
    monkeypatch.setattr(publish, "HOLD_WITHIN", 0.0)
    hold = publish.Hold()
    assert not hold.due()  # nothing held
    with hold.collecting():
        apply.apply_conversation(portal, chat("a"), fact_at=timezone.now(), source="poll")
    assert hold.due()


@pytest.fixture
def owner():
    return get_user_model().objects.create_user("sam", "sam@example.org", "pw-for-tests-1")


@pytest.fixture
def group_sends(monkeypatch) -> list[tuple[str, dict]]:
    """What went to fanout.group_send. Taken where the publisher calls it, not awaited: a
    browser test earlier in the session leaves Playwright's loop running in this thread,
    where async_to_sync refuses to run."""
    sent: list[tuple[str, dict]] = []

    def async_to_sync(function):
        assert function is fanout.group_send
        return lambda group, message: sent.append((group, message))

    monkeypatch.setattr(publish, "async_to_sync", async_to_sync)
    return sent


def test_it_sends_an_outcome_after_commit_to_all_but_the_page_that_has_it(
    portal, owner, group_sends
):
    action = Action.objects.create(portal=portal, user=owner, kind="transfer")
    with transaction.atomic():
        publish.action_outcome(action.pk, except_page="page-1")
        assert group_sends == []

    ((group, message),) = group_sends
    assert group == f"live.user.{owner.pk}"
    assert message["except_page"] == "page-1"
    assert f'id="action-{action.pk}"' in message["html"]


def test_it_sends_no_outcome_for_a_rolled_back_action(portal, owner, group_sends):
    action = Action.objects.create(portal=portal, user=owner, kind="transfer")
    with pytest.raises(Boom), transaction.atomic():
        publish.action_outcome(action.pk)
        raise Boom
    assert group_sends == []


def test_it_shows_the_portal_figures_again_when_only_operators_changed(portal):
    fill(portal, [chat("a")])
    operators = set(portal.operators.values_list("pk", flat=True))
    html = render.render_changes(Changes(portal.pk, operators=operators))
    assert f'id="meta-{portal.pk}"' in html


def test_it_schedules_onto_the_serving_loop_from_a_request_thread(monkeypatch):
    enqueued = []
    monkeypatch.setattr(ingest, "_enqueue", enqueued.append)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:

        async def request():
            ingest.serving_loop.set(asyncio.get_running_loop())
            # A view in a thread of its own, as sync_to_async runs one (context carried).
            await asyncio.to_thread(ingest.schedule, 42)

        asyncio.run_coroutine_threadsafe(request(), loop).result(5)
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result(5)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    assert enqueued == [42]
