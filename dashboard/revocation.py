"""Access that ends while a live page is open: its socket hears of it at once.

A live page checks access when its socket connects; after that it only listens. So whenever
something that decides a user's access changes — their portals, their role, their account
(deactivated, deleted, a new password) or a sign-out — a message goes to the user's own group
(``realtime.groups.user_group``) through the channel layer, which reaches every process (Redis) or
this one (in memory). Each of the user's sockets then checks again (``still_signed_in`` and
the portals it shows) and closes, or leaves what it may no longer see
(dashboard/realtime/consumers.py). The same check runs on every periodic re-join, for what no signal
tells (a session that expired or was flushed, an update made with raw SQL).

Messages go after the transaction commits: a socket checking before then, in another
process, would still read the old access and stay open.
"""

from __future__ import annotations

import asyncio
import logging
from importlib import import_module
from typing import Any, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    load_backend,
    user_logged_out,
)
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.utils.crypto import constant_time_compare, salted_hmac

from .models import Profile
from .realtime.groups import user_group

logger = logging.getLogger(__name__)


_sending: set[asyncio.Task] = set()  # tasks sending from a loop's thread, kept till done


class AccessChanged(TypedDict, total=False):
    """Something deciding ``user``'s access changed: their sockets check again. A sign-out
    names its session (by ``session_mark``), whose sockets close whatever the check finds
    (the session is flushed only after ``user_logged_out`` is sent)."""

    type: str  # "access.changed"
    ended_session: str


def session_mark(session_key: str) -> str:
    """What names a session in a message: not its key, which would sign anyone in who read
    it off the channel layer (Redis) within the message's expiry."""
    return salted_hmac("dashboard.revocation.session", session_key, algorithm="sha256").hexdigest()


def tell(user_id: Any, ended_session: str = "") -> None:
    """Tell ``user_id``'s open sockets, in every process, once the transaction commits."""
    message: AccessChanged = {"type": "access.changed"}
    if ended_session:
        message["ended_session"] = ended_session

    def send() -> None:
        try:
            layer = get_channel_layer()
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                async_to_sync(layer.group_send)(user_group(user_id), message)
            else:
                # Saved from code running on an event loop's own thread (async_to_sync
                # refuses there): send from that loop as soon as it is free.
                task = loop.create_task(layer.group_send(user_group(user_id), message))
                _sending.add(task)
                task.add_done_callback(_sending.discard)
        except Exception:
            # Saving the user must not fail for it; the next re-join checks again anyway.
            logger.exception("Telling the pages of user %s that access changed failed", user_id)

    transaction.on_commit(send)


# --- what the sockets check -------------------------------------------------------------------


def _session(session_key: str):
    engine = import_module(settings.SESSION_ENGINE)
    return engine.SessionStore(session_key)


def still_signed_in(user_id: Any, session_key: str | None):
    """The user of session ``session_key`` as it is now, or None when that session no longer
    signs ``user_id`` in: it was flushed (signed out), expired or deleted; the account was
    deactivated or deleted; or its password changed since (the session's hash no longer
    matches, as Django checks on every request). Reads afresh and changes nothing (Django's
    own ``get_user`` would flush a session that does not match)."""
    if not session_key:
        return None
    session = _session(session_key)
    if str(session.get(SESSION_KEY)) != str(user_id):
        return None
    backend_path = session.get(BACKEND_SESSION_KEY)
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    user = load_backend(backend_path).get_user(user_id)  # None when inactive or deleted
    if user is None or not user.is_active:
        return None
    if hasattr(user, "get_session_auth_hash"):
        kept = session.get(HASH_SESSION_KEY) or ""
        hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
        if not kept or not any(constant_time_compare(kept, known) for known in hashes):
            return None
    return user


# --- what tells them --------------------------------------------------------------------------


def _user_saved(sender, instance, created: bool, update_fields=None, **kwargs) -> None:
    if created:
        return
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return  # every sign-in saves it; it changes no access
    tell(instance.pk)


def _user_deleted(sender, instance, **kwargs) -> None:
    tell(instance.pk)


def _profile_saved(sender, instance: Profile, created: bool, **kwargs) -> None:
    if not created:
        tell(instance.user_id)


def _profile_deleted(sender, instance: Profile, **kwargs) -> None:
    tell(instance.user_id)


def _portals_changed(sender, instance, action: str, reverse: bool, pk_set, **kwargs) -> None:
    """A profile's portals, from either side: ``profile.portals.remove(portal)`` or
    ``portal.members.remove(profile)`` (``pk_set`` is None for a clear, so the pre-clear
    members are asked for then)."""
    if action not in {"post_add", "post_remove", "pre_clear"}:
        return
    if not reverse:
        tell(instance.user_id)
        return
    if action == "pre_clear":
        profiles = instance.members.values_list("user_id", flat=True)
    else:
        profiles = Profile.objects.filter(pk__in=pk_set or ()).values_list("user_id", flat=True)
    for user_id in set(profiles):
        tell(user_id)


def _signed_out(sender, request, user, **kwargs) -> None:
    if user is None:
        return
    session_key = getattr(getattr(request, "session", None), "session_key", None) or ""
    tell(user.pk, ended_session=session_mark(session_key) if session_key else "")


def connect() -> None:
    """Called once from DashboardConfig.ready()."""
    user_model = get_user_model()
    uid = "dashboard.revocation"
    post_save.connect(_user_saved, sender=user_model, dispatch_uid=f"{uid}.user_saved")
    post_delete.connect(_user_deleted, sender=user_model, dispatch_uid=f"{uid}.user_deleted")
    post_save.connect(_profile_saved, sender=Profile, dispatch_uid=f"{uid}.profile_saved")
    post_delete.connect(_profile_deleted, sender=Profile, dispatch_uid=f"{uid}.profile_deleted")
    m2m_changed.connect(
        _portals_changed, sender=Profile.portals.through, dispatch_uid=f"{uid}.portals"
    )
    user_logged_out.connect(_signed_out, dispatch_uid=f"{uid}.signed_out")
