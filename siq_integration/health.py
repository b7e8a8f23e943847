"""A portal's connection health, in words an admin understands at a glance."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from . import budget, webhook_events
from . import exceptions as exc
from .models import Portal

# "Webhooks are flowing": a verified delivery at most this old. The one definition: the live
# page's banner, the poll planner and the health page read it (and the webhook-silence alert
# rule starts from it). Three minutes because that is what a supervisor watching live chats
# would call "not live any more": an open chat makes events (messages, attends, status
# changes) every minute or two, SalesIQ retries a failed delivery within a minute or so, and
# a shorter window would flap on a calm portal, while ten minutes or an hour of silence is a
# long time to watch a page that looks live but is not.
WEBHOOKS_FLOWING_WITHIN = timedelta(minutes=3)

# What the last failure (stored by its class name) means for the portal's badge.
_RECONNECT = (exc.TokenInvalid, exc.TokenDecryptionError, exc.ScopeMissing)
_MISCONFIGURED = (exc.Misconfigured,)
_UNREACHABLE = (exc.Unavailable,)
_SLOWED = (exc.RateLimited, exc.TokenRefreshLimited)


class State(enum.StrEnum):
    CONNECTED = "connected"
    SLOWED = "slowed"
    RECONNECT = "reconnect"
    UNREACHABLE = "unreachable"
    MISCONFIGURED = "misconfigured"
    DEGRADED = "degraded"
    DISCONNECTED = "disconnected"
    NOT_CONNECTED = "not_connected"


@dataclass(frozen=True)
class Health:
    state: State
    label: str  # the badge: "Connected", "Reconnect needed" …
    sentence: str  # what is wrong and what to do, or what is fine
    tone: str  # ok / warn / bad / off, for colour
    since: datetime | None = None  # when the current problem began


@dataclass(frozen=True)
class WebhookHealth:
    label: str
    sentence: str
    tone: str


def _current_problem(portal: Portal) -> bool:
    return bool(portal.last_error_at) and (
        portal.last_success_at is None or portal.last_error_at > portal.last_success_at
    )


def portal_health(portal: Portal, *, now: datetime | None = None) -> Health:
    now = now or timezone.now()
    if not portal.is_connected or portal.connected_at is None:
        if portal.disconnected_at:
            return Health(
                State.DISCONNECTED,
                "Disconnected",
                "An admin disconnected this portal. Connect it again to resume.",
                "off",
                since=portal.disconnected_at,
            )
        return Health(
            State.NOT_CONNECTED,
            "Not connected",
            "This portal has not been connected to SalesIQ yet.",
            "off",
        )
    if portal.rate_limited_until and portal.rate_limited_until > now:
        return Health(
            State.SLOWED,
            "Slowed down",
            "SalesIQ asked the dashboard to pause; calls resume by themselves.",
            "warn",
            since=portal.rate_limited_until,
        )
    if _current_problem(portal):
        kind = exc.by_name(portal.last_error_kind) or exc.SalesIQError
        since = portal.problem_since or portal.last_error_at
        if issubclass(kind, _RECONNECT):
            return Health(State.RECONNECT, "Reconnect needed", portal.last_error, "bad", since)
        if issubclass(kind, _MISCONFIGURED):
            return Health(State.MISCONFIGURED, "Misconfigured", portal.last_error, "bad", since)
        if issubclass(kind, _UNREACHABLE):
            return Health(
                State.UNREACHABLE,
                "SalesIQ unreachable",
                f"{portal.last_error} The dashboard keeps trying by itself.",
                "bad",
                since,
            )
        if issubclass(kind, _SLOWED):
            return Health(State.SLOWED, "Slowed down", portal.last_error, "warn", since)
        return Health(State.DEGRADED, "Connected, with errors", portal.last_error, "warn", since)
    return Health(State.CONNECTED, "Connected", "SalesIQ answers normally.", "ok")


def webhook_health(portal: Portal, *, now: datetime | None = None) -> WebhookHealth:
    now = now or timezone.now()
    if not portal.is_connected:
        return WebhookHealth(
            "Not registered", "The portal is not connected, so SalesIQ sends nothing.", "off"
        )
    if portal.webhook_error and not portal.webhook_id:
        return WebhookHealth("Not registered", portal.webhook_error, "bad")
    if not portal.webhook_id:
        return WebhookHealth(
            "Not registered",
            "SalesIQ is not sending events yet; the dashboard relies on polling alone.",
            "off",
        )
    if portal.webhook_error:
        return WebhookHealth("Registration failed", portal.webhook_error, "bad")
    if portal.last_webhook_at is not None and portal.last_webhook_ok is False:
        return WebhookHealth("Refused a delivery", portal.last_webhook_problem, "bad")
    # Registered with fewer events than the dashboard needs, and adding them failed.
    missing = webhook_events.missing_sentence(portal)
    if missing:
        return WebhookHealth("Events missing", missing, "warn")
    if portal.last_webhook_at is None:
        return WebhookHealth("Registered", "Registered; no delivery has arrived yet.", "ok")
    if now - portal.last_webhook_at > WEBHOOKS_FLOWING_WITHIN:
        minutes = int(WEBHOOKS_FLOWING_WITHIN.total_seconds() // 60)
        return WebhookHealth(
            "Registered",
            f"Registered; no delivery for over {minutes} minutes (a portal with no chats "
            "going on sends none).",
            "warn",
        )
    return WebhookHealth("Receiving", "Deliveries arrive and their signatures check out.", "ok")


def budget_usage(portal: Portal) -> budget.Usage:
    return budget.usage(portal)
