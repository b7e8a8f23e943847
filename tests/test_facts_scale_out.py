"""Two processes on PostgreSQL and Redis apply one portal's webhook events, each at its own
pace and out of order: no visitor line is lost, whatever its chat's state when it lands.

Each process is a real Python process with its own database connection and the Redis
channel layer (what it applies is published as in production), on a fresh PostgreSQL
database of its own (created, migrated, dropped at the end). Skips without PostgreSQL or
Redis, as tests/test_scale_out.py does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings

from tests.support.cluster import (
    POSTGRES_URL,
    REDIS_URL,
    postgres_or_skip,
    redis_or_skip,
    with_database,
)

pytestmark = pytest.mark.scale_out

CHATS = 120

# One process: each chat's life (created, picked up, ended), first chat first. The other:
# each chat's two visitor lines (sent while it was open), last chat first. They meet half
# way: from then on every line is applied after its chat's end.
APPLY = r"""
import json, os, sys, time
from datetime import UTC, datetime, timedelta

import django

django.setup()
from django.db import connections

from dashboard.state import apply
from dashboard.models import Chat
from siq_integration.models import Portal
from siq_integration.normalised import (
    ChatStatus, Conversation, EventKind, Message, SenderType, Visitor, WebhookEvent,
)

role, portal_id, chats, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
portal = Portal.objects.get(pk=portal_id)
# Real times, all in the past (a chat each 100 s): what is tested is the order of applying.
base = datetime.now(UTC) - timedelta(seconds=chats * 100 + 3600)


def at(chat, seconds):
    return base + timedelta(seconds=chat * 100 + seconds)


def conversation(chat, status, message=None):
    open_ = status != ChatStatus.ENDED
    return Conversation(
        id=f"chat-{chat}",
        status=status,
        visitor=Visitor(id=f"v{chat}", name=f"Visitor {chat}"),
        started_at=at(chat, 0),
        operator_id="" if status == ChatStatus.WAITING else "op1",
        operator_name="" if status == ChatStatus.WAITING else "Asha",
        attended_at=None if status == ChatStatus.WAITING else at(chat, 5),
        ended_at=None if open_ else at(chat, 60),
        last_message=message,
    )


def event(kind, conv, when, key):
    return WebhookEvent(
        kind=kind, name=str(kind), dedupe_key=key, occurred_at=when, conversation=conv,
        chat_id=conv.id,
    )


if role == "life":
    events = []
    for chat in range(chats):
        events += [
            event(EventKind.CHAT_CREATED, conversation(chat, ChatStatus.WAITING), at(chat, 0),
                  f"{chat}-created"),
            event(EventKind.CHAT_ATTENDER_CHANGED, conversation(chat, ChatStatus.CONNECTED),
                  at(chat, 5), f"{chat}-picked"),
            event(EventKind.CHAT_ENDED, conversation(chat, ChatStatus.ENDED), at(chat, 60),
                  f"{chat}-ended"),
        ]
else:
    events = []
    for chat in reversed(range(chats)):
        for n in (2, 1):
            sent = at(chat, 10 * n + 10)
            line = Message(
                id=f"chat-{chat}-line-{n}", chat_id=f"chat-{chat}",
                sender_type=SenderType.VISITOR, text=f"line {n} of chat {chat}", sent_at=sent,
            )
            events.append(event(
                EventKind.VISITOR_MESSAGE, conversation(chat, ChatStatus.CONNECTED, line),
                sent, f"{chat}-line-{n}",
            ))

while not os.path.exists(go):
    time.sleep(0.01)
after_end = 0
for item in events:
    if role == "lines":
        after_end += Chat.objects.filter(
            portal=portal, remote_id=item.chat_id, status="ended"
        ).exists()
    apply.apply_event(portal, item, received_at=datetime.now(UTC))
connections.close_all()
print(json.dumps({"role": role, "applied": len(events), "after_end": after_end}))
"""

SETUP = r"""
import django

django.setup()
from siq_integration.models import Portal

print(Portal.objects.create(name="Out of order", data_center="sim", screen_name="facts").pk)
"""


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Iterator[dict[str, str]]:
    """A fresh, migrated PostgreSQL database and a Redis prefix; the environment to use them."""
    postgres_or_skip()
    redis_or_skip()
    import os

    import psycopg
    import redis

    run = uuid.uuid4().hex[:10]
    database = f"siq_facts_{run}"
    prefix = f"siq-facts-{run}:"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    env = {
        **{
            key: value
            for key, value in os.environ.items()
            if key not in {"DJANGO_ALLOW_ASYNC_UNSAFE", "SIQ_TEST_DB_NAME"}
        },
        "DATABASE_URL": with_database(POSTGRES_URL, database),
        "REDIS_URL": REDIS_URL,
        "REDIS_PREFIX": prefix,
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        "LOG_LEVEL": "ERROR",
    }
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
            cwd=settings.BASE_DIR,
            env=env,
            check=True,
            timeout=180,
        )
        yield env
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [database],
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{database}"')
        store = redis.Redis.from_url(REDIS_URL)
        keys = list(store.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            store.delete(*keys)


def _python(env, code: str, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def test_two_processes_applying_out_of_order_lose_no_visitor_line(shared, tmp_path):
    import psycopg

    setup = _python(shared, SETUP)
    out, err = setup.communicate(timeout=60)
    assert setup.returncode == 0, err
    portal_id = out.strip().splitlines()[-1]

    go = tmp_path / "go"
    processes = [
        _python(shared, APPLY, role, portal_id, str(CHATS), str(go)) for role in ("life", "lines")
    ]
    time.sleep(2)  # both set up (Django, their events) before either starts applying
    go.touch()
    results = []
    for process in processes:
        out, err = process.communicate(timeout=240)
        assert process.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    lines = next(result for result in results if result["role"] == "lines")

    with psycopg.connect(shared["DATABASE_URL"], autocommit=True) as db:
        stored = db.execute(
            "SELECT count(*) FROM dashboard_chatmessage m JOIN dashboard_chat c "
            "ON c.id = m.chat_id WHERE c.portal_id = %s",
            [portal_id],
        ).fetchone()[0]
        states = dict(
            db.execute(
                "SELECT status, count(*) FROM dashboard_chat WHERE portal_id = %s GROUP BY status",
                [portal_id],
            ).fetchall()
        )
    # The attack happened: many lines were applied to chats already ended…
    assert lines["after_end"] >= 10, lines
    # …and none of them was lost; every chat ended, none reopened by a late line.
    assert stored == 2 * CHATS, f"{2 * CHATS - stored} of {2 * CHATS} lines lost"
    assert states == {"ended": CHATS}, states
