"""/healthz checks that the database takes a write (issue 13, "Operations").

The attack: under a database write lock (and a full disk) /healthz stayed 200 because it
only ran SELECT 1, while sign-in answered 500 and webhooks 503.
"""

from __future__ import annotations

import sqlite3
import time

import pytest
from django.db import connection

from dashboard.models import Heartbeat


def healthz(client):
    """GET /healthz from a thread of its own: browser tests earlier in the run leave
    Playwright's event loop in the main thread, where the view's async_to_sync refuses."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    def in_thread():
        try:
            return client.get("/healthz")
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(in_thread).result(timeout=60)


@pytest.mark.django_db(transaction=True)
def test_it_answers_503_naming_the_database_while_another_connection_holds_the_write_lock(
    client,
):
    if connection.vendor != "sqlite":
        pytest.skip("the lock is taken with SQLite's BEGIN IMMEDIATE")
    holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None, timeout=5)
    try:
        holder.execute("BEGIN IMMEDIATE")  # a writer that does not let go
        started = time.monotonic()
        response = healthz(client)
        elapsed = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert response.status_code == 503
    answer = response.json()
    assert answer["status"] == "failing"
    assert answer["database"] == "cannot write (database is locked)"
    assert answer["problems"] == ["database: cannot write (database is locked)"]
    assert answer["channel_layer"] == "ok"
    assert elapsed < 5, f"took {elapsed:.1f} s: a load balancer wants an answer, not a hang"

    # The lock gone, it is healthy again.
    response = healthz(client)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "channel_layer": "ok"}


@pytest.mark.django_db(transaction=True)
def test_the_short_wait_for_the_lock_is_for_the_check_only():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's busy timeout")
    from dashboard.views import health

    holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None, timeout=5)
    try:
        holder.execute("BEGIN IMMEDIATE")
        assert health._database() == "cannot write (database is locked)"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # This connection serves other requests next: it waits for locks as configured again.
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone()[0] == 20_000
    assert health._database() == "ok"


@pytest.mark.django_db(transaction=True)
def test_it_writes_the_heartbeat_each_time(client):
    assert healthz(client).status_code == 200
    first = Heartbeat.objects.get().beat_at
    time.sleep(0.01)
    assert healthz(client).status_code == 200
    assert Heartbeat.objects.count() == 1
    assert Heartbeat.objects.get().beat_at > first


@pytest.mark.django_db(transaction=True)
def test_a_failing_write_is_named_without_its_details(client, monkeypatch):
    from django.db import OperationalError
    from django.db.models.query import QuerySet

    def refuse(*args, **kwargs):
        raise OperationalError('connection to "db.internal" user "siq": disk I/O error')

    monkeypatch.setattr(QuerySet, "update_or_create", refuse)
    response = healthz(client)
    assert response.status_code == 503
    assert response.json()["database"] == "cannot write (disk I/O error)"
    assert "db.internal" not in response.content.decode()


def test_on_postgresql_a_held_row_lock_is_a_503_within_seconds(tmp_path):
    """A server on a PostgreSQL database of its own (CI has one): a transaction that holds the
    heartbeat row makes /healthz say so within seconds, and it recovers once the lock goes."""
    import psycopg
    import requests

    from tests.support.cluster import fresh_cluster
    from tests.support.servers import free_port
    from tests.support.waits import wait_for

    with fresh_cluster("healthz", tmp_path) as cluster:
        cluster.manage("migrate", "--no-input", "-v", "0")
        web = cluster.serve("web", free_port())

        def answer():
            try:
                return requests.get(f"{web.url}/healthz", timeout=10)
            except requests.RequestException:
                return None

        wait_for(lambda: (got := answer()) is not None and got.ok, timeout=30, what="healthz")
        with psycopg.connect(cluster.database_url) as holder:
            holder.execute("SELECT * FROM dashboard_heartbeat FOR UPDATE")
            started = time.monotonic()
            response = answer()
            elapsed = time.monotonic() - started
            holder.rollback()
        assert response is not None, cluster.tails()
        assert response.status_code == 503
        assert response.json()["database"] == "cannot write (timed out waiting for a lock)"
        assert elapsed < 5
        assert answer().status_code == 200
