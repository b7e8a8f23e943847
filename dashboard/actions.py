"""What a supervisor can do: transfer a chat, end it, change an operator's status, drain an
operator. Every attempt is an ``Action`` row (the audit trail) created *before* SalesIQ
is called, under the form's idempotency key: the same key twice never calls twice.

Order of things for every action: access check → record (or find) the attempt → local
checks → SalesIQ, at the actions' priority of the call budget → the answer applied to the
live state (everyone watching sees it) → the outcome in words on the record. SalesIQ's
confirming webhook, when one comes, completes the record later (``confirm``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import PermissionDenied as Forbidden
from django.db import IntegrityError, transaction
from django.utils import timezone

from siq_integration import exceptions as exc
from siq_integration.budget import Priority
from siq_integration.client import SalesIQClient
from siq_integration.models import Portal
from siq_integration.normalised import EventKind, WebhookEvent
from siq_integration.normalised import OperatorStatus as RemoteStatus

from . import access, live, selectors
from .models import (
    Action,
    ActionKind,
    ActionOutcome,
    Chat,
    Department,
    Operator,
    OperatorStatus,
    Source,
)

logger = logging.getLogger(__name__)

# Statuses each dialect can set (v2 documents only these two).
SETTABLE_STATUSES = {
    "v2": [OperatorStatus.AVAILABLE, OperatorStatus.BUSY],
    "reference": [
        OperatorStatus.AVAILABLE,
        OperatorStatus.AWAY,
        OperatorStatus.BUSY,
        OperatorStatus.OFFLINE,
    ],
}


class KeyReused(Exception):
    """An idempotency key came back for a different action: refuse, never guess."""


# --- the record ------------------------------------------------------------------------------


def _begin(
    *,
    key: str,
    user: Any,
    portal: Portal,
    kind: str,
    chat: Chat | None = None,
    operator: Operator | None = None,
    params: dict | None = None,
    parent: Action | None = None,
) -> tuple[Action, bool]:
    """The attempt's record: created now, or the one this key already made."""
    fields = {
        "user": user,
        "username": user.get_username(),
        "portal": portal,
        "kind": kind,
        "parent": parent,
        "chat": chat,
        "chat_remote_id": chat.remote_id if chat else "",
        "chat_label": (chat.visitor_name or "a visitor")[:200] if chat else "",
        "operator_remote_id": operator.remote_id if operator else "",
        "operator_label": operator.name[:200] if operator else "",
        "params": params or {},
    }
    try:
        with transaction.atomic():
            return Action.objects.create(key=key[:64], **fields), True
    except IntegrityError:
        existing = Action.objects.get(key=key[:64])
        if (existing.user_id, existing.portal_id, existing.kind) != (user.pk, portal.pk, kind):
            raise KeyReused(key) from None
        return existing, False


# How long a repeated submit waits for the first attempt's outcome before answering that
# it is under way (the outcome then reaches the supervisor's pages over the websocket).
REPEAT_WAIT = 10.0
REPEAT_POLL = 0.1


def _first_attempt(action: Action) -> Action:
    """The attempt this key already made, once it has an outcome (or REPEAT_WAIT passed).

    A repeat is a double click, a browser's retry, or a proxy's retry through another
    web process: whichever answers, the supervisor should read the outcome, not "sent"."""
    deadline = time.monotonic() + REPEAT_WAIT
    while action.outcome == ActionOutcome.PENDING and time.monotonic() < deadline:
        time.sleep(REPEAT_POLL)
        action.refresh_from_db()
    return action


def _finish(
    action: Action,
    outcome: str,
    message: str,
    *,
    failure: exc.SalesIQError | None = None,
    code: str = "",
) -> Action:
    action.outcome = outcome
    action.message = message
    action.finished_at = timezone.now()
    if failure is not None:
        action.error_code = str(failure.code or type(failure).__name__)[:40]
        action.error_detail = failure.technical()[:2000]
    elif code:
        action.error_code = code
    action.save()
    _publish(action)
    return action


def _publish(action: Action) -> None:
    from . import broadcast  # renders templates; keep this module light to import

    transaction.on_commit(lambda: broadcast.publish_action(action.pk))


def _forbidden(user: Any, portal: Portal, kind: str, key: str, **target) -> None:
    """Refuse a Viewer (or a Supervisor of another portal) and keep a record of the try."""
    try:
        action, created = _begin(key=key, user=user, portal=portal, kind=kind, **target)
    except KeyReused:
        raise Forbidden("You may not act on this portal.") from None
    if created:
        _finish(
            action,
            ActionOutcome.REFUSED,
            "Your role may not act on this portal; nothing was sent to SalesIQ.",
            code="forbidden",
        )
    raise Forbidden("Your role may not act on this portal.")


def _check_access(user: Any, portal: Portal, kind: str, key: str, **target) -> None:
    if not access.can_view(user, portal):
        raise Forbidden("No such portal.")
    if not access.can_act(user, portal):
        _forbidden(user, portal, kind, key, **target)


# --- sentences -------------------------------------------------------------------------------


_VERBS = {
    ActionKind.TRANSFER: "transfer the chat",
    ActionKind.END: "end the chat",
    ActionKind.OPERATOR_STATUS: "change the operator's status",
    ActionKind.DRAIN: "drain the operator",
}


def status_not_own(operator_name: str) -> str:
    return (
        f"SalesIQ lets this portal's connected user change only their own status, so "
        f"{operator_name}'s status cannot be set from here. {operator_name} can change it in "
        "SalesIQ; to free them now, drain their chats to other operators."
    )


def sentence(action: Action, failure: exc.SalesIQError) -> str:
    """SalesIQ's refusal as a supervisor would put it."""
    verb = _VERBS[action.kind]
    if isinstance(failure, exc.PermissionDenied):
        # v2 documents that the status call sets the caller's own status only; the
        # reference dialect's PATCH has no such rule, so its refusal is about the role.
        if action.kind == ActionKind.OPERATOR_STATUS and failure.code == 1016:
            return status_not_own(action.operator_label or "this operator")
        return (
            f"SalesIQ does not allow this portal's connected user to {verb}. An admin can "
            "reconnect the portal as a SalesIQ Supervisor or Administrator."
        )
    # A bare 404 on a transfer may be the operator as much as the chat: not "ended" then.
    if isinstance(failure, exc.ChatNotActive) or (
        isinstance(failure, exc.NotFound)
        and (
            (failure.code == 1019 and action.kind in (ActionKind.END, ActionKind.TRANSFER))
            or (failure.code == "RESOURCE_NOT_FOUND" and action.kind == ActionKind.END)
        )
    ):
        return "That chat has already ended."
    if isinstance(failure, exc.NotFound) and failure.code in (1025, "INVALID_DEPARTMENT"):
        return "That department does not exist in SalesIQ any more. Pick another one."
    if isinstance(failure, exc.NotFound) and failure.code in (1020, 1024):
        return "That operator is no longer part of this portal in SalesIQ. Pick another one."
    if isinstance(failure, exc.OperatorOffline):
        target = action.params.get("operator_name") or "That operator"
        return f"{target} is offline and cannot take the chat. Pick someone available."
    if isinstance(failure, exc.Unavailable):
        return (
            "SalesIQ gave no clear answer (an error or no reply), so the dashboard cannot tell "
            f"whether it managed to {verb}. The live view shows it within seconds; try again "
            "only if nothing changed."
        )
    if isinstance(failure, exc.RateLimited) and failure.code is not None and failure.retry_at:
        # SalesIQ itself said no (1023 / 429). v2 names no time: the client picked the pause
        # after the exception's message was made, so the time is taken from retry_at.
        return (
            f"SalesIQ says too many requests came from this dashboard, so it did not {verb}. "
            f"Try again after {failure.retry_at:%H:%M:%S} UTC."
        )
    if isinstance(failure, exc.RateLimited | exc.BudgetExhausted):
        return f"Not sent: {failure.user_message}"
    return failure.user_message


def _refused_or_failed(failure: exc.SalesIQError) -> str:
    # SalesIQ said no (it answered with a code or an error status): refused. Nothing
    # known to have reached SalesIQ, or no answer at all: failed.
    if isinstance(failure, exc.Unavailable | exc.BudgetExhausted):
        return ActionOutcome.FAILED
    if isinstance(failure, exc.RateLimited) and failure.code is None:
        return ActionOutcome.FAILED  # our own back-off: nothing was sent
    return ActionOutcome.REFUSED


def _call(action: Action, call: Callable[[], Any]) -> tuple[Any, exc.SalesIQError | None]:
    try:
        return call(), None
    except exc.SalesIQError as failure:
        logger.info("Action %s refused: %s", action.pk, failure.technical())
        _finish(action, _refused_or_failed(failure), sentence(action, failure), failure=failure)
        return None, failure


# --- transfer --------------------------------------------------------------------------------


def chat_transfer(
    *,
    key: str,
    user: Any,
    chat: Chat,
    department_id: str = "",
    operator_id: str = "",
    note: str = "",
) -> Action:
    """Transfer ``chat`` to a department and/or an operator (v2 needs the department)."""
    portal = chat.portal
    target = (
        Operator.objects.filter(portal=portal, remote_id=operator_id).first()
        if operator_id
        else None
    )
    department = (
        Department.objects.filter(portal=portal, remote_id=department_id).first()
        if department_id
        else None
    )
    params = {
        "department_id": department_id,
        "department_name": department.name if department else "",
        "operator_id": operator_id,
        "operator_name": target.name if target else "",
        "note": note,
    }
    _check_access(user, portal, ActionKind.TRANSFER, key, chat=chat, operator=target, params=params)
    action, created = _begin(
        key=key,
        user=user,
        portal=portal,
        kind=ActionKind.TRANSFER,
        chat=chat,
        operator=target,
        params=params,
    )
    if not created:
        return _first_attempt(action)
    chat.refresh_from_db()
    if not chat.is_open:
        return _finish(action, ActionOutcome.REFUSED, "That chat has already ended.", code="ended")
    if portal.dialect == "v2" and not department_id:
        return _finish(
            action,
            ActionOutcome.REFUSED,
            "Pick a department: SalesIQ needs one to transfer.",
            code="department",
        )
    if portal.dialect == "reference" and not operator_id:
        return _finish(
            action,
            ActionOutcome.REFUSED,
            "Pick an operator: this portal transfers to a person.",
            code="operator",
        )
    if target is not None and selectors.current_operators(chat, [target]):
        # The picker never offers them; a stale form or a hand-made request can still ask.
        return _finish(
            action,
            ActionOutcome.REFUSED,
            f"{target.shown_name} already has this chat; pick someone else. "
            "Nothing was sent to SalesIQ.",
            code="same_operator",
        )
    client = SalesIQClient(portal, priority=Priority.ACTION)
    answer, failure = _call(
        action,
        lambda: client.transfer(
            chat.remote_id, department_id=department_id, operator_id=operator_id, note=note
        ),
    )
    if failure is not None:
        return action
    if answer is not None:
        live.apply_conversation(portal, answer, fact_at=timezone.now(), source=Source.ACTION)
    who = params["operator_name"] or params["department_name"] or "the new department"
    if portal.dialect == "v2":
        message = f"Transfer to {who} requested; SalesIQ tells when it is accepted."
    else:
        message = f"Transferred to {who}."
    return _finish(action, ActionOutcome.DONE, message)


# --- end -------------------------------------------------------------------------------------


def chat_end(*, key: str, user: Any, chat: Chat, message: str = "") -> Action:
    portal = chat.portal
    params = {"message": message}
    _check_access(user, portal, ActionKind.END, key, chat=chat, params=params)
    action, created = _begin(
        key=key, user=user, portal=portal, kind=ActionKind.END, chat=chat, params=params
    )
    if not created:
        return _first_attempt(action)
    chat.refresh_from_db()
    if not chat.is_open:
        return _finish(action, ActionOutcome.REFUSED, "That chat has already ended.", code="ended")
    client = SalesIQClient(portal, priority=Priority.ACTION)
    answer, failure = _call(action, lambda: client.close(chat.remote_id, message=message))
    if failure is not None:
        return action
    now = timezone.now()
    if answer is not None:
        live.apply_conversation(portal, answer, fact_at=now, source=Source.ACTION)
    else:
        live.mark_chat_ended(chat, at=now, source=Source.ACTION)
    return _finish(action, ActionOutcome.DONE, f"Chat with {action.chat_label} ended.")


# --- operator status -----------------------------------------------------------------------


def operator_set_status(*, key: str, user: Any, operator: Operator, status: str) -> Action:
    portal = operator.portal
    params = {"status": status}
    _check_access(user, portal, ActionKind.OPERATOR_STATUS, key, operator=operator, params=params)
    action, created = _begin(
        key=key,
        user=user,
        portal=portal,
        kind=ActionKind.OPERATOR_STATUS,
        operator=operator,
        params=params,
    )
    if not created:
        return _first_attempt(action)
    if status not in SETTABLE_STATUSES[portal.dialect]:
        allowed = ", ".join(str(OperatorStatus(s).label) for s in SETTABLE_STATUSES[portal.dialect])
        return _finish(
            action,
            ActionOutcome.REFUSED,
            f"This portal's SalesIQ can set only: {allowed}.",
            code="status",
        )
    client = SalesIQClient(portal, priority=Priority.ACTION)
    _, failure = _call(
        action, lambda: client.set_operator_status(operator.remote_id, RemoteStatus(status))
    )
    if failure is not None:
        return action
    live.apply_operator_status(
        portal, operator.remote_id, status, fact_at=timezone.now(), source=Source.ACTION
    )
    label = OperatorStatus(status).label
    return _finish(action, ActionOutcome.DONE, f"{operator.name} is now {label}.")


# --- drain ---------------------------------------------------------------------------------


@dataclass
class Move:
    chat: Chat
    to: Operator | None  # None: nobody free who covers the chat's department
    why: str = ""


@dataclass
class DrainPlan:
    operator: Operator
    moves: list[Move] = field(default_factory=list)

    @property
    def movable(self) -> list[Move]:
        return [move for move in self.moves if move.to is not None]


def operator_drain_plan(*, operator: Operator) -> DrainPlan:
    """Who would get which of ``operator``'s open chats: available operators of the chat's
    department (of the drained operator's departments when the chat names none), with room
    left, the emptiest first. Nothing happens until the supervisor confirms."""
    portal = operator.portal
    loads = selectors.operator_loads([portal])
    room: dict[int, int] = {}
    candidates = [
        op
        for op in Operator.objects.filter(
            portal=portal, status=OperatorStatus.AVAILABLE, enabled=True
        )
        .exclude(pk=operator.pk)
        .order_by("name", "pk")
    ]
    for op in candidates:
        capacity = op.max_chats if op.max_chats is not None else 0
        room[op.pk] = capacity - loads.get((portal.pk, op.remote_id), 0)
    chats = selectors.open_chats([portal]).filter(operator_id=operator.remote_id)
    plan = DrainPlan(operator=operator)
    for chat in chats:
        departments = [chat.department_id] if chat.department_id else list(operator.department_ids)
        fitting = [
            op
            for op in candidates
            if room[op.pk] > 0 and (not departments or set(departments) & set(op.department_ids))
        ]
        if not fitting:
            plan.moves.append(
                Move(chat, None, "Nobody available in this department has room for it.")
            )
            continue
        best = max(fitting, key=lambda op: (room[op.pk], -loads.get((portal.pk, op.remote_id), 0)))
        room[best.pk] -= 1
        plan.moves.append(Move(chat, best))
    return plan


def operator_drain(
    *, key: str, user: Any, operator: Operator, moves: list[tuple[int, int]]
) -> Action:
    """Carry out a drain plan the supervisor saw: ``moves`` are (chat pk, operator pk)
    pairs. Each transfer is a step of its own; then the operator is set Busy."""
    portal = operator.portal
    params = {"moves": [[c, o] for c, o in moves]}
    _check_access(user, portal, ActionKind.DRAIN, key, operator=operator, params=params)
    action, created = _begin(
        key=key, user=user, portal=portal, kind=ActionKind.DRAIN, operator=operator, params=params
    )
    if not created:
        return _first_attempt(action)
    done = 0
    for chat_pk, target_pk in moves:
        chat = Chat.objects.filter(pk=chat_pk, portal=portal).first()
        target = Operator.objects.filter(pk=target_pk, portal=portal).first()
        if chat is None or target is None:
            continue
        department = chat.department_id or next(iter(target.department_ids), "")
        step = chat_transfer(
            key=f"{key[:40]}:t{chat_pk}",
            user=user,
            chat=chat,
            department_id=department,
            operator_id=target.remote_id,
            note=f"Moved from {operator.name} by {user.get_username()}",
        )
        Action.objects.filter(pk=step.pk).update(parent=action)
        done += step.outcome == ActionOutcome.DONE
    status_step = operator_set_status(
        key=f"{key[:40]}:busy", user=user, operator=operator, status=OperatorStatus.BUSY
    )
    Action.objects.filter(pk=status_step.pk).update(parent=action)
    total = len(moves)
    moved = f"{done} of {total} chat{'s' if total != 1 else ''} moved"
    if status_step.outcome == ActionOutcome.DONE:
        message = f"{moved}; {operator.name} is now Busy."
    else:
        # The step's own record says why; the summary stays short.
        message = f"{moved}; SalesIQ did not let the dashboard set {operator.name} Busy."
    # Anything short of every step done needs a supervisor's eye: the steps say what failed.
    all_done = done == total and status_step.outcome == ActionOutcome.DONE
    return _finish(action, ActionOutcome.DONE if all_done else ActionOutcome.FAILED, message)


# --- SalesIQ confirms ------------------------------------------------------------------------


_CONFIRMING = {
    EventKind.TRANSFER_ACCEPTED: ActionKind.TRANSFER,
    EventKind.TRANSFER_REJECTED: ActionKind.TRANSFER,
    EventKind.CHAT_ENDED: ActionKind.END,
}


def confirm(portal: Portal, event: WebhookEvent) -> Action | None:
    """Complete the record of the action this webhook event confirms, if any."""
    kind = _CONFIRMING.get(event.kind)
    if kind is None or not event.chat_id:
        return None
    action = (
        Action.objects.filter(
            portal=portal,
            kind=kind,
            chat_remote_id=event.chat_id,
            # Still pending too: the webhook can overtake SalesIQ's answer to us.
            outcome__in=(ActionOutcome.DONE, ActionOutcome.PENDING),
            confirmed_at__isnull=True,
        )
        .order_by("-created_at", "-pk")
        .first()
    )
    if action is None:
        return None
    action.confirmation = event.name[:60]
    action.confirmed_at = timezone.now()
    if event.kind is EventKind.TRANSFER_ACCEPTED:
        # The accepted event's attender may still be the previous operator: the transfer
        # part names the new one.
        transfer = event.conversation.transfer if event.conversation else None
        who = (
            (transfer and transfer.to_operator_name)
            or action.params.get("operator_name")
            or "The new operator"
        )
        action.message = f"{who} accepted the transfer."
    elif event.kind is EventKind.TRANSFER_REJECTED:
        action.message = "The transfer was declined; the chat stays where it was."
    else:
        action.message = f"Chat with {action.chat_label} ended; SalesIQ confirmed it."
    action.save(update_fields=["confirmation", "confirmed_at", "message"])
    _publish(action)
    return action
