"""The one publisher: what changed reaches the pages from here, and from nowhere else.

- **Collected per transaction.** ``changed`` (every ``state.changes.record`` arrives here)
  hands a change over with ``transaction.on_commit``: a transaction, or a savepoint, that
  rolls back takes its changes with it (Django discards its callbacks), so no page ever
  sees what was undone.
- **Published after commit, rendered once.** Each publication is rendered once
  (dashboard/realtime/render.py) and sent with ``fanout.group_send`` to the portal's
  group (and an action's outcome to its supervisor's group); every consumer forwards it
  as it is.
- **Held together when asked.** Within ``together()`` (or a ``Hold``, the webhook lane's
  rule: hold while more arrives, at most HOLD_WITHIN seconds or HOLD_LIMIT applications)
  what commits is merged per portal and published once.
- **Hooks after publication.** What must follow a publication (the alert rules on
  changed chats) registers with ``after_publication`` at start-up (dashboard/apps.py):
  this module imports nothing that follows it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from django.db import transaction

from ..models import Action
from ..state.changes import Changes
from . import fanout
from .groups import LiveHtml, PortalChanged, group_name, user_group
from .render import render_changes, render_outcome

logger = logging.getLogger(__name__)

# The webhook lane's rule (a Hold): the longest a change waits for more to arrive before it
# is published (seconds), and the most applications published together (the first of them
# waits for the last to be shown).
HOLD_WITHIN = 0.015
HOLD_LIMIT = 8

Hook = Callable[[Changes], None]
_hooks: list[Hook] = []


def after_publication(hook: Hook) -> None:
    """Run ``hook`` with every publication's changes once they are sent (at start-up)."""
    if hook not in _hooks:
        _hooks.append(hook)


# --- sending -----------------------------------------------------------------------------


def send(portal_id, html: str) -> None:
    """``html`` to every page watching the portal."""
    if not html:
        return
    message: LiveHtml = {"type": "live.html", "portal": str(portal_id), "html": html}
    # From a thread run by sync_to_async (views, the worker under `serve`) asgiref runs
    # this on the server's own event loop, which the in-memory fan-out requires.
    async_to_sync(fanout.group_send)(group_name(portal_id), message)


def send_outcome(action_id: int, except_page: str | None = None) -> None:
    """An action's outcome to its supervisor's pages, all but ``except_page`` (the page
    whose own request's answer showed it already)."""
    action = Action.objects.filter(pk=action_id).first()
    if action is None or action.user_id is None:
        return
    message: LiveHtml = {
        "type": "live.html",
        "portal": str(action.portal_id),
        "html": render_outcome(action),
    }
    if except_page:
        message["except_page"] = except_page
    async_to_sync(fanout.group_send)(user_group(action.user_id), message)


def publish(changes: Changes) -> None:
    """Render committed ``changes`` once and send them to everyone they concern."""
    # A failed push must not undo what was applied: the next snapshot repairs the page.
    if changes.portal_id is not None:
        try:
            send(changes.portal_id, render_changes(changes))
        except Exception:
            logger.exception("Publishing changes of portal %s failed", changes.portal_id)
    for action_id, except_page in changes.outcomes.items():
        try:
            send_outcome(action_id, except_page)
        except Exception:
            logger.exception("Publishing the outcome of action %s failed", action_id)


def _publish_and_follow(changes: Changes) -> None:
    publish(changes)
    for hook in list(_hooks):
        try:
            hook(changes)
        except Exception:
            # A hook must never undo or block what was applied (the worker evaluates again).
            logger.exception("A hook after publishing portal %s failed", changes.portal_id)


# --- collecting --------------------------------------------------------------------------


class Batch:
    """Changes committed while it collects, merged per portal, published on ``release``."""

    def __init__(self) -> None:
        self.held: dict[Any, Changes] = {}
        self.held_since = 0.0  # when the oldest change held was committed (monotonic)
        self.lock = threading.Lock()  # committed in one thread, released in another

    def __bool__(self) -> bool:
        return bool(self.held)

    def add(self, changes: Changes) -> None:
        with self.lock:
            if not self.held:
                self.held_since = time.monotonic()
            self.held.setdefault(changes.portal_id, Changes(changes.portal_id)).add(changes)

    def release(self) -> None:
        """Publish what is held (each portal once) and run the hooks after."""
        with self.lock:
            held, self.held = self.held, {}
        for changes in held.values():
            _publish_and_follow(changes)


_local = threading.local()


@contextlib.contextmanager
def _collecting_into(batch: Batch) -> Iterator[None]:
    if getattr(_local, "batch", None) is not None:
        yield  # an outer scope collects
        return
    _local.batch = batch
    try:
        yield
    finally:
        _local.batch = None


def changed(changes: Changes) -> None:
    """``changes`` happened in the current transaction: published once it commits (at once
    outside one), never if it rolls back. Within ``together()`` or a ``Hold`` collecting,
    held with the rest."""
    if not changes:
        return
    batch = getattr(_local, "batch", None)
    deliver = batch.add if batch is not None else _publish_and_follow
    # A savepoint that rolls back discards this callback, and so the change.
    transaction.on_commit(partial(deliver, changes))


@contextlib.contextmanager
def together() -> Iterator[None]:
    """What commits within it is published once per portal when it ends (after the
    transaction around it commits, if there is one): a batch of webhook events then costs
    one rendering, one push to every page and one evaluation of the alert rules."""
    if getattr(_local, "batch", None) is not None:
        yield  # an outer one publishes
        return
    batch = Batch()
    try:
        with _collecting_into(batch):
            yield
    finally:
        # Registered last, so it runs after the changes it holds are added; discarded,
        # with them, if the transaction around it rolls back.
        transaction.on_commit(batch.release)


class Hold(Batch):
    """The webhook lane's rule: what its applications commit is held while more arrive,
    and due for publishing HOLD_WITHIN seconds after the first change or after
    HOLD_LIMIT applications, whichever comes first (the lane also publishes as soon as
    nothing waits)."""

    def __init__(self) -> None:
        super().__init__()
        self.applications = 0

    @contextlib.contextmanager
    def collecting(self) -> Iterator[None]:
        """One application: what it commits is held."""
        try:
            with _collecting_into(self):
                yield
        finally:
            self.applications += 1

    def due(self) -> bool:
        if not self.held:
            return False
        held_for = time.monotonic() - self.held_since
        return held_for >= HOLD_WITHIN or self.applications >= HOLD_LIMIT

    def release(self) -> None:
        self.applications = 0
        super().release()

    def clear(self) -> None:
        """Drop what is held (the lane failed; its next snapshot repairs the pages)."""
        with self.lock:
            self.held, self.applications = {}, 0


# --- what the rest of the house calls ------------------------------------------------------


def action_outcome(action_id: int, *, except_page: str | None = None) -> None:
    """An action's outcome changed: after commit, its supervisor's pages show it (all but
    ``except_page``, the page whose own request's answer carries it)."""
    changed(Changes(None, outcomes={action_id: except_page}))


def meta(portal_id, *, figures_note: bool = False) -> None:
    """A portal's freshness or health changed (the worker's health job); ``figures_note``:
    and what the queues say about its figures (the reconcile job)."""
    changed(Changes(portal_id, meta=True, figures_note=figures_note))


def _tell(portal_id, kind: str) -> None:
    try:
        message: PortalChanged = {"type": kind, "portal": str(portal_id)}
        async_to_sync(fanout.group_send)(group_name(portal_id), message)
    except Exception:
        logger.exception("Telling the pages of portal %s (%s) failed", portal_id, kind)


def portal_changed(portal_id) -> None:
    """Connected or disconnected (after commit): pages watching it take a fresh snapshot
    (its rows come or go; a disconnected portal's chats are not live)."""
    transaction.on_commit(partial(_tell, portal_id, "live.portal_changed"))


def portal_gone(portal_id) -> None:
    """Deleted (after commit): pages watching it close their socket and load again
    without it."""
    transaction.on_commit(partial(_tell, portal_id, "live.portal_gone"))
