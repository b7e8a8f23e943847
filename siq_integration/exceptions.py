"""One exception per failure class at the SalesIQ boundary.

Callers catch classes, never parse messages. Every exception carries
``user_message``: a sentence a supervisor or an admin understands, safe to show
(no tokens, no secrets). The technical detail (``code``, ``http_status``,
``detail``) is for logs and audit entries.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

# Every class of the family by its name: Portal.last_error_kind stores the name of the
# last failure, and ``by_name`` turns it back into the class so readers test classes.
_BY_NAME: dict[str, type[SalesIQError]] = {}


def by_name(name: str) -> type[SalesIQError] | None:
    """The exception class a stored name stands for (None: unknown, or no failure)."""
    return _BY_NAME.get(name)


class SalesIQError(Exception):
    """Base of everything that can go wrong talking to SalesIQ or Zoho Accounts."""

    default_message = "SalesIQ could not complete the request."
    # What the failure says about the call, so callers read the class, never a code:
    never_sent: ClassVar[bool] = False  # the dashboard held the call back (budget, back-off)
    unanswered: ClassVar[bool] = False  # sent, but no clear answer came (it may have happened)

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        _BY_NAME.setdefault(cls.__name__, cls)

    def __init__(
        self,
        user_message: str | None = None,
        *,
        code: str | int | None = None,
        http_status: int | None = None,
        detail: str = "",
    ) -> None:
        self.user_message = user_message or self.default_message
        self.code = code
        self.http_status = http_status
        self.detail = detail
        super().__init__(self.user_message)

    def technical(self) -> str:
        """The detail for a log line or an audit entry."""
        parts = [type(self).__name__]
        if self.code is not None:
            parts.append(f"code={self.code}")
        if self.http_status is not None:
            parts.append(f"http={self.http_status}")
        if self.detail:
            parts.append(self.detail)
        return " ".join(parts)


class TryLater(SalesIQError):
    """Refused for now; ``retry_at`` (aware UTC) says when to try again, if known."""

    def __init__(self, user_message: str | None = None, *, retry_at: datetime | None = None, **kw):
        self.retry_at = retry_at
        if user_message is None and retry_at is not None:
            user_message = f"{self.default_message} Try again after {retry_at:%H:%M:%S} UTC."
        super().__init__(user_message, **kw)


# --- Authentication and authorisation ---------------------------------------------


class TokenInvalid(SalesIQError):
    """The access token was refused (1008 / INVALID_TOKEN) and a refresh did not help."""

    default_message = (
        "SalesIQ no longer accepts this portal's sign-in. An admin needs to reconnect the portal."
    )


class ReconnectNeeded(TokenInvalid):
    """The refresh token is gone (revoked, deleted by Zoho's 20-token limit, disconnected)."""

    default_message = (
        "The connection to this portal was revoked at Zoho. An admin needs to reconnect it."
    )


class ScopeMissing(SalesIQError):
    """The token lacks a scope (1009 / INVALID_OAUTH_SCOPE)."""

    default_message = (
        "This portal was connected without a permission the dashboard needs. "
        "An admin needs to reconnect it and approve every permission."
    )

    def __init__(self, user_message: str | None = None, *, scope: str = "", **kw):
        self.scope = scope
        if user_message is None and scope:
            user_message = (
                f"This portal was connected without the {scope} permission. "
                "An admin needs to reconnect it and approve every permission."
            )
        super().__init__(user_message, **kw)


class PermissionDenied(SalesIQError):
    """The connected user's SalesIQ role may not do this (1016 / PERMISSION_DENIED)."""

    default_message = "SalesIQ says this portal's connected user is not allowed to do that."


class NotOwnStatus(PermissionDenied):
    """v2 refused to set another operator's status (1016 on the status call): the grant
    may set only the connected user's own status. The user-facing sentence is the
    caller's (it knows the operator's name); the message stays PermissionDenied's."""


# --- The thing asked for ----------------------------------------------------------------


class NotFound(SalesIQError):
    """The chat, operator or department does not exist (any more) (1019/1020/1024/1025/404)."""

    default_message = "SalesIQ no longer has that chat, operator or department."


class ChatGone(NotFound):
    """SalesIQ no longer has the chat asked about (v2 1019; reference RESOURCE_NOT_FOUND
    on ending a chat)."""

    default_message = "SalesIQ no longer has that chat."


class OperatorGone(NotFound):
    """The operator is not (any more) part of the portal (v2 1020 / 1024)."""

    default_message = "SalesIQ does not know that operator."


class DepartmentGone(NotFound):
    """The department does not exist (any more) (v2 1025 / reference INVALID_DEPARTMENT)."""

    default_message = "That department does not exist in SalesIQ (any more)."


class ChatNotActive(NotFound):
    """The chat has already ended (reference CHAT_NOT_ACTIVE)."""

    default_message = "That chat has already ended."


class ChatNotWaiting(SalesIQError):
    """A pickup of a chat nobody waits on any more: an operator has it already (v2 1016 on
    the pickup call, as the simulator reads Zoho's page; the page names no error)."""

    default_message = "Someone has already picked up that chat."


class OperatorOffline(SalesIQError):
    """The target operator cannot take chats now (reference OPERATOR_OFFLINE)."""

    default_message = "That operator is offline and cannot take the chat."


class AlreadyExists(SalesIQError):
    """1014 / DUPLICATE_RESOURCE: often success in disguise (a webhook already registered)."""

    default_message = "SalesIQ already has that."


class BadRequest(SalesIQError):
    """SalesIQ refused a parameter (1007/1011/1015/1029/1031 / 400)."""

    default_message = "SalesIQ refused the request as invalid."

    def __init__(
        self,
        user_message: str | None = None,
        *,
        param: str = "",
        json_key: str = "",
        header: str = "",
        **kw,
    ):
        self.param = param
        self.json_key = json_key
        self.header = header
        field = json_key or param or header
        if user_message is None and field:
            user_message = f"SalesIQ refused the value of “{field}”."
        super().__init__(user_message, **kw)

    @property
    def field(self) -> str:
        return self.json_key or self.param or self.header


class PlanLimit(SalesIQError):
    """The portal's SalesIQ plan does not allow this (1017/1021). Never retried."""

    default_message = "This portal's SalesIQ plan does not allow that."


class Misconfigured(SalesIQError):
    """The portal settings are wrong: screen name, data centre, URL, HTTP method, header."""

    default_message = (
        "This portal is set up wrongly (screen name or data centre). An admin needs to check it."
    )


class RequestHeadersRefused(Misconfigured):
    """SalesIQ refused the dashboard's own request headers (v2 1002 / 1054): a bug in the
    dashboard, logged as an error, not something an admin can fix in the settings."""


class WrongScreenName(Misconfigured):
    default_message = "The Zoho account you approved with cannot reach that SalesIQ portal."


# --- Temporary conditions -------------------------------------------------------------


class RateLimited(TryLater):
    """SalesIQ says too many requests (1023 / 429)."""

    default_message = "SalesIQ is limiting requests from this dashboard."
    never_sent = True


class TooManyRequests(RateLimited):
    """SalesIQ itself said too many requests, naming its code (v2 1023, reference
    RATE_LIMIT_EXCEEDED): the call reached SalesIQ and was refused. A bare RateLimited is
    a plain 429 or the dashboard's own back-off (budget), counted as not sent."""

    never_sent = False


class BudgetExhausted(TryLater):
    """Our own per-portal call budget is spent; nothing was sent to SalesIQ."""

    default_message = "This portal's SalesIQ call budget is used up for now."
    never_sent = True


class Unavailable(TryLater):
    """SalesIQ or Zoho Accounts did not answer usefully (1001, 5xx, timeout, refused)."""

    default_message = "SalesIQ is not answering right now."
    unanswered = True


# --- OAuth ---------------------------------------------------------------------------


class OAuthError(SalesIQError):
    """The OAuth dance with Zoho Accounts went wrong; the message says what to do."""

    default_message = "Connecting to Zoho did not work. Please try again."


class AuthorizationDenied(OAuthError):
    default_message = (
        "Zoho says the connection was not approved. Connect again and choose Accept on "
        "Zoho's page to let the dashboard read and manage chats."
    )


class StateMismatch(OAuthError):
    default_message = (
        "This Zoho sign-in link is out of date or was already used. Start the connection again "
        "from the portals page."
    )


class StateAlreadyUsed(StateMismatch):
    """Another callback with the same state claimed it first (a double click, a replay)."""

    default_message = "This sign-in link was already used; start again."


class UnknownAccountsServer(OAuthError):
    default_message = (
        "Zoho sent the sign-in back from an accounts server this dashboard does not know. "
        "An admin can add that data centre to SIQ_EXTRA_DATA_CENTERS."
    )


class TokenExchangeFailed(OAuthError):
    default_message = "Zoho did not accept the sign-in. Start the connection again."


class NoRefreshToken(OAuthError):
    default_message = (
        "Zoho did not give the dashboard a lasting sign-in (no refresh token). "
        "Start the connection again; Zoho will ask for consent once more."
    )


class TokenRefreshLimited(TryLater, OAuthError):
    """Zoho allows 10 access tokens per refresh token per 10 minutes."""

    default_message = "Zoho has paused new sign-ins for this portal for a few minutes."


# --- Secrets at rest --------------------------------------------------------------------


class TokenDecryptionError(SalesIQError):
    """A stored secret cannot be decrypted with any key of TOKEN_ENCRYPTION_KEYS."""

    default_message = (
        "The stored sign-in for this portal cannot be read with the configured encryption "
        "keys (TOKEN_ENCRYPTION_KEYS). Restore the old key or reconnect the portal."
    )


class EncryptionNotConfigured(SalesIQError):
    default_message = (
        "TOKEN_ENCRYPTION_KEYS is not set, so the dashboard cannot store SalesIQ sign-ins."
    )


# --- Webhooks -------------------------------------------------------------------------


class WebhookRejected(SalesIQError):
    """A delivery failed verification or parsing; never applied."""

    default_message = "A webhook delivery was rejected."


class SignatureInvalid(WebhookRejected):
    default_message = "A webhook arrived with a signature that does not match."


class MalformedPayload(WebhookRejected):
    default_message = "A webhook arrived whose body is not the JSON SalesIQ sends."


# --- Zoho CRM ----------------------------------------------------------------------------
# CRM's own family under SalesIQError (one base for the boundary), so a CRM failure is
# never mistaken for SalesIQ's: a CRM error leaves the portal's SalesIQ health alone.
# Reference: https://www.zoho.com/crm/developer/docs/api/v8/status-codes.html (seed 002)


class CrmError(SalesIQError):
    """Something went wrong talking to Zoho CRM."""

    default_message = "Zoho CRM could not complete the request."


class CrmNotConnected(CrmError):
    """The portal has no CRM grant (CRM was never added, or was removed)."""

    default_message = (
        "This portal is not connected to Zoho CRM. An admin can add CRM on the portal's page."
    )


class CrmInvalidData(CrmError):
    """400 INVALID_DATA (or another 400 code): CRM refused a value."""

    default_message = "Zoho CRM refused the data the dashboard sent."

    def __init__(self, user_message: str | None = None, *, field: str = "", **kw):
        self.field = field
        if user_message is None and field:
            user_message = f"Zoho CRM refused the value of “{field}”."
        super().__init__(user_message, **kw)


class CrmDuplicate(CrmError):
    """DUPLICATE_DATA: a record with this e-mail is already in CRM; names the record."""

    default_message = "Zoho CRM already has a record with this e-mail."

    def __init__(
        self,
        user_message: str | None = None,
        *,
        record_id: str = "",
        module: str = "Leads",
        owner: str = "",
        url: str = "",
        **kw,
    ):
        self.record_id = record_id
        self.module = module
        self.owner = owner
        self.url = url
        if user_message is None and record_id:
            kind = {"Leads": "lead", "Contacts": "contact"}.get(module, "record")
            whose = f", owned by {owner}" if owner else ""
            user_message = (
                f"Zoho CRM already has this e-mail as a {kind} (record {record_id}{whose}); "
                "no new lead was made."
            )
        super().__init__(user_message, **kw)


class CrmTokenInvalid(CrmError):
    """401 INVALID_TOKEN after one refresh: the grant no longer works for CRM."""

    default_message = (
        "Zoho CRM no longer accepts this portal's sign-in. An admin needs to add CRM to the "
        "portal again."
    )


class CrmScopeMissing(CrmError):
    """401 OAUTH_SCOPE_MISMATCH: the grant lacks a CRM scope."""

    default_message = (
        "This portal was connected to Zoho CRM without a permission the dashboard needs. "
        "An admin needs to add CRM again and approve every permission."
    )


class CrmPermissionDenied(CrmError):
    """403 NO_PERMISSION: the connected user's CRM profile may not do this."""

    default_message = (
        "Zoho CRM says the connected user's CRM profile is not allowed to do that. "
        "A CRM administrator can grant it."
    )


class CrmNotFound(CrmError):
    """404: CRM does not know the address (a wrong data centre, or a record gone)."""

    default_message = (
        "Zoho CRM does not know that address: the portal's CRM data centre may be wrong. "
        "An admin needs to add CRM to the portal again."
    )


class CrmRequestRefused(CrmError):
    """405 / 415: CRM refused the shape of our request. A bug in the dashboard, logged."""

    default_message = (
        "Zoho CRM refused the kind of request the dashboard sent. This is a fault in the "
        "dashboard and has been logged."
    )


class CrmTooLarge(CrmError):
    """413: the request was too large for CRM."""

    default_message = (
        "Zoho CRM refused the request as too large. Shorten the description and try again."
    )


class CrmPartlyDone(CrmError):
    """207 without a clear answer about our record: only part of the request was done."""

    default_message = (
        "Zoho CRM did only part of the request. Check the record in CRM before trying again."
    )
    unanswered = True


class CrmCreditsExhausted(TryLater, CrmError):
    """429 for the 24-hour credit limit: no CRM call for this portal until ``retry_at``."""

    default_message = "Zoho CRM's API credits for the last 24 hours are used up."


class CrmConcurrencyLimited(TryLater, CrmError):
    """429 for the concurrency limit: too many calls at once from this Zoho user."""

    default_message = (
        "Zoho CRM is busy with other requests from this Zoho account; try again in a moment."
    )


class CrmBudgetExhausted(TryLater, CrmError):
    """Our own CRM credit budget for the portal is spent; nothing was sent."""

    default_message = "This portal's Zoho CRM budget for today is used up."
    never_sent = True


class CrmUnavailable(TryLater, CrmError):
    """500, 5xx, a timeout or no answer: CRM is not answering usefully."""

    default_message = "Zoho CRM is not answering right now."
    unanswered = True
