"""Live state built as polls would leave it: chats, operators, departments."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from dashboard.models import PortalSync
from dashboard.state import apply
from siq_integration.models import Portal
from siq_integration.normalised import (
    ChatStatus,
    Conversation,
    Department,
    Message,
    Operator,
    OperatorStatus,
    OperatorSync,
    SenderType,
    Visitor,
)
from siq_integration.normalised import Operator as RemoteOperator


def world(portal):
    """Three waiting chats (5, 15 and 10 minutes), two connected ones (30 and 20)."""
    fill(
        portal,
        [
            chat("w5", visitor="Ada", minutes=5, department=("d1", "Sales")),
            chat("w15", visitor="Cy", minutes=15, department=("d1", "Sales")),
            chat("w10", visitor="Bo", minutes=10, department=("d2", "Support")),
            chat("c30", status=ChatStatus.CONNECTED, visitor="Eve", minutes=30,
                 operator=("o1", "Asha Rao"), department=("d1", "Sales"), last="Thanks"),
            chat("c20", status=ChatStatus.CONNECTED, visitor="Dan", minutes=20,
                 operator=("o2", "Ben Okafor"), department=("d2", "Support"), last="Hello?"),
        ],
    )  # fmt: skip


NASTY = "<b>x</b><script>alert(1)</script>"


def chat(
    chat_id: str,
    *,
    status: ChatStatus = ChatStatus.WAITING,
    visitor: str = "Ada",
    minutes: float = 5,
    department: tuple[str, str] = ("d1", "Sales"),
    operator: tuple[str, str] = ("", ""),
    last: str = "",
) -> Conversation:
    now = timezone.now()
    started = now - timedelta(minutes=minutes)
    return Conversation(
        id=chat_id,
        status=status,
        visitor=Visitor(id=f"v{chat_id}", name=visitor, details={"city": "Ghent"}),
        started_at=started,
        operator_id=operator[0],
        operator_name=operator[1],
        department_id=department[0],
        department_name=department[1],
        attended_at=started + timedelta(seconds=20) if status == ChatStatus.CONNECTED else None,
        last_message=Message(
            id=f"m{chat_id}",
            chat_id=chat_id,
            sender_type=SenderType.VISITOR,
            text=last,
            sent_at=now,
            sender_name=visitor,
        )
        if last
        else None,
    )


def fill(portal: Portal, conversations: list[Conversation]) -> None:
    now = timezone.now()
    apply.apply_departments(
        portal,
        [Department(id="d1", name="Sales"), Department(id="d2", name="Support")],
        taken_at=now,
    )
    apply.apply_operators(
        portal,
        OperatorSync(
            operators=[
                Operator("o1", "Asha Rao", "asha@example.org", OperatorStatus.AVAILABLE,
                         department_ids=("d1",), max_chats=4),
                Operator("o2", "Ben Okafor", "ben@example.org", OperatorStatus.AWAY,
                         department_ids=("d1", "d2"), max_chats=3),
                Operator("o3", "Chloé Karimi", "chloe@example.org", OperatorStatus.OFFLINE,
                         department_ids=("d2",), max_chats=5),
            ],
            sync_time=None,
            complete=True,
        ),
        taken_at=now,
    )  # fmt: skip
    apply.apply_chats(portal, conversations, taken_at=now, complete=True)


def disconnected(portal: Portal) -> Portal:
    """As an admin's Disconnect leaves it: no grant, its history kept."""
    Portal.objects.filter(pk=portal.pk).update(
        refresh_token_encrypted="", connected_at=None, disconnected_at=timezone.now()
    )
    portal.refresh_from_db()
    return portal


def staff(portal, *people: tuple[str, str, OperatorStatus, tuple[str, ...], int]) -> None:
    """Replace the portal's operators: (id, name, status, departments, seats)."""
    apply.apply_operators(
        portal,
        OperatorSync(
            operators=[
                RemoteOperator(remote, name, "", status, department_ids=deps, max_chats=seats)
                for remote, name, status, deps, seats in people
            ],
            sync_time=None,
            complete=True,
        ),
        taken_at=timezone.now(),
    )


def make_due(portal, *kinds: str) -> None:
    """Pretend the last polls were long ago, so the next round polls again."""
    long_ago = timezone.now() - timedelta(hours=1)
    PortalSync.objects.filter(portal=portal).update(
        **{f"{kind}_polled_at": long_ago for kind in kinds}
    )
