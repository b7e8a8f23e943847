"""Who hears what: the channel-layer groups of pages, and the messages they are sent."""

from __future__ import annotations

from typing import NotRequired, TypedDict


class LiveHtml(TypedDict):
    """The one message type consumers receive: ready-made HTML for the browser."""

    type: str  # "live.html"
    portal: str
    html: str
    except_page: NotRequired[str]  # the page that already has it (its own request's answer)


def group_name(portal_id) -> str:
    return f"live.portal.{str(portal_id).replace('-', '')}"


def user_group(user_id) -> str:
    """A user's own pages: the outcomes of their actions."""
    return f"live.user.{user_id}"


class PortalChanged(TypedDict):
    """A portal was connected, disconnected or deleted: each page decides what it shows now
    (its own set of portals), so this carries no HTML."""

    type: str  # "live.portal_changed" or "live.portal_gone"
    portal: str
