"""Connecting a portal: finish a consent, pick the screen name, check the grant,
register webhooks, disconnect.

A new grant is checked with its token pinned in memory before anything is saved:
if SalesIQ refuses it (missing scope, wrong screen name) the portal stays exactly as
it was and the fresh refresh token is revoked at Zoho. Nothing is ever half-saved.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import budget, crypto, dialects, oauth, webhook_keys
from . import exceptions as exc
from .budget import Priority
from .client import SalesIQClient
from .models import Portal, WebhookPublicKey
from .normalised import Portal as RemotePortal

logger = logging.getLogger(__name__)

# The events the dashboard uses.
V2_WEBHOOK_EVENTS = [
    "conversation.created",
    "conversation.attender.updated",
    "conversation.visitor.replied",
    "conversation.operator.replied",
    "conversation.transfer.initiated",
    "conversation.transfer.accepted",
    "conversation.transfer.rejected",
    "conversation.completed",
    "conversation.missed",
    "conversation.rated",
    "operator.updated",  # profile changes (names, capacity); presence still needs polling
    # Who else is in a chat, and lines edited or deleted (the chat drawer shows both).
    "conversation.supervisor.added",
    "conversation.participants.added",
    "conversation.participants.deleted",
    "conversation.message.edited",
    "conversation.message.deleted",
]
REFERENCE_WEBHOOK_EVENTS = [
    "chat.started",
    "chat.ended",
    "chat.missed",
    "chat.rating",
    "message.received",
    "operator.status_changed",
]

PENDING_SESSION_KEY = "siq_pending_connection"


class SamePortalTwice(exc.SalesIQError):
    """The SalesIQ portal this grant reaches is in the dashboard already, as ``existing``:
    connecting it again would show every chat, operator and alert twice."""

    def __init__(self, existing: Portal, *, reached: str) -> None:
        self.existing_id = str(existing.pk)
        self.existing_name = existing.name
        super().__init__(
            f"{reached} is already in the dashboard as “{existing.name}”: connecting it a "
            "second time would show each of its chats, operators and alerts twice. Open "
            f"“{existing.name}” instead (reconnect it there if it needs it). The Zoho sign-in "
            "you just gave was handed back.",
            detail=f"same SalesIQ portal as portal {existing.pk}",
        )


@dataclass(frozen=True)
class NeedsScreenName:
    """The grant is good; the admin must say which of these portals this one is."""

    choices: list[RemotePortal]
    problem: str = ""  # why the admin must pick (a screen name that did not fit)


# --- consent → connected --------------------------------------------------------------


def _probe_copy(portal: Portal, authorization: oauth.Authorization, screen_name: str) -> Portal:
    """An unsaved copy of ``portal`` as it would be with this grant (same pk: same budget)."""
    probe = copy.copy(portal)
    probe.data_center = authorization.data_center.code
    probe.accounts_url = authorization.accounts_url
    probe.screen_name = screen_name
    return probe


def _check_reach(client: SalesIQClient) -> None:
    """One small read per scope family the dashboard reads with: a missing scope is named."""
    for scope, resource in client.dialect.reach_checks:
        try:
            client.probe(resource)
        except exc.ScopeMissing as missing:
            raise exc.ScopeMissing(scope=missing.scope or scope, code=missing.code) from None


def same_portal(probe: Portal, client: SalesIQClient) -> Portal | None:
    """The portal here that is the same SalesIQ portal as ``probe`` (not ``probe`` itself).

    v2: the same API address (two data-centre codes may alias one) and screen name.
    Both dialects, and the only way for the reference one, whose addresses name no portal
    (the token decides which portal answers): SalesIQ already delivers this portal's
    events to another portal of this dashboard (its registered webhook address).
    """
    others = Portal.objects.exclude(pk=probe.pk)
    if dialects.get(probe.dialect).addresses_name_portal:
        address = probe.data_center_entry.api_address
        same_name = others.filter(dialect=probe.dialect, screen_name__iexact=probe.screen_name)
        for other in same_name:
            entry = settings.SIQ_DATA_CENTERS.get(other.data_center)
            if entry is not None and entry.api_address == address:
                return other
    delivered_to = {hook.url for hook in client.list_webhooks() if hook.url}
    if delivered_to:
        return others.exclude(webhook_url="").filter(webhook_url__in=delivered_to).first()
    return None


def _reached(probe: Portal) -> str:
    """The SalesIQ portal a grant reaches, in words."""
    where = probe.data_center_entry.name
    if dialects.get(probe.dialect).addresses_name_portal:
        return f"The SalesIQ portal “{probe.screen_name}” ({where})"
    return f"The SalesIQ portal this Zoho account reaches through the reference API ({where})"


def complete_connection(
    portal: Portal,
    authorization: oauth.Authorization,
    *,
    screen_name: str = "",
    webhook_url: str = "",
) -> Portal | NeedsScreenName:
    """Check the grant and, if SalesIQ accepts it, save it on ``portal``.

    v2: the screen name is ``screen_name``, else the portal's own, else the only portal
    the account reaches; with several and none named, NeedsScreenName lists them.
    Raises a SalesIQError (nothing saved, the new grant revoked) when SalesIQ says no,
    and SamePortalTwice when another portal here is that SalesIQ portal already.
    ``portal`` may be unsaved (being added): it is saved only here, once all is well.
    """
    tokens = authorization.tokens
    try:
        wanted = (screen_name or portal.screen_name).strip()
        probe = _probe_copy(portal, authorization, wanted)
        client = SalesIQClient(
            probe,
            priority=Priority.ACTION,
            access_token=tokens.access_token,
            budgeted=oauth.is_saved(portal),
        )
        if client.dialect.lists_portals:
            try:
                reachable = client.list_portals()
            except exc.ScopeMissing:
                raise exc.ScopeMissing(scope="SalesIQ.portals.READ") from None
            names = {remote.screen_name for remote in reachable}
            if not wanted:
                if len(reachable) == 1:
                    wanted = reachable[0].screen_name
                elif reachable:
                    return NeedsScreenName(choices=reachable)
                else:
                    raise exc.WrongScreenName(
                        "The Zoho account you approved with has no SalesIQ portal in this data "
                        "centre. Connect again and sign in to Zoho with an account of the portal."
                    )
            elif names and wanted not in names:
                # Not a dead end: the grant is good, only the name is wrong.
                return NeedsScreenName(
                    choices=reachable,
                    problem=(
                        f"The Zoho account you approved with cannot reach a SalesIQ portal "
                        f"named “{wanted}”. Pick one it can reach, or connect again with "
                        "another Zoho account."
                    ),
                )
            probe.screen_name = wanted
        _check_reach(client)
        existing = same_portal(probe, client)
        if existing is not None:
            raise SamePortalTwice(existing, reached=_reached(probe))
    except exc.SalesIQError:
        _revoke_quietly(portal, authorization)
        raise
    acting_as = _connected_user(portal, authorization)
    with transaction.atomic():
        portal.screen_name = probe.screen_name
        # A new grant may act as someone else: what was known of the old one goes. The
        # dashboard finds that user among the operators by e-mail (connected_user_id).
        portal.connected_user_id = ""
        portal.connected_user_name = acting_as.name if acting_as else ""
        portal.connected_user_email = acting_as.email if acting_as else ""
        portal.last_error = ""
        portal.last_error_code = ""
        portal.last_error_kind = ""
        portal.problem_since = None
        portal.rate_limit_strikes = 0
        oauth.store_authorization(portal, authorization)  # saves
        # A portal just added had no budget while its grant was checked: those calls count.
        budget.charge(portal, calls=client.unbudgeted_calls, priority=Priority.ACTION)
    if webhook_url:
        register_webhooks(portal, url=webhook_url)
    return portal


def _connected_user(
    portal: Portal, authorization: oauth.Authorization
) -> oauth.ConnectedUser | None:
    """Who the new grant acts as, or None when Zoho does not say (no profile scope)."""
    client_id, _ = portal.oauth_client_credentials()
    try:
        return oauth.fetch_connected_user(
            accounts_url=authorization.accounts_url,
            client_id=client_id,
            token=authorization.tokens.access_token,
        )
    except exc.SalesIQError as failure:
        logger.info("Portal %s: who the grant acts as is unknown: %s", portal.pk, failure)
        return None


def _revoke_quietly(portal: Portal, authorization: oauth.Authorization) -> None:
    """Give a refused grant back to Zoho; a failure here changes nothing for the admin."""
    throwaway = _probe_copy(portal, authorization, portal.screen_name)
    throwaway.refresh_token_encrypted = Portal._write(authorization.tokens.refresh_token)
    try:
        oauth.revoke_token(throwaway)
    except exc.SalesIQError as failure:
        logger.info("Could not revoke a refused grant for portal %s: %s", portal.pk, failure)


# --- the pending grant while the admin picks a screen name ------------------------------


def remember_pending(
    session: Any, authorization: oauth.Authorization, choices: list[RemotePortal]
) -> None:
    """Keep the grant (encrypted) in the admin's session while they pick the screen name."""
    tokens = authorization.tokens
    session[PENDING_SESSION_KEY] = {
        "portal": authorization.portal_id,
        "dc": authorization.data_center.code,
        "accounts_url": authorization.accounts_url,
        "access": crypto.encrypt(tokens.access_token),
        "refresh": crypto.encrypt(tokens.refresh_token),
        "expires_at": tokens.expires_at.isoformat(),
        "scopes": list(tokens.scopes),
        "choices": [[c.screen_name, c.name] for c in choices],
        "created": timezone.now().isoformat(),
    }


def pending_for(session: Any, portal: Portal) -> tuple[oauth.Authorization, list[RemotePortal]]:
    """The grant waiting in the session for ``portal``; StateMismatch when there is none."""
    raw = session.get(PENDING_SESSION_KEY)
    if not raw or raw.get("portal") != str(portal.pk):
        raise exc.StateMismatch(
            "There is no Zoho sign-in waiting for this portal (it expired or was used). "
            "Connect the portal again."
        )
    created = datetime.fromisoformat(raw["created"])
    if timezone.now() - created > oauth.STATE_TTL:
        session.pop(PENDING_SESSION_KEY, None)
        raise exc.StateMismatch("The Zoho sign-in waited too long. Connect the portal again.")
    dc = settings.SIQ_DATA_CENTERS[raw["dc"]]
    authorization = oauth.Authorization(
        portal_id=raw["portal"],
        data_center=dc,
        accounts_url=raw["accounts_url"],
        tokens=oauth.TokenSet(
            access_token=crypto.decrypt(raw["access"]),
            refresh_token=crypto.decrypt(raw["refresh"]),
            expires_at=datetime.fromisoformat(raw["expires_at"]),
            scopes=tuple(raw["scopes"]),
        ),
    )
    choices = [RemotePortal(id="", screen_name=s, name=n) for s, n in raw["choices"]]
    return authorization, choices


def forget_pending(session: Any, portal: Portal, *, revoke: bool) -> None:
    try:
        authorization, _ = pending_for(session, portal)
    except exc.SalesIQError:
        authorization = None
    session.pop(PENDING_SESSION_KEY, None)
    if revoke and authorization is not None:
        _revoke_quietly(portal, authorization)


# --- webhooks ---------------------------------------------------------------------------


# The most calls registering takes (list, delete, create, add a key): the worker checks
# the budget has room for them before registering again (webhook_events.py).
REGISTER_CALLS = 4


def register_webhooks(portal: Portal, *, url: str, priority: Priority = Priority.ACTION) -> bool:
    """(Re-)register the dashboard's webhook for ``portal``. Records the outcome on the
    portal (``webhook_error`` in words); returns whether it worked. ``priority``: an admin's
    click, or the worker adding events the webhook lacks (webhook_events.py)."""
    client = SalesIQClient(portal, priority=priority)
    try:
        for hook in client.list_webhooks():
            if hook.id == portal.webhook_id or hook.url == url:
                client.delete_webhook(hook.id)
        if client.dialect.has_webhook_keys:
            hook = client.register_webhook(url=url, events=V2_WEBHOOK_EVENTS)
            # Every key SalesIQ lists is trusted: it signs with the oldest.
            keyed = client.add_webhook_key(hook.id)
            with transaction.atomic():
                webhook_keys.store(portal, keyed.public_keys)
                _save_webhook(portal, hook_id=hook.id, url=url, secret="")
                _note_events(
                    portal, asked=V2_WEBHOOK_EVENTS, registered=keyed.events or hook.events
                )
        else:
            secret = secrets.token_urlsafe(32)
            hook = client.register_webhook(url=url, events=REFERENCE_WEBHOOK_EVENTS, secret=secret)
            _save_webhook(portal, hook_id=hook.id, url=url, secret=secret)
    except (exc.SalesIQError, ValueError) as failure:
        message = (
            failure.user_message
            if isinstance(failure, exc.SalesIQError)
            else "SalesIQ returned a webhook key the dashboard cannot read."
        )
        Portal.objects.filter(pk=portal.pk).update(webhook_error=message[:500])
        portal.webhook_error = message
        return False
    return True


def events_fingerprint(events: list[str]) -> str:
    """A short name for a list of events: the worker checks a webhook once per list
    (webhook_events.py)."""
    return hashlib.sha256(",".join(sorted(set(events))).encode()).hexdigest()[:32]


def _note_events(portal: Portal, *, asked: list[str], registered: tuple[str, ...]) -> None:
    """The webhook was just registered for the events ``asked`` and SalesIQ answered that it
    has ``registered`` (an answer naming none is taken to have them all): the worker need
    not check this list, and what the webhook lacks is kept for the portal page."""
    have = set(registered or asked)
    portal.webhook_events_checked = events_fingerprint(asked)
    portal.webhook_events_missing = ",".join(event for event in asked if event not in have)
    Portal.objects.filter(pk=portal.pk).update(
        webhook_events_checked=portal.webhook_events_checked,
        webhook_events_missing=portal.webhook_events_missing,
    )


def _save_webhook(portal: Portal, *, hook_id: str, url: str, secret: str) -> None:
    portal.webhook_id = hook_id
    portal.webhook_url = url
    portal.set_webhook_secret(secret)
    portal.webhook_registered_at = timezone.now()
    portal.webhook_error = ""
    portal.save(
        update_fields=[
            "webhook_id",
            "webhook_url",
            "webhook_secret_encrypted",
            "webhook_registered_at",
            "webhook_error",
            "updated_at",
        ]
    )


# --- letting go before a portal is deleted -------------------------------------------------


def release(portal: Portal) -> list[str]:
    """Delete ``portal``'s webhook registration at SalesIQ and revoke its grant at Zoho,
    changing nothing here (the caller deletes the portal). Returns what could not be done,
    in words; empty when SalesIQ and Zoho both said yes (or there was nothing to undo)."""
    problems: list[str] = []
    if not portal.is_connected:
        return problems
    if portal.webhook_id:
        try:
            SalesIQClient(portal, priority=Priority.ACTION).delete_webhook(portal.webhook_id)
        except exc.SalesIQError as failure:
            logger.info("Deleting the webhook of portal %s failed: %s", portal.pk, failure)
            problems.append(
                f"Its webhook registration could not be deleted at SalesIQ "
                f"({failure.user_message}) SalesIQ may keep sending events for it; this "
                "dashboard refuses them once the portal is gone. Delete the webhook in "
                "SalesIQ's settings to stop them."
            )
    try:
        oauth.revoke_token(portal)
    except exc.SalesIQError as failure:
        logger.info("Revoking the grant of portal %s failed: %s", portal.pk, failure.technical())
        problems.append(
            "Zoho's accounts server did not confirm revoking its sign-in. Revoke the "
            "dashboard's access in your Zoho account (connected apps) to be sure."
        )
    return problems


# --- disconnect ---------------------------------------------------------------------------


def disconnect(portal: Portal) -> list[str]:
    """Delete the webhook registration, revoke the grant at Zoho, wipe the tokens.

    The portal and its history stay; it can be connected again. Returns what could not
    be done at SalesIQ or Zoho, in words (the local wipe always happens).
    """
    warnings: list[str] = []
    if portal.webhook_id and portal.is_connected:
        try:
            SalesIQClient(portal, priority=Priority.ACTION).delete_webhook(portal.webhook_id)
        except exc.SalesIQError as failure:
            warnings.append(
                "The webhook registration could not be deleted at SalesIQ "
                f"({failure.user_message}) Delete it in SalesIQ's settings if deliveries "
                "keep arriving."
            )
    try:
        oauth.revoke(portal)
    except exc.SalesIQError as failure:
        warnings.append(failure.user_message)
    with transaction.atomic():
        WebhookPublicKey.objects.filter(portal=portal).delete()
        portal.refresh_from_db()
        portal.webhook_id = ""
        portal.webhook_secret_encrypted = ""
        portal.webhook_registered_at = None
        portal.webhook_error = ""
        portal.disconnected_at = timezone.now()
        portal.connected_at = None
        portal.save()
    return warnings
