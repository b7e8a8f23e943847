"""A connected SalesIQ portal (and its Zoho CRM), its call budgets and its webhook keys."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from . import crypto
from .datacenters import DataCenter
from .exceptions import Misconfigured


class Dialect(models.TextChoices):
    V2 = "v2", "SalesIQ REST API v2"
    REFERENCE = "reference", "Reference (chats API, HMAC webhooks)"


class Plan(models.TextChoices):
    FREE = "free", "Free"
    BASIC = "basic", "Basic"
    PROFESSIONAL = "professional", "Professional"
    ENTERPRISE = "enterprise", "Enterprise"
    CUSTOM = "custom", "Custom"


class Portal(models.Model):
    """One SalesIQ portal, reached through one Zoho OAuth grant.

    Secrets (tokens, a per-portal client secret, the reference webhook secret)
    are stored encrypted and only ever read through the accessors below.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    data_center = models.CharField(max_length=32, help_text="Code from the data-centre table.")
    dialect = models.CharField(max_length=16, choices=Dialect.choices, default=Dialect.V2)
    screen_name = models.CharField(max_length=100, blank=True)
    plan = models.CharField(max_length=16, choices=Plan.choices, default=Plan.PROFESSIONAL)
    calls_per_minute = models.PositiveIntegerField(default=50)
    calls_per_day = models.PositiveIntegerField(default=20_000)

    # Per-portal OAuth client; blank means the deployment's ZOHO_CLIENT_ID / SECRET.
    client_id = models.CharField(max_length=200, blank=True)
    client_secret_encrypted = models.TextField(blank=True, editable=False)

    # The accounts server that issued the grant (the callback's accounts-server).
    accounts_url = models.CharField(max_length=200, blank=True, editable=False)
    access_token_encrypted = models.TextField(blank=True, editable=False)
    refresh_token_encrypted = models.TextField(blank=True, editable=False)
    token_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    granted_scopes = models.TextField(blank=True, editable=False)
    connected_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The SalesIQ user the grant acts as (v2 lets it set only its own status, and messages
    # it sends carry its name): learned while connecting, blank while unknown.
    connected_user_id = models.CharField(max_length=64, blank=True, editable=False)
    connected_user_name = models.CharField(max_length=200, blank=True, editable=False)
    connected_user_email = models.CharField(max_length=254, blank=True, editable=False)

    # One refresh at a time per portal, across processes.
    token_refresh_lock_until = models.DateTimeField(null=True, blank=True, editable=False)
    token_refresh_lock_owner = models.CharField(max_length=64, blank=True, editable=False)
    # Zoho's 10 access tokens per refresh token per 10 minutes: do not ask again before.
    token_refresh_blocked_until = models.DateTimeField(null=True, blank=True, editable=False)
    # SalesIQ said "too many requests": nobody calls this portal before then.
    rate_limited_until = models.DateTimeField(null=True, blank=True, editable=False)
    rate_limit_strikes = models.PositiveSmallIntegerField(default=0, editable=False)

    disconnected_at = models.DateTimeField(null=True, blank=True, editable=False)

    # Health, in words.
    last_success_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    last_error_code = models.CharField(max_length=40, blank=True, editable=False)
    last_error_kind = models.CharField(max_length=40, blank=True, editable=False)
    # When the current run of failures began (cleared by a success).
    problem_since = models.DateTimeField(null=True, blank=True, editable=False)

    # Webhook registration.
    webhook_id = models.CharField(max_length=64, blank=True, editable=False)
    webhook_url = models.CharField(max_length=300, blank=True, editable=False)
    webhook_secret_encrypted = models.TextField(blank=True, editable=False)
    webhook_registered_at = models.DateTimeField(null=True, blank=True, editable=False)
    webhook_error = models.TextField(blank=True, editable=False)
    # Deliveries as they arrive.
    last_webhook_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_webhook_ok = models.BooleanField(null=True, editable=False)
    last_webhook_problem = models.TextField(blank=True, editable=False)
    # The SalesIQ key id that signed the last accepted v2 delivery (public: no secret).
    last_webhook_key_id = models.CharField(max_length=64, blank=True, editable=False)
    # When the webhook's key list was last read from SalesIQ after an unknown signature:
    # at most once a minute per portal, across processes.
    webhook_keys_read_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Which list of events the worker last made sure the webhook has (a fingerprint of the
    # dashboard's list, webhook_events.py): once per list, not on every pass.
    webhook_events_checked = models.CharField(max_length=64, blank=True, editable=False)
    # The events the dashboard needs that SalesIQ's webhook still lacks after the worker
    # tried to add them (comma-separated; blank when none are missing).
    webhook_events_missing = models.TextField(blank=True, editable=False)

    # Zoho CRM, added to the portal by an admin (the same grant, with CRM scopes added).
    # The token answer's api_domain is the CRM host of the account's data centre.
    crm_api_domain = models.CharField(max_length=200, blank=True, editable=False)
    crm_connected_at = models.DateTimeField(null=True, blank=True, editable=False)
    # CRM counts API credits per 24 hours for the whole CRM account: the dashboard's share.
    crm_credits_per_day = models.PositiveIntegerField(default=1_000)
    # A visitor matters (marked on the live page) with an open deal above this amount.
    crm_big_deal_amount = models.DecimalField(max_digits=14, decimal_places=2, default=10_000)
    # CRM said 429 (credits or concurrency): nobody calls CRM for this portal before then.
    crm_paused_until = models.DateTimeField(null=True, blank=True, editable=False)
    crm_last_success_at = models.DateTimeField(null=True, blank=True, editable=False)
    crm_last_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    crm_last_error = models.TextField(blank=True, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    # --- data centre ---------------------------------------------------------------

    @property
    def data_center_entry(self) -> DataCenter:
        try:
            return settings.SIQ_DATA_CENTERS[self.data_center]
        except KeyError:
            raise Misconfigured(
                f"This portal's data centre “{self.data_center}” is not in the data-centre "
                "table. An admin needs to pick another or add it to SIQ_EXTRA_DATA_CENTERS.",
                code="unknown-data-center",
            ) from None

    @property
    def data_center_name(self) -> str:
        entry = settings.SIQ_DATA_CENTERS.get(self.data_center)
        return entry.name if entry else f"{self.data_center} (not in the table)"

    @property
    def is_connected(self) -> bool:
        return bool(self.refresh_token_encrypted)

    @property
    def has_crm(self) -> bool:
        """Whether an admin added Zoho CRM to this portal (a portal without works as before)."""
        return bool(self.crm_connected_at and self.crm_api_domain and self.is_connected)

    @property
    def crm_current_error(self) -> str:
        """CRM's last error, unless a CRM call has succeeded since."""
        if self.crm_last_error_at and (
            self.crm_last_success_at is None or self.crm_last_error_at > self.crm_last_success_at
        ):
            return self.crm_last_error
        return ""

    @property
    def current_error(self) -> str:
        """The last error, unless a call has succeeded since."""
        if self.last_error_at and (
            self.last_success_at is None or self.last_error_at > self.last_success_at
        ):
            return self.last_error
        return ""

    # --- secrets -----------------------------------------------------------------------

    @staticmethod
    def _read(ciphertext: str) -> str:
        return crypto.decrypt(ciphertext) if ciphertext else ""

    @staticmethod
    def _write(plaintext: str) -> str:
        return crypto.encrypt(plaintext) if plaintext else ""

    def get_access_token(self) -> str:
        return self._read(self.access_token_encrypted)

    def get_refresh_token(self) -> str:
        return self._read(self.refresh_token_encrypted)

    def get_client_secret(self) -> str:
        return self._read(self.client_secret_encrypted)

    def set_client_secret(self, value: str) -> None:
        self.client_secret_encrypted = self._write(value)

    def get_webhook_secret(self) -> str:
        return self._read(self.webhook_secret_encrypted)

    def set_webhook_secret(self, value: str) -> None:
        self.webhook_secret_encrypted = self._write(value)

    def oauth_client_credentials(self) -> tuple[str, str]:
        if self.client_id:
            return self.client_id, self.get_client_secret()
        return settings.ZOHO_CLIENT_ID, settings.ZOHO_CLIENT_SECRET

    # --- a portal being added, before it is saved ------------------------------------------

    # What the Add form decides. A portal is saved only once it is connected; until then
    # these travel in the admin's session (the client secret still encrypted).
    DRAFT_FIELDS = (
        "name",
        "data_center",
        "dialect",
        "screen_name",
        "plan",
        "calls_per_minute",
        "calls_per_day",
        "client_id",
        "client_secret_encrypted",
    )

    def to_draft(self) -> dict[str, str | int]:
        return {"id": str(self.pk), **{name: getattr(self, name) for name in self.DRAFT_FIELDS}}

    @classmethod
    def from_draft(cls, draft: dict[str, str | int]) -> Portal:
        """The unsaved portal a draft describes (same id: its webhook address is known)."""
        return cls(
            id=uuid.UUID(str(draft["id"])),
            **{name: draft[name] for name in cls.DRAFT_FIELDS if name in draft},
        )

    ENCRYPTED_FIELDS = (
        "client_secret_encrypted",
        "access_token_encrypted",
        "refresh_token_encrypted",
        "webhook_secret_encrypted",
    )


class WebhookPublicKey(models.Model):
    """A v2 webhook verification key, as SalesIQ lists it for the portal's webhook.

    SalesIQ keeps at most two and signs with the oldest; keys can be added or removed in
    SalesIQ's own settings, so the dashboard trusts every key SalesIQ lists.
    """

    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="webhook_keys")
    key_id = models.CharField(max_length=64)
    public_key_pem = models.TextField()
    # SalesIQ's own record of the key (``created_time``, ``creator.id``), for the page.
    created_time = models.DateTimeField(null=True, blank=True)
    creator_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["portal", "key_id"], name="unique_webhook_key_per_portal"
            )
        ]
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.portal} key {self.key_id}"


class CallWindow(models.Model):
    """Calls made to one portal in one minute or one day, shared by every process."""

    class Span(models.TextChoices):
        MINUTE = "minute"
        DAY = "day"
        # Zoho CRM credits, counted on their own (CRM's limit is not SalesIQ's).
        CRM_DAY = "crm_day"

    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="call_windows")
    span = models.CharField(max_length=8, choices=Span.choices)
    starts_at = models.DateTimeField()
    used = models.PositiveIntegerField(default=0)
    used_by_actions = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["portal", "span", "starts_at"], name="unique_call_window"
            )
        ]

    def __str__(self) -> str:
        return f"{self.portal} {self.span} {self.starts_at:%Y-%m-%d %H:%M}: {self.used}"


class OAuthState(models.Model):
    """A consent under way, by the SHA-256 of its state (the state itself stays in the
    admin's session and the consent URL). Deleting the row is how a callback claims the
    state: one DELETE, and only the request whose DELETE removed it exchanges the code, so
    parallel callbacks with one state make one token exchange, not one each."""

    state_sha256 = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"OAuth state {self.state_sha256[:8]}…"
