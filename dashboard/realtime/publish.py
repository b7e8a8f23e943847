"""Render each change once and push it to the portal's group.

Called after commit by dashboard.state.apply. A change becomes htmx out-of-band partials
(the same templates the page renders); every websocket consumer of the portal's
group forwards the HTML as it is.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from siq_integration.models import Portal

from .. import selectors
from ..models import Chat, ChatMessage
from ..state.changes import Changes
from ..templatetags.supervisor import render_row
from . import fanout
from .groups import LiveHtml, PortalChanged, group_name, user_group

logger = logging.getLogger(__name__)

PARTS = "live/parts.html"


def _render(partial: str, **context) -> str:
    return render_to_string(f"{PARTS}#{partial}", context)


def render_changes(changes: Changes) -> str:
    """The out-of-band HTML for ``changes`` (empty when nothing shows). Rows come from the
    row cache while their facts stay the same: a poll that changes nothing renders nothing."""
    portal = Portal.objects.filter(pk=changes.portal_id).first()
    if portal is None:
        return ""
    pieces: list[str] = []
    for chat in Chat.objects.filter(pk__in=changes.chats):
        if chat.is_open:
            pieces.append(render_row(f"{PARTS}#chat_row", "chat", chat, oob=True))
        else:
            pieces.append(f'<tr id="chat-{chat.pk}" hx-swap-oob="delete"></tr>')
        pieces.append(render_row(f"{PARTS}#drawer_head", "chat", chat, oob=True))
    if changes.operators:
        for view in selectors.operator_views([portal], only=sorted(changes.operators)):
            pieces.append(render_row(f"{PARTS}#operator_row", "view", view, oob=True))
    for pk in sorted(changes.removed_operators):
        pieces.append(f'<tr id="op-{pk}" hx-swap-oob="delete"></tr>')
    messages = ChatMessage.objects.filter(pk__in=changes.messages).order_by("sent_at", "pk")
    for message in messages:
        line = _render("message", message=message)
        pieces.append(f'<ol hx-swap-oob="beforeend:#transcript-{message.chat_id}">{line}</ol>')
    if changes.meta or changes.chats:
        pieces.append(_render("portal_meta", f=selectors.freshness(portal), oob=True))
    if changes.chats or changes.operators:
        pieces.append(_alerts_of(changes))
    return "".join(pieces)


def _alerts_of(changes: Changes) -> str:
    """The open alerts of the changed chats and operators, rendered again: their titles
    name the chat's visitor, department and operator and the operator as they are now (a
    transfer, a rename). One query on the open alerts' index."""
    from ..models import Alert

    # Most changes concern a chat with no open alert: a one-table look first (a query with
    # its joins costs a few ms to compile, on every publication).
    pks = list(
        Alert.objects.filter(resolved_at__isnull=True)
        .filter(Q(chat_id__in=changes.chats) | Q(operator_id__in=changes.operators))
        .values_list("pk", flat=True)
    )
    if not pks:
        return ""
    found = (
        Alert.objects.filter(pk__in=pks)
        .select_related("portal", "chat", "operator")
        .prefetch_related("escalations")
        .order_by("pk")
    )
    # An ended chat's alerts are resolved right after this (alerts.on_changes): not again.
    shown = [a for a in found if a.chat is None or a.chat.is_open]
    return "".join(_alert_pieces(alert) for alert in selectors.alert_rows(shown))


def _alert_pieces(alert) -> str:
    """An alert's row in the panel and, for a chat's or an operator's, in their drawer (pages
    without that drawer open drop it); a resolved one is deleted from both."""
    if not alert.is_open:
        return render_to_string("alerts/parts.html#gone", {"pk": alert.pk})
    pieces = [render_to_string("alerts/parts.html#alert_row", {"alert": alert, "oob": True})]
    if alert.chat_id or alert.operator_id:
        pieces.append(
            render_to_string(
                "alerts/parts.html#alert_row", {"alert": alert, "oob": True, "drawer": True}
            )
        )
    return "".join(pieces)


def send(portal_id, html: str) -> None:
    if not html:
        return
    message: LiveHtml = {"type": "live.html", "portal": str(portal_id), "html": html}
    # From a thread run by sync_to_async (views, the worker under `serve`) asgiref runs
    # this on the server's own event loop, which the in-memory layer requires.
    async_to_sync(fanout.group_send)(group_name(portal_id), message)


def publish(changes: Changes) -> None:
    """Render ``changes`` once and send them to everyone watching the portal."""
    try:
        send(changes.portal_id, render_changes(changes))
    except Exception:
        # A failed push must not undo what was applied: the next snapshot repairs the page.
        logger.exception("Publishing changes of portal %s failed", changes.portal_id)


def publish_action(action_id: int) -> None:
    """An action's outcome, to the pages of the supervisor who acted."""
    from ..models import Action

    try:
        action = Action.objects.filter(pk=action_id).first()
        if action is None or action.user_id is None:
            return
        html = render_to_string("actions/parts.html#outcome", {"action": action, "oob": True})
        message: LiveHtml = {"type": "live.html", "portal": str(action.portal_id), "html": html}
        async_to_sync(fanout.group_send)(user_group(action.user_id), message)
    except Exception:
        logger.exception("Publishing the outcome of action %s failed", action_id)


def render_alerts(alert_pks: list[int]) -> str:
    """Raised, acknowledged, snoozed or resolved alerts as out-of-band pieces: the alert
    panel's row and, for a chat's or an operator's alert, its row in their drawer. Row
    badges follow in the browser."""
    from ..models import Alert

    found = (
        Alert.objects.filter(pk__in=alert_pks)
        .select_related("portal", "chat", "operator")
        .prefetch_related("escalations")
        .order_by("pk")
    )
    return "".join(_alert_pieces(alert) for alert in selectors.alert_rows(found))


def publish_alerts(portal_id, alert_pks: list[int]) -> None:
    """Raised, acknowledged, snoozed or resolved alerts, to everyone watching the portal."""
    try:
        send(portal_id, render_alerts(alert_pks))
    except Exception:
        logger.exception("Publishing alerts of portal %s failed", portal_id)


def publish_meta(portal: Portal) -> None:
    """Freshness and health only (the worker calls this when they change)."""
    try:
        send(
            portal.pk,
            _render("portal_meta", f=selectors.freshness(portal, timezone.now()), oob=True),
        )
    except Exception:
        logger.exception("Publishing the freshness of portal %s failed", portal.pk)


def _tell(portal_id, kind: str) -> None:
    try:
        message: PortalChanged = {"type": kind, "portal": str(portal_id)}
        async_to_sync(fanout.group_send)(group_name(portal_id), message)
    except Exception:
        logger.exception("Telling the pages of portal %s (%s) failed", portal_id, kind)


def publish_portal_changed(portal_id) -> None:
    """Connected or disconnected: pages watching it take a fresh snapshot (its rows come or
    go; a disconnected portal's chats are not live)."""
    _tell(portal_id, "live.portal_changed")


def publish_portal_gone(portal_id) -> None:
    """Deleted: pages watching it close their socket and load again without it."""
    _tell(portal_id, "live.portal_gone")


# What the rest of the house calls (dashboard/realtime/publish.py is the one publisher): each
# sends after the current transaction commits, or at once outside one.


def action_outcome(action_id: int, *, except_page: str | None = None) -> None:
    """An action's outcome changed: its supervisor's pages show it (all but ``except_page``,
    the page whose own request carries it)."""
    transaction.on_commit(lambda: publish_action(action_id))
