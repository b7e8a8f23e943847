"""An action's outcome on its record: SalesIQ's answer, a later read of SalesIQ's state, or
SalesIQ's confirming webhook; each settled under the row's lock and then published.

``page`` is the page whose own request is being answered: its HTTP answer shows the outcome,
so the publication skips it. Later publications (a confirmation, a poll) pass none.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from siq_integration import dialects
from siq_integration import exceptions as exc
from siq_integration.models import Portal
from siq_integration.normalised import EventKind, SenderType, WebhookEvent

from ..models import Action, ActionKind, ActionOutcome, Chat, Operator, OperatorStatus
from ..realtime import publish as publisher
from .status_rules import connected_operator
from .wording import accepter, drain_summary

ABANDONED = "abandoned"  # error_code of an action nobody answered

# How many unsettled actions one sweep or one poll looks at (the worker sweeps every few
# seconds, a portal is polled every few).
SWEEP_LIMIT = 50

UNSETTLED = Q(outcome=ActionOutcome.PENDING) | Q(outcome=ActionOutcome.FAILED, error_code=ABANDONED)


def finish(
    action: Action,
    outcome: str,
    message: str | Callable[[Action], str],
    *,
    failure: exc.SalesIQError | None = None,
    code: str = "",
    page: str | None = None,
) -> Action:
    """SalesIQ's answer (or the dashboard's refusal) on the record, and to the acting user.

    Under the row's lock: SalesIQ's confirming webhook can overtake its answer (``confirm``
    may run meanwhile), and its words and state must survive the answer arriving later.
    ``message`` may be a function of the locked row (a drain says what its steps say).
    A failure is stored by its class name (``exceptions.by_name`` maps it back)."""
    with transaction.atomic():
        current = Action.objects.select_for_update().get(pk=action.pk)
        if current.confirmed_at and outcome == ActionOutcome.FAILED:
            # SalesIQ's webhook said it happened; an answer lost on the way does not undo it.
            outcome = ActionOutcome.DONE
        current.outcome = outcome
        current.finished_at = timezone.now()
        if failure is not None:
            current.error_code = type(failure).__name__[:40]
            current.error_detail = failure.technical()[:2000]
        elif code:
            current.error_code = code
        if not current.confirmed_at:
            current.message = message(current) if callable(message) else message
        current.save()
    action.refresh_from_db()
    publish(action, page=page)
    return action


def publish(action: Action, *, page: str | None = None) -> None:
    """The outcome to the acting user's pages, after commit; ``page`` (the one whose request
    is being answered) is skipped: its HTTP answer shows the outcome."""
    publisher.action_outcome(action.pk, except_page=page)


def settle_drain(drain_pk: int) -> None:
    """A drain's words and state again, from its steps as they stand, to the acting user's
    pages (under the drain's lock: two confirmations may arrive together)."""
    with transaction.atomic():
        drain = Action.objects.select_for_update().filter(pk=drain_pk).first()
        if drain is None or drain.outcome == ActionOutcome.PENDING:
            return  # still running: operator_drain says it when it finishes
        drain.message = drain_summary(drain, list(drain.steps.order_by("pk")))
        drain.save(update_fields=["message"])
    publish(drain)


# --- SalesIQ confirms ------------------------------------------------------------------------


def _settle_seen(action: Action, message: str, *, accepted: bool = False) -> None:
    """SalesIQ's own state (a poll) shows what an unsettled action asked for: it happened."""
    with transaction.atomic():
        current = Action.objects.select_for_update().filter(pk=action.pk).filter(UNSETTLED)
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
    publish(current)
    if current.parent_id:
        settle_drain(current.parent_id)


SEEN_IN_POLL = "poll.transfer.accepted"  # the chat list shows the new operator has it
# How far back a poll looks for unsettled actions (an index range, not the whole history).
SETTLE_WINDOW = timedelta(hours=1)


def settle_by_chats(portal: Portal, *, read_at: datetime) -> None:
    """After a poll of open chats (asked at ``read_at``): unsettled ends and transfers begun
    before it whose chat shows them done are settled."""
    unsettled = Action.objects.filter(
        UNSETTLED,
        portal=portal,
        kind__in=(ActionKind.END, ActionKind.TRANSFER),
        created_at__lt=read_at,
        created_at__gte=read_at - SETTLE_WINDOW,
        confirmed_at__isnull=True,
    )
    for action in unsettled[:SWEEP_LIMIT]:
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
                accepted=dialects.get(portal.dialect).transfer_needs_acceptance,
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
                f"SalesIQ took the transfer; waiting for {accepter(action.params)} to accept.",
            )


def settle_by_operators(portal: Portal, *, read_at: datetime) -> None:
    """After a poll of operators: unsettled status changes the list shows done are settled."""
    unsettled = Action.objects.filter(
        UNSETTLED,
        portal=portal,
        kind=ActionKind.OPERATOR_STATUS,
        created_at__lt=read_at,
        created_at__gte=read_at - SETTLE_WINDOW,
    )
    for action in unsettled[:SWEEP_LIMIT]:
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


def _operator_shown(portal: Portal, remote_id: str) -> str:
    """The display name of the portal's operator ``remote_id`` ("" when unknown)."""
    operator = Operator.objects.filter(portal=portal, remote_id=remote_id).first()
    return operator.shown_name if remote_id and operator else ""


_CONFIRMING = {
    EventKind.TRANSFER_ACCEPTED: ActionKind.TRANSFER,
    EventKind.TRANSFER_REJECTED: ActionKind.TRANSFER,
    EventKind.CHAT_ENDED: ActionKind.END,
    EventKind.OPERATOR_MESSAGE: ActionKind.MESSAGE,
    EventKind.CHAT_ATTENDER_CHANGED: ActionKind.PICKUP,
}


def _confirms(event: WebhookEvent, portal: Portal, kind: str) -> Q | None:
    """What else an event must match to confirm an action of ``kind`` (None: it cannot): a
    message confirms the line the dashboard sent (its text, from the connected user), a new
    attender the pickup by the connected user. Operators write and pick up all day: those
    events are let go here, without a query, whenever the portal knows its connected user."""
    if kind == ActionKind.MESSAGE:
        message = event.message
        if message is None or message.sender_type != SenderType.OPERATOR:
            return None
        if portal.connected_user_id and message.sender_id != portal.connected_user_id:
            return None
        return Q(params__text=message.text.strip())
    if kind == ActionKind.PICKUP:
        operator_id = event.conversation.operator_id if event.conversation else ""
        if not operator_id or (
            portal.connected_user_id and operator_id != portal.connected_user_id
        ):
            return None
        me = connected_operator(portal)
        return Q() if me is not None and me.remote_id == operator_id else None
    return Q()


def confirm(portal: Portal, event: WebhookEvent) -> Action | None:
    """Complete the record of the action this webhook event confirms, if any; a drain whose
    step it is is settled again (its words and state follow its steps)."""
    kind = _CONFIRMING.get(event.kind)
    if kind is None or not event.chat_id:
        return None
    matching = _confirms(event, portal, kind)
    if matching is None:
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
            .filter(matching)
            # Still pending too: the webhook can overtake SalesIQ's answer to us, or the
            # process that sent it died before the answer (then it was settled as unclear).
            .filter(Q(outcome=ActionOutcome.DONE) | UNSETTLED)
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
        elif kind == ActionKind.MESSAGE:
            action.message = f"SalesIQ delivered the message to {action.chat_label}."
        elif kind == ActionKind.PICKUP:
            action.message = (
                f"SalesIQ confirmed the pickup: the chat with {action.chat_label} is yours."
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
    publish(action)
    if action.parent_id:
        settle_drain(action.parent_id)
    return action
