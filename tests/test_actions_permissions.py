"""Every action URL against every kind of visitor, the websocket, and CSRF.

anonymous → sent to sign in; a Viewer of the portal sees the forms read-only, and a
POST is refused (403), counted (dashboard.models.RefusalTally, nothing of what was typed),
never sent to SalesIQ; a Supervisor of another portal gets 404 and leaves no trace; a Supervisor of
the portal and an Admin act, and SalesIQ is called. Whatever a browser sends over the
websocket changes nothing.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from dashboard.actions.drain import operator_drain_plan
from dashboard.models import Action, Chat, Operator, Profile, RefusalTally, Role
from siq_integration.models import Portal
from tests.support.asgi import run_async
from tests.support.simulator import last_seq, synced

pytestmark = pytest.mark.django_db

WHO = ["anonymous", "viewer", "supervisor_elsewhere", "supervisor_here", "admin"]
KEY = "matrix-key-0123456789"


def make_users(here, elsewhere) -> dict:
    users = {}
    make = get_user_model().objects.create_user
    for name, role, portals in [
        ("viewer", Role.VIEWER, [here]),
        ("supervisor_elsewhere", Role.SUPERVISOR, [elsewhere]),
        ("supervisor_here", Role.SUPERVISOR, [here]),
    ]:
        user = make(name, password="pw-for-tests-1")
        Profile.objects.create(user=user, role=role).portals.set(portals)
        users[name] = user
    users["admin"] = get_user_model().objects.create_superuser("admin", "a@x.org", "pw-for-tests-1")
    return users


def build_world(simulator, connected_portal) -> dict:
    here = synced(connected_portal(open_chats=4, operators=6))
    elsewhere = Portal.objects.create(name="Elsewhere", data_center="sim", screen_name="x")
    state = simulator.state(here.screen_name)["portals"][0]
    chat = Chat.objects.filter(portal=here, status="connected").order_by("pk").first()
    me = Operator.objects.get(portal=here, email=f"admin@{here.screen_name}.example")
    busy = (
        Operator.objects.filter(
            portal=here,
            remote_id__in=Chat.objects.filter(portal=here, status="connected").values(
                "operator_id"
            ),
        )
        .exclude(pk=me.pk)
        .order_by("pk")
        .first()
    ) or me
    target = next(
        o for o in state["operators"] if o["presence"] == "online" and o["id"] != chat.operator_id
    )
    return {
        "here": here,
        "elsewhere": elsewhere,
        "users": make_users(here, elsewhere),
        "chat": chat,
        "me": me,  # the connected user's own operator: SalesIQ lets it set its status
        "busy": busy,  # an operator with open chats, to drain
        "department": state["departments"][0]["id"],
        "target": target["id"],
    }


@pytest.fixture
def world(simulator, connected_portal):
    return build_world(simulator, connected_portal)


def urls(world) -> dict[str, str]:
    chat, me, busy = world["chat"].pk, world["me"].pk, world["busy"].pk
    return {
        "transfer": f"/live/chats/{chat}/transfer/",
        "end": f"/live/chats/{chat}/end/",
        "operator": f"/live/operators/{busy}/",
        "status": f"/live/operators/{me}/status/",
        "drain": f"/live/operators/{busy}/drain/",
    }


def form(world, name: str) -> dict:
    data = {"idempotency_key": KEY}
    if name == "transfer":
        data.update(department_id=world["department"], operator_id=world["target"], note="Hi")
    elif name == "status":
        data["status"] = "busy"
    elif name == "drain":
        plan = operator_drain_plan(operator=world["busy"])
        data["move"] = [f"{m.chat.pk}:{m.to.pk}" for m in plan.movable]
    return data


# What SalesIQ must have been asked when the action is allowed (path suffixes).
CALLS = {
    "transfer": ["/transfer"],
    "end": ["/close"],
    "status": ["/status"],
    "drain": ["/status"],  # plus a transfer per chat moved
}

# (name, method, expected status per visitor in WHO order)
MATRIX = [
    ("transfer", "get", [302, 200, 404, 200, 200]),
    ("transfer", "post", [302, 403, 404, 200, 200]),
    ("end", "get", [302, 200, 404, 200, 200]),
    ("end", "post", [302, 403, 404, 200, 200]),
    ("operator", "get", [302, 200, 404, 200, 200]),
    ("operator", "post", [302, 405, 405, 405, 405]),
    ("status", "get", [302, 405, 405, 405, 405]),
    ("status", "post", [302, 403, 404, 200, 200]),
    ("drain", "get", [302, 200, 404, 200, 200]),
    ("drain", "post", [302, 403, 404, 200, 200]),
]


def as_(client, world, who):
    if who != "anonymous":
        client.force_login(world["users"][who])
    return client


def portal_calls(simulator, portal, since):
    return [c for c in simulator.calls(since) if c["portal"] == portal.screen_name]


@pytest.mark.parametrize(
    ("name", "method", "expected"), MATRIX, ids=[f"{m[1]} {m[0]}" for m in MATRIX]
)
@pytest.mark.parametrize("who", WHO)
def test_it_lets_each_visitor_do_only_their_part(
    client, simulator, world, who, name, method, expected
):
    url = urls(world)[name]
    data = form(world, name) if method == "post" else None
    start = last_seq(simulator)

    response = getattr(as_(client, world, who), method)(url, data)

    want = expected[WHO.index(who)]
    assert response.status_code == want, f"{who} {method.upper()} {url}"
    calls = portal_calls(simulator, world["here"], start)
    recorded = Action.objects.filter(key=KEY).first()
    if who == "anonymous":
        assert response["Location"].startswith("/login/?next=")
    if want == 200 and method == "get":
        submits = 'type="submit"' in response.content.decode()
        assert submits is (who != "viewer"), "a Viewer's forms are read-only"
    if want == 200 and method == "post":
        for suffix in CALLS[name]:
            assert any(c["path"].endswith(suffix) for c in calls), (suffix, calls)
        assert recorded is not None and recorded.user == world["users"][who]
        assert recorded.outcome in ("done", "refused", "failed")
        return
    assert calls == [], "SalesIQ must not be called"
    assert Action.objects.count() == 0, "nothing is recorded as an action"
    if want == 403:
        # The refused attempt is counted (who, where, what), nothing of what was typed.
        (tally,) = RefusalTally.objects.all()
        assert (tally.user, tally.portal, tally.kind, tally.count) == (
            world["users"]["viewer"],
            world["here"],
            {"status": "operator_status"}.get(name, name),
            1,
        )
    else:
        assert not RefusalTally.objects.exists()
    chat = Chat.objects.get(pk=world["chat"].pk)
    assert chat.is_open and chat.transfer_status in ("", None)
    assert Operator.objects.get(pk=world["me"].pk).status == world["me"].status


def test_it_counts_a_viewers_second_try_with_the_same_key_on_the_same_line(
    client, world, simulator
):
    client.force_login(world["users"]["viewer"])
    url = urls(world)["end"]
    start = last_seq(simulator)
    assert client.post(url, {"idempotency_key": KEY}).status_code == 403
    assert client.post(url, {"idempotency_key": KEY}).status_code == 403
    assert not Action.objects.exists()
    assert RefusalTally.objects.get().count == 2
    assert portal_calls(simulator, world["here"], start) == []


def test_it_refuses_to_reuse_a_key_for_another_action(client, world, simulator):
    client.force_login(world["users"]["admin"])
    assert client.post(urls(world)["end"], {"idempotency_key": KEY}).status_code == 200
    start = last_seq(simulator)
    again = client.post(urls(world)["status"], {"idempotency_key": KEY, "status": "busy"})
    assert again.status_code == 409
    assert portal_calls(simulator, world["here"], start) == []


# --- the websocket ---------------------------------------------------------------------------


def browser_headers(user) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    return [(b"cookie", cookie.encode()), (b"origin", b"http://localhost"), (b"host", b"localhost")]


def action_lookalikes(world) -> list[str]:
    chat, busy, me = world["chat"], world["busy"], world["me"]
    htmx = {"HX-Request": "true", "HX-Current-URL": "http://localhost/"}
    return [
        json.dumps({"action": "end", "chat": chat.pk, "idempotency_key": KEY}),
        json.dumps(
            {
                "action": "transfer",
                "chat_id": chat.pk,
                "department_id": world["department"],
                "operator_id": world["target"],
                "idempotency_key": KEY + "t",
            }
        ),
        # What htmx's ws extension sends for a form with ws-send: its fields plus HEADERS.
        json.dumps({"idempotency_key": KEY + "s", "status": "busy", "HEADERS": htmx}),
        json.dumps({"type": "live.html", "html": "<p>to everyone?</p>", "portal": "x"}),
        json.dumps({"url": f"/live/operators/{busy.pk}/drain/", "method": "POST", "move": ["1:2"]}),
        json.dumps({"url": f"/live/operators/{me.pk}/status/", "status": "offline"}),
        "not json {",
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["viewer", "supervisor_here", "admin"])
def test_it_ignores_actions_sent_over_the_websocket(simulator, connected_portal, who):
    from dashboard.asgi import application

    world = build_world(simulator, connected_portal)
    portal = world["here"]
    headers = browser_headers(world["users"][who])
    messages = action_lookalikes(world)
    before = {op.pk: op.status for op in Operator.objects.filter(portal=portal)}
    start = last_seq(simulator)

    async def scenario():
        from channels.testing import WebsocketCommunicator

        ws = WebsocketCommunicator(application, f"/ws/live/?portals={portal.pk}", headers=headers)
        connected, _ = await ws.connect(timeout=10)
        assert connected
        await ws.receive_from(timeout=10)  # the snapshot
        for text in messages:
            await ws.send_to(text_data=text)
        await ws.send_to(bytes_data=b'{"action":"end"}')
        # Nothing comes back (no echo, no outcome) and the socket stays open.
        assert await ws.receive_nothing(timeout=0.5)
        await ws.disconnect()

    run_async(scenario)

    assert portal_calls(simulator, portal, start) == []
    assert Action.objects.count() == 0
    assert Chat.objects.get(pk=world["chat"].pk).is_open
    assert {op.pk: op.status for op in Operator.objects.filter(portal=portal)} == before


# --- CSRF -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["transfer", "end", "status", "drain"])
def test_it_refuses_a_post_without_the_csrf_token(simulator, world, name):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(world["users"]["admin"])
    url = urls(world)[name]
    start = last_seq(simulator)

    refused = browser.post(url, form(world, name))

    assert refused.status_code == 403
    assert b"CSRF" in refused.content
    assert Action.objects.count() == 0
    assert portal_calls(simulator, world["here"], start) == []
    # The same post with the token the page gives is taken: the 403 was the token.
    browser.get("/portals/")  # any page sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    taken = browser.post(url, {**form(world, name), "csrfmiddlewaretoken": token})
    assert taken.status_code == 200
    assert Action.objects.filter(key=KEY).exists()
