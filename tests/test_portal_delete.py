"""Deleting a portal: a page that counts what goes, SalesIQ let go of first (or the admin
told what is left there and allowed to delete anyway), everything of it gone here, and
the pages that watched it stop showing it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import requests
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from dashboard.alerts import lifecycle
from dashboard.alerts.conditions import Condition
from dashboard.alerts.rules import ensure_rules
from dashboard.asgi import application
from dashboard.models import (
    Action,
    ActionKind,
    ActionOutcome,
    Alert,
    AlertKind,
    Chat,
    ChatMessage,
    Escalation,
    Operator,
    PortalSync,
    Profile,
    Role,
)
from dashboard.realtime import publish
from dashboard.state import apply
from siq_integration import connecting
from siq_integration.client import SalesIQClient
from siq_integration.models import CallWindow, Portal, WebhookPublicKey
from tests.support.asgi import browser_headers, run_async
from tests.support.simulator import last_seq

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ada(client, sim_settings):
    sim_settings.PUBLIC_BASE_URL = "http://127.0.0.1:1"
    admin = get_user_model().objects.create_superuser("ada", "ada@example.org", "pw-for-tests-1")
    client.force_login(admin)
    return admin


def with_history(portal: Portal) -> Portal:
    """``portal`` connected at the simulator with what a day leaves: live state, a
    transcript, an alert escalated, an audit entry, the webhook and its key."""
    client = SalesIQClient(portal)
    now = timezone.now()
    apply.apply_departments(portal, client.list_departments(), taken_at=now)
    apply.apply_operators(portal, client.list_operators(), taken_at=now)
    apply.apply_chats(portal, client.list_open_conversations(), taken_at=now, complete=True)
    chat = Chat.objects.filter(portal=portal).first()
    apply.apply_transcript(chat, client.list_messages(chat.remote_id), fetched_at=now)
    rules = ensure_rules(portal)
    alert = lifecycle._raise(
        Condition(rules[AlertKind.LONG_WAIT], f"chat:{chat.remote_id}", "Long wait"), now
    )
    Escalation.objects.create(
        alert=alert, channel="email", destination="x@example.org", sent_at=now
    )
    Action.objects.create(
        key=f"k-{portal.pk}",
        username="ada",
        portal=portal,
        kind=ActionKind.END,
        chat=chat,
        outcome=ActionOutcome.DONE,
    )
    assert connecting.register_webhooks(portal, url=f"http://127.0.0.1:1/webhooks/{portal.pk}/")
    portal.refresh_from_db()
    return portal


def counted(html: str, name: str) -> int:
    match = re.search(rf'data-count="{name}">([\d,]+)<', html)
    assert match, f"no count of {name}"
    return int(match.group(1).replace(",", ""))


def test_it_says_what_goes_then_deletes_the_portal_and_its_history(
    simulator, connected_portal, client, ada
):
    portal = with_history(connected_portal(open_chats=3))
    other = with_history(connected_portal(open_chats=2))
    member = get_user_model().objects.create_user("sam", password="pw-long-x")
    Profile.objects.create(user=member, role=Role.SUPERVISOR).portals.add(portal, other)
    screen, access = portal.screen_name, portal.get_access_token()
    url = reverse("portal_delete", args=[portal.pk])

    page = client.get(url).content.decode()

    assert f"Delete {portal.name}?" in page
    assert counted(page, "chats") == Chat.objects.filter(portal=portal).count() == 3
    assert counted(page, "messages") == ChatMessage.objects.filter(chat__portal=portal).count() > 0
    assert counted(page, "operators") == Operator.objects.filter(portal=portal).count() > 0
    assert counted(page, "alerts") == 1 and counted(page, "escalations") == 1
    assert counted(page, "actions") == 1 and counted(page, "members") == 1
    assert "deletes" in page and "webhook registration in SalesIQ" in page
    assert "revokes its Zoho sign-in" in page
    assert "cannot be undone" in page
    start = last_seq(simulator)

    response = client.post(url)

    assert response["Location"] == reverse("portals")
    # SalesIQ let go of first: the webhook registration is gone and the grant revoked.
    assert simulator.state(screen)["portals"][0]["webhooks"] == []
    assert [c for c in simulator.calls(start) if c["path"].endswith("/token/revoke")]
    assert SalesIQClient(other).list_departments()  # the other portal still answers
    answer = requests.get(
        f"{simulator.data_center('sim')['api_url']}/api/v2/{screen}/departments",
        headers={"Authorization": f"Zoho-oauthtoken {access}"},
        timeout=5,
    )
    assert answer.json()["error"]["code"] == 1008
    # Everything of it here is gone; the other portal keeps all of its own.
    assert not Portal.objects.filter(pk=portal.pk).exists()
    for model in (Chat, Operator, Alert, Action, PortalSync, WebhookPublicKey, CallWindow):
        assert not model.objects.filter(portal_id=portal.pk).exists(), model.__name__
    assert not ChatMessage.objects.filter(chat__portal_id=portal.pk).exists()
    assert Chat.objects.filter(portal=other).count() == 2
    assert Alert.objects.filter(portal=other).count() == 1
    assert list(member.profile.portals.all()) == [other]
    followed = client.get(response["Location"]).content.decode()
    assert f"Deleted {portal.name} with its 3 chats, 1 alert and 1 audit entry." in followed
    assert portal.name not in followed.replace(f"Deleted {portal.name}", "")


def test_it_lets_the_admin_delete_anyway_when_salesiq_cannot_be_reached(
    simulator, connected_portal, client, ada
):
    portal = with_history(connected_portal(open_chats=1))
    url = reverse("portal_delete", args=[portal.pk])
    simulator.set_faults(portal=portal.screen_name, outage_seconds=60)
    try:
        refused = client.post(url)

        page = refused.content.decode()
        assert refused.status_code == 200
        assert "could not be reached, so nothing was deleted yet" in page
        assert "webhook registration could not be deleted at SalesIQ" in page
        assert "Delete anyway" in page
        assert Portal.objects.filter(pk=portal.pk).exists()

        response = client.post(url, {"anyway": "1"})
    finally:
        simulator.clear_faults()

    assert response["Location"] == reverse("portals")
    assert not Portal.objects.filter(pk=portal.pk).exists()
    assert not Chat.objects.filter(portal_id=portal.pk).exists()


def test_it_deletes_a_portal_that_is_not_connected_without_calling_salesiq(
    simulator, sim_portal, client, ada
):
    portal = sim_portal()
    start = last_seq(simulator)

    page = client.get(reverse("portal_delete", args=[portal.pk])).content.decode()
    assert "is not connected: there is nothing to undo at SalesIQ" in page
    client.post(reverse("portal_delete", args=[portal.pk]))

    assert not Portal.objects.exists()
    assert simulator.calls(start) == []


def test_it_lets_only_admins_delete(client, sim_portal, sim_settings):
    portal = sim_portal()
    sam = get_user_model().objects.create_user("sam", password="pw-long-x")
    Profile.objects.create(user=sam, role=Role.SUPERVISOR).portals.add(portal)
    client.force_login(sam)

    assert client.get(reverse("portal_delete", args=[portal.pk])).status_code == 403
    assert client.post(reverse("portal_delete", args=[portal.pk])).status_code == 403
    assert Portal.objects.filter(pk=portal.pk).exists()
    detail = client.get(reverse("portal_detail", args=[portal.pk])).content.decode()
    assert reverse("portal_delete", args=[portal.pk]) not in detail


# --- the pages watching it ------------------------------------------------------------------


def a_waiting_chat(portal: Portal, remote_id: str) -> Chat:
    now = timezone.now()
    return Chat.objects.create(
        portal=portal,
        remote_id=remote_id,
        status="waiting",
        visitor_name=f"Visitor of {portal.name}",
        started_at=now - timedelta(minutes=2),
        waiting_since=now - timedelta(minutes=2),
        fact_at=now,
        source="poll",
    )


def test_it_closes_the_pages_of_a_deleted_portal(connected_portal, ada):
    from channels.db import database_sync_to_async

    from dashboard.portals import portal_delete

    zylker, acme = connected_portal(), connected_portal()
    a_waiting_chat(acme, "a1")
    headers = browser_headers(ada)

    async def scenario():
        both = WebsocketCommunicator(
            application, f"/ws/live/?portals={zylker.pk},{acme.pk}", headers=headers
        )
        other = WebsocketCommunicator(
            application, f"/ws/live/?portals={zylker.pk}", headers=headers
        )
        for ws in (both, other):
            assert (await ws.connect(timeout=10))[0]
            await ws.receive_from(timeout=10)  # the snapshot
        await database_sync_to_async(portal_delete)(portal=acme, by_user=ada)
        closed = await both.receive_output(timeout=10)
        untouched = await other.receive_nothing(timeout=0.5)
        await other.disconnect()
        return closed, untouched

    closed, untouched = run_async(scenario)

    assert closed == {"type": "websocket.close", "code": 4410}
    assert untouched


def test_it_gives_the_pages_a_snapshot_without_a_portal_just_disconnected(
    simulator, connected_portal, client, ada
):
    from channels.db import database_sync_to_async

    zylker, acme = connected_portal(), connected_portal()
    mine, theirs = a_waiting_chat(zylker, "z1"), a_waiting_chat(acme, "a1")
    headers = browser_headers(ada)

    def disconnect() -> None:
        assert client.post(reverse("portal_disconnect", args=[acme.pk])).status_code == 302

    async def scenario():
        ws = WebsocketCommunicator(
            application, f"/ws/live/?portals={zylker.pk},{acme.pk}", headers=headers
        )
        assert (await ws.connect(timeout=10))[0]
        first = await ws.receive_from(timeout=10)
        await database_sync_to_async(disconnect)()
        then = await ws.receive_from(timeout=10)
        await ws.disconnect()
        return first, then

    first, then = run_async(scenario)

    assert f'id="chat-{theirs.pk}"' in first and f'id="chat-{mine.pk}"' in first
    assert 'id="chats-body" hx-swap-oob="true"' in then  # a whole snapshot
    assert f'id="chat-{theirs.pk}"' not in then and f'id="chat-{mine.pk}"' in then
    assert f"{acme.name}</strong> needs an admin" in then
    publish.portal_changed(acme.pk)  # nobody listening: no harm
