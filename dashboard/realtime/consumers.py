"""The live websocket: one per open dashboard page.

Rejects anonymous users and portals the user may not see, joins one group per
portal, and on every (re)connect sends a full snapshot; after that the HTML that
dashboard.realtime.publish rendered once for everybody reaches the page: in one process
straight from dashboard.realtime.fanout to this consumer's send, across processes through
the channel layer and this consumer. Either way not what the page's own request answered
(``except_page``, matched against the ``page`` id the page gave itself).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from datetime import UTC, datetime
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.template.loader import render_to_string
from django.utils.crypto import constant_time_compare

from .. import access, revocation, selectors
from ..server import frame_once
from . import fanout
from .groups import LiveHtml, group_name, user_group
from .render import render_queues_snapshot

logger = logging.getLogger(__name__)

# Close codes: 4401 not signed in, 4403 a portal the user may not see, 4410 a portal the
# page shows was deleted (the page loads again without it). After the page connected: 4430
# its session no longer signs the user in (signed out, deactivated, a new password, the
# session expired), 4431 the user may no longer see a portal the page shows. The page stops
# there and says so (static/js/live.js) rather than reconnecting.
NOT_SIGNED_IN = 4401
NOT_ALLOWED = 4403
PORTAL_GONE = 4410
ACCESS_ENDED = 4430
PORTAL_ACCESS_ENDED = 4431
ACCESS_ENDED_REASON = "Your access to this page has ended. Sign in again."
PORTAL_ACCESS_ENDED_REASON = "Your access to a portal on this page has ended."

# Channel layers forget a group membership after a day (group_expiry, 86,400 s) while daphne
# keeps the socket open: a wallboard would stay "connected" and hear nothing. Joining again
# renews the membership, after checking access again (what no signal tells: a session that
# expired or was flushed, a change made with raw SQL).
REJOIN_EVERY = 300.0  # seconds


def _query(scope) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("ascii", errors="replace"))


# The id a page gives itself (static/js: ``?page=…``), so that what its own request already
# answered is not sent to it again (``except_page``). Anything else is ignored.
PAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _page_id(scope) -> str:
    value = _query(scope).get("page", [""])[0]
    return value if PAGE_ID.fullmatch(value) else ""


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
def _still_signed_in(user_id, session_key):
    return revocation.still_signed_in(user_id, session_key)


@database_sync_to_async
def _visible_ids(user) -> set[str]:
    return {str(pk) for pk in access.visible_portals(user).values_list("pk", flat=True)}


def _session_key(scope) -> str:
    session = scope.get("session")
    return (getattr(session, "session_key", None) or "") if session is not None else ""


@database_sync_to_async
def _snapshot(portals) -> str:
    context = selectors.live_context(portals)
    html = render_to_string("live/parts.html#snapshot", {**context, "oob": True})
    return html + render_queues_snapshot(list(portals))


@database_sync_to_async
def _freshness(portals) -> str:
    """Only the portals' freshness: a few hundred bytes instead of the whole snapshot."""
    freshness = [selectors.freshness(portal) for portal in portals]
    return render_to_string("live/parts.html#portal_metas", {"freshness": freshness, "oob": True})


class LiveConsumer(AsyncWebsocketConsumer):
    groups: list[str] = []

    async def connect(self) -> None:
        try:
            await self._connect()
        except BaseException:
            # Failed half-way (the database away, the socket gone): nothing keeps sending to
            # a consumer that will not be told it disconnected.
            page = getattr(self, "page", None)
            if page is not None:
                fanout.leave(page)
            raise

    async def _connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=NOT_SIGNED_IN)
            return
        self.user_id = user.pk
        self.session_key = _session_key(self.scope)
        self.session_mark = revocation.session_mark(self.session_key) if self.session_key else ""
        self.ended = False
        self.page_id = _page_id(self.scope)
        # In one process, live HTML comes straight from dashboard.realtime.fanout to this
        # page's send (kept back until the snapshot is sent); otherwise through the layer.
        self.page = None
        if fanout.in_process():
            self.page = fanout.Page(
                send=self._send_live, page_id=self.page_id, fast=frame_once_writer(self.scope)
            )
        # The user's own group hears their actions' outcomes and that their access changed:
        # joined before access is read, so a change committed after the read is heard.
        self.portal_groups = [user_group(user.pk)]
        await self._join(self.portal_groups)
        user = await _still_signed_in(self.user_id, self.session_key)
        if user is None:
            await self._leave()
            await self.close(code=NOT_SIGNED_IN)
            return
        portals = await _visible(user, _requested_portals(self.scope))
        if portals is None:
            await self._leave()
            await self.close(code=NOT_ALLOWED)
            return
        self.user = user
        self.portal_ids = [str(portal.pk) for portal in portals]
        self.portal_groups += [group_name(portal.pk) for portal in portals]
        await self._join(self.portal_groups[1:])
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
        # What was sent to the page meanwhile follows the snapshot, in order; then the rest
        # as it comes.
        if self.page is not None:
            await self.page.open()

    async def _join(self, groups: list[str]) -> None:
        if self.page is not None:
            fanout.join(self.page, groups)
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)

    async def _send_live(self, html: str) -> None:
        if not self.ended:
            await self.send(text_data=html)

    async def _rejoin_now_and_then(self) -> None:
        while True:
            await asyncio.sleep(REJOIN_EVERY)
            try:
                if not await self._still_allowed():
                    return
            except Exception:
                # The database is away for a moment: keep the page and check next time
                # (a task that died here would never renew the memberships again).
                logger.warning("Checking the access of a live page failed", exc_info=True)
            for group in self.portal_groups:
                await self.channel_layer.group_add(group, self.channel_name)

    async def _still_allowed(self) -> bool:
        """Check access again; if it ended, close (and say why) and answer False."""
        if self.ended:
            return False
        user = await _still_signed_in(self.user_id, self.session_key)
        if user is None:
            await self._end(ACCESS_ENDED, ACCESS_ENDED_REASON)
            return False
        if not set(self.portal_ids) <= await _visible_ids(user):
            await self._end(PORTAL_ACCESS_ENDED, PORTAL_ACCESS_ENDED_REASON)
            return False
        self.user = user
        return True

    async def _end(self, code: int, reason: str) -> None:
        """Stop at once: nothing more reaches the page (it leaves every group first, so no
        live HTML is written to its socket either), then close with ``code``."""
        if self.ended:
            return
        self.ended = True
        await self._leave()
        logger.info("Closed a live page of user %s: %s", self.user_id, reason)
        await self.close(code=code, reason=reason)

    async def _leave(self) -> None:
        page = getattr(self, "page", None)
        if page is not None:
            fanout.leave(page)
        rejoining = getattr(self, "rejoining", None)
        if rejoining is not None and rejoining is not asyncio.current_task():
            rejoining.cancel()
        groups, self.portal_groups = getattr(self, "portal_groups", []), []
        for group in groups:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def disconnect(self, code: int) -> None:
        await self._leave()

    async def dispatch(self, message) -> None:
        # Channels closes stale database connections before every handler: a hop to a
        # thread and back, per message and per page. Forwarding ready-made HTML uses no
        # database, and at 200 pages and 50 events a second the hops cost more than the
        # forwarding (docs/benchmarks.md).
        if message.get("type") == "live.html":
            if not getattr(self, "ended", False) and not self._sent_by_itself(message):
                await self.live_html(message)
        else:
            await super().dispatch(message)

    def _sent_by_itself(self, message) -> bool:
        """The HTML answers this page's own request: it has it already."""
        skip = message.get("except_page")
        return bool(skip) and skip == getattr(self, "page_id", "")

    async def receive(self, text_data=None, bytes_data=None) -> None:
        # The page only listens; actions go through ordinary HTTP requests.
        return

    async def access_changed(self, event: revocation.AccessChanged) -> None:
        """Something deciding this user's access changed (dashboard/revocation.py): a page of
        the session that signed out closes; any other checks again."""
        if self.ended:
            return
        ended_session = event.get("ended_session")
        if ended_session and constant_time_compare(ended_session, self.session_mark):
            await self._end(ACCESS_ENDED, ACCESS_ENDED_REASON)
            return
        await self._still_allowed()

    async def live_portal_changed(self, event) -> None:
        """A portal of this page was connected or disconnected: what is live changed, so
        the page starts again from the truth (access is checked again on the way)."""
        if not await self._still_allowed():
            return
        portals = await _visible(self.user, self.portal_ids)
        if portals is None:
            await self.close(code=NOT_ALLOWED)
            return
        await self.send(text_data=await _snapshot(portals))

    async def live_portal_gone(self, event) -> None:
        """A portal of this page was deleted: the page loads again without it."""
        if self.ended:
            return
        await self.close(code=PORTAL_GONE)

    async def live_html(self, event: LiveHtml) -> None:
        fast = frame_once_writer(self.scope)
        if fast is None or not fast(event["html"]):
            await self.send(text_data=event["html"])


def frame_once_writer(scope):
    """The opt-in accelerator's writer for this page (``SIQ_FRAME_ONCE``), or None."""
    socket = scope.get(frame_once.SCOPE_KEY)
    if socket is None or not settings.SIQ_FRAME_ONCE:
        return None
    return functools.partial(frame_once.send_text, socket)
