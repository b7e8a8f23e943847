"""Who a portal's grant acts as in SalesIQ (v2 lets that user set only their own status):
learned from Zoho Accounts when the portal connects, or later for a portal connected before,
and said on the operator panel before anyone clicks a status button."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from dashboard.actions import services, status_rules
from dashboard.actions.drain import operator_drain
from dashboard.models import Chat, ChatStatus, Operator, Source
from dashboard.polling.runner import Worker
from siq_integration import oauth
from siq_integration.models import Portal
from tests.factories import make_portal
from tests.support.live import chat, fill
from tests.support.portals import (
    add_portal,
    admin_client,
    callback,
    consent,
    new_sim_portal,
)
from tests.support.simulator import last_seq, oauth_connect, synced

pytestmark = pytest.mark.django_db

__all__ = ["admin_client"]  # a fixture, used by name


@pytest.fixture
def admin(db):
    return get_user_model().objects.create_superuser("ada", "ada@example.org", "pw-for-tests-1")


@pytest.fixture(autouse=True)
def ask_afresh():
    """Each test asks Zoho Accounts as if for the first time in this process."""
    asked = status_rules._asked
    asked.clear()
    yield
    asked.clear()


def own_operator(portal) -> Operator:
    return Operator.objects.get(portal=portal, email=f"admin@{portal.screen_name}.example")


def user_info_calls(simulator, since: int) -> list[dict]:
    return [c for c in simulator.calls(since) if c["path"].endswith("/oauth/user/info")]


def test_it_learns_who_the_grant_acts_as_when_a_portal_connects(simulator, admin_client):
    screen = new_sim_portal(simulator)
    portal_id, url = add_portal(admin_client, screen_name=screen)
    callback(admin_client, consent(simulator, url, account=f"admin@{screen}.example"))

    portal = Portal.objects.get(pk=portal_id)
    admin_operator = next(
        o
        for o in simulator.state(screen)["portals"][0]["operators"]
        if o["email"].startswith("admin@")
    )
    assert portal.is_connected
    assert portal.connected_user_email == f"admin@{screen}.example"
    assert portal.connected_user_name == admin_operator["name"]
    # The operator is found among the operators once they are stored, by that e-mail.
    synced(portal)
    start = last_seq(simulator)
    assert status_rules.learn_connected_user(portal) == own_operator(portal)
    portal.refresh_from_db()
    assert portal.connected_user_id == own_operator(portal).remote_id
    assert user_info_calls(simulator, start) == []  # Zoho was asked once, while connecting


def test_it_learns_it_on_the_next_operators_poll_for_a_portal_connected_before(
    simulator, connected_portal
):
    portal = connected_portal(open_chats=1, operators=4)
    assert (portal.connected_user_id, portal.connected_user_email) == ("", "")
    start = last_seq(simulator)

    Worker().run_once()

    portal.refresh_from_db()
    me = own_operator(portal)
    assert portal.connected_user_id == me.remote_id
    assert portal.connected_user_email == me.email
    (call,) = user_info_calls(simulator, start)
    assert call["method"] == "GET"


def test_it_stays_unknown_and_asks_zoho_rarely_when_the_grant_cannot_say(simulator, sim_portal):
    simulator.configure_accounts(drop_scopes=[oauth.PROFILE_SCOPE])
    try:
        portal = oauth_connect(simulator, sim_portal(open_chats=1, operators=3))
    finally:
        simulator.configure_accounts(drop_scopes=[])
    synced(portal)
    start = last_seq(simulator)

    assert status_rules.learn_connected_user(portal) is None
    assert status_rules.learn_connected_user(portal) is None  # not asked again so soon

    portal.refresh_from_db()
    assert (portal.connected_user_id, portal.connected_user_email) == ("", "")
    assert len(user_info_calls(simulator, start)) == 1
    # A grant made before the dashboard asked for the scope is not asked at all.
    portal.granted_scopes = ",".join(oauth.scopes_for("v2"))
    status_rules._asked.clear()
    assert status_rules.learn_connected_user(portal) is None
    assert len(user_info_calls(simulator, start)) == 1


def panel(client, operator) -> str:
    response = client.get(f"/live/operators/{operator.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def test_it_offers_v2_status_buttons_only_for_the_connected_user(
    simulator, connected_portal, admin, client
):
    portal = synced(connected_portal(open_chats=0, operators=5))
    status_rules.learn_connected_user(portal)
    me = own_operator(portal)
    someone = Operator.objects.filter(portal=portal).exclude(pk=me.pk).first()
    Chat.objects.create(
        portal=portal,
        remote_id="c-1",
        status="connected",
        visitor_name="Uma",
        operator_id=someone.remote_id,
        fact_at=timezone.now(),
        source=Source.POLL,
    )
    client.force_login(admin)

    mine = panel(client, me)
    assert 'class="action-form status-form"' in mine and "data-status-rule" not in mine

    theirs = panel(client, someone)
    assert "status-form" not in theirs and 'name="status"' not in theirs
    assert (
        f"SalesIQ lets only {me.shown_name}, the user this portal is connected as, change their "
        f"own status here. Ask {someone.shown_name} to change it in SalesIQ, or drain their "
        "chats." in theirs.replace("&#x27;", "'")
    )
    # The drain stays on offer, and does not promise Busy.
    assert "data-drain-preview" in theirs and "then set them Busy" not in theirs
    # The server still refuses with SalesIQ's own answer if asked anyway.
    refused = services.operator_set_status(
        key="their-status-1234567", user=admin, operator=someone, status="busy"
    )
    assert refused.state == "refused" and refused.error_code == "NotOwnStatus"


def test_it_warns_before_the_click_while_the_connected_user_is_unknown(
    simulator, connected_portal, sim_portal, admin, client
):
    portal = synced(connected_portal(open_chats=0, operators=3))
    someone = Operator.objects.filter(portal=portal).exclude(pk=own_operator(portal).pk).first()
    client.force_login(admin)
    text = panel(client, someone)
    assert 'name="status"' in text
    assert "the dashboard does not know who that is: for anyone else SalesIQ refuses" in text

    # The reference dialect sets anyone's status: no caveat there.
    reference = synced(connected_portal(dialect="reference", open_chats=0, operators=3))
    anyone = Operator.objects.filter(portal=reference).first()
    text = panel(client, anyone)
    assert 'name="status"' in text and "data-status-rule" not in text


def test_it_leaves_the_status_alone_in_a_drain_salesiq_would_refuse(admin, client):
    portal = make_portal()
    # Asha's chat is in Support, where nobody else is available; the portal acts as Ben.
    fill(
        portal,
        [
            chat(
                "c2",
                status=ChatStatus.CONNECTED,
                visitor="Bo",
                operator=("o1", "Asha Rao"),
                department=("d2", "Support"),
            )
        ],
    )
    Portal.objects.filter(pk=portal.pk).update(
        connected_user_email="ben@example.org", connected_user_name="Ben Okafor"
    )
    asha = Operator.objects.get(portal=portal, remote_id="o1")
    client.force_login(admin)

    text = client.get(f"/live/operators/{asha.pk}/drain/").content.decode()
    assert "No chat can move now" in text and "There is nothing to do." in text
    assert "Asha Rao&#x27;s status stays as it is: SalesIQ lets only Ben Okafor" in text
    assert 'type="submit"' not in text
    drain = operator_drain(
        key="nothing-to-drain-123", user=admin, operator=Operator.objects.get(pk=asha.pk), moves=[]
    )
    assert drain.state == "refused" and not drain.steps.exists()
    assert drain.message == (
        "Nothing to do: there is no chat to move. Asha Rao's status stays as it is: SalesIQ lets "
        "only Ben Okafor, the user this portal is connected as, change their own status."
    )
