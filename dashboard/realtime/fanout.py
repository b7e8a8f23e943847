"""Getting a message to every page of a group: the one place pages are sent to.

Two ways, chosen by the channel layer in use:

- **In one process** (the embedded default, Channels' in-memory layer): each live page
  registers its own ASGI send with this module for its groups (``join``), and a page's
  ready-made HTML (a ``live.html`` message) goes straight from ``group_send`` to every
  registered page of the group, on the server's event loop, in the order it was sent. No
  channel queue, no wake-up of each page's consumer, no scan of every page per message:
  at 200 pages that was most of a message's cost (docs/benchmarks.md). Everything else
  (access changes, a portal connected or deleted) still goes through the layer: the
  consumer has work to do for those.
- **Across processes** (channels-redis, ``REDIS_URL`` set): everything goes through the
  layer, and each consumer forwards what it hears.

Either way a ``live.html`` message with ``except_page`` does not go to the page of that id
(the page whose own request already carries it).

Only public APIs: the consumer's ``send`` and Channels' ``get_channel_layer``. The opt-in
accelerator (``SIQ_FRAME_ONCE``, dashboard/server/frame_once.py) is used only when on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from channels.layers import InMemoryChannelLayer, get_channel_layer

logger = logging.getLogger(__name__)

LIVE_HTML = "live.html"
# What a page that has not had its snapshot yet keeps back for after it (as a channel's
# capacity: a page that far behind misses the rest and its next snapshot repairs it).
BACKLOG_CAPACITY = 1500


@dataclass(eq=False)
class Page:
    """One open live page of this process."""

    send: Callable[[str], Awaitable[None]]  # the consumer's own send of text
    page_id: str = ""  # the id the page gave itself ("" when it gave none)
    # The opt-in accelerator's writer (frame-once): True when it wrote the HTML itself.
    fast: Callable[[str], bool] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    # Until its snapshot is sent, what the page is sent waits here (so nothing overtakes
    # the snapshot); then the page is open and is sent to at once.
    backlog: list[str] | None = field(default_factory=list)

    async def deliver(self, html: str) -> None:
        if self.backlog is not None:
            if len(self.backlog) < BACKLOG_CAPACITY:
                self.backlog.append(html)
            return
        if self.fast is not None and self.fast(html):
            return
        await self.send(html)

    async def open(self) -> None:
        """The snapshot is sent: send what waited, in order, then everything at once."""
        while self.backlog:
            html = self.backlog.pop(0)
            await self.send(html)
        self.backlog = None


# group → its pages of this process (a dict keeps the order pages joined in).
_groups: dict[str, dict[Page, None]] = {}


def in_process() -> bool:
    """True when pages are sent to by this module rather than through the layer: the
    in-memory layer, which cannot reach another process anyway."""
    return isinstance(get_channel_layer(), InMemoryChannelLayer)


def join(page: Page, groups: list[str]) -> None:
    if page.loop is None:
        page.loop = asyncio.get_running_loop()
    for group in groups:
        _groups.setdefault(group, {})[page] = None


def leave(page: Page) -> None:
    """``page`` hears nothing more from now on (no await: nothing can slip in between)."""
    for group in list(_groups):
        members = _groups[group]
        members.pop(page, None)
        if not members:
            del _groups[group]


def pages_of(group: str) -> list[Page]:
    return list(_groups.get(group, ()))


async def group_send(group: str, message: dict) -> None:
    """Send ``message`` to every page in ``group``."""
    layer = get_channel_layer()
    if message.get("type") != LIVE_HTML or not isinstance(layer, InMemoryChannelLayer):
        await layer.group_send(group, message)
        return
    html = message["html"]
    skip = message.get("except_page") or None
    here = asyncio.get_running_loop()
    for page in pages_of(group):
        if skip is not None and page.page_id == skip:
            continue
        if page.loop is here:
            try:
                if page.backlog is not None:
                    await page.deliver(html)  # kept back until its snapshot is sent
                elif page.fast is None or not page.fast(html):
                    await page.send(html)
            except Exception:
                # One page's broken socket must not keep the message from the others.
                logger.warning("Sending to a live page failed", exc_info=True)
        elif page.loop is not None and not page.loop.is_closed():
            # Sent from another event loop's thread: the page's own loop sends it.
            asyncio.run_coroutine_threadsafe(page.deliver(html), page.loop)
