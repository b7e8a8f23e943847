"""Changes → out-of-band HTML: the same template partials the page renders, once for
every page watching (dashboard/realtime/publish.py sends what this returns)."""

from __future__ import annotations

import threading
import time

from django.db.models import Q
from django.template.loader import render_to_string

from siq_integration.models import Portal

from .. import selectors
from ..figures import queues
from ..models import Action, Alert, Chat, ChatMessage
from ..participants import others_in_chat
from ..state.changes import Changes
from ..templatetags.supervisor import render_row

PARTS = "live/parts.html"
QUEUE_ROW = "figures/parts.html#queue_row"
QUEUE_NOTE = "figures/parts.html#queues_note"


def _render(partial: str, **context) -> str:
    return render_to_string(f"{PARTS}#{partial}", context)


def render_changes(changes: Changes) -> str:
    """The out-of-band HTML for ``changes`` to the portal's pages (empty when nothing
    shows). Rows come from the row cache while their facts stay the same: a poll that
    changes nothing renders nothing."""
    pieces: list[str] = []
    portal = None
    if changes.chats or changes.operators or changes.figures or changes.meta:
        portal = Portal.objects.filter(pk=changes.portal_id).first()
        if portal is None:
            return ""
    for chat in Chat.objects.filter(pk__in=changes.chats):
        if chat.is_open:
            pieces.append(render_row(f"{PARTS}#chat_row", "chat", chat, oob=True))
        else:
            pieces.append(f'<tr id="chat-{chat.pk}" hx-swap-oob="delete"></tr>')
        pieces.append(render_row(f"{PARTS}#drawer_head", "chat", chat, oob=True))
    if changes.operators or changes.figures:
        rows = sorted(changes.operators | changes.figures)
        for view in selectors.operator_views([portal], only=rows):
            pieces.append(render_row(f"{PARTS}#operator_row", "view", view, oob=True))
    for pk in sorted(changes.removed_operators):
        pieces.append(f'<tr id="op-{pk}" hx-swap-oob="delete"></tr>')
    messages = ChatMessage.objects.filter(pk__in=changes.messages).order_by("sent_at", "pk")
    for message in messages:
        line = _render("message", message=message)
        pieces.append(f'<ol hx-swap-oob="beforeend:#transcript-{message.chat_id}">{line}</ol>')
    pieces.extend(_changed_lines(changes))
    if changes.queues:
        portal = portal or Portal.objects.filter(pk=changes.portal_id).first()
        if portal is not None:
            only = {(portal.pk, department) for department in changes.queues}
            for queue in queues.queue_rows([portal], only=only):
                pieces.append(render_to_string(QUEUE_ROW, {"queue": queue, "oob": True}))
    if changes.figures_note:
        # What the queues say about the portal's figures (a gap being read back): not with
        # every event's freshness, only when the reconcile job says it may have changed.
        portal = portal or Portal.objects.filter(pk=changes.portal_id).first()
    if portal is not None and changes.figures_note:
        for note in queues.notes([portal]):
            pieces.append(render_to_string(QUEUE_NOTE, {"note": note, "oob": True}))
    if portal is not None and (changes.chats or changes.operators or changes.meta):
        # The portal's figures and freshness follow its chats, its operators and its meta.
        pieces.append(_render("portal_meta", f=selectors.freshness(portal), oob=True))
    if changes.chats or changes.operators or changes.alerts:
        pieces.append(_alerts_of(changes))
    return "".join(pieces)


def _changed_lines(changes: Changes) -> list[str]:
    """Lines edited or deleted, each swapped by id in the drawers that show it, and who else
    is in the chats whose participants changed (pages without that drawer open drop both)."""
    if not changes.changed_messages and not changes.participants:
        return []  # most publications: no query built
    pieces = [
        _render("message", message=message, oob=True)
        for message in ChatMessage.objects.filter(pk__in=changes.changed_messages)
    ]
    for chat in Chat.objects.filter(pk__in=changes.participants):
        people = others_in_chat(chat)
        pieces.append(_render("chat_people", chat_pk=chat.pk, people=people, oob=True))
    return pieces


def _alerts_of(changes: Changes) -> str:
    """The alerts that changed, and the open alerts of the changed chats and operators
    rendered again: their titles name the chat's visitor, department and operator as they
    are now (a transfer, a rename). One query on the open alerts' index."""
    pks = set(changes.alerts)
    if changes.chats or changes.operators:
        # Most changes concern a chat with no open alert: a one-table look first (a query
        # with its joins costs a few ms to compile, on every publication).
        pks.update(
            Alert.objects.filter(resolved_at__isnull=True)
            .filter(Q(chat_id__in=changes.chats) | Q(operator_id__in=changes.operators))
            .values_list("pk", flat=True)
        )
    if not pks:
        return ""
    found = _alerts(pks)
    # An ended chat's open alerts are resolved right after this (the alert hook), which
    # publishes them: not shown again here, unless they changed themselves.
    shown = [a for a in found if a.pk in changes.alerts or a.chat is None or a.chat.is_open]
    return "".join(_alert_pieces(alert) for alert in selectors.alert_rows(shown))


def _alerts(pks) -> list[Alert]:
    return list(
        Alert.objects.filter(pk__in=list(pks))
        .select_related("portal", "chat", "operator")
        .prefetch_related("escalations")
        .order_by("pk")
    )


def _alert_pieces(alert: Alert) -> str:
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


def render_alerts(alert_pks: list[int]) -> str:
    """Raised, acknowledged, snoozed or resolved alerts as out-of-band pieces: the alert
    panel's row and, for a chat's or an operator's alert, its row in their drawer. Row
    badges follow in the browser. (Also the answer of an alert's own buttons.)"""
    return "".join(_alert_pieces(alert) for alert in selectors.alert_rows(_alerts(alert_pks)))


def render_outcome(action: Action) -> str:
    """An action's outcome, as its drawer and toast show it."""
    return render_to_string("actions/parts.html#outcome", {"action": action, "oob": True})


# A (re)connecting page's queues: the same for every viewer of the same portals, and the
# rows change at most once a second (the worker's queues job), so rendered once a second at
# most: 200 pages connecting at once (a restart) read the queues once, not 200 times.
QUEUES_SNAPSHOT_FOR = 1.0  # seconds
_queue_snapshots: dict[tuple, tuple[float, str]] = {}
_queue_snapshots_lock = threading.Lock()


def render_queues_snapshot(portals: list[Portal]) -> str:
    """The queues panel's rows and each portal's note, out of band, for a snapshot."""
    key = tuple(sorted(str(portal.pk) for portal in portals))
    now = time.monotonic()
    with _queue_snapshots_lock:
        kept = _queue_snapshots.get(key)
    if kept is not None and now - kept[0] < QUEUES_SNAPSHOT_FOR:
        return kept[1]
    pieces = [
        render_to_string(
            "figures/parts.html#queues_body", {"queues": queues.queue_rows(portals), "oob": True}
        )
    ]
    for note in queues.notes(portals):
        pieces.append(render_to_string(QUEUE_NOTE, {"note": note, "oob": True}))
    html = "".join(pieces)
    with _queue_snapshots_lock:
        if len(_queue_snapshots) > 1000:
            _queue_snapshots.clear()  # many portal sets: keep the memo small
        _queue_snapshots[key] = (now, html)
    return html
