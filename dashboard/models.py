"""The dashboard's own state: who may see what (roles, portal access) and the live state
of every portal (departments, operators, chats) with the inbox of webhook deliveries and
the worker's polling state."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from siq_integration import dialects
from siq_integration import exceptions as exc
from siq_integration.models import Portal


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    SUPERVISOR = "supervisor", "Supervisor"
    VIEWER = "viewer", "Viewer"


ROLE_HELP = {
    Role.ADMIN: "Manages portals, users and their portal access; sees and acts on every portal.",
    Role.SUPERVISOR: "Sees and acts on the portals assigned to them.",
    Role.VIEWER: "Sees the portals assigned to them, read-only (wallboards).",
}


class TimeFormat(models.TextChoices):
    LOCALE = "", "As my browser's language has it"
    H24 = "24h", "24-hour clock (13:05)"
    H12 = "12h", "12-hour clock (1:05 PM)"


class Profile(models.Model):
    """A user's role and portal access. Superusers are Admins whatever this says."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    portals = models.ManyToManyField(Portal, blank=True, related_name="members")
    # Alert signals in the browser, off until the user turns them on.
    notify_desktop = models.BooleanField(default=False)
    notify_sound = models.BooleanField(default=False)
    # How this user reads times: the browser's locale (blank), or a 24- or 12-hour clock.
    time_format = models.CharField(max_length=4, choices=TimeFormat.choices, blank=True)
    # An IANA zone ("Europe/Berlin") for history pages and exports; blank: the browser's.
    time_zone = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()})"


# --- live state -----------------------------------------------------------------------------
# Everything below is written only by dashboard.state.apply (and the inbox by dashboard.ingest).


class ChatStatus(models.TextChoices):
    WAITING = "waiting", "Waiting"
    CONNECTED = "connected", "Connected"
    ENDED = "ended", "Ended"
    MISSED = "missed", "Missed"


OPEN_CHAT_STATUSES = (ChatStatus.WAITING, ChatStatus.CONNECTED)


class OperatorStatus(models.TextChoices):
    AVAILABLE = "available", "Available"
    BUSY = "busy", "Busy"
    AWAY = "away", "Away"
    OFFLINE = "offline", "Offline"


class Source(models.TextChoices):
    WEBHOOK = "webhook", "webhook"
    POLL = "poll", "poll"
    ACTION = "action", "action"


class Department(models.Model):
    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="departments")
    remote_id = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["portal", "remote_id"], name="unique_department")
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Operator(models.Model):
    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="operators")
    remote_id = models.CharField(max_length=64)
    # The full name SalesIQ gives (first and last name; else the nickname, else the e-mail).
    name = models.CharField(max_length=200)
    # The name every screen shows: ``name``, with the e-mail's local part added when another
    # operator of the portal has the same name (set by dashboard.state.apply).
    display_name = models.CharField(max_length=260, blank=True)
    # SalesIQ's own fields, as it sent them (v2; the reference dialect has one name).
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    nick_name = models.CharField(max_length=100, blank=True)
    email = models.CharField(max_length=254, blank=True)
    status = models.CharField(
        max_length=16, choices=OperatorStatus.choices, default=OperatorStatus.OFFLINE
    )
    # When the operator entered this status, as far as the dashboard knows.
    status_since = models.DateTimeField(null=True)
    status_message = models.CharField(max_length=300, blank=True)
    enabled = models.BooleanField(default=True)
    department_ids = models.JSONField(default=list)  # SalesIQ ids
    max_chats = models.PositiveIntegerField(null=True)  # capacity
    role = models.CharField(max_length=40, blank=True)
    # The newest fact applied and where it came from: an older one never overwrites it.
    fact_at = models.DateTimeField()
    source = models.CharField(max_length=8, choices=Source.choices)
    updated_at = models.DateTimeField(auto_now=True)
    # How far the operator's time in each status has been counted (dashboard/figures/
    # counting.py): the status and the moment counted up to.
    counted_status = models.CharField(max_length=16, blank=True)
    counted_since = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["portal", "remote_id"], name="unique_operator")
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.shown_name

    @property
    def shown_name(self) -> str:
        """The one name every screen shows for this operator."""
        return self.display_name or self.name


class Chat(models.Model):
    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="chats")
    remote_id = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=ChatStatus.choices)
    visitor_id = models.CharField(max_length=64, blank=True)
    visitor_name = models.CharField(max_length=200, blank=True)
    visitor_email = models.CharField(max_length=254, blank=True)
    visitor_details = models.JSONField(default=dict)
    question = models.TextField(blank=True)
    operator_id = models.CharField(max_length=64, blank=True)  # SalesIQ id
    operator_name = models.CharField(max_length=200, blank=True)
    department_id = models.CharField(max_length=64, blank=True)  # SalesIQ id
    department_name = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField(null=True)
    waiting_since = models.DateTimeField(null=True)  # set while waiting for pickup
    attended_at = models.DateTimeField(null=True)
    ended_at = models.DateTimeField(null=True)
    last_message_text = models.TextField(blank=True)
    last_message_at = models.DateTimeField(null=True)
    last_message_sender = models.CharField(max_length=16, blank=True)
    rating = models.SmallIntegerField(null=True)
    feedback = models.TextField(blank=True)
    transfer_status = models.CharField(max_length=16, blank=True)
    transfer_to = models.CharField(max_length=200, blank=True)
    transcript_loaded_at = models.DateTimeField(null=True)
    # The operator's first line after the pickup (first response time), and the department
    # the chat was in when it was picked up (it counts there, whatever transfers follow).
    first_response_at = models.DateTimeField(null=True)
    served_department_id = models.CharField(max_length=64, blank=True)
    # What this chat adds to the service figures as last counted (dashboard/figures/
    # counting.py): a later fact about it takes that away and adds what it adds now.
    counted = models.JSONField(default=dict)
    # Applied since it was last counted: the worker's queues job counts it within a second
    # (dashboard/state/apply.py ``count_pending``), off the webhook's path.
    needs_counting = models.BooleanField(default=False)
    # Ended because a complete poll no longer listed it (not because SalesIQ said so):
    # a later poll that lists it open again may reopen it.
    inferred_end = models.BooleanField(default=False)
    # Whether the visitor matters to the business, from the Zoho CRM lookup cache (set by
    # the worker's CRM job, never while applying a webhook): "" none or not known yet,
    # "deal" an open deal above the portal's amount, "customer" an existing customer.
    crm_marker = models.CharField(max_length=10, blank=True)
    fact_at = models.DateTimeField()
    source = models.CharField(max_length=8, choices=Source.choices)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["portal", "remote_id"], name="unique_chat")]
        indexes = [
            models.Index(fields=["portal", "status"], name="chat_portal_status"),
            # The last hour's service figures read the chats that arrived in it.
            models.Index(fields=["portal", "started_at"], name="chat_portal_started"),
            # The queues job looks for the chats changed since its last look, every second.
            models.Index(fields=["portal", "updated_at"], name="chat_portal_updated"),
            # The few chats applied since the last count, found without a scan.
            models.Index(
                fields=["portal"],
                condition=models.Q(needs_counting=True),
                name="chat_needs_counting",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.visitor_name or self.remote_id} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_CHAT_STATUSES

    @property
    def awaiting_reply(self) -> bool:
        """The visitor wrote last and nobody has answered yet."""
        return self.is_open and self.last_message_sender == "visitor"

    @property
    def waited_since(self) -> datetime | None:
        """Since when a waiting visitor has waited for pickup; None unless the chat waits.

        The one definition the row's Waiting clock, the drawer, the page's longest wait
        (through the row's data-waiting-since) and selectors.kpis share: a waiting chat
        without its own mark (a row from before the mark was kept) has waited since it
        started."""
        if self.status != ChatStatus.WAITING:
            return None
        return self.waiting_since or self.started_at

    @property
    def unanswered_since(self) -> datetime | None:
        """Since when a connected visitor's last message has had no reply; None when nothing
        is unanswered. The one definition the row's Unanswered clock, its sort (through the
        row's data-unanswered-since) and the drawer share."""
        if self.status != ChatStatus.CONNECTED or not self.awaiting_reply:
            return None
        return self.last_message_at


class CrmPerson(models.Model):
    """What Zoho CRM said about one visitor e-mail of a portal, kept for CRM_LOOKUP_TTL.

    Filled by the worker's CRM job (dashboard/crm.py), never while applying a webhook: a
    chat row never waits for CRM. One row per (portal, e-mail): looked up once per visitor
    and shared by all their chats. A drawer opened on a visitor not looked up yet asks for
    one (``PENDING``)."""

    class State(models.TextChoices):
        PENDING = "pending", "Looking up"
        FOUND = "found", "In CRM"
        NOT_FOUND = "not_found", "Not in CRM"
        FAILED = "failed", "Lookup failed"

    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="crm_people")
    email = models.CharField(max_length=254)  # lower-case
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    module = models.CharField(max_length=16, blank=True)  # "Contacts" | "Leads"
    record_id = models.CharField(max_length=32, blank=True)  # CRM ids pass 2^53: a string
    name = models.CharField(max_length=200, blank=True)
    company = models.CharField(max_length=200, blank=True)  # a lead's company, a contact's account
    owner = models.CharField(max_length=200, blank=True)
    lead_status = models.CharField(max_length=100, blank=True)
    url = models.CharField(max_length=500, blank=True)
    # Open deals, biggest first: [{"id", "name", "stage", "amount" (a string), "closing_date"}].
    open_deals = models.JSONField(default=list)
    biggest_open_amount = models.DecimalField(max_digits=16, decimal_places=2, null=True)
    is_customer = models.BooleanField(default=False)
    error = models.TextField(blank=True)  # the failure, in words (FAILED)
    asked_at = models.DateTimeField(default=timezone.now)
    looked_up_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)  # look up again after this

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["portal", "email"], name="unique_crm_person")
        ]

    def __str__(self) -> str:
        return f"{self.email}: {self.get_state_display()}"

    @property
    def kind(self) -> str:
        return "contact" if self.module == "Contacts" else "lead"

    def marker(self, big_deal_amount) -> str:
        """ "customer", "deal" (an open deal above ``big_deal_amount``) or ""."""
        if self.state != self.State.FOUND:
            return ""
        if self.is_customer:
            return "customer"
        if self.biggest_open_amount is not None and self.biggest_open_amount > big_deal_amount:
            return "deal"
        return ""


class ChatMessage(models.Model):
    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="messages")
    remote_id = models.CharField(max_length=64)
    sender_type = models.CharField(max_length=16)
    sender_name = models.CharField(max_length=200, blank=True)
    text = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True)
    # Changed after it was sent (SalesIQ's message.edited / .deleted): when, and the text as
    # first stored (kept for the tooltip of an edited line; a deleted line keeps no text).
    edited_at = models.DateTimeField(null=True)
    original_text = models.TextField(blank=True)
    deleted_at = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chat", "remote_id"], name="unique_chat_message")
        ]
        ordering = ["sent_at", "id"]

    def __str__(self) -> str:
        return f"{self.sender_type}: {self.text[:40]}"


class ParticipantRole(models.TextChoices):
    OPERATOR = "operator", "Operator"
    SUPERVISOR = "supervisor", "Supervisor"


class ChatParticipant(models.Model):
    """Someone in a chat besides its visitor and the operator attending it (an operator
    invited in, a supervisor who joined), as SalesIQ's participant events said. A row stays
    after they leave (``left_at``): a late "joined" older than the "left" changes nothing."""

    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="participants")
    remote_id = models.CharField(max_length=64)  # their SalesIQ operator id
    name = models.CharField(max_length=200, blank=True)
    email = models.CharField(max_length=254, blank=True)
    role = models.CharField(max_length=16, choices=ParticipantRole.choices)
    joined_at = models.DateTimeField(null=True)
    left_at = models.DateTimeField(null=True)
    fact_at = models.DateTimeField()  # the newest fact applied (joined or left)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chat", "remote_id"], name="unique_chat_participant")
        ]
        ordering = ["joined_at", "id"]

    def __str__(self) -> str:
        return f"{self.name or self.remote_id} ({self.role})"

    @property
    def is_present(self) -> bool:
        return self.left_at is None


class InboxEvent(models.Model):
    """A webhook delivery, stored before SalesIQ gets its answer; applied after commit."""

    class State(models.TextChoices):
        PENDING = "pending"
        APPLIED = "applied"
        UNKNOWN = "unknown"  # an event type the dashboard does not use: kept, not applied
        FAILED = "failed"
        # Signed, but it can never be stored or applied (unreadable JSON, text or times out
        # of range): kept with its reason, answered so that SalesIQ stops sending it.
        REJECTED = "rejected"

    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="inbox")
    dedupe_key = models.CharField(max_length=64)
    event_name = models.CharField(max_length=100)
    kind = models.CharField(max_length=40)
    body = models.TextField()
    attempt = models.PositiveSmallIntegerField(default=1)
    received_at = models.DateTimeField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    claimed_at = models.DateTimeField(null=True)
    applied_at = models.DateTimeField(null=True)
    error = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["portal", "dedupe_key"], name="unique_delivery")
        ]
        indexes = [models.Index(fields=["state", "received_at"], name="inbox_state_received")]

    def __str__(self) -> str:
        return f"{self.event_name} ({self.state})"


class PortalSync(models.Model):
    """How fresh a portal's live state is, and which worker polls it (a lease)."""

    portal = models.OneToOneField(Portal, on_delete=models.CASCADE, related_name="sync")
    lease_holder = models.CharField(max_length=100, blank=True)
    lease_expires_at = models.DateTimeField(null=True)
    heartbeat_at = models.DateTimeField(null=True)
    operators_sync_time = models.CharField(max_length=40, blank=True)  # v2 last_sync_time
    operators_polled_at = models.DateTimeField(null=True)
    operators_full_at = models.DateTimeField(null=True)
    chats_polled_at = models.DateTimeField(null=True)  # last complete open-chats snapshot
    departments_polled_at = models.DateTimeField(null=True)
    last_event_at = models.DateTimeField(null=True)  # last webhook event applied
    unknown_events = models.PositiveIntegerField(default=0)
    last_unknown_event = models.CharField(max_length=100, blank=True)
    # Deliveries refused at the door (signature missing or wrong, too large): anyone who
    # knows the address can send them, so they are counted apart, never webhook activity.
    refused_deliveries = models.PositiveBigIntegerField(default=0)
    last_refused_at = models.DateTimeField(null=True)
    last_refused_from = models.CharField(max_length=64, blank=True)  # client address
    last_refused_reason = models.CharField(max_length=300, blank=True)
    last_poll_error = models.TextField(blank=True)
    # Today's figures may be missing chats from ``figures_gap_from`` (null: they are complete)
    # to ``figures_gap_until`` (null while the gap lasts: webhooks still silent) until SalesIQ's
    # ended chats are read back (dashboard/figures/reconcile.py).
    figures_gap_from = models.DateTimeField(null=True)
    figures_gap_until = models.DateTimeField(null=True)
    figures_reconciled_at = models.DateTimeField(null=True)  # the last read-back began then
    # The read-back waits until then, for the call budget ("budget") or SalesIQ ("salesiq").
    figures_retry_at = models.DateTimeField(null=True)
    figures_waiting_for = models.CharField(max_length=16, blank=True)

    def __str__(self) -> str:
        return f"sync of {self.portal}"


class WorkerHeartbeat(models.Model):
    """A polling worker says it is alive, every tick: the leases are shared out among the
    workers seen within a lease's length (a stopped worker deletes its row)."""

    holder = models.CharField(max_length=100, unique=True)  # as in PortalSync.lease_holder
    seen_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"worker {self.holder}"


# --- supervisor actions and their audit trail ---------------------------------------------------


class ActionKind(models.TextChoices):
    TRANSFER = "transfer", "Transfer chat"
    END = "end", "End chat"
    OPERATOR_STATUS = "operator_status", "Change operator status"
    DRAIN = "drain", "Drain operator"
    MESSAGE = "message", "Message visitor"
    PICKUP = "pickup", "Pick up chat"
    CRM_LEAD = "crm_lead", "Create lead in Zoho CRM"


class ActionOutcome(models.TextChoices):
    """SalesIQ's immediate answer (or the dashboard's own refusal), as stored. What a
    supervisor reads is ``ActionState``, which also weighs SalesIQ's confirmation."""

    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    REFUSED = "refused", "Refused"  # by SalesIQ (error_code says so) or by the dashboard
    FAILED = "failed", "Failed"


class ActionState(models.TextChoices):
    """What became of an action: the one vocabulary of the drawer, the toast, the drain's
    steps, the audit page, its filter and its CSV. A word means the same thing everywhere."""

    # Not settled yet: SalesIQ has not answered, or (v2) it took a transfer that the new
    # operator has not accepted or declined yet, or a drain waits for one of those.
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"  # SalesIQ's webhook: the new operator took the chat
    DECLINED = "declined", "Declined"  # SalesIQ's webhook: the chat stays where it was
    DONE = "done", "Done"  # SalesIQ did it (an end, a status, a reference transfer, a drain)
    PARTIAL = "partial", "Partly done"  # a drain some of whose steps did not happen
    REFUSED = "refused", "Refused"  # SalesIQ or the dashboard said no
    NOT_SENT = "not_sent", "Not sent"  # the call budget or a back-off kept it here
    UNCLEAR = "unclear", "No clear answer"  # SalesIQ failed or did not answer


# The tone each state is shown in (the audit page's pill; live.css keys on data-state).
STATE_TONES = {
    ActionState.PENDING: "info",
    ActionState.ACCEPTED: "ok",
    ActionState.DECLINED: "warn",
    ActionState.DONE: "ok",
    ActionState.PARTIAL: "warn",
    ActionState.REFUSED: "warn",
    ActionState.NOT_SENT: "off",
    ActionState.UNCLEAR: "bad",
}
SETTLED_WELL = (ActionState.DONE, ActionState.ACCEPTED)


class Action(models.Model):
    """One attempt at an action, whatever became of it: the audit trail.

    ``key`` is the idempotency key the form carried: a double click, a browser retry or
    a second process with the same key finds this row and never calls SalesIQ again.
    ``state`` is derived from the rest on every save (``derive_state``), so the audit can
    filter by it.
    """

    key = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="actions"
    )
    username = models.CharField(max_length=150)  # kept when the user is deleted
    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="actions")
    kind = models.CharField(max_length=20, choices=ActionKind.choices)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="steps"
    )
    chat = models.ForeignKey(Chat, null=True, blank=True, on_delete=models.SET_NULL)
    chat_remote_id = models.CharField(max_length=64, blank=True)
    chat_label = models.CharField(max_length=200, blank=True)  # the visitor, as shown
    operator_remote_id = models.CharField(max_length=64, blank=True)  # the target operator
    operator_label = models.CharField(max_length=200, blank=True)
    params = models.JSONField(default=dict)
    outcome = models.CharField(
        max_length=10, choices=ActionOutcome.choices, default=ActionOutcome.PENDING
    )
    state = models.CharField(
        max_length=10, choices=ActionState.choices, default=ActionState.PENDING, editable=False
    )
    message = models.TextField(blank=True)  # the outcome in words, as the supervisor saw it
    error_code = models.CharField(max_length=40, blank=True)
    error_detail = models.TextField(blank=True)  # technical detail, for the audit page only
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # SalesIQ's own confirmation, when it sends one (transfer accepted/rejected, completed).
    confirmation = models.CharField(max_length=60, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # What the action holds while SalesIQ has not answered: its chat, or (a status or a
    # drain) its operator. One pending action per lock, across every process
    # (``action_one_in_flight``); "" for a refusal and for a drain's step on the drain's
    # own operator (the drain holds it).
    lock_key = models.CharField(max_length=120, blank=True)
    # Which process runs it ("host:pid"): a retry of a dead process's action need not wait.
    runner = models.CharField(max_length=80, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["portal", "created_at"], name="action_portal_created"),
            models.Index(fields=["chat_remote_id", "kind"], name="action_chat_kind"),
            # The few actions still waiting for SalesIQ (the worker's sweep reads them).
            models.Index(
                fields=["created_at"],
                condition=models.Q(outcome="pending"),
                name="action_pending",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["lock_key"],
                condition=models.Q(outcome="pending") & ~models.Q(lock_key=""),
                name="action_one_in_flight",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} by {self.username} ({self.state})"

    def save(self, *args, **kwargs) -> None:
        self.state = self.derive_state()
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = {*update_fields, "state"}
        super().save(*args, **kwargs)
        if self.parent_id:
            # A drain's state follows its steps (its words: actions.wording.drain_summary).
            parent = Action.objects.filter(pk=self.parent_id).first()
            if parent is not None and parent.derive_state() != parent.state:
                Action.objects.filter(pk=parent.pk).update(state=parent.derive_state())

    def derive_state(self) -> str:
        """The state, from the stored answer, SalesIQ's confirmation and (a drain) its steps."""
        if self.kind == ActionKind.DRAIN and self.pk and self.outcome != ActionOutcome.PENDING:
            steps = [step.state for step in Action.objects.filter(parent_id=self.pk)]
            if steps:
                if ActionState.PENDING in steps:
                    return ActionState.PENDING
                settled_well = all(step in SETTLED_WELL for step in steps)
                return ActionState.DONE if settled_well else ActionState.PARTIAL
        if self.outcome in (ActionOutcome.PENDING, ActionOutcome.DONE):
            # SalesIQ's webhook can overtake its answer to the dashboard: it settles a transfer.
            if self.kind == ActionKind.TRANSFER and self.confirmed_at:
                if self.confirmation.endswith((".rejected", ".declined")):
                    return ActionState.DECLINED
                return ActionState.ACCEPTED
            if self.outcome == ActionOutcome.PENDING:
                return ActionState.PENDING
            # v2 takes a transfer and the new operator accepts or declines it later.
            if (
                self.kind == ActionKind.TRANSFER
                and dialects.get(self.portal.dialect).transfer_needs_acceptance
            ):
                return ActionState.PENDING
            return ActionState.DONE
        if self.outcome == ActionOutcome.REFUSED:
            return ActionState.REFUSED
        # Failed: nothing sent (our budget, our back-off) or no clear answer from SalesIQ.
        failure = exc.by_name(self.error_code)  # a stored failure is its class's name
        if failure is not None and failure.never_sent:
            return ActionState.NOT_SENT
        return ActionState.UNCLEAR

    @property
    def state_words(self) -> str:
        return str(ActionState(self.state).label)

    @property
    def tone(self) -> str:
        return STATE_TONES[ActionState(self.state)]


class CannedLine(models.Model):
    """A line a supervisor can send a visitor with one click, set by an Admin per portal
    (docs/step-in.md). Shown in ``position`` order in the chat drawer's message form."""

    MAX_LENGTH = 1000

    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="canned_lines")
    text = models.TextField(max_length=MAX_LENGTH)
    position = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        return self.text[:60]


class RefusalTally(models.Model):
    """Attempts a role may not make (a Viewer's transfer), counted rather than stored: one
    row per user, portal and kind of action while the attempts keep coming (a gap of
    ``dashboard.actions.refusals.TALLY_GAP`` starts a new one), nothing of what was typed. The audit
    shows one line a row: "Viewer Ann was refused 37 transfers between 10:02 and 10:05".
    ``minute``/``in_minute`` count the current minute, for the rate limit."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150)  # as shown, kept when the user is deleted
    role = models.CharField(max_length=20)  # the role's label then ("Viewer")
    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=20, choices=ActionKind.choices)
    count = models.PositiveIntegerField(default=0)
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()
    minute = models.DateTimeField()
    in_minute = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-last_at", "-pk"]
        indexes = [
            models.Index(fields=["user", "portal", "kind", "last_at"], name="refusal_tally_run"),
            models.Index(fields=["portal", "last_at"], name="refusal_tally_portal"),
        ]

    def __str__(self) -> str:
        return f"{self.username} refused {self.count} {self.kind}"

    @property
    def noun(self) -> str:
        """What was refused, counted: "1 transfer", "37 transfers"."""
        one, many = REFUSED_NOUNS[ActionKind(self.kind)]
        return f"{self.count} {one if self.count == 1 else many}"


REFUSED_NOUNS = {
    ActionKind.TRANSFER: ("transfer", "transfers"),
    ActionKind.END: ("chat end", "chat ends"),
    ActionKind.OPERATOR_STATUS: ("status change", "status changes"),
    ActionKind.DRAIN: ("drain", "drains"),
}


# --- alerts -----------------------------------------------------------------------------------


class AlertKind(models.TextChoices):
    LONG_CHAT = "long_chat", "Chat running long"
    LONG_WAIT = "long_wait", "Visitor waiting for pickup"
    UNANSWERED = "unanswered", "Visitor's message unanswered"
    OPERATOR_AWAY_WITH_CHATS = (
        "operator_away_with_chats",
        "Operator busy or offline with open chats",
    )
    OPERATOR_OVER_CAPACITY = "operator_over_capacity", "Operator over capacity"
    MISSED_CHAT = "missed_chat", "Missed chat"
    LOW_RATING = "low_rating", "Low rating"
    WEBHOOK_SILENCE = "webhook_silence", "No webhooks while chats are open"
    SALESIQ_UNREACHABLE = "salesiq_unreachable", "SalesIQ unreachable"
    RECONNECT_NEEDED = "reconnect_needed", "Connection needs reconnecting"
    SERVICE_LEVEL_LOW = "service_level_low", "Service level too low"
    MISSED_SHARE_HIGH = "missed_share_high", "Too many missed chats"


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class AlertRule(models.Model):
    """One rule of one portal. ``threshold`` is in the unit its kind uses (alerts/rules.py)."""

    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="alert_rules")
    kind = models.CharField(max_length=32, choices=AlertKind.choices)
    enabled = models.BooleanField(default=True)
    threshold = models.PositiveIntegerField(default=0)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    department_ids = models.JSONField(default=list, blank=True)  # empty: every department
    escalate_after_minutes = models.PositiveIntegerField(null=True, blank=True)
    escalate_emails = models.TextField(blank=True)  # comma-separated
    escalate_webhook_url = models.URLField(max_length=500, blank=True)
    # The service rules only (alerts/rules.py): the window they judge, in minutes, and the
    # fewest chats in it worth judging. None for every other kind.
    window_minutes = models.PositiveIntegerField(null=True, blank=True)
    minimum_chats = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["portal", "kind"], name="one_rule_per_kind")]
        ordering = ["portal", "kind"]

    def __str__(self) -> str:
        return f"{self.portal}: {self.get_kind_display()}"


class Alert(models.Model):
    """One condition on one target. While it is open there is no other for the same rule and
    target (a partial unique constraint), whoever evaluates and however often."""

    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="alerts")
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=32, choices=AlertKind.choices)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    target = models.CharField(max_length=100)  # "chat:<id>", "operator:<id>", "portal"
    chat = models.ForeignKey(Chat, null=True, blank=True, on_delete=models.SET_NULL)
    operator = models.ForeignKey(Operator, null=True, blank=True, on_delete=models.SET_NULL)
    title = models.CharField(max_length=300)
    detail = models.TextField(blank=True)
    raised_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_by_name = models.CharField(max_length=150, blank=True)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    snoozed_by_name = models.CharField(max_length=150, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_reason = models.CharField(max_length=200, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    # Any change anyone sees (raised, acknowledged, snoozed, escalated, resolved): a page
    # rendered before it needs the websocket's snapshot.
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "target"],
                condition=models.Q(resolved_at__isnull=True),
                name="one_open_alert_per_condition",
            )
        ]
        indexes = [
            models.Index(fields=["portal", "resolved_at"], name="alert_portal_open"),
            models.Index(fields=["raised_at"], name="alert_raised"),
        ]
        ordering = ["-raised_at", "-pk"]

    def __str__(self) -> str:
        return self.title

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    @property
    def escalation_words(self) -> str:
        """ "Escalated", or that telling someone failed (prefetch ``escalations``)."""
        if not self.escalated_at:
            return ""
        tries = list(self.escalations.all())
        failed = [e for e in tries if not e.ok]
        if not failed:
            return "Escalated"
        return "Escalation failed" if len(failed) == len(tries) else "Escalation partly failed"


class Escalation(models.Model):
    """One attempt to tell someone outside the dashboard about an alert."""

    class Channel(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="escalations")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    destination = models.CharField(max_length=500)
    sent_at = models.DateTimeField()
    ok = models.BooleanField(default=False)
    # What the receiver answered, kept to its HTTP status and a short reason in words (never
    # its body): shown to Admins only. Everyone else sees "delivered" or "failed".
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-sent_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} to {self.shown_destination}: {self.outcome}"

    @property
    def outcome(self) -> str:
        return "delivered" if self.ok else "failed"

    @property
    def shown_destination(self) -> str:
        """A webhook's address as scheme and host (``https://hooks.slack.com/…``): the rest
        of a Slack address is its secret. E-mail addresses as they are."""
        if self.channel == self.Channel.WEBHOOK:
            from .outbound import masked

            return masked(self.destination)
        return self.destination


class Heartbeat(models.Model):
    """One row /healthz rewrites to prove the database still takes writes."""

    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Heartbeat at {self.beat_at:%Y-%m-%d %H:%M:%S}"


# --- service figures ---------------------------------------------------------------------------
# Written only by dashboard/figures/counting.py (and the settings by the portal's admins).


class ServiceSettings(models.Model):
    """A portal's service-level target and the time zone of its business day."""

    portal = models.OneToOneField(Portal, on_delete=models.CASCADE, related_name="service")
    # An IANA zone: "today" is the portal's business day there.
    time_zone = models.CharField(max_length=64, default="UTC")
    # The target: ``target_share`` percent of chats picked up within ``target_seconds``.
    target_seconds = models.PositiveIntegerField(default=60)
    target_share = models.PositiveSmallIntegerField(default=80)

    def __str__(self) -> str:
        return f"{self.target_share} % within {self.target_seconds} s ({self.time_zone})"


class DepartmentService(models.Model):
    """A department's own target (blank: the portal's) and business hours (none: always open).

    Kept apart from ``Department`` (which follows SalesIQ's list and is deleted with it) so a
    department that disappears for a poll keeps what the admin set."""

    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="+")
    department_id = models.CharField(max_length=64)  # SalesIQ id
    target_seconds = models.PositiveIntegerField(null=True, blank=True)
    target_share = models.PositiveSmallIntegerField(null=True, blank=True)
    # {"0": ["09:00", "17:30"], …}: Monday is "0"; a day left out is closed all day.
    hours = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["portal", "department_id"], name="unique_department_service"
            )
        ]

    def __str__(self) -> str:
        return f"Service of department {self.department_id}"


class TallySpan(models.TextChoices):
    QUARTER = "quarter", "15 minutes"
    DAY = "day", "Business day"


class Tallied(models.Model):
    """The sums a tally row keeps (dashboard/figures/definitions.py ``Tally``, same names)."""

    offered = models.PositiveIntegerField(default=0)
    answered = models.PositiveIntegerField(default=0)
    # Answered with no pickup time known (first seen already connected): not timed.
    answered_untimed = models.PositiveIntegerField(default=0)
    # Whole seconds to pickup -> chats, and for chats over before a pickup, whole seconds the
    # visitor waited -> chats ({"12": 3}): any target T is read from them exactly.
    answer_waits = models.JSONField(default=dict)
    unanswered_waits = models.JSONField(default=dict)
    handled = models.PositiveIntegerField(default=0)
    handle_seconds = models.FloatField(default=0)
    responded = models.PositiveIntegerField(default=0)
    response_seconds = models.FloatField(default=0)
    rated = models.PositiveIntegerField(default=0)
    rating_sum = models.PositiveIntegerField(default=0)
    rated_good = models.PositiveIntegerField(default=0)  # rated 4 or 5

    class Meta:
        abstract = True


class ServiceTally(Tallied):
    """What the chats that arrived in one department in one span add up to (see
    dashboard/figures/definitions.py for what each counts). A day's row is the sum of its
    quarters, kept beside them so "today" is one row to read."""

    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="+")
    department_id = models.CharField(max_length=64, blank=True)  # SalesIQ id; "" for none
    span = models.CharField(max_length=8, choices=TallySpan.choices)
    start = models.DateTimeField()  # the quarter's start, or the business day's local midnight

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["portal", "department_id", "span", "start"], name="unique_service_tally"
            )
        ]
        indexes = [models.Index(fields=["portal", "span", "start"], name="tally_portal_span")]

    def __str__(self) -> str:
        return f"{self.department_id or 'no department'} {self.span} {self.start:%Y-%m-%d %H:%M}"


class OperatorTally(Tallied):
    """One operator's business day: the chats they held last (see definitions.py) and the
    seconds they spent in each status (counted at each change; the current one runs on)."""

    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="+")
    operator_id = models.CharField(max_length=64)  # SalesIQ id
    start = models.DateTimeField()  # the business day's local midnight
    status_seconds = models.JSONField(default=dict)  # {"available": 3600.0, …}

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["portal", "operator_id", "start"], name="unique_operator_tally"
            )
        ]

    def __str__(self) -> str:
        return f"Operator {self.operator_id} on {self.start:%Y-%m-%d}"
