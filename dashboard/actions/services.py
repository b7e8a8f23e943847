"""What a supervisor can do to a chat or an operator: ``chat_transfer`` (and assigning a
waiting chat, through it), ``chat_end``, ``chat_message``, ``chat_pickup``,
``operator_set_status`` (a drain, several of these, is in drain.py).

Order of things for every action: access check → record (or find) the attempt → local
checks → SalesIQ, at the actions' priority of the call budget → the answer applied to the
live state (everyone watching sees it) → the outcome in words on the record. SalesIQ's
confirming webhook, when one comes, completes the record later (``outcomes.confirm``).

``page``: the id of the page whose request this is (``X-Live-Page``); the publication made
while answering skips it, since the HTTP answer shows the outcome there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.utils import timezone

from siq_integration import dialects, oauth
from siq_integration import exceptions as exc
from siq_integration.budget import Priority
from siq_integration.client import SalesIQClient
from siq_integration.normalised import OperatorStatus as RemoteStatus

from .. import selectors
from ..models import (
    Action,
    ActionKind,
    ActionOutcome,
    Chat,
    ChatStatus,
    Department,
    Operator,
    OperatorStatus,
    Source,
)
from ..state import apply
from .assign import stale_choice
from .locks import begin, first_attempt
from .outcomes import finish
from .refusals import check_access
from .status_rules import settable_statuses
from .wording import MESSAGING_NOT_ALLOWED, accepter, acting_user, sentence

logger = logging.getLogger(__name__)


def _refused_or_failed(failure: exc.SalesIQError) -> str:
    # SalesIQ said no (it answered with a code or an error status): refused. Nothing
    # known to have reached SalesIQ, or no answer at all: failed.
    if failure.never_sent or failure.unanswered:
        return ActionOutcome.FAILED
    return ActionOutcome.REFUSED


def _call(
    action: Action, call: Callable[[], Any], *, page: str | None
) -> tuple[Any, exc.SalesIQError | None]:
    try:
        return call(), None
    except exc.SalesIQError as failure:
        logger.info("Action %s refused: %s", action.pk, failure.technical())
        outcome = _refused_or_failed(failure)
        finish(action, outcome, sentence(action, failure), failure=failure, page=page)
        return None, failure


# --- transfer --------------------------------------------------------------------------------


def _begin_on_open_chat(
    *, key: str, user: Any, chat: Chat, kind: str, params: dict, page: str | None, **more: Any
) -> tuple[Action, bool]:
    """An action on ``chat``, recorded under its key before SalesIQ is called; whether it is
    over already: a repeat of the key (a double click, a retry) answers with the first
    attempt's record, and a chat that ended meanwhile refuses it, nothing sent."""
    check_access(user, chat.portal, kind)
    action, created = begin(
        key=key, user=user, portal=chat.portal, kind=kind, chat=chat, params=params, page=page,
        **more,
    )  # fmt: skip
    if not created:
        return first_attempt(action), True
    chat.refresh_from_db()
    if not chat.is_open:
        refused = finish(
            action, ActionOutcome.REFUSED, "That chat has already ended.", code="ended", page=page
        )
        return refused, True
    return action, False


def chat_transfer(
    *,
    key: str,
    user: Any,
    chat: Chat,
    department_id: str = "",
    operator_id: str = "",
    note: str = "",
    parent: Action | None = None,
    page: str | None = None,
    assign: bool = False,
) -> Action:
    """Transfer ``chat`` to a department and/or an operator (v2 needs the department).
    ``parent``: the drain this transfer is a step of. ``assign``: a waiting chat handed to
    the operator its row suggested (assign.py); refused if someone picked it up meanwhile."""
    portal = chat.portal
    dialect = dialects.get(portal.dialect)
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
        "operator_name": target.shown_name if target else "",
        "note": note,
    }
    if assign:
        params["assign"] = True
    action, over = _begin_on_open_chat(
        key=key, user=user, chat=chat, kind=ActionKind.TRANSFER, params=params, page=page,
        operator=target, parent=parent,
    )  # fmt: skip
    if over:
        return action
    if assign and chat.status != ChatStatus.WAITING:
        who = chat.operator_name or "Someone"
        return finish(
            action,
            ActionOutcome.REFUSED,
            f"{who} picked up this chat meanwhile, so it was not assigned. "
            "Nothing was sent to SalesIQ.",
            code="not_waiting",
            page=page,
        )
    if assign:
        # The page's choice is a moment old: the operator must still be free for the chat.
        stale = (
            stale_choice(chat, target)
            if operator_id
            else "Choose an operator to assign to. Nothing was sent to SalesIQ."
        )
        if stale:
            return finish(action, ActionOutcome.REFUSED, stale, code="stale_choice", page=page)
    if dialect.transfer_needs_department and not department_id:
        return finish(
            action,
            ActionOutcome.REFUSED,
            "Pick a department: SalesIQ needs one to transfer.",
            code="department",
            page=page,
        )
    if dialect.transfer_needs_operator and not operator_id:
        return finish(
            action,
            ActionOutcome.REFUSED,
            "Pick an operator: this portal transfers to a person.",
            code="operator",
            page=page,
        )
    if target is not None and selectors.current_operators(chat, [target]):
        # The picker never offers them; a stale form or a hand-made request can still ask.
        return finish(
            action,
            ActionOutcome.REFUSED,
            f"{target.shown_name} already has this chat; pick someone else. "
            "Nothing was sent to SalesIQ.",
            code="same_operator",
            page=page,
        )
    client = SalesIQClient(portal, priority=Priority.ACTION)
    answer, failure = _call(
        action,
        lambda: client.transfer(
            chat.remote_id, department_id=department_id, operator_id=operator_id, note=note
        ),
        page=page,
    )
    if failure is not None:
        return action
    if answer is not None:
        apply.apply_conversation(portal, answer, fact_at=timezone.now(), source=Source.ACTION)
    if dialect.transfer_needs_acceptance:
        # SalesIQ took it; the new operator still has to accept (its webhook says so). Until
        # then the transfer is pending (ActionState), on every screen.
        message = f"SalesIQ took the transfer; waiting for {accepter(params)} to accept."
    else:
        who = params["operator_name"] or params["department_name"] or "the new department"
        message = f"Transferred to {who}."
    return finish(action, ActionOutcome.DONE, message, page=page)


# --- end -------------------------------------------------------------------------------------


def chat_end(
    *, key: str, user: Any, chat: Chat, message: str = "", page: str | None = None
) -> Action:
    portal = chat.portal
    params = {"message": message}
    action, over = _begin_on_open_chat(
        key=key, user=user, chat=chat, kind=ActionKind.END, params=params, page=page
    )
    if over:
        return action
    client = SalesIQClient(portal, priority=Priority.ACTION)
    answer, failure = _call(
        action, lambda: client.close(chat.remote_id, message=message), page=page
    )
    if failure is not None:
        return action
    now = timezone.now()
    if answer is not None:
        apply.apply_conversation(portal, answer, fact_at=now, source=Source.ACTION)
    else:
        apply.mark_chat_ended(chat, at=now, source=Source.ACTION)
    return finish(action, ActionOutcome.DONE, f"Chat with {action.chat_label} ended.", page=page)


# --- message the visitor ----------------------------------------------------------------------


def chat_message(*, key: str, user: Any, chat: Chat, text: str, page: str | None = None) -> Action:
    """Write ``text`` to the visitor of ``chat`` as the portal's connected user (SalesIQ's
    Send Message (Operator)). The line reaches every page through SalesIQ's message webhook;
    SalesIQ's answer already puts it in a transcript that is loaded."""
    portal = chat.portal
    text = text.strip()
    params = {"text": text}
    action, over = _begin_on_open_chat(
        key=key, user=user, chat=chat, kind=ActionKind.MESSAGE, params=params, page=page
    )
    if over:
        return action
    if not text:
        return finish(
            action,
            ActionOutcome.REFUSED,
            "Write a message or pick a canned line first. Nothing was sent to SalesIQ.",
            code="empty",
            page=page,
        )
    if not oauth.may_message(portal):
        return finish(action, ActionOutcome.REFUSED, MESSAGING_NOT_ALLOWED, code="scope", page=page)
    client = SalesIQClient(portal, priority=Priority.ACTION)
    message, failure = _call(
        action, lambda: client.send_message(chat.remote_id, text=text), page=page
    )
    if isinstance(failure, exc.ScopeMissing):
        oauth.forget_messaging_scope(portal)  # the button says so from now on
    if failure is not None:
        return action
    chat.refresh_from_db()
    if message is not None and chat.transcript_loaded_at is not None:
        # A loaded transcript gets the line now; the webhook brings the same line (same id)
        # to every page, and to a transcript loaded later from SalesIQ anyway.
        apply.apply_transcript(chat, [message], fetched_at=chat.transcript_loaded_at)
    return finish(
        action,
        ActionOutcome.DONE,
        f"Sent to {action.chat_label} as {acting_user(portal)}.",
        page=page,
    )


# --- pick up ---------------------------------------------------------------------------------


def chat_pickup(*, key: str, user: Any, chat: Chat, page: str | None = None) -> Action:
    """Pick up a waiting chat as the portal's connected user (SalesIQ's Pick up Chat): that
    user becomes its operator in SalesIQ."""
    portal = chat.portal
    action, over = _begin_on_open_chat(
        key=key, user=user, chat=chat, kind=ActionKind.PICKUP, params={}, page=page
    )
    if over:
        return action
    if chat.status != ChatStatus.WAITING:
        who = chat.operator_name or "Someone"
        return finish(
            action,
            ActionOutcome.REFUSED,
            f"{who} has already picked up this chat. Nothing was sent to SalesIQ.",
            code="not_waiting",
            page=page,
        )
    if not dialects.get(portal.dialect).can_pick_up:
        return finish(
            action,
            ActionOutcome.REFUSED,
            "This portal's SalesIQ has no call to pick up a chat; pick it up in SalesIQ, or "
            "assign it to an operator. Nothing was sent to SalesIQ.",
            code="unsupported",
            page=page,
        )
    client = SalesIQClient(portal, priority=Priority.ACTION)
    answer, failure = _call(action, lambda: client.pickup(chat.remote_id), page=page)
    if failure is not None:
        return action
    if answer is not None:
        apply.apply_conversation(portal, answer, fact_at=timezone.now(), source=Source.ACTION)
    who = acting_user(portal)
    return finish(
        action,
        ActionOutcome.DONE,
        f"Picked up as {who}: the chat with {action.chat_label} is {who}'s now in SalesIQ.",
        page=page,
    )


# --- operator status -----------------------------------------------------------------------


def operator_set_status(
    *,
    key: str,
    user: Any,
    operator: Operator,
    status: str,
    parent: Action | None = None,
    page: str | None = None,
) -> Action:
    portal = operator.portal
    params = {"status": status}
    check_access(user, portal, ActionKind.OPERATOR_STATUS)
    action, created = begin(
        key=key,
        user=user,
        portal=portal,
        kind=ActionKind.OPERATOR_STATUS,
        operator=operator,
        params=params,
        parent=parent,
        page=page,
    )
    if not created:
        return first_attempt(action)
    allowed = settable_statuses(portal)
    if status not in allowed:
        return finish(
            action,
            ActionOutcome.REFUSED,
            f"This portal's SalesIQ can set only: {', '.join(str(s.label) for s in allowed)}.",
            code="status",
            page=page,
        )
    client = SalesIQClient(portal, priority=Priority.ACTION)
    _, failure = _call(
        action,
        lambda: client.set_operator_status(operator.remote_id, RemoteStatus(status)),
        page=page,
    )
    if failure is not None:
        return action
    apply.apply_operator_status(
        portal, operator.remote_id, status, fact_at=timezone.now(), source=Source.ACTION
    )
    label = OperatorStatus(status).label
    return finish(action, ActionOutcome.DONE, f"{operator.shown_name} is now {label}.", page=page)
