"""`GET /healthz` for load balancers: can the database take a write, does the channel layer
pass a message. No portal data. A failing part is named with the reason in a few words
("database: cannot write (database is locked)"), never a connection string or a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import DatabaseError, connection, transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from ..models import Heartbeat

logger = logging.getLogger(__name__)
CHECK_TIMEOUT = 2.0  # seconds; a load balancer wants an answer, not a hang

# What a database says when it cannot take a write, in the words the answer repeats. Any
# other error is named by its class only: its text may carry a host or a user name.
_KNOWN_REASONS = {
    "database is locked": "database is locked",
    "database table is locked": "database is locked",
    "database or disk is full": "database or disk is full",
    "disk i/o error": "disk I/O error",
    "attempt to write a readonly database": "database is read-only",
    "unable to open database file": "cannot open the database file",
    "lock timeout": "timed out waiting for a lock",
    "statement timeout": "timed out",
    "read-only transaction": "database is read-only",
    "no space left on device": "disk is full",
}


def _reason(error: Exception) -> str:
    text = str(error).lower()
    for clue, words in _KNOWN_REASONS.items():
        if clue in text:
            return words
    return type(error).__name__


@contextmanager
def _waiting_at_most(seconds: float) -> Iterator[None]:
    """Wait at most ``seconds`` for a lock on this connection, then as configured again."""
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout")
            before = cursor.fetchone()[0]
            cursor.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute(f"PRAGMA busy_timeout = {int(before)}")
    else:
        yield  # PostgreSQL: SET LOCAL inside the transaction, see _database


def _database() -> str:
    """'ok', or why the database cannot take a write within CHECK_TIMEOUT."""
    try:
        with _waiting_at_most(CHECK_TIMEOUT), transaction.atomic():
            if connection.vendor == "postgresql":
                # For this transaction only: a lock is waited for CHECK_TIMEOUT, anything
                # else (a slow disk) half a second more.
                with connection.cursor() as cursor:
                    lock_wait = f"{int(CHECK_TIMEOUT * 1000)}ms"
                    statement = f"{int(CHECK_TIMEOUT * 1000) + 500}ms"
                    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [lock_wait])
                    cursor.execute("SELECT set_config('statement_timeout', %s, true)", [statement])
            Heartbeat.objects.update_or_create(pk=1, defaults={"beat_at": timezone.now()})
    except DatabaseError as error:
        logger.warning("healthz: the database cannot take a write (%s)", _reason(error))
        return f"cannot write ({_reason(error)})"
    return "ok"


async def _round_trip() -> bool:
    layer = get_channel_layer()
    channel = await layer.new_channel("healthz.")
    token = secrets.token_hex(8)
    await layer.send(channel, {"type": "healthz.ping", "token": token})
    message = await asyncio.wait_for(layer.receive(channel), timeout=CHECK_TIMEOUT)
    return message.get("token") == token


def _channel_layer() -> str:
    try:
        return "ok" if async_to_sync(_round_trip)() else "failing"
    except Exception:
        logger.exception("healthz: channel layer check failed")
        return "failing"


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database(), "channel_layer": _channel_layer()}
    failing = [f"{part}: {state}" for part, state in checks.items() if state != "ok"]
    answer = {"status": "failing" if failing else "ok", **checks}
    if failing:
        answer["problems"] = failing
    return JsonResponse(answer, status=503 if failing else 200)
