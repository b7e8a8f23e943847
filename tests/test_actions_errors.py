"""When SalesIQ (or the call budget) says no, and when the same action comes twice.

Each mapped SalesIQ error is injected with the simulator's faults, in the dialects where
it applies, and followed to the three places a supervisor meets it: the outcome the action
URL answers, the audit entry (outcome, code, technical detail), and the audit page. A
double submit (one after the other, or two at once) calls SalesIQ once.
"""

from __future__ import annotations

import html
import re
import threading
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from dashboard.actions.drain import operator_drain_plan
from dashboard.models import Action, Chat, Operator
from siq_integration.models import CallWindow
from tests.support.actions import KEY, calls_to, post, scene
from tests.support.simulator import last_seq

pytestmark = pytest.mark.django_db

TIME = r"\d\d:\d\d:\d\d UTC"


@pytest.fixture(autouse=True)
def no_faults_left(simulator):
    yield
    simulator.clear_faults()


@pytest.fixture
def admin(db):
    return get_user_model().objects.create_superuser("ada", "ada@example.org", "pw-for-tests-1")


@pytest.fixture
def browser(client, admin):
    client.force_login(admin)
    return client


def text_of(response) -> str:
    return html.unescape(response.content.decode())


# Where each call goes, per dialect: (method, path regex).
ROUTES = {
    ("v2", "transfer"): ("PUT", r"/conversations/\d+/transfer$"),
    ("v2", "end"): ("POST", r"/conversations/\d+/close$"),
    ("v2", "status"): ("PUT", r"/operators/\d+/status$"),
    ("reference", "transfer"): ("POST", r"/chats/\d+/transfer$"),
    ("reference", "end"): ("POST", r"/chats/\d+/end$"),
    ("reference", "status"): ("PATCH", r"/operators/\d+$"),
}

SUFFIXES = {
    ("v2", "transfer"): "/transfer",
    ("v2", "end"): "/close",
    ("v2", "status"): "/status",
    ("reference", "transfer"): "/transfer",
    ("reference", "end"): "/end",
    ("reference", "status"): "",
}

ALLOWED = (
    "SalesIQ does not allow this portal's connected user to {verb}. An admin can reconnect "
    "the portal as a SalesIQ Supervisor or Administrator."
)
OWN_STATUS = (
    "SalesIQ lets this portal's connected user change only their own status, so {me}'s "
    "status cannot be set from here. {me} can change it in SalesIQ; to free them now, drain "
    "their chats to other operators."
)
ENDED = "That chat has already ended."
NO_DEPARTMENT = "That department does not exist in SalesIQ any more. Pick another one."
NO_OPERATOR = "That operator is no longer part of this portal in SalesIQ. Pick another one."
OFFLINE = "{target} is offline and cannot take the chat. Pick someone available."
NO_ANSWER = (
    "SalesIQ gave no clear answer (an error or no reply), so the dashboard cannot tell "
    "whether it managed to {verb}. The live view shows it within seconds; try again "
    "only if nothing changed."
)
SLOW_DOWN = (
    "SalesIQ says too many requests came from this dashboard, so it did not {verb}. "
    f"Try again after {TIME}."
)

# (dialect, action, the fault, outcome, error_code (the failure's class), the sentence, the
# technical detail, where SalesIQ's own code stays)
CASES = [
    (
        "v2",
        "transfer",
        {"code": 1016},
        "refused",
        "PermissionDenied",
        ALLOWED,
        "PermissionDenied code=1016",
    ),
    (
        "v2",
        "end",
        {"code": 1016},
        "refused",
        "PermissionDenied",
        ALLOWED,
        "PermissionDenied code=1016",
    ),
    (
        "v2",
        "status",
        {"code": 1016},
        "refused",
        "NotOwnStatus",
        OWN_STATUS,
        "NotOwnStatus code=1016",
    ),
    ("v2", "end", {"code": 1019}, "refused", "ChatGone", ENDED, "ChatGone code=1019"),
    ("v2", "transfer", {"code": 1019}, "refused", "ChatGone", ENDED, "ChatGone code=1019"),
    (
        "v2",
        "transfer",
        {"code": 1025},
        "refused",
        "DepartmentGone",
        NO_DEPARTMENT,
        "DepartmentGone code=1025",
    ),
    (
        "v2",
        "transfer",
        {"code": 1020},
        "refused",
        "OperatorGone",
        NO_OPERATOR,
        "OperatorGone code=1020",
    ),
    (
        "v2",
        "transfer",
        {"code": 1024},
        "refused",
        "OperatorGone",
        NO_OPERATOR,
        "OperatorGone code=1024",
    ),
    (
        "v2",
        "transfer",
        {"code": 1023},
        "refused",
        "TooManyRequests",
        SLOW_DOWN,
        "TooManyRequests code=1023",
    ),
    ("v2", "end", {"code": 1001}, "failed", "Unavailable", NO_ANSWER, "Unavailable code=1001"),
    (
        "v2",
        "transfer",
        {"code": 1001, "http_status": 500},
        "failed",
        "Unavailable",
        NO_ANSWER,
        "Unavailable code=1001 http=500",
    ),
    (
        "v2",
        "status",
        {"code": 1001, "times": None},
        "failed",
        "Unavailable",
        NO_ANSWER,
        "Unavailable",
    ),
    (
        "reference",
        "transfer",
        {"code": "PERMISSION_DENIED"},
        "refused",
        "PermissionDenied",
        ALLOWED,
        "PermissionDenied code=PERMISSION_DENIED http=403",
    ),
    (
        "reference",
        "status",
        {"code": "PERMISSION_DENIED"},
        "refused",
        "PermissionDenied",
        ALLOWED,
        "PermissionDenied code=PERMISSION_DENIED http=403",
    ),
    (
        "reference",
        "end",
        {"code": "CHAT_NOT_ACTIVE"},
        "refused",
        "ChatNotActive",
        ENDED,
        "ChatNotActive code=CHAT_NOT_ACTIVE http=400",
    ),
    (
        "reference",
        "transfer",
        {"code": "CHAT_NOT_ACTIVE"},
        "refused",
        "ChatNotActive",
        ENDED,
        "ChatNotActive code=CHAT_NOT_ACTIVE",
    ),
    (
        "reference",
        "end",
        {"code": "RESOURCE_NOT_FOUND"},
        "refused",
        "ChatGone",
        ENDED,
        "ChatGone code=RESOURCE_NOT_FOUND http=404",
    ),
    (
        "reference",
        "transfer",
        {"code": "OPERATOR_OFFLINE"},
        "refused",
        "OperatorOffline",
        OFFLINE,
        "OperatorOffline code=OPERATOR_OFFLINE http=400",
    ),
    (
        "reference",
        "transfer",
        {"code": "INVALID_DEPARTMENT"},
        "refused",
        "DepartmentGone",
        NO_DEPARTMENT,
        "DepartmentGone code=INVALID_DEPARTMENT",
    ),
    (
        "reference",
        "transfer",
        {"code": "RATE_LIMIT_EXCEEDED"},
        "refused",
        "TooManyRequests",
        SLOW_DOWN,
        "TooManyRequests code=RATE_LIMIT_EXCEEDED http=429",
    ),
    (
        "reference",
        "end",
        {"code": "INTERNAL_ERROR"},
        "failed",
        "Unavailable",
        NO_ANSWER,
        "Unavailable code=INTERNAL_ERROR http=500",
    ),
]

VERBS = {"transfer": "transfer the chat", "end": "end the chat", "status": "x"}


def expected(sentence: str, world, kind: str) -> re.Pattern:
    words = sentence.format(verb=VERBS[kind], me=world["me"].name, target=world["target"].name)
    pattern = re.escape(words).replace(re.escape(TIME), TIME)
    if kind == "status":
        pattern = pattern.replace("x", "change the operator's status")
    return re.compile(pattern)


@pytest.mark.parametrize(
    ("dialect", "kind", "fault", "outcome", "code", "sentence", "detail"),
    CASES,
    ids=[f"{c[0]} {c[1]} {next(iter(c[2].values()))}" for c in CASES],
)
def test_it_says_what_salesiq_answered(
    simulator,
    connected_portal,
    browser,
    dialect,
    kind,
    fault,
    outcome,
    code,
    sentence,
    detail,
):
    world = scene(simulator, connected_portal, dialect)
    portal = world["portal"]
    method, path = ROUTES[(dialect, kind)]
    simulator.set_faults(
        portal=portal.screen_name, errors=[{"method": method, "path_regex": path, **fault}]
    )
    start = last_seq(simulator)

    response = post(browser, world, kind)

    words = expected(sentence, world, kind)
    # 1. The outcome the supervisor sees at once.
    assert response.status_code == 200
    assert words.search(text_of(response)), text_of(response)
    # 2. The audit entry.
    action = Action.objects.get(key=KEY)
    assert (action.outcome, action.error_code) == (outcome, code)
    assert words.fullmatch(action.message), action.message
    assert action.error_detail.startswith(detail), action.error_detail
    assert action.finished_at is not None
    # SalesIQ was asked once (an unsafe call is never repeated; a status change may be).
    asked = calls_to(simulator, portal, start, SUFFIXES[(dialect, kind)])
    assert asked and (kind == "status" or len(asked) == 1), asked
    if code in ("1023", "RATE_LIMIT_EXCEEDED"):  # the time the portal's calls resume
        portal.refresh_from_db()
        assert f"after {portal.rate_limited_until:%H:%M:%S} UTC." in action.message
    # 3. The audit page.
    page = text_of(browser.get("/audit/", {"portal": portal.pk}))
    assert words.search(page) and f"<code>{code}</code>" in page and detail in page
    # Nothing happened to the live state that SalesIQ did not do.
    chat = Chat.objects.get(pk=world["chat"].pk)
    assert chat.is_open


def test_it_cannot_tell_when_salesiq_never_answers(simulator, connected_portal, browser, settings):
    settings.SIQ_HTTP_READ_TIMEOUT = 0.3
    world = scene(simulator, connected_portal, "v2")
    simulator.set_faults(portal=world["portal"].screen_name, latency_ms=1200)

    response = post(browser, world, "end")

    action = Action.objects.get(key=KEY)
    words = expected(NO_ANSWER, world, "end")
    assert words.search(text_of(response)) and words.fullmatch(action.message)
    assert (action.outcome, action.error_code) == ("failed", "Unavailable")
    assert "took too long" not in action.message  # the supervisor's words, not the client's
    assert action.error_detail.startswith("Unavailable ReadTimeout on POST")
    # And rightly so: SalesIQ ended the chat after all, just too late to say so.
    simulator.clear_faults()
    deadline = timezone.now() + timedelta(seconds=5)
    ended = False
    while not ended and timezone.now() < deadline:
        time.sleep(0.1)
        chats = simulator.state(world["portal"].screen_name)["portals"][0]["conversations"]
        ended = any(c["id"] == world["chat"].remote_id and c["status"] == "closed" for c in chats)
    assert ended


def test_it_says_when_salesiq_fails_with_a_bare_5xx(simulator, connected_portal, browser):
    world = scene(simulator, connected_portal, "v2")
    simulator.set_faults(portal=world["portal"].screen_name, error_rate=1.0, error_kind="5xx")

    response = post(browser, world, "transfer")

    action = Action.objects.get(key=KEY)
    assert expected(NO_ANSWER, world, "transfer").search(text_of(response))
    assert (action.outcome, action.error_code) == ("failed", "Unavailable")
    assert action.error_detail.startswith("Unavailable http=500")


def test_it_sends_nothing_while_salesiq_asked_to_slow_down(simulator, connected_portal, browser):
    world = scene(simulator, connected_portal, "reference")
    portal = world["portal"]
    method, path = ROUTES[("reference", "transfer")]
    simulator.set_faults(
        portal=portal.screen_name,
        errors=[{"method": method, "path_regex": path, "code": "RATE_LIMIT_EXCEEDED"}],
    )
    post(browser, world, "transfer")
    portal.refresh_from_db()
    assert portal.rate_limited_until > timezone.now()
    reset = f"{portal.rate_limited_until:%H:%M:%S} UTC"
    # X-RateLimit-Reset as SalesIQ sent it (the simulator's minute ends on the minute).
    assert reset.endswith(":00 UTC") and reset in Action.objects.get(key=KEY).message
    start = last_seq(simulator)

    response = post(browser, world, "end", key=KEY + "-2")

    second = Action.objects.get(key=KEY + "-2")
    assert calls_to(simulator, portal, start) == []
    assert (second.outcome, second.error_code) == ("failed", "RateLimited")
    assert second.message == (
        f"Not sent: SalesIQ asked the dashboard to slow down; calls resume at {reset}."
    )
    assert second.message in text_of(response)


# --- the call budget ----------------------------------------------------------------------------


def use_up(portal, used: int) -> None:
    """Spend ``used`` calls of this minute's budget (and the next minute's, should the
    test straddle a minute boundary)."""
    now = timezone.now().replace(second=0, microsecond=0)
    for starts_at in (now, now + timedelta(minutes=1)):
        CallWindow.objects.update_or_create(
            portal=portal, span="minute", starts_at=starts_at, defaults={"used": used}
        )


def test_it_sends_nothing_when_the_budget_is_used_up(simulator, connected_portal, browser):
    world = scene(simulator, connected_portal, "v2")
    portal = world["portal"]
    portal.calls_per_minute = 3
    portal.save(update_fields=["calls_per_minute"])
    use_up(portal, 3)
    start = last_seq(simulator)

    response = post(browser, world, "end")

    action = Action.objects.get(key=KEY)
    assert calls_to(simulator, portal, start) == []
    assert (action.outcome, action.error_code) == ("failed", "BudgetExhausted")
    assert re.fullmatch(
        f"Not sent: This portal has used this minute's SalesIQ call budget; it returns at {TIME}.",
        action.message,
    )
    assert action.message in text_of(response)
    assert Chat.objects.get(pk=world["chat"].pk).is_open
    assert action.message in text_of(browser.get("/audit/"))


def test_it_acts_on_the_budget_background_work_may_not_touch(simulator, connected_portal, browser):
    world = scene(simulator, connected_portal, "v2")
    portal = world["portal"]
    portal.calls_per_minute = 10  # 3 of them kept for actions
    portal.save(update_fields=["calls_per_minute"])
    use_up(portal, 7)
    from siq_integration import budget
    from siq_integration import exceptions as exc

    with pytest.raises(exc.BudgetExhausted):
        budget.spend(portal)  # polling has to wait …
    start = last_seq(simulator)

    post(browser, world, "end")  # … a supervisor's click does not

    assert Action.objects.get(key=KEY).outcome == "done"
    assert len(calls_to(simulator, portal, start, "/close")) == 1


# --- the same action twice ----------------------------------------------------------------------


def test_it_calls_salesiq_once_for_a_double_submit(simulator, connected_portal, browser):
    world = scene(simulator, connected_portal, "v2")
    start = last_seq(simulator)

    first = post(browser, world, "transfer")
    second = post(browser, world, "transfer")

    assert first.status_code == second.status_code == 200
    (action,) = Action.objects.all()
    assert f'data-action="{action.pk}"' in first.content.decode()
    assert f'data-action="{action.pk}"' in second.content.decode()
    assert len(calls_to(simulator, world["portal"], start, "/transfer")) == 1


def test_it_drains_once_for_a_double_submit(simulator, connected_portal, browser):
    world = scene(simulator, connected_portal, "v2")
    busy = Operator.objects.get(portal=world["portal"], remote_id=world["chat"].operator_id)
    plan = operator_drain_plan(operator=busy)
    moves = [f"{m.chat.pk}:{m.to.pk}" for m in plan.movable]
    assert moves
    start = last_seq(simulator)

    for _ in range(2):
        answer = browser.post(
            f"/live/operators/{busy.pk}/drain/", {"idempotency_key": KEY, "move": moves}
        )
        assert answer.status_code == 200

    assert len(calls_to(simulator, world["portal"], start, "/transfer")) == len(moves)
    assert len(calls_to(simulator, world["portal"], start, "/status")) == 1
    assert Action.objects.filter(parent__isnull=True).count() == 1
    assert Action.objects.count() == 1 + len(moves) + 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["end", "transfer"])
def test_it_calls_salesiq_once_for_two_submits_at_once(simulator, connected_portal, admin, kind):
    from django.db import connections

    world = scene(simulator, connected_portal, "v2")
    portal = world["portal"]
    # SalesIQ takes its time: the second submit arrives while the first is on its way.
    simulator.set_faults(portal=portal.screen_name, latency_ms=400)
    browsers = [Client(), Client()]
    for each in browsers:
        each.force_login(admin)
    together = threading.Barrier(len(browsers))
    answers: list = [None] * len(browsers)
    start = last_seq(simulator)

    def submit(n: int) -> None:
        try:
            together.wait(timeout=10)
            answers[n] = post(browsers[n], world, kind)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(len(browsers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert [answer.status_code for answer in answers] == [200, 200]
    (action,) = Action.objects.all()
    assert action.outcome == "done", action.message
    for answer in answers:
        assert f'data-action="{action.pk}"' in answer.content.decode()
    suffix = "/close" if kind == "end" else "/transfer"
    assert len(calls_to(simulator, portal, start, suffix)) == 1
    # The one that found the attempt under way waited for it: both answers tell the outcome.
    outcomes = sorted(re.search(r'data-outcome="(\w+)"', a.content.decode())[1] for a in answers)
    assert outcomes == ["done", "done"]


def test_it_does_not_call_a_chat_ended_when_salesiq_lacks_the_operator(
    simulator, connected_portal, browser
):
    # The reference dialect answers 404 RESOURCE_NOT_FOUND for an unknown operator too.
    world = scene(simulator, connected_portal, "reference")
    chat = world["chat"]

    response = browser.post(
        f"/live/chats/{chat.pk}/transfer/",
        {"idempotency_key": KEY, "operator_id": "466756000999999999"},
    )

    action = Action.objects.get(key=KEY)
    assert (action.outcome, action.error_code) == ("refused", "NotFound")
    assert "Operator not found" in action.error_detail
    assert action.message == "SalesIQ no longer has that chat, operator or department."
    assert action.message in text_of(response)
    state = simulator.state(world["portal"].screen_name)["portals"][0]
    assert next(c for c in state["conversations"] if c["id"] == chat.remote_id)["status"] in (
        "connected",
        "active",
    )
