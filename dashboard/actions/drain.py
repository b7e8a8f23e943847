"""Draining an operator: move their open chats to available colleagues, then set them Busy.

``operator_drain_plan`` says who would get which chat; ``operator_drain`` carries out the
plan the supervisor saw, one recorded step (a transfer, a status change) after another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import selectors
from ..models import Action, ActionKind, ActionOutcome, Chat, Operator, OperatorStatus
from ..users import shown_name
from .locks import begin, first_attempt
from .outcomes import finish
from .refusals import check_access
from .services import chat_transfer, operator_set_status
from .status_rules import connected_operator, status_rule
from .wording import drain_summary


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
    *,
    key: str,
    user: Any,
    operator: Operator,
    moves: list[tuple[int, int]],
    page: str | None = None,
) -> Action:
    """Carry out a drain plan the supervisor saw: ``moves`` are (chat pk, operator pk)
    pairs. Each transfer is a step of its own; then the operator is set Busy (unless they
    are already, or SalesIQ would refuse it: see ``_busy_step``).

    The drain's words and state follow its steps (``drain_summary``, ``ActionState``): on
    v2 each transfer waits for the new operator, and ``confirm`` settles the drain again
    when SalesIQ says accepted or declined. ``page`` (the acting page) is skipped by the
    publications made while answering: the drain's answer shows it and its steps."""
    portal = operator.portal
    set_busy, busy_note = _busy_step(operator)
    params = {"moves": [[c, o] for c, o in moves], "set_busy": set_busy, "busy_note": busy_note}
    check_access(user, portal, ActionKind.DRAIN)
    action, created = begin(
        key=key,
        user=user,
        portal=portal,
        kind=ActionKind.DRAIN,
        operator=operator,
        params=params,
        page=page,
    )
    if not created:
        return first_attempt(action)
    if not moves and not set_busy:
        return finish(
            action,
            ActionOutcome.REFUSED,
            f"Nothing to do: there is no chat to move. {busy_note}",
            code="nothing",
            page=page,
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
            page=page,
        )
    if set_busy:
        operator_set_status(
            key=f"{key[:40]}:busy",
            user=user,
            operator=operator,
            status=OperatorStatus.BUSY,
            parent=action,
            page=page,
        )
    # SalesIQ took every step (its answers), or not: the state then weighs confirmations.
    answers = action.steps.values_list("outcome", flat=True)
    took_all = all(answer == ActionOutcome.DONE for answer in answers)
    return finish(
        action,
        ActionOutcome.DONE if took_all else ActionOutcome.FAILED,
        lambda drain: drain_summary(drain, list(drain.steps.order_by("pk"))),
        page=page,
    )
