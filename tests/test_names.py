"""One name per operator on every screen: the full name SalesIQ gives, namesakes told apart
the same way everywhere (the e-mail's local part, else the end of the SalesIQ id), chats
naming their operator by it, renames reaching every open chat; and the dashboard's own users
by their name, not their username."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import replace
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard.actions import services
from dashboard.alerts import lifecycle
from dashboard.alerts.rules import ensure_rules
from dashboard.models import Action, Chat, ChatMessage, Operator, Profile, Role
from dashboard.state import apply
from dashboard.users import shown_name
from siq_integration.models import Portal
from siq_integration.normalised import (
    ChatStatus,
    Conversation,
    Department,
    EventKind,
    Message,
    OperatorStatus,
    OperatorSync,
    SenderType,
    Visitor,
    WebhookEvent,
)
from siq_integration.normalised import Operator as RemoteOperator
from tests.factories import live_portal

pytestmark = pytest.mark.django_db

OLAFUR_8 = "Ólafur Novák (olafur.8)"
OLAFUR_9 = "Ólafur Novák (olafur.9)"


@pytest.fixture(autouse=True)
def no_push(monkeypatch):
    """Nothing listens in these tests; keep the publisher quiet."""
    monkeypatch.setattr("dashboard.realtime.publish.send", lambda portal_id, html: None)


def remote(
    remote_id: str,
    first: str,
    last: str,
    email: str,
    *,
    nick: str = "",
    status: OperatorStatus = OperatorStatus.AVAILABLE,
    departments: tuple[str, ...] = ("d1",),
) -> RemoteOperator:
    """An operator as the v2 dialect hands it over (the nickname is the first name, as in
    the demo: it is what every screen used to show)."""
    return RemoteOperator(
        id=remote_id,
        name=f"{first} {last}".strip(),
        email=email,
        status=status,
        department_ids=departments,
        max_chats=4,
        first_name=first,
        last_name=last,
        nick_name=nick or first,
    )


NAMESAKES = [
    remote("101", "Ólafur", "Novák", "olafur.8@zylker.example"),
    remote("102", "Ólafur", "Novák", "olafur.9@zylker.example"),
    remote("103", "Ólafur", "Arnalds", "olafur.3@zylker.example"),
    remote("104", "Renée", "Okafor", "renee.10@zylker.example", status=OperatorStatus.BUSY),
]


def make_portal(name: str = "Zylker") -> Portal:
    return live_portal(name=name, screen_name=name.lower())


def poll(
    portal: Portal, operators: list[RemoteOperator], *, complete: bool = True
) -> apply.Changes:
    return apply.apply_operators(
        portal, OperatorSync(operators, None, complete), taken_at=timezone.now()
    )


def shown(portal: Portal) -> dict[str, str]:
    return {op.remote_id: op.shown_name for op in Operator.objects.filter(portal=portal)}


def conversation(
    chat_id: str,
    operator: tuple[str, str] = ("", ""),
    *,
    department: tuple[str, str] = ("d1", "Sales"),
    minutes: float = 10,
) -> Conversation:
    started = timezone.now() - timedelta(minutes=minutes)
    return Conversation(
        id=chat_id,
        status=ChatStatus.CONNECTED if operator[0] else ChatStatus.WAITING,
        visitor=Visitor(id=f"v{chat_id}", name="Léa Fontaine"),
        started_at=started,
        attended_at=started + timedelta(seconds=30) if operator[0] else None,
        operator_id=operator[0],
        operator_name=operator[1],
        department_id=department[0],
        department_name=department[1],
    )


# --- display names ---------------------------------------------------------------------------


def test_it_shows_the_full_name_and_tells_namesakes_apart_by_their_email():
    portal = make_portal()
    poll(portal, NAMESAKES)
    assert shown(portal) == {
        "101": OLAFUR_8,
        "102": OLAFUR_9,
        "103": "Ólafur Arnalds",  # a first name shared is no reason to add anything
        "104": "Renée Okafor",
    }
    stored = Operator.objects.get(portal=portal, remote_id="101")
    assert (stored.name, stored.first_name, stored.last_name, stored.nick_name) == (
        "Ólafur Novák",
        "Ólafur",
        "Novák",
        "Ólafur",
    )


def test_it_falls_back_to_the_end_of_the_id_when_the_email_tells_no_difference():
    portal = make_portal()
    poll(
        portal,
        [
            remote("466756000000969001", "Renée", "Dubois", "renee@zylker.example"),
            remote("466756000000979001", "renée", "DUBOIS", "Renee@acme.example"),
            remote("466756000000989002", "Renée", "Dubois", ""),
        ],
    )
    assert shown(portal) == {
        # Names a supervisor cannot tell apart count as the same; so do "renee" and "Renee".
        "466756000000969001": "Renée Dubois (renee, id …69001)",
        "466756000000979001": "renée DUBOIS (Renee, id …79001)",
        "466756000000989002": "Renée Dubois (id …9002)",
    }
    # Stable: the same operators, the same names, nothing written again.
    assert poll(portal, [], complete=False).operators == set()
    assert shown(portal)["466756000000969001"] == "Renée Dubois (renee, id …69001)"


def test_it_tells_namesakes_apart_in_the_reference_dialect_too():
    portal = make_portal()
    poll(
        portal,
        [
            RemoteOperator("r1", "Sarah Lee", "sarah@acme.example", OperatorStatus.AVAILABLE),
            RemoteOperator("r2", "Sarah Lee", "sarah.lee@acme.example", OperatorStatus.AVAILABLE),
        ],
    )
    assert shown(portal) == {"r1": "Sarah Lee (sarah)", "r2": "Sarah Lee (sarah.lee)"}
    assert Operator.objects.get(portal=portal, remote_id="r1").first_name == ""


def test_it_marks_namesakes_when_one_arrives_and_unmarks_when_they_leave():
    portal = make_portal()
    poll(portal, NAMESAKES[:1] + NAMESAKES[2:])
    apply.apply_chats(
        portal,
        [conversation("c1", ("101", "Ólafur"))],
        taken_at=timezone.now(),
        complete=True,
    )
    chat = Chat.objects.get(remote_id="c1")
    assert chat.operator_name == "Ólafur Novák"

    changes = poll(portal, [NAMESAKES[1]], complete=False)  # a namesake joins (v2: changes only)
    assert shown(portal)["101"] == OLAFUR_8 and shown(portal)["102"] == OLAFUR_9
    chat.refresh_from_db()
    assert chat.operator_name == OLAFUR_8  # the open chat follows, and is published
    ids = set(Operator.objects.filter(remote_id__in=["101", "102"]).values_list("pk", flat=True))
    assert ids <= changes.operators and chat.pk in changes.chats

    changes = poll(portal, NAMESAKES[:1] + NAMESAKES[2:])  # and leaves (the full list)
    assert shown(portal)["101"] == "Ólafur Novák"
    chat.refresh_from_db()
    assert chat.operator_name == "Ólafur Novák" and chat.pk in changes.chats


def test_it_renames_open_chats_when_salesiq_says_an_operator_was_renamed():
    portal = make_portal()
    poll(portal, NAMESAKES)
    apply.apply_chats(
        portal,
        [conversation("c1", ("102", "Ólafur")), conversation("c2", ("104", "Renée"))],
        taken_at=timezone.now(),
        complete=True,
    )
    renamed = remote("102", "Óli", "Novák", "olafur.9@zylker.example")
    changes = apply.apply_event(
        portal,
        WebhookEvent(
            kind=EventKind.OPERATOR_UPDATED,
            name="operator.updated",
            dedupe_key="k1",
            occurred_at=timezone.now(),
            entity_id="102",
            operator=renamed,
            operator_id="102",
        ),
        received_at=timezone.now(),
    )
    # Not namesakes any more: both lose their mark, and Óli's chat says so.
    assert shown(portal)["102"] == "Óli Novák" and shown(portal)["101"] == "Ólafur Novák"
    chat = Chat.objects.get(remote_id="c1")
    assert chat.operator_name == "Óli Novák" and chat.pk in changes.chats
    assert Chat.objects.get(remote_id="c2").pk not in changes.chats  # untouched


def test_it_works_names_out_once_per_poll_from_what_the_poll_read():
    portal = make_portal()
    many = [remote(str(200 + n), "Ana", f"Núñez {n}", f"ana.{n}@z.example") for n in range(40)]
    poll(portal, many)
    # Every operator changes (presence), and one takes another's name.
    again = [
        remote(str(200 + n), "Ana", f"Núñez {n}", f"ana.{n}@z.example", status=OperatorStatus.BUSY)
        for n in range(40)
    ]
    again[0] = remote("200", "Ana", "Núñez 1", "ana.0@z.example", status=OperatorStatus.BUSY)
    with CaptureQueriesContext(connection) as queries:
        poll(portal, again, complete=False)
    assert shown(portal)["200"] == "Ana Núñez 1 (ana.0)"
    assert shown(portal)["201"] == "Ana Núñez 1 (ana.1)"
    operator_reads = [
        q
        for q in queries
        if q["sql"].startswith("SELECT") and 'FROM "dashboard_operator"' in q["sql"]
    ]
    # The status time (dashboard/figures/counting.py) reads its own columns once per poll.
    status_time = [q for q in operator_reads if "display_name" not in q["sql"].split(" FROM ")[0]]
    assert len(status_time) == 1
    assert len(operator_reads) - len(status_time) == 1  # the poll's own read; names need none more
    # The two new names written in one statement, not one per operator.
    renames = [q for q in queries if q["sql"].startswith("UPDATE") and "display_name" in q["sql"]]
    assert len(renames) == 1


# --- chats name their operator the same way -----------------------------------------------------


def test_it_names_a_chats_operator_by_display_name_not_by_salesiqs_attender_name():
    portal = make_portal()
    poll(portal, NAMESAKES)
    now = timezone.now()
    apply.apply_conversation(
        portal, conversation("c1", ("101", "Ólafur")), fact_at=now, source="poll"
    )
    chat = Chat.objects.get(remote_id="c1")
    assert chat.operator_name == OLAFUR_8

    # A message in the chat: SalesIQ names the attender by first name again; the chat keeps
    # the name every screen shows, and so does the transcript line.
    said = Message(
        id="m1",
        chat_id="c1",
        sender_type=SenderType.OPERATOR,
        text="Hello!",
        sent_at=now + timedelta(seconds=2),
        sender_id="101",
        sender_name="Ólafur",
    )
    later = replace(conversation("c1", ("101", "Ólafur")), last_message=said)
    apply.apply_conversation(portal, later, fact_at=now + timedelta(seconds=2), source="webhook")
    chat.refresh_from_db()
    assert chat.operator_name == OLAFUR_8
    assert ChatMessage.objects.get(chat=chat, remote_id="m1").sender_name == OLAFUR_8

    # Transferred to the namesake: the other name.
    apply.apply_conversation(
        portal,
        conversation("c1", ("102", "Ólafur")),
        fact_at=now + timedelta(seconds=5),
        source="webhook",
    )
    chat.refresh_from_db()
    assert chat.operator_name == OLAFUR_9


def test_it_names_the_operator_a_transfer_goes_to_by_display_name():
    from siq_integration.normalised import Transfer

    portal = make_portal()
    poll(portal, NAMESAKES)
    base = conversation("c1", ("101", "Ólafur"))
    moving = replace(
        base,
        transfer=Transfer(status="initiated", to_operator_id="102", to_operator_name="Ólafur"),
    )
    apply.apply_conversation(portal, moving, fact_at=timezone.now(), source="webhook")
    assert Chat.objects.get(remote_id="c1").transfer_to == OLAFUR_9


# --- every screen says the same -------------------------------------------------------------


@pytest.fixture
def owner(client):
    user = get_user_model().objects.create_superuser(
        "ada", "ada@example.org", "pw-long-x", first_name="Ada", last_name="Lovelace"
    )
    client.force_login(user)
    return user


@pytest.fixture
def zylker():
    portal = make_portal()
    apply.apply_departments(portal, [Department(id="d1", name="Sales")], taken_at=timezone.now())
    poll(portal, NAMESAKES)
    apply.apply_chats(
        portal,
        [
            conversation("c1", ("101", "Ólafur")),
            conversation("c2", ("101", "Ólafur")),
            conversation("c3", ("104", "Renée")),
        ],
        taken_at=timezone.now(),
        complete=True,
    )
    return portal


def text(fragment: str) -> str:
    """What a piece of HTML reads as (tags dropped, spaces collapsed)."""
    return " ".join(re.sub(r"<[^>]+>", " ", fragment).split())


def test_it_shows_namesakes_by_one_name_in_the_operators_panel_and_the_chats(client, owner, zylker):
    html = client.get("/").content.decode()
    buttons = re.findall(
        r'<button type="button" class="op-name operator-link"[^>]*>(.*?)</button>', html
    )
    names = [text(button) for button in buttons]
    assert OLAFUR_8 in names and OLAFUR_9 in names and "Ólafur Arnalds" in names
    for name in (OLAFUR_8, OLAFUR_9):
        assert f'data-name="{name}"' in html  # what the operator filter and sorting read
    rows = re.findall(r'<tr id="chat-\d+".*?</tr>', html, re.S)
    assert sum(f'data-operator-name="{OLAFUR_8}"' in row for row in rows) == 2
    cells = re.findall(r'<td class="c-operator">(.*?)</td>', html)
    assert sorted(text(cell) for cell in cells) == sorted([OLAFUR_8, OLAFUR_8, "Renée Okafor"])
    # Cut short on a narrow screen, the name gives way and the mark stays.
    assert (
        '<span class="person-name">Ólafur Novák</span> <span class="person-mark">(olafur.8)</span>'
        in html
    )


def test_it_shows_namesakes_by_the_same_name_in_the_transfer_picker(client, owner, zylker):
    chat = Chat.objects.get(remote_id="c3")
    html = client.get(f"/live/chats/{chat.pk}/transfer/").content.decode()
    picks = re.findall(
        r'<span class="pick-name" title="([^"]*)">(.*?)</span>\s*<span class="presence', html
    )
    names = [text(name) for _, name in picks]
    assert OLAFUR_8 in names and OLAFUR_9 in names and "Ólafur" not in names
    assert f"{OLAFUR_9} · olafur.9@zylker.example" in [title for title, _ in picks]


def test_it_shows_namesakes_by_the_same_name_in_the_drain_preview_and_outcome(
    client, owner, zylker
):
    operator = Operator.objects.get(portal=zylker, remote_id="101")
    panel = client.get(f"/live/operators/{operator.pk}/").content.decode()
    assert f"<h2>{OLAFUR_8}</h2>" in panel
    preview = client.get(f"/live/operators/{operator.pk}/drain/").content.decode()
    goes_to = [text(to) for to in re.findall(r'<span class="plan-to">(.*?)</span><input', preview)]
    assert len(goes_to) == 2 and set(goes_to) <= {OLAFUR_9, "Ólafur Arnalds"}
    assert f"Then {OLAFUR_8} is set Busy" in preview

    # Carried out (SalesIQ is not connected here: every step is refused), the outcome and the
    # note each transfer carries name them the same way, and who drained them by name.
    moves = re.findall(r'name="move" value="([^"]+)"', preview)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', preview).group(1)
    outcome = client.post(
        f"/live/operators/{operator.pk}/drain/", {"idempotency_key": key, "move": moves}
    ).content.decode()
    assert f"set {OLAFUR_8} Busy" in outcome
    notes = Action.objects.filter(kind="transfer").values_list("params__note", flat=True)
    assert set(notes) == {f"Moved from {OLAFUR_8} by Ada Lovelace"}
    targets = set(
        Action.objects.filter(kind="transfer").values_list("params__operator_name", flat=True)
    )
    assert targets <= {OLAFUR_9, "Ólafur Arnalds"}


def test_it_gives_the_display_name_and_the_raw_fields_in_the_json_snapshot(client, owner, zylker):
    body = client.get(f"/api/portals/{zylker.pk}/snapshot.json").json()
    operators = {op["id"]: op for op in body["operators"]}
    assert {
        key: operators["101"][key]
        for key in ("name", "full_name", "first_name", "last_name", "nick_name", "email")
    } == {
        "name": OLAFUR_8,
        "full_name": "Ólafur Novák",
        "first_name": "Ólafur",
        "last_name": "Novák",
        "nick_name": "Ólafur",
        "email": "olafur.8@zylker.example",
    }
    assert operators["103"]["name"] == "Ólafur Arnalds"
    chats = {chat["id"]: chat for chat in body["chats"]}
    assert chats["c1"]["operator"] == {"id": "101", "name": OLAFUR_8}


def test_it_records_and_exports_the_names_shown_in_the_audit(client, owner, zylker):
    operator = Operator.objects.get(portal=zylker, remote_id="102")
    # Refused before SalesIQ is asked (the v2 dialect sets only Available or Busy).
    services.operator_set_status(key="k" * 20, user=owner, operator=operator, status="away")
    chat = Chat.objects.get(remote_id="c3")
    services.chat_transfer(key="t" * 20, user=owner, chat=chat, operator_id="101")  # no department
    assert set(Action.objects.values_list("username", flat=True)) == {"Ada Lovelace"}

    page = client.get("/audit/").content.decode()
    assert f"Operator</span> {OLAFUR_9}" in page
    assert '<td class="audit-who">Ada Lovelace</td>' in page
    export = b"".join(client.get("/audit.csv").streaming_content).decode("utf-8-sig")
    rows = {row["action"]: row for row in csv.DictReader(io.StringIO(export))}
    assert rows["operator_status"]["target"] == f"operator: {OLAFUR_9}"
    assert rows["operator_status"]["user"] == "Ada Lovelace"
    assert '"operator_name": "' + OLAFUR_8 + '"' in rows["transfer"]["parameters"]


# --- the dashboard's own users ---------------------------------------------------------------


def test_it_names_users_by_their_name_else_their_username(owner):
    assert shown_name(owner) == "Ada Lovelace"
    plain = get_user_model().objects.create_user("sam", password="pw-for-tests-1")
    assert shown_name(plain) == "sam"


def test_it_shows_who_acknowledged_and_snoozed_by_name(client, owner, zylker):
    from dashboard.models import Alert, AlertKind
    from dashboard.realtime import render

    sam = get_user_model().objects.create_user(
        "sam", password="pw-for-tests-1", first_name="Sam", last_name="Okoye"
    )
    Profile.objects.create(user=sam, role=Role.SUPERVISOR).portals.set([zylker])
    rule = ensure_rules(zylker)[AlertKind.LONG_CHAT]
    chat = Chat.objects.get(remote_id="c1")
    alert = Alert.objects.create(
        portal=zylker,
        rule=rule,
        kind=rule.kind,
        severity=rule.severity,
        target="chat:c1",
        chat=chat,
        title="Léa Fontaine's chat has run 31 min",
        raised_at=timezone.now(),
    )
    lifecycle.snooze(alert, sam, 5)
    assert "Snoozed by Sam Okoye until" in render.render_alerts([alert.pk])
    lifecycle.acknowledge(alert, sam)
    alert.refresh_from_db()
    assert alert.acknowledged_by_name == "Sam Okoye"
    assert "Acknowledged by Sam Okoye" in render.render_alerts([alert.pk])
    assert "Ada Lovelace" in client.get("/").content.decode()  # the page's header, too
