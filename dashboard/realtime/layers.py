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

from ..server import frame_once

# Seconds between sweeps for expired messages and memberships (expiry itself is 30 s or more).
CLEAN_EVERY = 1.0


class InMemoryChannelLayer(layers.InMemoryChannelLayer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._cleaned_at = 0.0
        # Pages whose live HTML is written to their socket by group_send itself.
        self.sockets: dict[str, object] = {}

    def attach_socket(self, channel: str, socket) -> None:
        """From now on, ``live.html`` messages to ``channel`` are written straight to its
        daphne socket as they are sent (dashboard/server/frame_once.py) instead of waking its
        consumer, which would only forward them: at 200 pages that wake-up was most of a
        message's cost. Call it from the consumer's own handler (``connect``, after the
        snapshot): what is queued for it already is written first, so nothing overtakes it.
        """
        queue = self.channels.get(channel)
        kept = []
        while queue is not None and not queue.empty():
            expires, message = queue.get_nowait()
            if message.get("type") == LIVE_HTML:
                frame_once.send_text(socket, message["html"])
            else:
                kept.append((expires, message))
        for item in kept:
            queue.put_nowait(item)
        self.sockets[channel] = socket

    def detach_socket(self, channel: str) -> None:
        self.sockets.pop(channel, None)

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._cleaned_at < CLEAN_EVERY:
            return
        self._cleaned_at = now
        super()._clean_expired()

    def _queue(self, channel: str) -> asyncio.Queue:
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        return queue

    async def receive(self, channel: str) -> dict:
        # Channels drops a channel's queue whenever it is read empty, so every message to
        # every page made a queue afresh: the queue now lives as long as its reader, and
        # goes when the reader stops reading (cancelled) and is in no group any more.
        self.require_valid_channel_name(channel)
        self._clean_expired()
        queue = self._queue(channel)
        try:
            _, message = await queue.get()
        except asyncio.CancelledError:
            if queue.empty() and not any(channel in members for members in self.groups.values()):
                self.channels.pop(channel, None)
            raise
        return message

    async def group_send(self, group: str, message: dict) -> None:
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        expires = time.time() + self.expiry
        # Each member gets its own copy, as with channels; a message of plain values (the
        # live page's HTML) needs no deep one.
        flat = all(isinstance(value, _PLAIN) for value in message.values())
        direct = message.get("type") == LIVE_HTML and isinstance(message.get("html"), str)
        for channel in list(self.groups.get(group, ())):
            socket = self.sockets.get(channel) if direct else None
            if socket is not None and frame_once.send_text(socket, message["html"]):
                continue
            queue = self._queue(channel)
            # As channels does: a full channel misses the message.
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait((expires, dict(message) if flat else deepcopy(message)))


_PLAIN = (str, bytes, int, float, bool, type(None))
LIVE_HTML = "live.html"
