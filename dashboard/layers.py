"""The in-memory channel layer of the embedded default, without its per-message scans.

Channels' InMemoryChannelLayer walks every channel and every group member to expire old
messages on each ``receive`` and each ``group_send``, and sends to a group through one task
per member. Every open page is a channel, so an event costs O(pages²): at 200 pages and 50
events a second that was most of a core (measured with ``make bench``, docs/benchmarks.md).
This layer behaves the same — capacity (a full channel misses the message), message expiry,
group expiry — but expires at most once a second and puts a group's message straight into
each member's queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from copy import deepcopy

from channels import layers

# Seconds between sweeps for expired messages and memberships (expiry itself is 30 s or more).
CLEAN_EVERY = 1.0


class InMemoryChannelLayer(layers.InMemoryChannelLayer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._cleaned_at = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._cleaned_at < CLEAN_EVERY:
            return
        self._cleaned_at = now
        super()._clean_expired()

    async def group_send(self, group: str, message: dict) -> None:
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        expires = time.time() + self.expiry
        for channel in list(self.groups.get(group, ())):
            queue = self.channels.setdefault(
                channel, asyncio.Queue(maxsize=self.get_capacity(channel))
            )
            # As channels does: a full channel misses the message.
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait((expires, deepcopy(message)))
