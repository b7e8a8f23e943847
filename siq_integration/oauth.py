"""Zoho OAuth: consent URL bound to the admin's session, the callback, code exchange
at the data centre the callback names, refresh under a lock, revoke.

Zoho facts that shape this module (see ../shared/SALESIQ_API.md):
- every API call carries ``Authorization: Zoho-oauthtoken …`` (not Bearer);
- the code must be exchanged at the accounts server the callback names (multi-DC);
- refresh tokens do not rotate or expire, but Zoho allows only 10 access tokens per
  refresh token per 10 minutes: refresh a few minutes early, once per portal, never
  per request.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import secrets
import socket
import time
import uuid
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import metadata
from typing import Any

import requests
from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from oauthlib.oauth2 import OAuth2Error, WebApplicationClient
from requests_oauthlib import OAuth2Session

from . import dialects
from . import exceptions as exc
from .datacenters import DataCenter
from .models import OAuthState, Portal

logger = logging.getLogger(__name__)

SESSION_KEY = "siq_oauth_pending"
STATE_TTL = timedelta(minutes=15)
MAX_PENDING = 5
REFRESH_LOCK_TTL = timedelta(seconds=30)
REFRESH_WAIT_SECONDS = 20.0
# Zoho answers with this error when the 10-tokens-per-10-minutes limit is hit.
_TOO_MANY = "too many requests"


class ZohoOAuthClient(WebApplicationClient):
    """oauthlib client that writes Zoho's header scheme instead of Bearer.

    requests-oauthlib calls this for every request; Zoho's token responses say
    ``token_type: Bearer``, which resets any custom token type, so the scheme is
    fixed here rather than through ``token_type``.
    """

    def _add_bearer_token(
        self, uri, http_method="GET", body=None, headers=None, token_placement=None
    ):
        headers = dict(headers or {})
        headers["Authorization"] = f"Zoho-oauthtoken {self.access_token}"
        return uri, headers, body


def _timeout() -> tuple[float, float]:
    return (settings.SIQ_HTTP_CONNECT_TIMEOUT, settings.SIQ_HTTP_READ_TIMEOUT)


def scopes_for(dialect: str) -> tuple[str, ...]:
    """The scopes a grant must have: without any of them the portal cannot work."""
    return dialects.get(dialect).scopes


# Who the grant acts as (Zoho Accounts' user info): asked for, never required. v2 lets that
# user set only their own status, so the dashboard offers the status buttons for them only;
# a grant without it still works, the dashboard just cannot say whose status it may set.
PROFILE_SCOPE = "AaaServer.profile.READ"


def optional_scopes(dialect: str) -> tuple[str, ...]:
    """Asked for, never required: the profile (who the grant acts as) and, where the
    required scopes do not cover it, the scope that lets the grant's user write in a chat
    (v2's SalesIQ.conversations.CREATE). A grant without them still works; the dashboard
    says what it cannot do then ("reconnect to allow messaging")."""
    messaging = dialects.get(dialect).messaging_scope
    extra = () if _covers(scopes_for(dialect), messaging) else (messaging,)
    # v2's SalesIQ.webhooks.UPDATE: new webhook events reach the webhook in one call
    # (webhook_events.py); without it, by registering the webhook again.
    update = dialects.get(dialect).webhook_update_scope
    if update and not _covers(scopes_for(dialect), update):
        extra = (*extra, update)
    return (*extra, PROFILE_SCOPE)


def _covers(granted: Iterable[str], needed: str) -> bool:
    """Whether ``granted`` includes ``needed``, itself or as its resource's ALL scope
    (SalesIQ.conversations.ALL covers SalesIQ.conversations.CREATE); without case."""
    have = {scope.strip().lower() for scope in granted}
    needed = needed.lower()
    return needed in have or f"{needed.rsplit('.', 1)[0]}.all" in have


def forget_messaging_scope(portal: Portal) -> None:
    """SalesIQ refused a message for want of the scope (1009) though the grant was taken to
    have it (Zoho's token answer lists no scopes): the dashboard stops offering messaging
    until a reconnect."""
    messaging = dialects.get(portal.dialect).messaging_scope.lower()
    kept = [s for s in portal.granted_scopes.split(",") if s.strip().lower() != messaging]
    portal.granted_scopes = ",".join(kept)
    Portal.objects.filter(pk=portal.pk).update(granted_scopes=portal.granted_scopes)


def may_message(portal: Portal) -> bool:
    """Whether the portal's grant lets its connected user write in chats. A portal connected
    before the dashboard asked for it lacks it (v2's SalesIQ.conversations.CREATE): a
    reconnect adds it; everything else works meanwhile."""
    if not portal.granted_scopes:
        return False
    messaging = dialects.get(portal.dialect).messaging_scope
    return _covers(portal.granted_scopes.split(","), messaging)


def may_update_webhook(portal: Portal) -> bool:
    """Whether the portal's grant lets the dashboard change its webhook's events in place
    (v2's SalesIQ.webhooks.UPDATE). Grants made before the dashboard asked for it lack it."""
    update = dialects.get(portal.dialect).webhook_update_scope
    if not update or not portal.granted_scopes:
        return False
    return _covers(portal.granted_scopes.split(","), update)


# Zoho CRM, asked for when an admin adds CRM to a portal (one grant serves both). The names
# are those of Zoho's per-endpoint pages: search needs the module's READ and
# ZohoSearch.securesearch.READ; inserting a lead needs leads.CREATE.
# Reference: https://www.zoho.com/crm/developer/docs/api/v8/search-records.html
# Reference: https://www.zoho.com/crm/developer/docs/api/v8/insert-records.html
# Reference: https://www.zoho.com/crm/developer/docs/api/v8/get-related-records.html
# Reference: https://www.zoho.com/crm/developer/docs/api/v8/get-users.html
CRM_SCOPES = (
    "ZohoCRM.modules.contacts.READ",
    "ZohoCRM.modules.leads.READ",
    "ZohoCRM.modules.leads.CREATE",
    "ZohoCRM.modules.deals.READ",
    "ZohoCRM.users.READ",
    "ZohoSearch.securesearch.READ",
)


def requested_scopes(dialect: str, *, crm: bool = False) -> tuple[str, ...]:
    """What the consent page asks for: the required scopes, then the optional ones (and
    CRM's, once an admin adds CRM)."""
    return (*scopes_for(dialect), *optional_scopes(dialect), *(CRM_SCOPES if crm else ()))


@functools.cache
def _version() -> str:
    try:
        return metadata.version("salesiq-supervisor")
    except metadata.PackageNotFoundError:
        return "dev"


def user_agent() -> str:
    """Who calls, traceable to one process in SalesIQ's, a proxy's or the simulator's logs:
    the host:pid that also begins a worker's lease holder (dashboard.polling.leases.new_holder)."""
    return f"salesiq-supervisor/{_version()} ({socket.gethostname()[:60]}:{os.getpid()})"


def session_for(client_id: str, *, access_token: str = "", **kw: Any) -> OAuth2Session:
    token = {"access_token": access_token, "token_type": "Bearer"} if access_token else None
    session = OAuth2Session(client_id, client=ZohoOAuthClient(client_id), token=token, **kw)
    session.headers["User-Agent"] = user_agent()
    return session


# --- a portal being added: nothing is saved until it is connected ------------------------
#
# The Add form's settings wait in the admin's session (the client secret encrypted, as in
# the database), not in a hidden row: nothing else (pages, counts, the worker, websockets)
# can ever see a portal that is not there, and a refused, cancelled or abandoned consent
# leaves nothing to clean up (the entry ages out with DRAFT_TTL or the session).

DRAFTS_KEY = "siq_portal_drafts"
DRAFT_TTL = timedelta(hours=1)
MAX_DRAFTS = 5


def _live_drafts(session: MutableMapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        key: value
        for key, value in dict(session.get(DRAFTS_KEY, {})).items()
        if time.time() - value.get("created", 0) < DRAFT_TTL.total_seconds()
    }


def remember_draft(session: MutableMapping[str, Any], portal: Portal) -> None:
    """Keep an unsaved ``portal``'s settings in the session while its consent is under way."""
    drafts = _live_drafts(session)
    drafts.pop(str(portal.pk), None)
    newest = sorted(drafts.items(), key=lambda item: item[1]["created"])[-(MAX_DRAFTS - 1) :]
    drafts = dict(newest)
    drafts[str(portal.pk)] = {"portal": portal.to_draft(), "created": time.time()}
    session[DRAFTS_KEY] = drafts


def draft_portal(session: MutableMapping[str, Any], portal_id: Any) -> Portal | None:
    """The unsaved portal the session holds under ``portal_id``, if it has not aged out."""
    entry = _live_drafts(session).get(str(portal_id))
    return Portal.from_draft(entry["portal"]) if entry else None


def forget_draft(session: MutableMapping[str, Any], portal_id: Any) -> None:
    drafts = _live_drafts(session)
    drafts.pop(str(portal_id), None)
    session[DRAFTS_KEY] = drafts


def is_saved(portal: Portal) -> bool:
    return Portal.objects.filter(pk=portal.pk).exists()


def pending_portal(session: MutableMapping[str, Any], state: str) -> Portal | None:
    """The portal a consent under way (``state``) is for: saved, or a draft of this session."""
    entry = dict(session.get(SESSION_KEY, {})).get(state) if state else None
    if not entry:
        return None
    return Portal.objects.filter(pk=entry["portal"]).first() or draft_portal(
        session, entry["portal"]
    )


# --- consent ----------------------------------------------------------------------------


def start_authorization(
    *,
    session: MutableMapping[str, Any],
    portal: Portal,
    redirect_uri: str,
    crm: bool = False,
) -> str:
    """The Zoho consent URL for ``portal``; its state is bound to this browser session.

    An unsaved ``portal`` (being added) waits in the session as a draft. ``crm``: add Zoho
    CRM's scopes (reconnecting a portal that has CRM asks for them too, or CRM would stop)."""
    crm = crm or portal.has_crm
    client_id, _ = portal.oauth_client_credentials()
    if not client_id:
        raise exc.OAuthError(
            "No Zoho client is configured. Set ZOHO_CLIENT_ID and ZOHO_CLIENT_SECRET, or give "
            "this portal its own client credentials."
        )
    if not is_saved(portal):
        remember_draft(session, portal)
    dc = portal.data_center_entry
    state = secrets.token_urlsafe(32)
    _remember_state(state)
    pending = {
        key: value
        for key, value in dict(session.get(SESSION_KEY, {})).items()
        if time.time() - value.get("created", 0) < STATE_TTL.total_seconds()
    }
    # A few tabs may be connecting at once; keep the newest few.
    newest = sorted(pending.items(), key=lambda item: item[1]["created"])[-(MAX_PENDING - 1) :]
    pending = dict(newest)
    pending[state] = {
        "portal": str(portal.pk),
        "dc": dc.code,
        "created": time.time(),
        "crm": crm,
    }
    session[SESSION_KEY] = pending
    oauth = session_for(
        client_id,
        redirect_uri=redirect_uri,
        # Zoho separates scopes with commas.
        scope=",".join(requested_scopes(portal.dialect, crm=crm)),
        state=state,
    )
    # Reference: https://www.zoho.com/accounts/protocol/oauth/web-apps/authorization.html
    url, _ = oauth.authorization_url(
        f"{dc.accounts_url}/oauth/v2/auth", access_type="offline", prompt="consent"
    )
    return url


def _state_key(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _remember_state(state: str) -> None:
    """Record a new consent's state (its hash) for the callback to claim; states past
    their time go at the same moment."""
    now = timezone.now()
    OAuthState.objects.filter(created_at__lt=now - STATE_TTL).delete()
    OAuthState.objects.create(state_sha256=_state_key(state), created_at=now)


def _claim_state(state: str) -> bool:
    """Consume ``state``: one DELETE whose row count says whether this request won. Of
    parallel callbacks with one state exactly one gets True (the database serialises the
    deletes of a row); a used, unknown or expired state gives False."""
    deleted, _ = OAuthState.objects.filter(
        state_sha256=_state_key(state), created_at__gte=timezone.now() - STATE_TTL
    ).delete()
    return deleted == 1


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str
    expires_at: datetime
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class Authorization:
    """A completed consent: which portal, where its accounts live, and the tokens."""

    portal_id: str
    data_center: DataCenter
    accounts_url: str
    tokens: TokenSet
    # Zoho CRM was asked for; the token answer's api_domain is then CRM's host.
    crm: bool = False
    api_domain: str = ""


def _data_center_for(*, accounts_server: str, location: str, started_at: str) -> DataCenter:
    table: dict[str, DataCenter] = settings.SIQ_DATA_CENTERS
    if accounts_server:
        wanted = accounts_server.rstrip("/")
        matches = [dc for dc in table.values() if dc.accounts_url == wanted]
        if not matches:
            # Never send the client secret to a server the table does not name.
            raise exc.UnknownAccountsServer(detail=f"accounts-server={wanted}")
        for dc in matches:
            if dc.code == location.lower():
                return dc
        for dc in matches:
            if dc.code == started_at:
                return dc
        return matches[0]
    if location:
        try:
            return table[location.lower()]
        except KeyError:
            raise exc.UnknownAccountsServer(detail=f"location={location}") from None
    return table[started_at]


def complete_authorization(
    *,
    session: MutableMapping[str, Any],
    params: Mapping[str, str],
    redirect_uri: str,
) -> Authorization:
    """Validate Zoho's callback and exchange its code. Raises an OAuthError subclass.

    The state is single-use: a replayed callback finds nothing and fails.
    """
    state = params.get("state", "")
    pending = dict(session.get(SESSION_KEY, {}))
    entry = pending.pop(state, None) if state else None
    session[SESSION_KEY] = pending
    if entry is None or time.time() - entry.get("created", 0) > STATE_TTL.total_seconds():
        raise exc.StateMismatch(detail="unknown, used or expired state")
    # The session alone does not make it single-use: parallel requests each load the
    # session before any saves it. The database decides who claims the state, before
    # anything is sent to Zoho.
    if not _claim_state(state):
        raise exc.StateAlreadyUsed(detail="state claimed by another callback")

    error = params.get("error", "")
    if error == "access_denied":
        raise exc.AuthorizationDenied(detail=error)
    if error:
        raise exc.OAuthError(
            f"Zoho refused the connection (“{error}”). Start the connection again; if it keeps "
            "happening, check the Zoho client's redirect URL and scopes.",
            detail=error,
        )
    code = params.get("code", "")
    if not code:
        raise exc.TokenExchangeFailed(detail="callback without a code")

    dc = _data_center_for(
        accounts_server=params.get("accounts-server", ""),
        location=params.get("location", ""),
        started_at=entry["dc"],
    )
    portal = Portal.objects.filter(pk=entry["portal"]).first() or draft_portal(
        session, entry["portal"]
    )
    if portal is None:
        raise exc.OAuthError(
            "The portal being connected was deleted meanwhile, or waited too long to be "
            "added. Add it again."
        )
    client_id, client_secret = portal.oauth_client_credentials()
    oauth = session_for(client_id, redirect_uri=redirect_uri)
    token_url = f"{dc.accounts_url}/oauth/v2/token"
    try:
        # Reference: https://www.zoho.com/accounts/protocol/oauth/web-apps/access-token.html
        raw = oauth.fetch_token(
            token_url,
            code=code,
            client_secret=client_secret,
            include_client_id=True,
            timeout=_timeout(),
        )
    except Warning as warning:  # oauthlib's "scope has changed": we check scopes ourselves
        raw = dict(getattr(warning, "token", {}) or {})
    except OAuth2Error as error:
        raise exc.TokenExchangeFailed(
            _exchange_message(error.error), detail=f"token endpoint: {error.error}"
        ) from None
    except ValueError:
        raise exc.TokenExchangeFailed(detail="token endpoint answered something not JSON") from None
    except requests.RequestException as error:
        raise exc.Unavailable(
            "Zoho's accounts server did not answer. Try connecting again in a minute.",
            detail=type(error).__name__,
        ) from None
    tokens = _token_set(raw, requested=scopes_for(portal.dialect))
    if not tokens.refresh_token:
        raise exc.NoRefreshToken()
    # Zoho does not always list granted scopes; when it does, compare without case.
    granted = {scope.lower() for scope in tokens.scopes}
    crm = bool(entry.get("crm"))
    needed = (*scopes_for(portal.dialect), *(CRM_SCOPES if crm else ()))
    missing = [s for s in needed if granted and s.lower() not in granted]
    if missing:
        raise exc.ScopeMissing(scope=", ".join(missing))
    api_domain = str(raw.get("api_domain") or "").rstrip("/")
    # The CRM host receives the token: https, unless the accounts server itself is plain
    # http (the simulator, a proxy on loopback).
    schemes = ("https://", "http://") if dc.accounts_url.startswith("http://") else ("https://",)
    if crm and not api_domain.startswith(schemes):
        raise exc.TokenExchangeFailed(
            "Zoho's answer did not say where this account's CRM is (no api_domain). "
            "Try adding CRM again.",
            detail=f"api_domain={api_domain!r}",
        )
    return Authorization(
        portal_id=str(portal.pk),
        data_center=dc,
        accounts_url=dc.accounts_url,
        tokens=tokens,
        crm=crm,
        api_domain=api_domain,
    )


def _exchange_message(error: str) -> str:
    if error == "invalid_client":
        return (
            "Zoho did not accept the dashboard's client id or secret. An admin needs to check "
            "ZOHO_CLIENT_ID / ZOHO_CLIENT_SECRET (or the portal's own client)."
        )
    if error in {"invalid_code", "invalid_grant"}:
        return "Zoho says the sign-in code is invalid or expired. Start the connection again."
    if error == "invalid_redirect_uri":
        return (
            "Zoho refused the dashboard's return address. Register this dashboard's callback "
            "URL as the Zoho client's redirect URI."
        )
    return f"Zoho did not accept the sign-in (“{error}”). Start the connection again."


def _token_set(raw: Mapping[str, Any], *, requested: tuple[str, ...]) -> TokenSet:
    access = str(raw.get("access_token") or "")
    if not access:
        raise exc.TokenExchangeFailed(detail="token response without access_token")
    # Older Zoho answers gave expires_in in milliseconds plus expires_in_sec.
    seconds = raw.get("expires_in_sec")
    if seconds is None:
        seconds = raw.get("expires_in", 3600)
        try:
            seconds = float(seconds)
        except (TypeError, ValueError):
            seconds = 3600.0
        if seconds > 36_000:  # Zoho tokens live an hour; a bigger figure is milliseconds
            seconds /= 1000
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        seconds = 3600.0
    scope = raw.get("scope")
    if isinstance(scope, str):
        scopes = tuple(s for s in scope.replace(",", " ").split() if s)
    elif isinstance(scope, list | tuple):
        scopes = tuple(str(s) for s in scope)
    else:
        scopes = ()
    return TokenSet(
        access_token=access,
        refresh_token=str(raw.get("refresh_token") or ""),
        expires_at=timezone.now() + timedelta(seconds=seconds),
        scopes=scopes,
    )


def store_authorization(portal: Portal, authorization: Authorization) -> Portal:
    """Save a completed consent on ``portal`` (encrypted)."""
    tokens = authorization.tokens
    portal.data_center = authorization.data_center.code
    portal.accounts_url = authorization.accounts_url
    portal.access_token_encrypted = Portal._write(tokens.access_token)
    portal.refresh_token_encrypted = Portal._write(tokens.refresh_token)
    portal.token_expires_at = tokens.expires_at
    portal.granted_scopes = ",".join(
        tokens.scopes or requested_scopes(portal.dialect, crm=authorization.crm)
    )
    portal.connected_at = timezone.now()
    if authorization.crm:
        portal.crm_api_domain = authorization.api_domain
        portal.crm_connected_at = portal.connected_at
        portal.crm_paused_until = None
    portal.disconnected_at = None
    portal.token_refresh_blocked_until = None
    portal.save()
    return portal


# --- access tokens ------------------------------------------------------------------------


_TOKEN_FIELDS = (
    "access_token_encrypted",
    "refresh_token_encrypted",
    "token_expires_at",
    "token_refresh_blocked_until",
    "accounts_url",
    "data_center",
)


def _fresh(portal: Portal, *, not_this: str | None) -> str | None:
    """The stored access token if it is good for longer than the margin (and not rejected)."""
    if not portal.access_token_encrypted or portal.token_expires_at is None:
        return None
    margin = timedelta(seconds=settings.SIQ_TOKEN_REFRESH_MARGIN)
    if portal.token_expires_at - margin <= timezone.now():
        return None
    token = portal.get_access_token()
    if not_this is not None and token == not_this:
        return None
    return token


def access_token(portal: Portal, *, rejected: str | None = None) -> str:
    """A usable access token for ``portal``, refreshing it if needed.

    ``rejected`` is a token SalesIQ just refused (1008): refresh unless another
    process already replaced it. One refresh at a time per portal, across
    processes: a lease on the portal row; whoever waits re-reads the row.
    """
    portal.refresh_from_db(fields=_TOKEN_FIELDS)
    token = _fresh(portal, not_this=rejected)
    if token:
        return token
    if not portal.refresh_token_encrypted:
        raise exc.ReconnectNeeded(
            "This portal is not connected to SalesIQ. An admin needs to connect it."
        )
    owner = uuid.uuid4().hex
    deadline = time.monotonic() + REFRESH_WAIT_SECONDS
    delay = 0.05
    while True:
        now = timezone.now()
        taken = (
            Portal.objects.filter(pk=portal.pk)
            .filter(Q(token_refresh_lock_until__isnull=True) | Q(token_refresh_lock_until__lt=now))
            .update(token_refresh_lock_until=now + REFRESH_LOCK_TTL, token_refresh_lock_owner=owner)
        )
        if taken:
            break
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
        portal.refresh_from_db(fields=_TOKEN_FIELDS)
        token = _fresh(portal, not_this=rejected)
        if token:
            return token  # the other process's refresh worked
        if time.monotonic() > deadline:
            raise exc.Unavailable(
                "Signing in to Zoho is taking too long. The dashboard will try again.",
                detail="refresh lock not released",
            )
    try:
        # Re-check under the lock: the holder before us may have refreshed already.
        portal.refresh_from_db(fields=_TOKEN_FIELDS)
        token = _fresh(portal, not_this=rejected)
        if token:
            return token
        return _refresh(portal)
    finally:
        Portal.objects.filter(pk=portal.pk, token_refresh_lock_owner=owner).update(
            token_refresh_lock_until=None, token_refresh_lock_owner=""
        )


def _refresh(portal: Portal) -> str:
    now = timezone.now()
    if portal.token_refresh_blocked_until and portal.token_refresh_blocked_until > now:
        raise exc.TokenRefreshLimited(retry_at=portal.token_refresh_blocked_until)
    client_id, client_secret = portal.oauth_client_credentials()
    accounts_url = portal.accounts_url or portal.data_center_entry.accounts_url
    oauth = session_for(client_id)
    try:
        # Reference: https://www.zoho.com/accounts/protocol/oauth/web-apps/access-token-expiry.html
        raw = oauth.refresh_token(
            f"{accounts_url}/oauth/v2/token",
            refresh_token=portal.get_refresh_token(),
            client_id=client_id,
            client_secret=client_secret,
            timeout=_timeout(),
        )
    except Warning as warning:
        raw = dict(getattr(warning, "token", {}) or {})
    except OAuth2Error as error:
        description = (error.description or "").lower()
        if _TOO_MANY in description or error.error.lower() == "access denied":
            blocked = now + timedelta(minutes=10)
            Portal.objects.filter(pk=portal.pk).update(token_refresh_blocked_until=blocked)
            raise exc.TokenRefreshLimited(retry_at=blocked, detail=error.error) from None
        if error.error in {"invalid_code", "invalid_grant", "invalid_token"}:
            raise exc.ReconnectNeeded(detail=f"refresh: {error.error}") from None
        if error.error == "invalid_client":
            raise exc.ReconnectNeeded(
                "Zoho no longer accepts the dashboard's client id or secret. An admin needs to "
                "check ZOHO_CLIENT_ID / ZOHO_CLIENT_SECRET and reconnect.",
                detail="refresh: invalid_client",
            ) from None
        raise exc.TokenInvalid(detail=f"refresh: {error.error}") from None
    except requests.RequestException as error:
        raise exc.Unavailable(
            "Zoho's accounts server did not answer; the dashboard will retry.",
            detail=type(error).__name__,
        ) from None
    except ValueError:
        raise exc.Unavailable(
            "Zoho's accounts server gave an answer that is not a token; the dashboard will retry.",
            detail="refresh answered something not JSON",
        ) from None
    tokens = _token_set(raw, requested=scopes_for(portal.dialect))
    Portal.objects.filter(pk=portal.pk).update(
        access_token_encrypted=Portal._write(tokens.access_token),
        token_expires_at=tokens.expires_at,
        token_refresh_blocked_until=None,
    )
    portal.refresh_from_db(fields=_TOKEN_FIELDS)
    logger.info("Refreshed the SalesIQ access token of portal %s", portal.pk)
    return tokens.access_token


# --- who the grant acts as ------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectedUser:
    """The Zoho user a grant acts as: in SalesIQ, one of the portal's operators."""

    zuid: str
    email: str
    name: str


def may_read_profile(portal: Portal) -> bool:
    """Whether the portal's grant includes the profile scope (grants made before the
    dashboard asked for it do not; a reconnect adds it)."""
    granted = {scope.strip().lower() for scope in portal.granted_scopes.split(",")}
    return PROFILE_SCOPE.lower() in granted


def fetch_connected_user(*, accounts_url: str, client_id: str, token: str) -> ConnectedUser:
    """Ask Zoho Accounts who ``token`` acts for. Raises an OAuthError subclass or
    Unavailable; the caller treats any failure as "not known"."""
    oauth = session_for(client_id, access_token=token)
    try:
        # Reference: https://www.zoho.com/accounts/protocol/oauth/use-access-token.html
        # (GET oauth/user/info on the accounts server, scope AaaServer.profile.READ). The
        # page shows no answer; ZUID, Email, First_Name, Last_Name and Display_Name are the
        # fields seen in practice (docs/simulator.md keeps the simulator to that shape).
        response = oauth.get(f"{accounts_url}/oauth/user/info", timeout=_timeout())
    except requests.RequestException as error:
        raise exc.Unavailable(
            "Zoho's accounts server did not say who the connection acts as.",
            detail=type(error).__name__,
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = None
    email = str(body.get("Email") or "").strip() if isinstance(body, dict) else ""
    if response.status_code != 200 or not email:
        raise exc.OAuthError(
            "Zoho did not say which user this connection acts as.",
            http_status=response.status_code,
            detail=f"user/info: {str(body)[:200]}",
        )
    first = str(body.get("First_Name") or "").strip()
    last = str(body.get("Last_Name") or "").strip()
    name = " ".join(part for part in (first, last) if part)
    return ConnectedUser(
        zuid=str(body.get("ZUID") or ""),
        email=email[:254],
        name=(name or str(body.get("Display_Name") or "").strip() or email)[:200],
    )


def connected_user(portal: Portal) -> ConnectedUser:
    """Who ``portal``'s stored grant acts as (refreshing its access token if needed)."""
    client_id, _ = portal.oauth_client_credentials()
    accounts_url = portal.accounts_url or portal.data_center_entry.accounts_url
    return fetch_connected_user(
        accounts_url=accounts_url, client_id=client_id, token=access_token(portal)
    )


# --- revoke ---------------------------------------------------------------------------------


def revoke_token(portal: Portal) -> None:
    """Revoke ``portal``'s refresh token at Zoho (killing its access tokens). Only talks
    to Zoho: the caller decides what to keep. Raises Unavailable when Zoho cannot say yes."""
    refresh = portal.get_refresh_token() if portal.refresh_token_encrypted else ""
    if not refresh:
        return
    accounts_url = portal.accounts_url or portal.data_center_entry.accounts_url
    client_id, _ = portal.oauth_client_credentials()
    oauth = session_for(client_id)
    try:
        # Reference: https://www.zoho.com/accounts/protocol/oauth/web-server-applications.html
        response = oauth.post(
            f"{accounts_url}/oauth/v2/token/revoke",
            params={"token": refresh},
            timeout=_timeout(),
        )
    except requests.RequestException as error:
        raise exc.Unavailable(
            "Zoho's accounts server could not be reached to revoke the connection; the "
            "tokens were deleted here. Revoke the app in your Zoho account if you can.",
            detail=type(error).__name__,
        ) from None
    if response.status_code >= 500:
        raise exc.Unavailable(
            "Zoho's accounts server did not confirm the revocation; the tokens were deleted here.",
            http_status=response.status_code,
        )


def revoke(portal: Portal) -> None:
    """Revoke at Zoho and wipe the tokens here.

    The local wipe happens even when Zoho cannot be reached: a disconnect must
    not leave usable tokens behind. A Zoho failure is re-raised after the wipe.
    """
    failure: exc.SalesIQError | None = None
    try:
        revoke_token(portal)
    except exc.SalesIQError as error:
        failure = error
    Portal.objects.filter(pk=portal.pk).update(
        access_token_encrypted="",
        refresh_token_encrypted="",
        token_expires_at=None,
        granted_scopes="",
        connected_at=None,
        crm_connected_at=None,
    )
    portal.refresh_from_db()
    if failure is not None:
        raise failure
