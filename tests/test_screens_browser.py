"""Every page in Chromium, in both themes: the theme the user chose is on every page before
it is painted, and the toggle is on every page.

The data is made to be awkward: two portals with long names, long visitor and operator names
(one with no space to break at), long e-mail addresses, a 150-character username, a handful
of open alerts and an audit trail with long parameters.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client
from django.utils import timezone

from dashboard import live
from dashboard.models import (
    ActionKind,
    ActionOutcome,
    AlertKind,
    Chat,
    Escalation,
    Operator,
    Profile,
    Role,
)
from siq_integration import connection, oauth
from siq_integration.models import Portal
from siq_integration.normalised import (
    ChatStatus,
    Conversation,
    Department,
    Message,
    OperatorStatus,
    OperatorSync,
    SenderType,
    Visitor,
)
from siq_integration.normalised import Operator as RemoteOperator
from siq_integration.normalised import Portal as RemotePortal
from tests.test_alert_history import raise_alert
from tests.test_audit import record
from tests.test_live_browser import ws_server  # noqa: F401 (the fixture: serve with websockets)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Width → height of the window: two phones, a tablet held upright, a laptop.
WINDOWS = {360: 740, 390: 844, 768: 1024, 1440: 900}
PHONE = 640  # at or below this width the drawer takes the whole screen
SHOTS = os.environ.get("SIQ_SCREENS_SHOTS", "")

LONG_USERNAME = ("supervisor.of.the.night.shift." + "x" * 150)[:150]
LONG_EMAIL = "maximiliana.alexandrina.featherstonehaugh-cholmondeley@customer-success.example.org"
UNBROKEN = "Wolfeschlegelsteinhausenbergerdorff-Featherstonehaugh-Cholmondeley-Smythe"
LONG_PLACE = "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch"
PORTAL_NAME = "Zylker Customer Success and Premium Support (Europe, Middle East and Africa)"
OTHER_PORTAL = "AcmeInternationalHoldingsWorldwideSalesAndServicePortal"
STATUSES = [
    OperatorStatus.AVAILABLE,
    OperatorStatus.BUSY,
    OperatorStatus.AWAY,
    OperatorStatus.OFFLINE,
]
NAMES = [
    "Maximiliana Featherstonehaugh",
    "Asha Rao",
    "Benedikt Okafor-Lindqvist",
    UNBROKEN,
    "Chloé Karimi",
    "Dmitri Alexandrovich Volkonsky",
]
VISITORS = [
    "Anastasia Papadopoulou-Richardson",
    "Bo Li",
    UNBROKEN,
    "Guillermo Fernández de la Cueva",
    "visitor 48213",
    "Sophie Müller-Lüdenscheidt",
    "Ng",
    "Oluwaseun Adebayo-Williams",
]


def build_world(portal: Portal) -> dict:
    """Two portals full of long names, alerts, an audit trail and the users who look."""
    Portal.objects.filter(pk=portal.pk).update(name=PORTAL_NAME)
    portal.refresh_from_db()
    other = Portal.objects.create(name=OTHER_PORTAL, data_center="us", screen_name="acme")
    now = timezone.now()
    departments = [
        Department(id="d1", name="Premium Enterprise Customer Success"),
        Department(id="d2", name="Billing"),
    ]
    for target in (portal, other):
        live.apply_departments(target, departments, taken_at=now)
        live.apply_operators(
            target,
            OperatorSync(
                operators=[
                    RemoteOperator(
                        f"o{i}",
                        name,
                        LONG_EMAIL if i == 0 else f"op{i}@example.org",
                        STATUSES[i % 4],
                        department_ids=("d1", "d2") if i % 2 else ("d1",),
                        max_chats=3,
                    )
                    for i, name in enumerate(NAMES)
                ],
                sync_time=None,
                complete=True,
            ),
            taken_at=now,
        )
        conversations = []
        for i, visitor in enumerate(VISITORS):
            connected = i % 3 != 0
            started = now - timedelta(minutes=3 + 7 * i)
            conversations.append(
                Conversation(
                    id=f"c{i}",
                    status=ChatStatus.CONNECTED if connected else ChatStatus.WAITING,
                    visitor=Visitor(
                        id=f"v{i}",
                        name=visitor,
                        email=LONG_EMAIL,
                        details={"city": LONG_PLACE},
                    ),
                    started_at=started,
                    operator_id=f"o{i % 2}" if connected else "",
                    operator_name=NAMES[i % 2] if connected else "",
                    department_id="d1",
                    department_name=departments[0].name,
                    attended_at=started + timedelta(seconds=40) if connected else None,
                    last_message=Message(
                        id=f"m{i}",
                        chat_id=f"c{i}",
                        sender_type=SenderType.VISITOR,
                        text="I was charged twice for https://zylker.example/orders/"
                        + "0123456789" * 6
                        + " and nobody answers",
                        sent_at=now,
                        sender_name=visitor,
                    ),
                )
            )
        live.apply_chats(target, conversations, taken_at=now, complete=True)

    chat = Chat.objects.get(portal=portal, remote_id="c2")  # the unbroken visitor name
    live.apply_transcript(
        chat,
        [
            Message("t1", "c2", SenderType.VISITOR, "Hello, my order " + "9" * 80, now, UNBROKEN),
            Message("t2", "c2", SenderType.OPERATOR, "Let me look at it.", now, NAMES[0]),
        ],
        fetched_at=now,
    )
    users = get_user_model().objects
    admin = users.create_superuser("ada", "ada@example.org", "pw-long-x")
    long_user = users.create_user(
        LONG_USERNAME,
        LONG_EMAIL,
        "pw-long-x",
        first_name="Maximiliana Alexandrina",
        last_name="Featherstonehaugh-Cholmondeley",
    )
    Profile.objects.create(user=long_user, role=Role.SUPERVISOR).portals.set([portal, other])
    viewer = users.create_user("viewer", "viewer@example.org", "pw-long-x")
    Profile.objects.create(user=viewer, role=Role.VIEWER).portals.set([portal])

    operator = Operator.objects.get(portal=portal, remote_id="o1")  # has chats: drain
    # A handful of open alerts: three critical waits, two unanswered messages, a busy operator.
    for chat_id in ("c0", "c3", "c6"):
        target = Chat.objects.get(portal=portal, remote_id=chat_id)
        raise_alert(
            portal,
            AlertKind.LONG_WAIT,
            ago=timedelta(minutes=4),
            title=f"{target.visitor_name} has waited 4 minutes for an operator",
            target=f"chat:{target.remote_id}",
            chat=target,
            detail=f"In {target.department_name}, nobody has picked up yet.",
        )
    for chat_id in ("c1", "c4"):
        target = Chat.objects.get(portal=portal, remote_id=chat_id)
        raise_alert(
            portal,
            AlertKind.UNANSWERED,
            ago=timedelta(minutes=6),
            title=f"{target.visitor_name}'s message is unanswered",
            target=f"chat:{target.remote_id}",
            chat=target,
            detail=target.last_message_text,
        )
    raise_alert(
        portal,
        AlertKind.OPERATOR_AWAY_WITH_CHATS,
        ago=timedelta(minutes=9),
        title=f"{NAMES[1]} is busy with open chats",
        target="operator:o1",
        operator=operator,
    )
    history = raise_alert(
        portal,
        AlertKind.LONG_CHAT,
        ago=timedelta(hours=3),
        title=f"The chat with {UNBROKEN} has run for 45 minutes",
        target="chat:gone",
        acknowledged_after=timedelta(minutes=2),
        by=long_user,
        resolved_after=timedelta(minutes=20),
        reason="The chat ended.",
        escalations=[
            (Escalation.Channel.EMAIL, LONG_EMAIL, ""),
            (
                Escalation.Channel.WEBHOOK,
                "https://hooks.slack.example/services/" + "A1" * 40,
                "HTTP 500: " + "no_service_" * 12,
            ),
        ],
    )

    record(
        portal,
        long_user,
        ActionKind.TRANSFER,
        ActionOutcome.DONE,
        ago=timedelta(minutes=5),
        chat_label=UNBROKEN,
        chat_remote_id="c2",
        operator_label=NAMES[3],
        operator_remote_id="o3",
        params={
            "department_id": "d1",
            "department_name": departments[0].name,
            "operator_name": UNBROKEN,
            "note": "https://zylker.example/orders/" + "0123456789" * 8,
        },
        message=f"{UNBROKEN} accepted the transfer.",
        confirmation="conversation.transfer.accepted",
        confirmed_at=now - timedelta(minutes=4),
    )
    drain = record(
        portal,
        admin,
        ActionKind.DRAIN,
        ActionOutcome.FAILED,
        ago=timedelta(minutes=2),
        operator_label=NAMES[1],
        operator_remote_id="o1",
        message="1 of 2 chats moved; SalesIQ did not answer about the other.",
        error_code="timeout",
        error_detail="ReadTimeout(" + "HTTPSConnectionPool/" * 12 + ")",
    )
    record(
        portal,
        admin,
        ActionKind.TRANSFER,
        ActionOutcome.DONE,
        ago=timedelta(minutes=2),
        parent=drain,
        chat_label=VISITORS[1],
        operator_label=NAMES[0],
    )

    return {
        "portal": portal,
        "other": other,
        "chat": chat,
        "operator": operator,
        "alert": history,
        "admin": admin,
        "long_user": long_user,
        "viewer": viewer,
    }


def session_of(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def pending_screen_name(session_key: str, portal: Portal) -> None:
    """A Zoho sign-in waiting in the admin's session for the screen name to be picked, as
    the OAuth callback leaves it when the account reaches several portals."""
    session = SessionStore(session_key=session_key)
    authorization = oauth.Authorization(
        portal_id=str(portal.pk),
        data_center=settings.SIQ_DATA_CENTERS["us"],
        accounts_url="https://accounts.zoho.com",
        tokens=oauth.TokenSet("access", "refresh", timezone.now() + timedelta(hours=1), ()),
    )
    choices = [
        RemotePortal("1", "zylkercustomersuccesspremiumsupportemea", PORTAL_NAME),
        RemotePortal("2", "acme", OTHER_PORTAL),
    ]
    connection.remember_pending(session, authorization, choices)
    session.save()


@pytest.fixture(autouse=True)
def no_push(monkeypatch):
    """The pages are served by the child process; nothing here publishes."""
    monkeypatch.setattr("dashboard.broadcast.send", lambda portal_id, html: None)


# --- the theme ---------------------------------------------------------------------------

AT_FIRST_BODY = """
window.themeAtFirstBody = "no body seen";
new MutationObserver((changes, observer) => {
  if (!document.body) return;
  window.themeAtFirstBody = document.documentElement.getAttribute("data-theme");
  observer.disconnect();
}).observe(document, { childList: true, subtree: true });
"""


def test_it_switches_the_theme_from_any_page_for_every_page(
    ws_server,  # noqa: F811
    browser,
    connected_portal,
):
    world = build_world(connected_portal())
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.add_init_script(AT_FIRST_BODY)
    context.add_cookies(
        [{"name": "sessionid", "value": session_of(world["admin"]), "url": ws_server}]
    )
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        def first(path: str) -> str | None:
            page.goto(f"{ws_server}{path}")
            return page.evaluate("window.themeAtFirstBody")

        def background() -> str:
            return page.evaluate("getComputedStyle(document.body).backgroundColor")

        assert first("/portals/") is None  # no choice yet: the system's theme
        light = background()
        page.click("[data-theme-toggle]")
        assert page.get_attribute("html", "data-theme") == "dark"
        assert page.get_attribute("[data-theme-toggle]", "aria-pressed") == "true"
        assert page.evaluate("localStorage.getItem('siq-theme')") == "dark"
        assert background() != light
        for path in ("/audit/", "/users/", "/alerts/", f"/portals/{world['portal'].pk}/", "/"):
            assert first(path) == "dark", path

        # The live page's toggle switches every page back.
        page.wait_for_function("window.SupervisorLive && SupervisorLive.stats.messages > 0")
        page.click("[data-theme-toggle]")
        assert page.get_attribute("html", "data-theme") == "light"
        assert first("/audit/") == "light"
        assert background() == light

        # The wallboard keeps a choice of its own, dark until someone chooses otherwise.
        assert first("/?wallboard=1") == "dark"
        page.click("[data-theme-toggle]")
        assert page.evaluate("localStorage.getItem('siq-theme-wallboard')") == "light"
        assert page.evaluate("localStorage.getItem('siq-theme')") == "light"
        page.click("[data-theme-toggle]")
        assert first("/?wallboard=1") == "dark"
        assert first("/users/") == "light"
        assert errors == []
    finally:
        context.close()
