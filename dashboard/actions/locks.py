"""The attempt's record, created before SalesIQ is called: the idempotency key (the same key
twice never calls twice) and the lock (one action in flight per chat or operator)."""

from __future__ import annotations

import time
from typing import Any

from django.db import IntegrityError, transaction

from siq_integration.models import Portal

from ..models import Action, ActionOutcome, Chat, Operator
from ..users import shown_name
from .outcomes import finish
from .runners import runner_name
from .stuck import abandon, stuck
from .wording import busy_sentence


class KeyReused(Exception):
    """An idempotency key came back for a different action: refuse, never guess."""


def lock_for(portal: Portal, kind: str, chat: Chat | None, operator: Operator | None) -> str:
    """What an action holds while it is in flight: its chat (a transfer, an end), else its
    operator (a status change, a drain). Both name the portal: remote ids are per portal."""
    if chat is not None:
        return f"{portal.pk}:chat:{chat.remote_id}"[:120]
    if operator is not None:
        return f"{portal.pk}:operator:{operator.remote_id}"[:120]
    return ""


# How many times begin tries again when a lock is freed under it.
BEGIN_ATTEMPTS = 5


def begin(
    *,
    key: str,
    user: Any,
    portal: Portal,
    kind: str,
    chat: Chat | None = None,
    operator: Operator | None = None,
    params: dict | None = None,
    parent: Action | None = None,
    page: str | None = None,
) -> tuple[Action, bool]:
    """The attempt's record: created now (True), or the one this key already made, or a
    refusal because another action on the same chat or operator is in flight (False).

    The lock is the row itself: ``action_one_in_flight`` lets one pending action hold a
    chat or an operator in the database, so it holds across every process."""
    lock = lock_for(portal, kind, chat, operator)
    if parent is not None and parent.lock_key == lock:
        lock = ""  # a drain's own status step: the drain holds the operator
    fields = {
        "user": user,
        "username": shown_name(user)[:150],
        "portal": portal,
        "kind": kind,
        "parent": parent,
        "chat": chat,
        "chat_remote_id": chat.remote_id if chat else "",
        "chat_label": (chat.visitor_name or "a visitor")[:200] if chat else "",
        "operator_remote_id": operator.remote_id if operator else "",
        "operator_label": operator.shown_name[:200] if operator else "",
        "params": params or {},
        "runner": runner_name(),
    }
    key = key[:64]
    for _ in range(BEGIN_ATTEMPTS):
        try:
            with transaction.atomic():
                return Action.objects.create(key=key, lock_key=lock, **fields), True
        except IntegrityError:
            pass
        existing = Action.objects.filter(key=key).first()
        if existing is not None:
            # A key is bound to who acted, where, what and on what: a retry repeats all of it.
            # Anything else (the same form posted for another chat) is refused, never
            # answered with the first action's outcome.
            bound = (
                existing.user_id,
                existing.portal_id,
                existing.kind,
                existing.chat_remote_id,
                existing.operator_remote_id,
            )
            asked = (
                user.pk,
                portal.pk,
                kind,
                fields["chat_remote_id"],
                fields["operator_remote_id"],
            )
            if bound != asked:
                raise KeyReused(key)
            return existing, False
        holder = (
            Action.objects.select_related("user")
            .filter(lock_key=lock, outcome=ActionOutcome.PENDING)
            .exclude(lock_key="")
            .first()
        )
        if holder is None:
            continue  # it finished meanwhile: try again
        if stuck(holder):
            abandon(holder)  # its process died (or SalesIQ never answered): let go, try again
            continue
        try:
            with transaction.atomic():
                refused = Action.objects.create(key=key, lock_key="", **fields)
        except IntegrityError:
            continue  # this key was used meanwhile: the loop finds it
        return finish(
            refused, ActionOutcome.REFUSED, busy_sentence(holder, user), code="in_flight", page=page
        ), False
    raise RuntimeError("could not record the action")  # pragma: no cover


# How long a repeated submit waits for the first attempt's outcome before answering that
# it is under way (the outcome then reaches the supervisor's pages over the websocket).
REPEAT_WAIT = 10.0
REPEAT_POLL = 0.1


def first_attempt(action: Action) -> Action:
    """The attempt this key already made, once it has an outcome (or REPEAT_WAIT passed).

    A repeat is a double click, a browser's retry, or a proxy's retry through another
    web process: whichever answers, the supervisor should read the outcome, not "sent"."""
    deadline = time.monotonic() + REPEAT_WAIT
    while action.outcome == ActionOutcome.PENDING and time.monotonic() < deadline:
        if stuck(action):
            # Nobody will answer it (its process died): say so now rather than wait.
            return abandon(action) or _reread(action)
        time.sleep(REPEAT_POLL)
        action.refresh_from_db()
    return action


def _reread(action: Action) -> Action:
    action.refresh_from_db()
    return action
