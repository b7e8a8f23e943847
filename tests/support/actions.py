"""A connected chat ready for actions, posting them, the calls they made."""

from __future__ import annotations

from dashboard.models import Chat, Operator
from tests.support.simulator import synced

KEY = "errors-key-0123456789"


def scene(simulator, connected_portal, dialect: str) -> dict:
    portal = synced(connected_portal(dialect=dialect, open_chats=3, operators=5))
    state = simulator.state(portal.screen_name)["portals"][0]
    chat = Chat.objects.filter(portal=portal, status="connected").order_by("pk").first()
    others = [o for o in state["operators"] if o["id"] != chat.operator_id]
    target = next((o for o in others if o["presence"] == "online"), None)
    if target is None:
        # The simulator's world is random: now and then nobody else is online. One is.
        target = others[0]
        simulator.set_operator_status(target["id"], "available")
        synced(portal)
    if dialect == "v2":
        me = Operator.objects.get(portal=portal, email=f"admin@{portal.screen_name}.example")
    else:
        me = Operator.objects.filter(portal=portal).order_by("pk").first()
    return {
        "portal": portal,
        "chat": chat,
        "target": Operator.objects.get(portal=portal, remote_id=target["id"]),
        "department": state["departments"][0]["id"] if dialect == "v2" else "",
        "me": me,
    }


def post(browser, world, kind: str, key: str = KEY):
    chat, me = world["chat"], world["me"]
    if kind == "transfer":
        return browser.post(
            f"/live/chats/{chat.pk}/transfer/",
            {
                "idempotency_key": key,
                "department_id": world["department"],
                "operator_id": world["target"].remote_id,
                "note": "Please take over",
            },
        )
    if kind == "end":
        return browser.post(f"/live/chats/{chat.pk}/end/", {"idempotency_key": key})
    return browser.post(
        f"/live/operators/{me.pk}/status/", {"idempotency_key": key, "status": "busy"}
    )


def calls_to(simulator, portal, since, suffix=""):
    return [
        c
        for c in simulator.calls(since)
        if c["portal"] == portal.screen_name and c["path"].endswith(suffix)
    ]
