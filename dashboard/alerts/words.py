"""What an alert says about its chat, operator or portal as they are now (titles whose
figure ticks on the page, spelled once in e-mail, Slack and the history).

Reads no selectors: the selectors use it for the alert rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from siq_integration.models import Portal

from .. import times
from ..figures.definitions import Figures
from ..models import (
    Alert,
    AlertKind,
    Chat,
    ChatStatus,
    Operator,
    OperatorStatus,
)


def _minutes(seconds: float) -> str:
    """How long, as every duration is written ("6m 07s", "1h 02m"; dashboard/times.py)."""
    return times.duration(seconds)


def _visitor(chat: Chat) -> str:
    return chat.visitor_name or "A visitor"


@dataclass(frozen=True)
class Words:
    """What an alert says about its chat or operator as they are now. The title's figure
    (how long) runs from ``since``: the live page puts a ticking clock between ``before``
    and ``after``; e-mail, Slack and the history spell it once (``title_at``)."""

    before: str
    since: datetime | None = None
    after: str = ""
    detail: str = ""

    def title_at(self, now: datetime) -> str:
        if self.since is None:
            return f"{self.before}{self.after}"[:300]
        return f"{self.before}{_minutes((now - self.since).total_seconds())}{self.after}"[:300]

    @property
    def title(self) -> str:
        """As it reads this moment (desktop notifications, the badges' tooltips)."""
        return self.title_at(timezone.now())


def chat_words(kind: str, chat: Chat) -> Words | None:
    """The title and detail of a chat's alert of ``kind`` from the chat as it is: its
    visitor, department, operator (their display name) and the moment its figure counts
    from. None when the chat no longer fits the words (the alert resolves on the next
    evaluation; its stored title serves till then)."""
    visitor = _visitor(chat)
    where = f" ({chat.department_name})" if chat.department_name else ""
    if kind == AlertKind.LONG_CHAT and chat.started_at:
        return Words(
            f"{visitor}'s chat has run ",
            chat.started_at,
            where,
            f"With {chat.operator_name or 'nobody yet'}.",
        )
    if kind == AlertKind.LONG_WAIT and chat.status == ChatStatus.WAITING and chat.waiting_since:
        return Words(
            f"{visitor} has waited ", chat.waiting_since, f" for pickup{where}", chat.question[:200]
        )
    if kind == AlertKind.UNANSWERED and chat.awaiting_reply and chat.last_message_at:
        return Words(
            f"{visitor} has had no answer for ",
            chat.last_message_at,
            "",
            f"{chat.operator_name or 'The operator'} has not replied to: "
            f"“{chat.last_message_text[:160]}”",
        )
    if kind == AlertKind.MISSED_CHAT:
        return Words(
            f"Missed chat: {visitor} left unanswered",
            detail=chat.question[:200] or "Nobody picked the chat up.",
        )
    if kind == AlertKind.LOW_RATING and chat.rating is not None:
        return Words(
            f"{visitor} rated the chat {chat.rating}/5",
            detail=f"“{chat.feedback}”" if chat.feedback else "No feedback given.",
        )
    return None


_AWAY = (OperatorStatus.BUSY, OperatorStatus.AWAY, OperatorStatus.OFFLINE)


def operator_words(kind: str, operator: Operator, load: int) -> Words | None:
    """As ``chat_words``, for an operator's alert: ``load`` is their open chats now."""
    name = operator.shown_name
    chats = f"{load} open chat{'s' if load != 1 else ''}"
    if kind == AlertKind.OPERATOR_AWAY_WITH_CHATS and operator.status in _AWAY and load:
        status = operator.get_status_display().lower()
        detail = "Their visitors may be waiting. Transfer the chats or drain the operator."
        if operator.status_since is None:  # not seen to change: how long is not known
            return Words(f"{name} is {status} with {chats}", detail=detail)
        return Words(
            f"{name} has been {status} for ", operator.status_since, f" with {chats}", detail
        )
    if kind == AlertKind.OPERATOR_OVER_CAPACITY and operator.max_chats is not None:
        return Words(f"{name} has {load} chats for {operator.max_chats} seats")
    return None


def portal_words(kind: str, portal: Portal) -> Words | None:
    if kind == AlertKind.WEBHOOK_SILENCE:
        # Silent since the later of the last delivery and the registration, as
        # selectors.webhook_silence counts it.
        last = max(
            (t for t in (portal.last_webhook_at, portal.webhook_registered_at) if t), default=None
        )
        if last:
            return Words(
                f"{portal.name}: no webhook from SalesIQ for ",
                last,
                "",
                "Chats are open but SalesIQ sends nothing; the dashboard relies on polling. "
                "Check the webhook on the portal page.",
            )
    return None


def _chats(count: int) -> str:
    return f"{count} chat{'s' if count != 1 else ''}"


def service_level_words(
    department: str, level: Figures, minutes: int, below: int, waiting: int
) -> Words:
    """A department's service level over the window, below the rule's ``below`` percent
    (``waiting``: its chats waiting past the target time now). Rounded down, as the pages
    write it: never shown at the mark while under it. The department's own target share is
    called the target; any other mark is the rule's."""
    shown = math.floor(level.service_level or 0.0)
    target = level.target
    mark = f"target {below} %" if below == target.share else f"alert below {below} %"
    parts = [f"{level.within_target} of {_chats(level.judged)} picked up within {target.seconds} s"]
    if level.missed:
        parts.append(f"{level.missed} missed")
    if waiting:
        parts.append(f"{waiting} waiting past {target.seconds} s now")
    if level.abandoned:
        parts.append(f"{level.abandoned} left sooner (not counted)")
    return Words(
        f"{department}: service level {shown} % over the last {minutes} min ({mark})",
        detail="; ".join(parts) + ".",
    )


def missed_share_words(
    department: str, level: Figures, share: float, minutes: int, limit: int
) -> Words:
    """A department's share of missed chats over the window, above the rule's ``limit``.
    Rounded to the nearest percent, up where that would read as the limit or under it."""
    shown = round(share) if round(share) > limit else math.ceil(share)
    decided = level.answered + level.missed
    detail = (
        f"{level.missed} of {_chats(decided)} missed: nobody picked them up within "
        f"{level.target.seconds} s."
    )
    if level.abandoned:
        detail += f" {level.abandoned} left sooner (not counted)."
    return Words(
        f"{department}: {shown} % of chats missed over the last {minutes} min (limit {limit} %)",
        detail=detail,
    )


def words_now(alert: Alert, load: int | None = None) -> Words | None:
    """``alert``'s title and detail from its chat's, operator's or portal's state now
    (``load``: the operator's open chats). None: its stored title and detail serve."""
    if alert.chat_id:
        return chat_words(alert.kind, alert.chat) if alert.chat else None
    if alert.operator_id:
        return operator_words(alert.kind, alert.operator, load or 0) if alert.operator else None
    if alert.target == "portal":
        return portal_words(alert.kind, alert.portal)
    return None
