"""Who else is in a chat: the one reading the drawer and its live updates share."""

from __future__ import annotations

from .models import Chat, ChatParticipant


def others_in_chat(chat: Chat) -> list[ChatParticipant]:
    """The people in ``chat`` now besides its visitor and the operator attending it
    (operators invited in, supervisors who joined), in the order they joined."""
    people = ChatParticipant.objects.filter(chat=chat, left_at__isnull=True)
    if chat.operator_id:
        people = people.exclude(remote_id=chat.operator_id)
    return list(people)
