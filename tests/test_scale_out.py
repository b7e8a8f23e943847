"""Scale-out: two daphne processes and two workers on PostgreSQL and Redis, with the simulator.

Every process is a real `manage.py` child on a fresh PostgreSQL database of its own (created,
migrated with `manage.py migrate`, dropped at the end) and a Redis key prefix of its own. The
pytest process runs on SQLite like the rest of the suite, so it never touches that database
through Django: users come from `createsuperuser`, portals from the real OAuth flow over HTTP
(consent started on daphne A, the simulator approving, the callback back on A), and state is
read through HTTP (pages, the JSON snapshot), the simulator's call log (each call names the
process that made it in its User-Agent) and, where only the database knows, plain SQL.

Two portals: "roomy" (a generous budget; webhooks, the action and the takeover) and "tight"
(20 calls a minute; the budget under load from both web processes and the workers).

Needs PostgreSQL and Redis (127.0.0.1 by default; SIQ_TEST_POSTGRES_URL and SIQ_TEST_REDIS_URL
move them) and skips, naming what is missing, without them.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import requests
from django.conf import settings

from tests.support.cluster import (
    Cluster,
    fresh_cluster,
    healthy,
    identity,
    post_form,
    process_identity,
)
from tests.support.servers import free_port
from tests.support.waits import TAKEOVER_LIMIT, wait_for

pytestmark = pytest.mark.scale_out

PASSWORD = "scale-out-password-1"  # a throw-away test login
TIGHT_BUDGET = 20  # calls a minute on the tight portal
# --- HTTP as a person would ----------------------------------------------------------------


def signed_in(base_url: str) -> requests.Session:
    desk = requests.Session()
    desk.get(f"{base_url}/login/", timeout=10).raise_for_status()
    answer = desk.post(
        f"{base_url}/login/",
        data={
            "username": "ada",
            "password": PASSWORD,
            "csrfmiddlewaretoken": desk.cookies["csrftoken"],
        },
        timeout=30,
    )
    assert answer.ok and "/login/" not in answer.url, "signing in failed"
    return desk


def connect_portal(cluster: Cluster, simulator, desk, base_url: str, **budget) -> dict:
    """Add and connect a portal through the pages, as an admin would; the simulator approves
    the consent. Returns its id and screen name."""
    screen = f"s{uuid.uuid4().hex[:10]}"
    simulator.add_portal(screen, dialect="v2", dc="sim", operators=6, open_chats=3)
    simulator.configure_accounts(auto_approve=True, approve_as=f"admin@{screen}.example")
    try:
        # Add → Zoho's consent (approved at once) → the callback on this daphne → the portal.
        answer = post_form(
            desk,
            f"{base_url}/portals/add/",
            {
                "name": f"Portal {screen}",
                "data_center": "sim",
                "dialect": "v2",
                "plan": "custom",
                "screen_name": screen,
                "client_id": "",
                **budget,
            },
        )
    finally:
        simulator.configure_accounts(auto_approve=False, approve_as="")
    found = re.search(r"/portals/([0-9a-f-]{36})/$", answer.url)
    assert answer.ok and found, f"connecting ended at {answer.url} ({answer.status_code})"
    portal_id = found[1]
    connected, webhook_url = cluster.sql(
        "SELECT connected_at IS NOT NULL, webhook_url FROM siq_integration_portal WHERE id = %s",
        portal_id,
    )[0]
    assert connected, "the portal is not connected"
    return {"id": portal_id, "screen": screen, "webhook_url": webhook_url}


def snapshot(desk: requests.Session, base_url: str, portal_id: str) -> dict:
    answer = desk.get(f"{base_url}/api/portals/{portal_id}/snapshot.json", timeout=10)
    answer.raise_for_status()
    return answer.json()


def api_calls(simulator, screen: str, since: int = 0) -> list[dict]:
    """SalesIQ API calls (not Zoho Accounts) on one portal's budget, from the simulator's log:
    those naming the portal, and the portal list (`/api/v2/portals` names none) asked with
    one of its tokens while connecting."""
    log = simulator.calls()
    tokens = {call["token"] for call in log if call["portal"] == screen and call["token"]}
    return [
        call
        for call in log
        if call["seq"] > since
        and call["path"].startswith("/api/")
        and (call["portal"] == screen or (call["portal"] is None and call["token"] in tokens))
    ]


def last_seq(simulator) -> int:
    calls = simulator.calls()
    return calls[-1]["seq"] if calls else 0


# --- the cluster -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(simulator, tmp_path_factory) -> Iterator[Cluster]:
    with fresh_cluster("scale-out", tmp_path_factory.mktemp("scale-out")) as cluster:
        try:
            # Ports first: PUBLIC_BASE_URL names daphne A, as a proxy's address would.
            port_a = free_port()
            cluster.env.update(
                {
                    "SIQ_EXTRA_DATA_CENTERS": simulator.extra_data_centers_json(),
                    "PUBLIC_BASE_URL": f"http://127.0.0.1:{port_a}",
                }
            )
            cluster.manage("migrate", "--no-input", "-v", "0")
            cluster.manage(
                "createsuperuser",
                "--no-input",
                "--username",
                "ada",
                "--email",
                "ada@example.org",
                env={"DJANGO_SUPERUSER_PASSWORD": PASSWORD},
            )
            a = cluster.serve("daphne-a", port_a)
            b = cluster.serve("daphne-b", free_port())
            for web in (a, b):
                wait_for(
                    lambda web=web: healthy(web.url),
                    timeout=40,
                    what=f"{web.name} answering /healthz",
                )
            desk = signed_in(a.url)
            cluster.portals["roomy"] = connect_portal(
                cluster, simulator, desk, a.url, calls_per_minute=1000, calls_per_day=100_000
            )
            cluster.portals["tight"] = connect_portal(
                cluster,
                simulator,
                desk,
                a.url,
                calls_per_minute=TIGHT_BUDGET,
                calls_per_day=10_000,
            )
            cluster.workers_started_seq = last_seq(simulator)
            cluster.start("worker-1", "siq_worker")
            cluster.start("worker-2", "siq_worker")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{cluster.tails()}") from None
        yield cluster


def polled_by(simulator, cluster: Cluster, portal: str, since: int) -> Counter:
    """Calls each worker made for ``portal`` since ``since``, by host:pid."""
    workers = {process_identity(w) for w in cluster.workers}
    return Counter(
        identity(call["user_agent"])
        for call in api_calls(simulator, cluster.portals[portal]["screen"], since)
        if identity(call["user_agent"]) in workers
    )


# --- (a) a webhook to one daphne, a browser on the other --------------------------------------


@pytest.mark.browser
def test_it_brings_a_webhook_posted_to_daphne_a_to_a_browser_on_daphne_b(cluster, simulator, page):
    a, b = cluster.web("daphne-a"), cluster.web("daphne-b")
    roomy = cluster.portals["roomy"]
    assert roomy["webhook_url"] == f"{a.url}/webhooks/salesiq/{roomy['id']}/"
    state = simulator.state(roomy["screen"])["portals"][0]
    assert [hook["url"] for hook in state["webhooks"]] == [roomy["webhook_url"]]

    page.goto(f"{b.url}/login/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#connection[data-state=open]", timeout=20_000)
    opened_at = page.evaluate("performance.timeOrigin")
    delivered = simulator.deliveries()
    delivered_since = delivered[-1]["seq"] if delivered else 0

    # Meanwhile the workers' listings of open chats fail: only the webhook can bring the chat.
    simulator.set_faults(
        portal=roomy["screen"],
        errors=[{"method": "GET", "path_regex": "/conversations$", "code": 1001, "times": None}],
    )
    try:
        name = f"Came through A {uuid.uuid4().hex[:6]}"
        chat = simulator.create_conversation(roomy["screen"], visitor_name=name)

        row = page.locator(f'tr[data-visitor="{name}"]')
        row.wait_for(timeout=15_000)
        source = cluster.one(
            "SELECT source FROM dashboard_chat WHERE portal_id = %s AND remote_id = %s",
            roomy["id"],
            chat["id"],
        )
    finally:
        simulator.clear_faults()
    assert row.get_attribute("data-status") == "waiting"
    assert page.evaluate("performance.timeOrigin") == opened_at  # no reload
    # SalesIQ told daphne A (and only A); A applied it and B's page shows it.
    assert source == "webhook"
    deliveries = [
        d
        for d in simulator.deliveries(delivered_since)
        if d["entity_id"] == chat["id"] and d["event"] == "conversation.created"
    ]
    assert [(d["url"], d["status"]) for d in deliveries] == [(roomy["webhook_url"], 200)]


# --- (b) exactly one worker a portal ----------------------------------------------------------


def test_it_polls_each_portal_from_exactly_one_worker(cluster, simulator):
    since = cluster.workers_started_seq
    for portal in ("roomy", "tight"):
        wait_for(
            lambda portal=portal: sum(polled_by(simulator, cluster, portal, since).values()) >= 3,
            timeout=30,
            what=f"a worker polling the {portal} portal",
        )
    # Both workers run all along; a few more rounds of polling go by.
    wait_for(
        lambda: sum(polled_by(simulator, cluster, "roomy", since).values()) >= 5,
        timeout=30,
        what="more polls of the roomy portal",
    )
    for worker in cluster.workers:
        assert worker.popen.poll() is None, f"{worker.name} stopped:\n{worker.tail()}"
        assert "started" in worker.log.read_text()

    for portal in ("roomy", "tight"):
        callers = polled_by(simulator, cluster, portal, since)
        holder = identity(cluster.lease_holder(portal))
        # The simulator saw one worker, and it is the one holding the lease.
        assert set(callers) == {holder}, (portal, callers, holder)


# --- (e) one action through both daphnes ------------------------------------------------------


def test_it_calls_salesiq_once_for_one_action_sent_through_both_daphnes(cluster, simulator):
    a, b = cluster.web("daphne-a"), cluster.web("daphne-b")
    roomy = cluster.portals["roomy"]
    desks = [signed_in(a.url), signed_in(b.url)]
    chat_pk, remote_id = wait_for(
        lambda: (
            cluster.sql(
                "SELECT id, remote_id FROM dashboard_chat WHERE portal_id = %s "
                "AND status = 'connected' ORDER BY id LIMIT 1",
                roomy["id"],
            )
            or [None]
        )[0],
        timeout=30,
        what="an open chat polled",
    )
    key = f"scale-out-{uuid.uuid4().hex}"
    # SalesIQ takes its time: the second process gets the form while the first is on its way.
    simulator.set_faults(portal=roomy["screen"], latency_ms=600)
    start = last_seq(simulator)
    together = threading.Barrier(2)

    def submit(n: int) -> requests.Response:
        base = (a, b)[n].url
        together.wait(timeout=10)
        return post_form(desks[n], f"{base}/live/chats/{chat_pk}/end/", {"idempotency_key": key})

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            answers = list(pool.map(submit, range(2)))
    finally:
        simulator.clear_faults()

    closes = [
        call
        for call in api_calls(simulator, roomy["screen"], start)
        if call["path"].endswith(f"/conversations/{remote_id}/close")
    ]
    assert len(closes) == 1, closes
    assert identity(closes[0]["user_agent"]) in {process_identity(a), process_identity(b)}
    action_ids = set()
    for answer in answers:
        assert answer.status_code == 200, answer.text
        action_ids.add(re.search(r'data-action="(\d+)"', answer.text)[1])
        # Both answers tell the outcome, not "sent".
        assert 'data-outcome="done"' in answer.text, answer.text
        assert "ended" in answer.text
    assert len(action_ids) == 1
    assert cluster.one("SELECT count(*) FROM dashboard_action WHERE key = %s", key) == 1


def test_it_sends_one_of_ten_transfers_of_a_chat_through_both_daphnes(cluster, simulator):
    """Ten browsers (five on each daphne) transfer the same chat at once, each with a form
    of their own (ten idempotency keys): the database lets one hold the chat; SalesIQ is
    asked once and the nine others are told it is already being transferred."""
    a, b = cluster.web("daphne-a"), cluster.web("daphne-b")
    roomy = cluster.portals["roomy"]
    desks = [signed_in((a, b)[n % 2].url) for n in range(10)]
    chat_pk, remote_id = wait_for(
        lambda: (
            cluster.sql(
                "SELECT id, remote_id FROM dashboard_chat WHERE portal_id = %s "
                "AND status = 'connected' ORDER BY id DESC LIMIT 1",
                roomy["id"],
            )
            or [None]
        )[0],
        timeout=30,
        what="an open chat polled",
    )
    department = cluster.one(
        "SELECT remote_id FROM dashboard_department WHERE portal_id = %s ORDER BY id LIMIT 1",
        roomy["id"],
    )
    simulator.set_faults(portal=roomy["screen"], latency_ms=1500)
    start = last_seq(simulator)
    together = threading.Barrier(len(desks))

    def submit(n: int) -> requests.Response:
        base = (a, b)[n % 2].url
        together.wait(timeout=20)
        return post_form(
            desks[n],
            f"{base}/live/chats/{chat_pk}/transfer/",
            {"idempotency_key": f"scale-out-lock-{uuid.uuid4().hex}", "department_id": department},
        )

    try:
        with ThreadPoolExecutor(max_workers=len(desks)) as pool:
            answers = list(pool.map(submit, range(len(desks))))
    finally:
        simulator.clear_faults()

    transfers = [
        call
        for call in api_calls(simulator, roomy["screen"], start)
        if call["path"].endswith(f"/conversations/{remote_id}/transfer")
    ]
    assert len(transfers) == 1, transfers
    assert [answer.status_code for answer in answers] == [200] * len(desks)
    # One user on every desk here (the cluster has one): "You are already transferring…".
    refused = [answer for answer in answers if "already transferring this chat" in answer.text]
    assert len(refused) == len(desks) - 1
    assert (
        cluster.one(
            "SELECT count(*) FROM dashboard_action WHERE chat_remote_id = %s "
            "AND kind = 'transfer' AND error_code = 'in_flight'",
            remote_id,
        )
        == len(desks) - 1
    )


# --- (d) the budget across every process ------------------------------------------------------


def _minute(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC).replace(second=0, microsecond=0)


def test_it_keeps_the_call_budget_across_every_process(cluster, simulator):
    a, b = cluster.web("daphne-a"), cluster.web("daphne-b")
    tight = cluster.portals["tight"]
    me = wait_for(
        lambda: cluster.one(
            "SELECT id FROM dashboard_operator WHERE portal_id = %s AND email = %s",
            tight["id"],
            f"admin@{tight['screen']}.example",
        ),
        timeout=60,
        what="the tight portal's operators polled",
    )
    desks = {a.url: signed_in(a.url), b.url: signed_in(b.url)}
    # A burst well inside one minute, so the minute it lands in is plain to see.
    wait_for(lambda: time.time() % 60 < 45, timeout=20, what="a minute with room for the burst")
    start = last_seq(simulator)

    def click(n: int) -> str:
        base = (a.url, b.url)[n % 2]
        answer = post_form(
            desks[base],
            f"{base}/live/operators/{me}/status/",
            {
                "idempotency_key": f"burst-{n}-{uuid.uuid4().hex}",
                "status": ("busy", "available")[n // 2 % 2],
            },
        )
        assert answer.status_code == 200, answer.text
        return re.search(r'data-outcome="(\w+)"', answer.text)[1] + (
            ":budget" if "call budget" in answer.text else ""
        )

    # One after another: one status change at a time per operator is the rule now, so
    # parallel clicks would be refused as in flight before they reach the budget.
    burst = TIGHT_BUDGET + 6
    outcomes = Counter(map(click, range(burst)))

    # Some clicks found the minute spent and said so; nothing went out for them.
    assert outcomes["failed:budget"] >= 1, outcomes
    assert set(outcomes) <= {"done", "failed:budget"}, outcomes
    sent = [
        c for c in api_calls(simulator, tight["screen"], start) if c["path"].endswith("/status")
    ]
    assert len(sent) == outcomes["done"]

    # Every call any process made for this portal, minute by minute: never over the budget.
    per_minute = Counter(_minute(call["time"]) for call in api_calls(simulator, tight["screen"]))
    assert max(per_minute.values()) <= TIGHT_BUDGET, per_minute
    # …and the burst's minute was used to the full, by both daphnes (and perhaps a worker).
    burst_minute = _minute(sent[0]["time"])
    assert per_minute[burst_minute] == TIGHT_BUDGET, per_minute
    # Only the web processes clicked; each of them spent from the same budget.
    callers = {identity(c["user_agent"]) for c in sent}
    assert callers <= {process_identity(a), process_identity(b)}, callers
    used = cluster.one(
        "SELECT used FROM siq_integration_callwindow WHERE portal_id = %s AND span = 'minute' "
        "AND starts_at = %s",
        tight["id"],
        burst_minute,
    )
    assert used == TIGHT_BUDGET


# --- (c) the lease holder dies ----------------------------------------------------------------


def test_it_hands_a_portal_over_when_its_worker_is_killed(cluster, simulator):
    b = cluster.web("daphne-b")
    roomy = cluster.portals["roomy"]
    holder = wait_for(lambda: cluster.lease_holder("roomy"), timeout=30, what="a lease holder")
    (dying,) = [w for w in cluster.workers if process_identity(w) == identity(holder)]
    (survivor,) = [w for w in cluster.workers if w is not dying]
    desk = signed_in(b.url)

    # Webhooks are paused: only polling can find the visitor who comes now.
    simulator.pause_webhooks()
    try:
        dying.popen.send_signal(signal.SIGKILL)
        dying.popen.wait(10)
        killed_at = time.monotonic()
        since = last_seq(simulator)
        chat = simulator.create_conversation(roomy["screen"], visitor_name="Came after the kill")
        wait_for(
            lambda: identity(cluster.lease_holder("roomy")) == process_identity(survivor),
            timeout=TAKEOVER_LIMIT,
            what=f"the survivor taking over within {TAKEOVER_LIMIT} s",
        )
        takeover = time.monotonic() - killed_at
        wait_for(
            lambda: any(c["id"] == chat["id"] for c in snapshot(desk, b.url, roomy["id"])["chats"]),
            timeout=20,
            what="the survivor's poll finding the new chat",
        )
    finally:
        simulator.resume_webhooks()
    print(f"takeover after {takeover:.1f} s")  # shown with -s
    callers = polled_by(simulator, cluster, "roomy", since)
    assert set(callers) == {process_identity(survivor)}, callers
    assert (
        cluster.one(
            "SELECT source FROM dashboard_chat WHERE portal_id = %s AND remote_id = %s",
            roomy["id"],
            chat["id"],
        )
        == "poll"
    )


# --- facts learnt at once ---------------------------------------------------------------------

# Sessions of their own (one database connection a thread, as processes would have) apply
# facts about the same new chat and operator at once; the higher n, the newer the fact.
APPLY_AT_ONCE = r"""
import json, threading
from datetime import timedelta

import django

django.setup()
from django.db import connections
from django.utils import timezone

from dashboard.state import apply
from dashboard.models import Chat, Operator
from siq_integration.models import Portal
from siq_integration.normalised import (
    ChatStatus, Conversation, Operator as Remote, OperatorStatus, OperatorSync, Visitor,
)

portal = Portal.objects.create(name="At once", data_center="sim")  # never connected
SESSIONS, ROUNDS = 6, 10
base = timezone.now()
errors = []


def learn(n, round_, together):
    fact_at = base + timedelta(seconds=n)
    chat = Conversation(
        id=f"c{round_}",
        status=ChatStatus.CONNECTED if n % 2 else ChatStatus.WAITING,
        visitor=Visitor(id="v", name=f"fact {n}"),
        started_at=base,
        operator_id="o" if n % 2 else "",
    )
    operator = Remote(
        id=f"o{round_}", name=f"fact {n}", email="", status=OperatorStatus.AVAILABLE,
        modified_at=fact_at,
    )
    try:
        together.wait(10)
        apply.apply_conversation(portal, chat, fact_at=fact_at, source="poll")
        apply.apply_operators(
            portal, OperatorSync(operators=[operator], sync_time=None, complete=False),
            taken_at=base,
        )
    except Exception as error:
        errors.append(f"{type(error).__name__}: {error}".splitlines()[0])
    finally:
        connections.close_all()


for round_ in range(ROUNDS):
    together = threading.Barrier(SESSIONS)
    threads = [
        threading.Thread(target=learn, args=(n, round_, together)) for n in range(SESSIONS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
newest = f"fact {SESSIONS - 1}"
print(json.dumps({
    "errors": errors[:3],
    "failed": len(errors),
    "chats": sorted(Chat.objects.filter(portal=portal).values_list("visitor_name", flat=True)),
    "operators": sorted(Operator.objects.filter(portal=portal).values_list("name", flat=True)),
    "newest": newest,
    "rounds": ROUNDS,
}))
"""


def test_it_keeps_the_newest_fact_when_processes_apply_at_once(cluster):
    result = subprocess.run(
        [sys.executable, "-c", APPLY_AT_ONCE],
        cwd=settings.BASE_DIR,
        env={**cluster.env, "DJANGO_SETTINGS_MODULE": "dashboard.settings", "LOG_LEVEL": "ERROR"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    # No creation lost to the unique constraint, no older fact saved over a newer one.
    assert seen["failed"] == 0, seen["errors"]
    assert seen["chats"] == [seen["newest"]] * seen["rounds"]
    assert seen["operators"] == [seen["newest"]] * seen["rounds"]


def test_it_logged_no_tracebacks(cluster):
    for process in cluster.processes:
        assert "Traceback" not in process.log.read_text(errors="replace"), (
            f"{process.name}:\n{process.tail(80)}"
        )


@pytest.fixture(autouse=True)
def _tails_on_failure(request, cluster):
    """On a failure, what each process said last (in the report's teardown section)."""
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed:
        sys.stderr.write(cluster.tails())
