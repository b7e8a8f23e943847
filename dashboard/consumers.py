"""The live websocket: one per open dashboard page.

Rejects anonymous users and portals the user may not see, joins one group per
portal, and on every (re)connect sends a full snapshot; after that it forwards the
HTML that dashboard.broadcast rendered once for everybody.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from . import access, framing, selectors
from .broadcast import LiveHtml, group_name, user_group

logger = logging.getLogger(__name__)

# Close codes: 4401 not signed in, 4403 a portal the user may not see, 4410 a portal the
# page shows was deleted (the page loads again without it).
NOT_SIGNED_IN = 4401
NOT_ALLOWED = 4403
PORTAL_GONE = 4410

# Channel layers forget a group membership after a day (group_expiry, 86,400 s) while daphne
# keeps the socket open: a wallboard would stay "connected" and hear nothing. Joining again
# renews the membership.
REJOIN_EVERY = 3600.0  # seconds


def _query(scope) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("ascii", errors="replace"))


def _requested_portals(scope) -> list[str]:
    wanted = []
    for value in _query(scope).get("portals", []):
        wanted.extend(part for part in value.split(",") if part)
    return wanted


def _rendered_at(scope) -> datetime | None:
    """When the page was rendered (``since``, epoch ms), if it says."""
    try:
        millis = int(_query(scope).get("since", [""])[0])
    except ValueError:
        return None
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


@database_sync_to_async
def _changed_since(portals, since: datetime) -> bool:
    return selectors.changed_since(portals, since)


@database_sync_to_async
def _visible(user, wanted: list[str]):
    portals = list(access.visible_portals(user))
    if not wanted:
        return portals
    by_id = {str(portal.pk): portal for portal in portals}
    if any(portal_id not in by_id for portal_id in wanted):
        return None
    return [by_id[portal_id] for portal_id in wanted]


@database_sync_to_async
def _snapshot(portals) -> str:
    context = selectors.live_context(portals)
    return render_to_string("live/parts.html#snapshot", {**context, "oob": True})


@database_sync_to_async
def _freshness(portals) -> str:
    """Only the portals' freshness: a few hundred bytes instead of the whole snapshot."""
    freshness = [selectors.freshness(portal) for portal in portals]
    return render_to_string("live/parts.html#portal_metas", {"freshness": freshness, "oob": True})


class LiveConsumer(AsyncWebsocketConsumer):
    groups: list[str] = []

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=NOT_SIGNED_IN)
            return
        portals = await _visible(user, _requested_portals(self.scope))
        if portals is None:
            await self.close(code=NOT_ALLOWED)
            return
        self.portal_ids = [str(portal.pk) for portal in portals]
        self.portal_groups = [group_name(portal.pk) for portal in portals] + [user_group(user.pk)]
        for group in self.portal_groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        self.rejoining = asyncio.create_task(self._rejoin_now_and_then())
        # Whatever happened while this page was away, it now starts from the truth. A page
        # just rendered already is the truth unless something changed since: skip the work.
        # (The groups are joined first, so nothing committed after this check is missed.)
        since = _rendered_at(self.scope)
        if since is None or await _changed_since(portals, since):
            await self.send(text_data=await _snapshot(portals))
        else:
            await self.send(text_data=await _freshness(portals))
        # Where the layer can (in-memory, under daphne), live HTML now goes straight from
        # group_send to this page's socket; after the snapshot, so nothing overtakes it.
        socket = self.scope.get(framing.SCOPE_KEY)
        if socket is not None and hasattr(self.channel_layer, "attach_socket"):
            self.channel_layer.attach_socket(self.channel_name, socket)

    async def _rejoin_now_and_then(self) -> None:
        while True:
            await asyncio.sleep(REJOIN_EVERY)
            for group in self.portal_groups:
                await self.channel_layer.group_add(group, self.channel_name)

    async def disconnect(self, code: int) -> None:
        if hasattr(self.channel_layer, "detach_socket"):
            self.channel_layer.detach_socket(self.channel_name)
        rejoining = getattr(self, "rejoining", None)
        if rejoining is not None:
            rejoining.cancel()
        for group in getattr(self, "portal_groups", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def dispatch(self, message) -> None:
        # Channels closes stale database connections before every handler: a hop to a
        # thread and back, per message and per page. Forwarding ready-made HTML uses no
        # database, and at 200 pages and 50 events a second the hops cost more than the
        # forwarding (docs/benchmarks.md).
        if message.get("type") == "live.html":
            await self.live_html(message)
        else:
            await super().dispatch(message)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        # The page only listens; actions go through ordinary HTTP requests.
        return

    async def live_portal_changed(self, event) -> None:
        """A portal of this page was connected or disconnected: what is live changed, so
        the page starts again from the truth (access is checked again on the way)."""
        portals = await _visible(self.scope.get("user"), self.portal_ids)
        if portals is None:
            await self.close(code=NOT_ALLOWED)
            return
        await self.send(text_data=await _snapshot(portals))

    async def live_portal_gone(self, event) -> None:
        """A portal of this page was deleted: the page loads again without it."""
        await self.close(code=PORTAL_GONE)

    async def live_html(self, event: LiveHtml) -> None:
        socket = self.scope.get(framing.SCOPE_KEY)
        if socket is None or not framing.send_text(socket, event["html"]):
            await self.send(text_data=event["html"])
