"""Actions and alerts as the dashboard leaves them, and the CSV exports of both."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from dashboard.actions import wording
from dashboard.alerts.rules import ensure_rules
from dashboard.models import Action, ActionKind, ActionOutcome, Alert, Escalation
from siq_integration import exceptions as exc
from siq_integration.models import Portal
from tests.factories import make_supervisor, make_viewer

NASTY = '<img src=x onerror="alert(1)">Zoë'


def record(portal, user, kind, outcome, *, ago, key=None, parent=None, failure=None, **fields):
    """An action as dashboard.actions would have left it, ``ago`` before now."""
    action = Action.objects.create(
        key=key or f"key-{Action.objects.count():04d}-{kind}-{outcome}",
        user=user,
        username=user.get_username(),
        portal=portal,
        kind=kind,
        parent=parent,
        outcome=outcome,
        **fields,
    )
    if failure is not None:
        action.message = wording.sentence(action, failure)
        action.error_code = str(failure.code or type(failure).__name__)
        action.error_detail = failure.technical()
    action.finished_at = None if outcome == ActionOutcome.PENDING else timezone.now() - ago
    action.save()
    Action.objects.filter(pk=action.pk).update(created_at=timezone.now() - ago)
    action.refresh_from_db()
    return action


@pytest.fixture
def world(db):
    here = Portal.objects.create(name="Zylker Support", data_center="sim", screen_name="zylker")
    elsewhere = Portal.objects.create(name="Acme Sales", data_center="sim", screen_name="acme")
    users = {
        "viewer": make_viewer("viewer", here),
        "sam": make_supervisor("sam", here),
        "sue": make_supervisor("sue", elsewhere),
    }
    users["ada"] = get_user_model().objects.create_superuser("ada", "a@x.org", "pw-for-tests-1")
    sam, ada, sue = users["sam"], users["ada"], users["sue"]
    transfer = {
        "department_id": "11",
        "department_name": "Support",
        "operator_id": "21",
        "operator_name": "Asha Rao",
        "note": "VIP, wants a refund",
    }
    rows = {
        "transfer_done": record(
            here,
            sam,
            ActionKind.TRANSFER,
            ActionOutcome.DONE,
            ago=timedelta(minutes=5),
            chat_label=NASTY,
            chat_remote_id="9001",
            operator_label="Asha Rao",
            operator_remote_id="21",
            params=transfer,
            message="Asha Rao accepted the transfer.",
            confirmation="conversation.transfer.accepted",
            confirmed_at=timezone.now() - timedelta(minutes=4),
        ),
        "end_refused": record(
            here,
            ada,
            ActionKind.END,
            ActionOutcome.REFUSED,
            ago=timedelta(days=2),
            chat_label="Jonas Berg",
            chat_remote_id="9002",
            params={"message": ""},
            failure=exc.ChatGone(  # what v2 raises for 1019
                "SalesIQ no longer has that chat.", code=1019, http_status=200, detail="Invalid"
            ),
        ),
        "status_failed": record(
            here,
            sam,
            ActionKind.OPERATOR_STATUS,
            ActionOutcome.FAILED,
            ago=timedelta(days=10),
            operator_label="Ravi Iyer",
            operator_remote_id="22",
            params={"status": "busy"},
            failure=exc.Unavailable(http_status=502, detail="Bad Gateway"),
        ),
        "elsewhere_pending": record(
            elsewhere,
            sue,
            ActionKind.TRANSFER,
            ActionOutcome.PENDING,
            ago=timedelta(minutes=1),
            chat_label="Mia Chen",
            chat_remote_id="7001",
            params={"operator_id": "31", "operator_name": "Lee", "note": ""},
        ),
    }
    drain = record(
        here,
        ada,
        ActionKind.DRAIN,
        ActionOutcome.FAILED,
        ago=timedelta(hours=3),
        operator_label="Asha Rao",
        operator_remote_id="21",
        params={"moves": [[1, 2]]},
        message="1 of 1 chat moved; Asha Rao could not be set Busy: …",
    )
    rows["drain"] = drain
    rows["drain_transfer"] = record(
        here,
        ada,
        ActionKind.TRANSFER,
        ActionOutcome.DONE,
        ago=timedelta(hours=3),
        parent=drain,
        chat_label="Noor Haddad",
        chat_remote_id="9003",
        params={**transfer, "operator_name": "Ravi Iyer", "note": "Moved from Asha Rao by ada"},
        message="Transfer to Ravi Iyer requested; SalesIQ tells when it is accepted.",
    )
    rows["drain_status"] = record(
        here,
        ada,
        ActionKind.OPERATOR_STATUS,
        ActionOutcome.REFUSED,
        ago=timedelta(hours=3),
        parent=drain,
        operator_label="Asha Rao",
        operator_remote_id="21",
        params={"status": "busy"},
        failure=exc.NotOwnStatus(code=1016, http_status=200, detail="Operation not allowed"),
    )
    return {"here": here, "elsewhere": elsewhere, "users": users, "rows": rows}


def csv_rows(response) -> list[dict[str, str]]:
    body = b"".join(response.streaming_content)
    assert body.startswith("\ufeff".encode())
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


def raise_alert(
    portal,
    kind,
    *,
    ago,
    title,
    target="portal",
    acknowledged_after=None,
    by=None,
    resolved_after=None,
    reason="",
    escalations=(),
    **fields,
):
    """An alert as dashboard.alerts would have left it, raised ``ago`` before now;
    ``escalations`` are (channel, destination, error) with "" for an attempt that worked."""
    rule = ensure_rules(portal)[kind]
    raised = timezone.now() - ago
    alert = Alert.objects.create(
        portal=portal,
        rule=rule,
        kind=kind,
        severity=rule.severity,
        target=target,
        title=title,
        raised_at=raised,
        changed_at=raised,
        acknowledged_at=raised + acknowledged_after if acknowledged_after is not None else None,
        acknowledged_by=by,
        acknowledged_by_name=by.get_username() if by else "",
        resolved_at=raised + resolved_after if resolved_after is not None else None,
        resolved_reason=reason,
        escalated_at=raised + timedelta(minutes=10) if escalations else None,
        **fields,
    )
    for channel, destination, error in escalations:
        Escalation.objects.create(
            alert=alert,
            channel=channel,
            destination=destination,
            sent_at=raised + timedelta(minutes=10),
            ok=not error,
            error=error,
        )
    return alert
