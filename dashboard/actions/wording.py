"""Actions in words: what a supervisor reads about an attempt, its refusal and its outcome.

Every sentence reads exception classes (``siq_integration.exceptions``), never SalesIQ's
numeric codes or stored code strings.
"""

from __future__ import annotations

from typing import Any

from siq_integration import exceptions as exc

from ..models import SETTLED_WELL, Action, ActionKind, ActionState
from ..users import shown_name
from .status_rules import connected_operator

# What the holder of a lock is doing, in words ("Sam Lee is already transferring this chat").
_DOING = {
    ActionKind.TRANSFER: "transferring this chat",
    ActionKind.END: "ending this chat",
    ActionKind.OPERATOR_STATUS: "changing {operator}'s status",
    ActionKind.DRAIN: "draining {operator}",
    ActionKind.MESSAGE: "sending a message in this chat",
    ActionKind.PICKUP: "picking up this chat",
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


VERBS = {
    ActionKind.TRANSFER: "transfer the chat",
    ActionKind.END: "end the chat",
    ActionKind.OPERATOR_STATUS: "change the operator's status",
    ActionKind.DRAIN: "drain the operator",
    ActionKind.MESSAGE: "send the message",
    ActionKind.PICKUP: "pick up the chat",
    ActionKind.CRM_LEAD: "create the lead in Zoho CRM",
}

# A portal connected before the dashboard asked for the messaging scope (v2's
# SalesIQ.conversations.CREATE): said on its page, on the disabled button and as a refusal.
MESSAGING_NOT_ALLOWED = (
    "This portal was connected before the dashboard could send messages: an admin needs to "
    "reconnect it to allow messaging. Nothing was sent to SalesIQ."
)
RECONNECT_TO_MESSAGE = "Reconnect to allow messaging"


def acting_user(portal: Any) -> str:
    """Who SalesIQ acts as for this portal (its connected user), by the name every screen
    shows them under; every message and pickup from the dashboard is theirs in SalesIQ."""
    me = connected_operator(portal)
    if me is not None:
        return me.shown_name
    return (
        portal.connected_user_name or portal.connected_user_email or "the portal's connected user"
    )


def acts_as(portal: Any) -> str:
    """Who the buttons act as, said before the click: "Patricia, the portal's connected user"."""
    name = acting_user(portal)
    if name == "the portal's connected user":
        return name
    return f"{name}, the portal's connected user"


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
    verb = VERBS[action.kind]
    if isinstance(failure, exc.ScopeMissing) and action.kind == ActionKind.MESSAGE:
        return MESSAGING_NOT_ALLOWED
    if isinstance(failure, exc.ChatNotWaiting):
        return "Someone has already picked up this chat in SalesIQ; it was not picked up again."
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
        isinstance(failure, exc.ChatGone)
        and action.kind
        in (ActionKind.END, ActionKind.TRANSFER, ActionKind.MESSAGE, ActionKind.PICKUP)
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
        # SalesIQ itself said no (TooManyRequests). v2 names no time: the client picked the pause
        # after the exception's message was made, so the time is taken from retry_at.
        return (
            f"SalesIQ says too many requests came from this dashboard, so it did not {verb}. "
            f"Try again after {failure.retry_at:%H:%M:%S} UTC."
        )
    if isinstance(failure, exc.RateLimited | exc.BudgetExhausted):
        return f"Not sent: {failure.user_message}"
    return failure.user_message


def accepter(params: dict) -> str:
    """Who must accept a v2 transfer: the operator picked, else anyone in the department."""
    if params.get("operator_name"):
        return params["operator_name"]
    if params.get("department_name"):
        return f"someone in {params['department_name']}"
    return "the new operator"


# --- end -------------------------------------------------------------------------------------


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
            accepters = _names([accepter(step.params) for step in waiting])
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
