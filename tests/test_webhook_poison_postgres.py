"""On real PostgreSQL, what SQLite takes and PostgreSQL does not (a NUL character in a text
column) is a poison of its own: the batch insert fails, each row is then stored in a
savepoint of its own and the one the database refuses is kept as rejected in its place.

A fresh database on PostgreSQL 127.0.0.1:5432 (SIQ_TEST_POSTGRES_URL moves it), migrated
with `manage.py migrate`; the batch is stored by `manage.py shell` on it (the pytest
process stays on SQLite, like the scale-out tests). Skips without PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from django.conf import settings

from tests.support.cluster import POSTGRES_URL, postgres_or_skip, with_database

pytestmark = pytest.mark.scale_out

SCENE = r"""
import json
from dashboard import ingest
from dashboard.models import InboxEvent
from siq_integration import webhooks
from siq_integration.models import Portal

portal = Portal.objects.create(name="PG", data_center="us", dialect="reference",
                               screen_name="pg", webhook_id="w1")
portal.set_webhook_secret("pg-secret")
portal.save()

def chat(n, **data):
    return json.dumps({"event": "chat.started", "timestamp": "2026-11-22T09:00:00Z",
                       "data": {"chat_id": f"c-{n}", "visitor_name": f"V{n}", **data}}).encode()

bodies = [chat(n) for n in range(30)]
poison = {
    "nul_name": json.dumps({"event": "chat.started\u0000", "data": {}}).encode(),
    "deep": b'{"event":"chat.started","data":' + b"[" * 100000 + b"]" * 100000 + b"}",
    "surrogate": b'{"event":"chat.started","data":{"visitor_name":"\\ud800"}}',
}
batch = bodies[:10] + [poison["nul_name"]] + bodies[10:20] + [poison["deep"]] + bodies[20:]
batch.append(poison["surrogate"])
deliveries = [
    ingest.Delivery(portal.pk, body,
                    {"X-Salesiq-Signature": webhooks.sign_reference(body, "pg-secret")})
    for body in batch
]
try:
    receipts, stored = ingest.receive_many(deliveries)
    statuses = [r.status for r in receipts]
except Exception as error:
    statuses, stored = [f"raised {type(error).__name__}"], []
print("RESULT " + json.dumps({
    "statuses": statuses,
    "stored": len(stored),
    "states": sorted(InboxEvent.objects.values_list("state", flat=True)),
    "reasons": sorted(InboxEvent.objects.filter(state="rejected").values_list("error", flat=True)),
}))
"""


@pytest.fixture
def postgres_env(tmp_path):
    postgres_or_skip()
    import psycopg

    database = f"siq_poison_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "DATABASE_URL": with_database(POSTGRES_URL, database),
        "SIQ_VAR_DIR": str(tmp_path),
    }
    try:
        manage(env, "migrate", "--no-input", "-v", "0")
        yield env
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def manage(env, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"manage.py {args[0]} failed:\n{result.stderr[-3000:]}"
    return result.stdout


def test_a_row_postgresql_refuses_is_rejected_alone(postgres_env):
    out = manage(postgres_env, "shell", "-c", SCENE)
    result = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])

    assert result["statuses"] == [200] * 33, result["statuses"]
    assert result["stored"] == 30
    assert result["states"] == ["pending"] * 30 + ["rejected"] * 3
    reasons = " | ".join(result["reasons"])
    assert "cannot store" in reasons  # the NUL: PostgreSQL refused it, SQLite would not
    assert "nested too deeply" in reasons and "not valid Unicode" in reasons
