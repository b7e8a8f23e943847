"""Getting a message to every page of a group: the one place pages are sent to.

Today this hands the message to the channel layer (channels-redis across processes, the
in-memory layer in the embedded default).
"""

from __future__ import annotations

from channels.layers import get_channel_layer


async def group_send(group: str, message: dict) -> None:
    """Send ``message`` to every page in ``group``."""
    await get_channel_layer().group_send(group, message)
