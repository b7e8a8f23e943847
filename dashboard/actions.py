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
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as Forbidden
from django.db import IntegrityError, transaction
from django.db.models import Max, Q, Sum
from django.utils import timezone

from siq_integration import dialects, oauth
from siq_integration import exceptions as exc
from siq_integration.budget import Priority
from siq_integration.client import SalesIQClient
from siq_integration.models import Portal
from siq_integration.normalised import EventKind, WebhookEvent
from siq_integration.normalised import OperatorStatus as RemoteStatus

from . import access, selectors
from .models import (
    SETTLED_WELL,
    Action,
    ActionKind,
    ActionOutcome,
    ActionState,
    Chat,
    Department,
    Operator,
    OperatorStatus,
    RefusalTally,
    Source,
)
from .state import apply
from .users import shown_name

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


def runner_name() -> str:
    """This process, as an action's ``runner`` names it: "host:pid"."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}"


def _lock_for(portal: Portal, kind: str, chat: Chat | None, operator: Operator | None) -> str:
    """What an action holds while it is in flight: its chat (a transfer, an end), else its
    operator (a status change, a drain). Both name the portal: remote ids are per portal."""
    if chat is not None:
        return f"{portal.pk}:chat:{chat.remote_id}"[:120]
    if operator is not None:
        return f"{portal.pk}:operator:{operator.remote_id}"[:120]
    return ""


# What the holder of a lock is doing, in words ("Sam Lee is already transferring this chat").
_DOING = {
    ActionKind.TRANSFER: "transferring this chat",
    ActionKind.END: "ending this chat",
    ActionKind.OPERATOR_STATUS: "changing {operator}'s status",
    ActionKind.DRAIN: "draining {operator}",
}


def busy_sentence(holder: Action, user: Any) -> str:
    """Why a second action on the same chat (or operator) is refused while one is in flight."""
    doing = _DOING[holder.kind].format(operator=holder.operator_label or "this operator")
    if holder.user_id is not None and holder.user_id == user.pk:
        return (
            f"You are already {doing} (in another tab or window). Wait for its outcome; "
            "nothing more was sent to SalesIQ."
        )
    who = shown_name(holder.user) if holder.user is not None else holder.username
    return f"{who} is already {doing}. Wait for the outcome; nothing was sent to SalesIQ."


# How many times _begin tries again when a lock is freed under it.
BEGIN_ATTEMPTS = 5


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
    """The attempt's record: created now (True), or the one this key already made, or a
    refusal because another action on the same chat or operator is in flight (False).

    The lock is the row itself: ``action_one_in_flight`` lets one pending action hold a
    chat or an operator in the database, so it holds across every process."""
    lock = _lock_for(portal, kind, chat, operator)
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
        return _finish(
            refused, ActionOutcome.REFUSED, busy_sentence(holder, user), code="in_flight"
        ), False
    raise RuntimeError("could not record the action")  # pragma: no cover


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
        if stuck(action):
            # Nobody will answer it (its process died): say so now rather than wait.
            return abandon(action) or _reread(action)
        time.sleep(REPEAT_POLL)
        action.refresh_from_db()
    return action


def _reread(action: Action) -> Action:
    action.refresh_from_db()
    return action


# --- actions whose process died ------------------------------------------------------------

# A pending action older than this has no clear answer: no SalesIQ call (its timeouts and
# retries) takes this long, so its process died or lost it. The worker's sweep says so.
STUCK_AFTER = timedelta(minutes=2)


def stuck_after() -> timedelta:
    """STUCK_AFTER, or longer when the HTTP settings let one call take longer: every attempt
    timing out, the pauses between them, and a token refresh first."""
    one_try = settings.SIQ_HTTP_CONNECT_TIMEOUT + settings.SIQ_HTTP_READ_TIMEOUT
    attempts = settings.SIQ_RETRY_ATTEMPTS
    longest = attempts * one_try + (attempts - 1) * settings.SIQ_RETRY_MAX_DELAY + one_try + 15
    return max(STUCK_AFTER, timedelta(seconds=longest))


ABANDONED = "abandoned"  # error_code of an action nobody answered


def runner_gone(runner: str) -> bool:
    """Whether the process that ran an action ("host:pid") is known to be dead: only a
    process of this host can be checked; any other counts as alive (``STUCK_AFTER``)."""
    host, _, pid = runner.rpartition(":")
    if host != socket.gethostname()[:60] or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: asks whether it exists, sends nothing
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, ValueError):
        return False
    return False


def stuck(action: Action, now: datetime | None = None) -> bool:
    """A pending action that will get no answer: its process is dead, or it is too old."""
    if action.outcome != ActionOutcome.PENDING:
        return False
    now = now or timezone.now()
    if runner_gone(action.runner):
        return True
    if action.created_at >= now - stuck_after():
        return False
    if action.kind == ActionKind.DRAIN:
        # A drain makes one call after another: it is stuck once its newest step is.
        newest = action.steps.aggregate(at=Max("created_at"))["at"]
        if newest is not None and newest >= now - stuck_after():
            return False
    return True


def abandon(action: Action, *, failed_here: bool = False) -> Action | None:
    """Settle an action nobody will answer as "No clear answer", in words; SalesIQ's
    confirming webhook or a later read of the chat can still settle it. None if it was
    settled meanwhile. ``failed_here``: this process hit an unexpected error running it."""
    with transaction.atomic():
        current = (
            Action.objects.select_for_update()
            .filter(pk=action.pk, outcome=ActionOutcome.PENDING)
            .first()
        )
        if current is None:
            return None
        gone = runner_gone(current.runner)
        verb = _VERBS[current.kind]
        if failed_here:
            said = (
                "Something went wrong in the dashboard while it did this, so it cannot tell "
                f"whether SalesIQ managed to {verb}."
            )
        elif gone:
            said = (
                "The dashboard stopped before SalesIQ answered, so it cannot tell whether it "
                f"managed to {verb}."
            )
        else:
            minutes = round(stuck_after().total_seconds() / 60)
            said = (
                f"SalesIQ gave no answer within {minutes} minutes, so the dashboard cannot "
                f"tell whether it managed to {verb}."
            )
        if current.kind == ActionKind.DRAIN:
            said += " " + drain_summary(current, list(current.steps.order_by("pk")))
        else:
            said += " The live view shows it within seconds; try again only if nothing changed."
        current.outcome = ActionOutcome.FAILED
        current.finished_at = timezone.now()
        current.error_code = ABANDONED
        if failed_here:
            current.error_detail = "An unexpected error in the dashboard (see its log)."
        else:
            current.error_detail = f"Runner {current.runner or 'unknown'} " + (
                "is no longer running." if gone else f"recorded no answer in {stuck_after()}."
            )
        current.message = said
        current.save()
    _publish(current)
    if current.parent_id:
        _settle_drain(current.parent_id)
    return current


def abandon_after_error(key: str) -> None:
    """An unexpected error ran through the action of ``key`` (and its steps) here: settle
    what it left pending now, rather than hold its chat or operator until the sweep."""
    left = Action.objects.filter(
        Q(key=key[:64]) | Q(parent__key=key[:64]),
        outcome=ActionOutcome.PENDING,
        runner=runner_name(),
    )
    for action in left.order_by("-pk"):
        abandon(action, failed_here=True)


# How many stuck actions one sweep settles (the worker sweeps every few seconds).
STUCK_SWEEP_LIMIT = 50


def sweep_stuck(now: datetime | None = None) -> int:
    """Settle pending actions that will get no answer (the worker's tick calls this). Steps
    before their drain, so the drain's words say what became of them."""
    now = now or timezone.now()
    settled = 0
    pending = Action.objects.filter(outcome=ActionOutcome.PENDING).order_by("-created_at", "-pk")
    for action in pending[:STUCK_SWEEP_LIMIT]:
        if stuck(action, now) and abandon(action) is not None:
            logger.info("Action %s had no answer from its runner; settled as unclear", action.pk)
            settled += 1
    return settled


# --- a later read settles what is still open -----------------------------------------------

_UNSETTLED = Q(outcome=ActionOutcome.PENDING) | Q(
    outcome=ActionOutcome.FAILED, error_code=ABANDONED
)


def _settle_seen(action: Action, message: str, *, accepted: bool = False) -> None:
    """SalesIQ's own state (a poll) shows what an unsettled action asked for: it happened."""
    with transaction.atomic():
        current = Action.objects.select_for_update().filter(pk=action.pk).filter(_UNSETTLED)
        current = current.filter(confirmed_at__isnull=True).first()
        if current is None:
            return
        current.outcome = ActionOutcome.DONE
        current.finished_at = current.finished_at or timezone.now()
        current.error_code = ""
        current.message = message
        if accepted:
            current.confirmation = SEEN_IN_POLL
            current.confirmed_at = timezone.now()
        current.save()
    _publish(current)
    if current.parent_id:
        _settle_drain(current.parent_id)


SEEN_IN_POLL = "poll.transfer.accepted"  # the chat list shows the new operator has it
# How far back a poll looks for unsettled actions (an index range, not the whole history).
SETTLE_WINDOW = timedelta(hours=1)


def settle_by_chats(portal: Portal, *, read_at: datetime) -> None:
    """After a poll of open chats (asked at ``read_at``): unsettled ends and transfers begun
    before it whose chat shows them done are settled."""
    unsettled = Action.objects.filter(
        _UNSETTLED,
        portal=portal,
        kind__in=(ActionKind.END, ActionKind.TRANSFER),
        created_at__lt=read_at,
        created_at__gte=read_at - SETTLE_WINDOW,
        confirmed_at__isnull=True,
    )
    for action in unsettled[:STUCK_SWEEP_LIMIT]:
        chat = Chat.objects.filter(portal=portal, remote_id=action.chat_remote_id).first()
        if chat is None:
            continue
        if action.kind == ActionKind.END:
            if not chat.is_open:
                _settle_seen(
                    action,
                    f"Chat with {action.chat_label} ended; SalesIQ's list of open chats shows it.",
                )
            continue
        target_id = action.params.get("operator_id", "")
        target = action.params.get("operator_name") or action.params.get("department_name")
        if chat.is_open and target_id and chat.operator_id == target_id:
            who = target or "The new operator"
            _settle_seen(
                action,
                f"{who} has the chat now; SalesIQ's list of open chats shows it.",
                accepted=portal.dialect == "v2",
            )
        elif (
            chat.is_open
            and target
            and (chat.transfer_status, chat.transfer_to)
            == (
                "initiated",
                target,
            )
        ):
            _settle_seen(
                action,
                f"SalesIQ took the transfer; waiting for {_accepter(action.params)} to accept.",
            )


def settle_by_operators(portal: Portal, *, read_at: datetime) -> None:
    """After a poll of operators: unsettled status changes the list shows done are settled."""
    unsettled = Action.objects.filter(
        _UNSETTLED,
        portal=portal,
        kind=ActionKind.OPERATOR_STATUS,
        created_at__lt=read_at,
        created_at__gte=read_at - SETTLE_WINDOW,
    )
    for action in unsettled[:STUCK_SWEEP_LIMIT]:
        wanted = action.params.get("status", "")
        operator = Operator.objects.filter(
            portal=portal, remote_id=action.operator_remote_id
        ).first()
        if operator is not None and wanted and operator.status == wanted:
            label = OperatorStatus(wanted).label
            _settle_seen(
                action,
                f"{operator.shown_name} is now {label}; SalesIQ's list of operators shows it.",
            )


def _finish(
    action: Action,
    outcome: str,
    message: str | Callable[[Action], str],
    *,
    failure: exc.SalesIQError | None = None,
    code: str = "",
) -> Action:
    """SalesIQ's answer (or the dashboard's refusal) on the record, and to the acting user.

    Under the row's lock: SalesIQ's confirming webhook can overtake its answer (``confirm``
    may run meanwhile), and its words and state must survive the answer arriving later.
    ``message`` may be a function of the locked row (a drain says what its steps say)."""
    with transaction.atomic():
        current = Action.objects.select_for_update().get(pk=action.pk)
        if current.confirmed_at and outcome == ActionOutcome.FAILED:
            # SalesIQ's webhook said it happened; an answer lost on the way does not undo it.
            outcome = ActionOutcome.DONE
        current.outcome = outcome
        current.finished_at = timezone.now()
        if failure is not None:
            current.error_code = str(failure.code or type(failure).__name__)[:40]
            current.error_detail = failure.technical()[:2000]
        elif code:
            current.error_code = code
        if not current.confirmed_at:
            current.message = message(current) if callable(message) else message
        current.save()
    action.refresh_from_db()
    _publish(action)
    return action


def _publish(action: Action) -> None:
    from .realtime import publish  # renders templates; keep this module light to import

    publish.action_outcome(action.pk)


# Refusals by role are counted, not stored (``RefusalTally``): a run of attempts is one row
# while they come less than TALLY_GAP apart; past REFUSALS_PER_MINUTE a minute (all kinds and
# portals of one user) the answer is 429 instead of 403.
TALLY_GAP = timedelta(minutes=10)
REFUSALS_PER_MINUTE = 10


class TooManyRefusals(Exception):
    """A user refused by role keeps trying: slow down (429)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many refused attempts")
        self.retry_after = retry_after


def _forbidden(user: Any, portal: Portal, kind: str) -> None:
    """Refuse a user who may see the portal but not act on it (a Viewer): count the try
    (nothing of what was typed is kept) and say no, or, past the limit, slow them down."""
    now = timezone.now()
    minute = now.replace(second=0, microsecond=0)
    with transaction.atomic():
        tally = (
            RefusalTally.objects.select_for_update()
            .filter(user=user, portal=portal, kind=kind, last_at__gte=now - TALLY_GAP)
            .order_by("-last_at", "-pk")
            .first()
        )
        if tally is None:
            role = access.role_of(user)
            tally = RefusalTally(
                user=user,
                username=shown_name(user)[:150],
                role=str(role.label) if role else "",
                portal=portal,
                kind=kind,
                first_at=now,
                minute=minute,
            )
            logger.info("User %s refused by role on portal %s (%s)", user.pk, portal.pk, kind)
        if tally.minute != minute:
            tally.minute, tally.in_minute = minute, 0
        tally.count += 1
        tally.in_minute += 1
        tally.last_at = now
        tally.save()
    tried = (
        RefusalTally.objects.filter(user=user, minute=minute).aggregate(n=Sum("in_minute"))["n"]
        or 0
    )
    if tried > REFUSALS_PER_MINUTE:
        raise TooManyRefusals(retry_after=60 - now.second)
    raise Forbidden("Your role may not act on this portal.")


def _check_access(user: Any, portal: Portal, kind: str) -> None:
    if not access.can_view(user, portal):
        raise Forbidden("No such portal.")
    if not access.can_act(user, portal):
        _forbidden(user, portal, kind)


# --- sentences -------------------------------------------------------------------------------


_VERBS = {
    ActionKind.TRANSFER: "transfer the chat",
    ActionKind.END: "end the chat",
    ActionKind.OPERATOR_STATUS: "change the operator's status",
    ActionKind.DRAIN: "drain the operator",
}


def status_not_own(operator_name: str, *, offer_drain: bool = True) -> str:
    """SalesIQ v2's refusal (NotOwnStatus) of another operator's status, in words. A drain's own
    status step does not advise draining: that is what the supervisor is doing."""
    said = (
        f"SalesIQ lets this portal's connected user change only their own status, so "
        f"{operator_name}'s status cannot be set from here. {operator_name} can change it in "
        "SalesIQ"
    )
    if offer_drain:
        return f"{said}; to free them now, drain their chats to other operators."
    return f"{said}."


def sentence(action: Action, failure: exc.SalesIQError) -> str:
    """SalesIQ's refusal as a supervisor would put it."""
    verb = _VERBS[action.kind]
    if isinstance(failure, exc.NotOwnStatus):
        # v2 documents that the status call sets the caller's own status only; the
        # reference dialect's PATCH has no such rule, so its refusal is about the role.
        return status_not_own(
            action.operator_label or "this operator", offer_drain=action.parent_id is None
        )
    if isinstance(failure, exc.PermissionDenied):
        return (
            f"SalesIQ does not allow this portal's connected user to {verb}. An admin can "
            "reconnect the portal as a SalesIQ Supervisor or Administrator."
        )
    # A bare 404 on a transfer may be the operator as much as the chat: the dialect says
    # ChatGone only when the chat is what is gone.
    if isinstance(failure, exc.ChatNotActive) or (
        isinstance(failure, exc.ChatGone) and action.kind in (ActionKind.END, ActionKind.TRANSFER)
    ):
        return "That chat has already ended."
    if isinstance(failure, exc.DepartmentGone):
        return "That department does not exist in SalesIQ any more. Pick another one."
    if isinstance(failure, exc.OperatorGone):
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
    if isinstance(failure, exc.TooManyRequests) and failure.retry_at:
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
    if isinstance(failure, exc.RateLimited) and not isinstance(failure, exc.TooManyRequests):
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
    parent: Action | None = None,
) -> Action:
    """Transfer ``chat`` to a department and/or an operator (v2 needs the department).
    ``parent``: the drain this transfer is a step of."""
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
        "operator_name": target.shown_name if target else "",
        "note": note,
    }
    _check_access(user, portal, ActionKind.TRANSFER)
    action, created = _begin(
        key=key,
        user=user,
        portal=portal,
        kind=ActionKind.TRANSFER,
        chat=chat,
        operator=target,
        params=params,
        parent=parent,
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
        apply.apply_conversation(portal, answer, fact_at=timezone.now(), source=Source.ACTION)
    if portal.dialect == "v2":
        # SalesIQ took it; the new operator still has to accept (its webhook says so). Until
        # then the transfer is pending (ActionState), on every screen.
        message = f"SalesIQ took the transfer; waiting for {_accepter(params)} to accept."
    else:
        who = params["operator_name"] or params["department_name"] or "the new department"
        message = f"Transferred to {who}."
    return _finish(action, ActionOutcome.DONE, message)


def _accepter(params: dict) -> str:
    """Who must accept a v2 transfer: the operator picked, else anyone in the department."""
    if params.get("operator_name"):
        return params["operator_name"]
    if params.get("department_name"):
        return f"someone in {params['department_name']}"
    return "the new operator"


# --- end -------------------------------------------------------------------------------------


def chat_end(*, key: str, user: Any, chat: Chat, message: str = "") -> Action:
    portal = chat.portal
    params = {"message": message}
    _check_access(user, portal, ActionKind.END)
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
        apply.apply_conversation(portal, answer, fact_at=now, source=Source.ACTION)
    else:
        apply.mark_chat_ended(chat, at=now, source=Source.ACTION)
    return _finish(action, ActionOutcome.DONE, f"Chat with {action.chat_label} ended.")


# --- operator status -----------------------------------------------------------------------


def operator_set_status(
    *, key: str, user: Any, operator: Operator, status: str, parent: Action | None = None
) -> Action:
    portal = operator.portal
    params = {"status": status}
    _check_access(user, portal, ActionKind.OPERATOR_STATUS)
    action, created = _begin(
        key=key,
        user=user,
        portal=portal,
        kind=ActionKind.OPERATOR_STATUS,
        operator=operator,
        params=params,
        parent=parent,
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
    apply.apply_operator_status(
        portal, operator.remote_id, status, fact_at=timezone.now(), source=Source.ACTION
    )
    label = OperatorStatus(status).label
    return _finish(action, ActionOutcome.DONE, f"{operator.shown_name} is now {label}.")


# --- whose status SalesIQ lets the dashboard set ------------------------------------------


@dataclass(frozen=True)
class StatusRule:
    """Whether the status buttons are offered for an operator, and what to say before the
    click (v2 lets the connected user set only their own status; SalesIQ still decides)."""

    offered: bool
    note: str = ""
    known: bool = True  # whether the dashboard knows who the portal is connected as


def connected_operator(portal: Portal) -> Operator | None:
    """The operator this portal's grant acts as in SalesIQ, when the dashboard knows."""
    if portal.connected_user_id:
        found = Operator.objects.filter(portal=portal, remote_id=portal.connected_user_id).first()
        if found is not None:
            return found
    if portal.connected_user_email:
        return (
            Operator.objects.filter(portal=portal, email__iexact=portal.connected_user_email)
            .order_by("pk")
            .first()
        )
    return None


def status_rule(operator: Operator, *, open_chats: int = 0) -> StatusRule:
    """What the panel offers for ``operator``'s status, said before anyone clicks."""
    portal = operator.portal
    if dialects.get(portal.dialect).can_set_others_status:
        return StatusRule(offered=True)
    me = connected_operator(portal)
    if me is not None and me.pk == operator.pk:
        return StatusRule(offered=True)
    if me is None and not portal.connected_user_email:
        return StatusRule(
            offered=True,
            known=False,
            note=(
                "SalesIQ lets the user this portal is connected as change only their own "
                "status, and the dashboard does not know who that is: for anyone else SalesIQ "
                "refuses. Reconnecting the portal lets the dashboard find out."
            ),
        )
    connected = me.shown_name if me else portal.connected_user_name or portal.connected_user_email
    instead = f"Ask {operator.shown_name} to change it in SalesIQ"
    if open_chats:
        instead += ", or drain their chats"
    return StatusRule(
        offered=False,
        note=(
            f"SalesIQ lets only {connected}, the user this portal is connected as, change "
            f"their own status here. {instead}."
        ),
    )


# Zoho Accounts is asked at most this often per portal and process while it gives no answer.
ASK_AGAIN_SECONDS = 600.0
_asked: dict[Any, float] = {}


def learn_connected_user(portal: Portal) -> Operator | None:
    """Find which operator ``portal``'s grant acts as (v2), once: by the e-mail Zoho Accounts
    gave when the portal connected, else by asking Zoho Accounts now (grants made before the
    dashboard asked for the profile scope cannot say). The worker calls this after each
    operators poll; it costs no SalesIQ call."""
    if portal.dialect != "v2" or portal.connected_user_id or not portal.is_connected:
        return None
    this_grant = Portal.objects.filter(pk=portal.pk, connected_at=portal.connected_at)
    if not portal.connected_user_email:
        if not oauth.may_read_profile(portal):
            return None
        asked = _asked.get(portal.pk)
        if asked is not None and time.monotonic() - asked < ASK_AGAIN_SECONDS:
            return None
        _asked[portal.pk] = time.monotonic()
        try:
            user = oauth.connected_user(portal)
        except exc.SalesIQError as failure:
            logger.info("Portal %s: who the grant acts as is unknown: %s", portal.pk, failure)
            return None
        this_grant.update(connected_user_name=user.name, connected_user_email=user.email)
        portal.connected_user_name, portal.connected_user_email = user.name, user.email
    me = connected_operator(portal)
    if me is not None:
        this_grant.update(connected_user_id=me.remote_id)
        portal.connected_user_id = me.remote_id
    return me


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
    set_busy: bool = True
    busy_note: str = ""  # why the drain leaves the status as it is

    @property
    def movable(self) -> list[Move]:
        return [move for move in self.moves if move.to is not None]

    @property
    def nothing_to_do(self) -> bool:
        return not self.movable and not self.set_busy


def _busy_step(operator: Operator) -> tuple[bool, str]:
    """Whether a drain sets ``operator`` Busy, and if not, why (in words)."""
    name = operator.shown_name
    if operator.status == OperatorStatus.BUSY:
        return False, f"{name} is Busy already."
    rule = status_rule(operator)
    if not rule.offered:
        me = connected_operator(operator.portal)
        connected = (
            me.shown_name
            if me
            else operator.portal.connected_user_name or operator.portal.connected_user_email
        )
        return False, (
            f"{name}'s status stays as it is: SalesIQ lets only {connected}, the user this "
            "portal is connected as, change their own status."
        )
    return True, ""


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
        .order_by("name", "display_name", "pk")
    ]
    for op in candidates:
        capacity = op.max_chats if op.max_chats is not None else 0
        room[op.pk] = capacity - loads.get((portal.pk, op.remote_id), 0)
    chats = selectors.open_chats([portal]).filter(operator_id=operator.remote_id)
    set_busy, busy_note = _busy_step(operator)
    plan = DrainPlan(operator=operator, set_busy=set_busy, busy_note=busy_note)
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
    pairs. Each transfer is a step of its own; then the operator is set Busy (unless they
    are already, or SalesIQ would refuse it: see ``_busy_step``).

    The drain's words and state follow its steps (``drain_summary``, ``ActionState``): on
    v2 each transfer waits for the new operator, and ``confirm`` settles the drain again
    when SalesIQ says accepted or declined."""
    portal = operator.portal
    set_busy, busy_note = _busy_step(operator)
    params = {"moves": [[c, o] for c, o in moves], "set_busy": set_busy, "busy_note": busy_note}
    _check_access(user, portal, ActionKind.DRAIN)
    action, created = _begin(
        key=key, user=user, portal=portal, kind=ActionKind.DRAIN, operator=operator, params=params
    )
    if not created:
        return _first_attempt(action)
    if not moves and not set_busy:
        return _finish(
            action,
            ActionOutcome.REFUSED,
            f"Nothing to do: there is no chat to move. {busy_note}",
            code="nothing",
        )
    for chat_pk, target_pk in moves:
        chat = Chat.objects.filter(pk=chat_pk, portal=portal).first()
        target = Operator.objects.filter(pk=target_pk, portal=portal).first()
        if chat is None or target is None:
            continue
        department = chat.department_id or next(iter(target.department_ids), "")
        chat_transfer(
            key=f"{key[:40]}:t{chat_pk}",
            user=user,
            chat=chat,
            department_id=department,
            operator_id=target.remote_id,
            note=f"Moved from {operator.shown_name} by {shown_name(user)}",
            parent=action,
        )
    if set_busy:
        operator_set_status(
            key=f"{key[:40]}:busy",
            user=user,
            operator=operator,
            status=OperatorStatus.BUSY,
            parent=action,
        )
    # SalesIQ took every step (its answers), or not: the state then weighs confirmations.
    answers = action.steps.values_list("outcome", flat=True)
    took_all = all(answer == ActionOutcome.DONE for answer in answers)
    return _finish(
        action,
        ActionOutcome.DONE if took_all else ActionOutcome.FAILED,
        lambda drain: drain_summary(drain, list(drain.steps.order_by("pk"))),
    )


def _names(items: list[str]) -> str:
    """ "A", "A and B", "A, B and C"."""
    items = list(dict.fromkeys(items))  # each once, in order
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def drain_summary(drain: Action, steps: list[Action]) -> str:
    """A drain in words, from its steps as they stand: "1 of 2 chats moved; the transfer of
    Bo was declined. Ana is now Busy." Said again whenever a step's confirmation arrives."""
    name = drain.operator_label or "The operator"
    transfers = [step for step in steps if step.kind == ActionKind.TRANSFER]
    status = next((step for step in steps if step.kind == ActionKind.OPERATOR_STATUS), None)
    said = ""
    if transfers:
        moved = [step for step in transfers if step.state in SETTLED_WELL]
        waiting = [step for step in transfers if step.state == ActionState.PENDING]
        declined = [step for step in transfers if step.state == ActionState.DECLINED]
        failed = [step for step in transfers if step not in (*moved, *waiting, *declined)]
        total = len(transfers)
        said = f"{len(moved)} of {total} chat{'s' if total != 1 else ''} moved"
        clauses = []
        if waiting:
            said += " so far"
            accepters = _names([_accepter(step.params) for step in waiting])
            clauses.append(f"waiting for {accepters} to accept")
        for group, verb in ((declined, "was declined"), (failed, "did not go through")):
            if group:
                labels = _names([step.chat_label or "a visitor" for step in group])
                plural = len(group) > 1
                verb = verb.replace("was", "were") if plural else verb
                clauses.append(f"the transfer{'s' if plural else ''} of {labels} {verb}")
        said = "; ".join([said, *clauses]) + "."
    if status is None:
        tail = drain.params.get("busy_note", "")
    elif status.state == ActionState.DONE:
        tail = f"{name} is now Busy."
    elif status.state == ActionState.PENDING:
        tail = f"Setting {name} Busy…"
    else:
        # The step's own record says why; the summary stays short.
        tail = f"SalesIQ did not let the dashboard set {name} Busy."
    return " ".join(part for part in (said, tail) if part)


def _settle_drain(drain_pk: int) -> None:
    """A drain's words and state again, from its steps as they stand, to the acting user's
    pages (under the drain's lock: two confirmations may arrive together)."""
    with transaction.atomic():
        drain = Action.objects.select_for_update().filter(pk=drain_pk).first()
        if drain is None or drain.outcome == ActionOutcome.PENDING:
            return  # still running: operator_drain says it when it finishes
        drain.message = drain_summary(drain, list(drain.steps.order_by("pk")))
        drain.save(update_fields=["message"])
    _publish(drain)


# --- SalesIQ confirms ------------------------------------------------------------------------


def _operator_shown(portal: Portal, remote_id: str) -> str:
    """The display name of the portal's operator ``remote_id`` ("" when unknown)."""
    operator = Operator.objects.filter(portal=portal, remote_id=remote_id).first()
    return operator.shown_name if remote_id and operator else ""


_CONFIRMING = {
    EventKind.TRANSFER_ACCEPTED: ActionKind.TRANSFER,
    EventKind.TRANSFER_REJECTED: ActionKind.TRANSFER,
    EventKind.CHAT_ENDED: ActionKind.END,
}


def confirm(portal: Portal, event: WebhookEvent) -> Action | None:
    """Complete the record of the action this webhook event confirms, if any; a drain whose
    step it is is settled again (its words and state follow its steps)."""
    kind = _CONFIRMING.get(event.kind)
    if kind is None or not event.chat_id:
        return None
    with transaction.atomic():
        action = (
            Action.objects.select_for_update()
            .filter(
                portal=portal,
                kind=kind,
                chat_remote_id=event.chat_id,
                confirmed_at__isnull=True,
            )
            # Still pending too: the webhook can overtake SalesIQ's answer to us, or the
            # process that sent it died before the answer (then it was settled as unclear).
            .filter(Q(outcome=ActionOutcome.DONE) | _UNSETTLED)
            .order_by("-created_at", "-pk")
            .first()
        )
        if action is None:
            return None
        action.confirmation = event.name[:60]
        action.confirmed_at = timezone.now()
        if action.outcome != ActionOutcome.DONE:
            # SalesIQ did it: the action no longer waits for an answer (and lets go its lock).
            action.outcome = ActionOutcome.DONE
            action.finished_at = action.finished_at or action.confirmed_at
            action.error_code = ""
        if event.kind is EventKind.TRANSFER_ACCEPTED:
            # The accepted event's attender may still be the previous operator: the transfer
            # part names the new one.
            transfer = event.conversation.transfer if event.conversation else None
            who = (
                (transfer and _operator_shown(portal, transfer.to_operator_id))
                or (transfer and transfer.to_operator_name)
                or action.params.get("operator_name")
                or "The new operator"
            )
            action.message = f"{who} accepted the transfer."
        elif event.kind is EventKind.TRANSFER_REJECTED:
            who = action.params.get("operator_name")
            action.message = (
                f"{who} declined the transfer; the chat stays where it was."
                if who
                else "The transfer was declined; the chat stays where it was."
            )
        else:
            action.message = f"Chat with {action.chat_label} ended; SalesIQ confirmed it."
        action.save(
            update_fields=[
                "confirmation",
                "confirmed_at",
                "message",
                "outcome",
                "finished_at",
                "error_code",
            ]
        )
    _publish(action)
    if action.parent_id:
        _settle_drain(action.parent_id)
    return action
