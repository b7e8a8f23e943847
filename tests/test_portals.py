"""Connecting portals through the views: every failure ends on a page that says what
happened and what to do, and nothing is half-saved."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth import get_user_model
from django.urls import reverse

from siq_integration.models import Portal, WebhookPublicKey
from tests.conftest import last_seq

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, sim_settings):
    sim_settings.PUBLIC_BASE_URL = "http://127.0.0.1:1"  # deliveries to here fail fast
    admin = get_user_model().objects.create_superuser("ada", "ada@example.org", "pw-for-tests-1")
    client.force_login(admin)
    return client


def new_sim_portal(simulator, *, dialect="v2", dc="sim") -> str:
    screen = f"p{uuid.uuid4().hex[:10]}"
    simulator.add_portal(screen, dialect=dialect, dc=dc, open_chats=2)
    return screen


def add_portal(client, **fields) -> tuple[Portal, str]:
    """Post the Add form; returns the portal and the consent URL it sends the admin to."""
    data = {"name": "Zylker", "data_center": "sim", "dialect": "v2", "plan": "professional"}
    data.update(fields)
    response = client.post(reverse("portal_add"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    portal = Portal.objects.get(name=data["name"])
    return portal, response["Location"]


def consent(simulator, url: str, *, account: str, decision: str = "accept") -> dict[str, str]:
    """The admin's answer on the simulator's consent page; returns the callback params."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    answer = requests.post(
        url.split("?")[0],
        data={**query, "decision": decision, "account": account},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.text
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}


def callback(client, params: dict[str, str]):
    return client.get(reverse("oauth_callback"), params)


def assert_nothing_saved(portal: Portal) -> None:
    portal.refresh_from_db()
    assert not portal.is_connected
    assert portal.access_token_encrypted == "" and portal.refresh_token_encrypted == ""
    assert portal.connected_at is None
    assert portal.webhook_id == ""
    assert not WebhookPublicKey.objects.filter(portal=portal).exists()


def page_text(response) -> str:
    return response.content.decode()


# --- the happy paths ------------------------------------------------------------------------


def test_it_connects_a_v2_portal_picking_the_screen_name(simulator, admin_client):
    screen = new_sim_portal(simulator)
    other = new_sim_portal(simulator)  # the admin's Zoho account reaches both
    portal, url = add_portal(admin_client)
    assert url.startswith(simulator.data_center("sim")["accounts_url"])
    params = consent(simulator, url, account=f"admin@{screen}.example")

    response = callback(admin_client, params)
    assert response["Location"] == reverse("portal_screen_name", args=[portal.pk])
    assert_nothing_saved(portal)  # not until the admin has picked
    picker = page_text(admin_client.get(response["Location"]))
    assert screen in picker and other in picker

    response = admin_client.post(response["Location"], {"choice": screen})
    assert response["Location"] == reverse("portal_detail", args=[portal.pk])
    portal.refresh_from_db()
    assert portal.is_connected and portal.screen_name == screen
    # The webhook is registered through the API, with a public key stored.
    hooks = simulator.state(screen)["portals"][0]["webhooks"]
    assert [hook["url"] for hook in hooks] == [f"http://127.0.0.1:1/webhooks/salesiq/{portal.pk}/"]
    assert WebhookPublicKey.objects.filter(portal=portal).count() == 1
    detail = page_text(admin_client.get(response["Location"]))
    assert "Connected" in detail and "Registered" in detail


def test_it_connects_a_typed_screen_name_without_asking(simulator, admin_client):
    screen = new_sim_portal(simulator)
    portal, url = add_portal(admin_client, screen_name=screen)
    response = callback(admin_client, consent(simulator, url, account=f"admin@{screen}.example"))
    assert response["Location"] == reverse("portal_detail", args=[portal.pk])
    portal.refresh_from_db()
    assert portal.is_connected
    # Who the grant acts as, from Zoho Accounts (v2 lets that user set only their own status).
    assert portal.connected_user_email == f"admin@{screen}.example"
    assert portal.connected_user_name and portal.connected_user_id == ""


def test_it_connects_a_reference_portal_with_an_hmac_secret(simulator, admin_client):
    screen = new_sim_portal(simulator, dialect="reference")
    portal, url = add_portal(admin_client, dialect="reference", name="Acme")
    assert "SalesIQ.chats.ALL" in parse_qs(urlsplit(url).query)["scope"][0]
    response = callback(admin_client, consent(simulator, url, account=f"admin@{screen}.example"))
    assert response["Location"] == reverse("portal_detail", args=[portal.pk])
    portal.refresh_from_db()
    assert portal.is_connected and portal.webhook_id
    assert len(portal.get_webhook_secret()) >= 32
    assert portal.get_webhook_secret() not in portal.webhook_secret_encrypted


def test_it_disconnects_and_reconnects_the_same_portal(simulator, admin_client):
    screen = new_sim_portal(simulator)
    portal, url = add_portal(admin_client, screen_name=screen)
    callback(admin_client, consent(simulator, url, account=f"admin@{screen}.example"))
    portal.refresh_from_db()
    access = portal.get_access_token()

    response = admin_client.post(reverse("portal_disconnect", args=[portal.pk]))
    assert response.status_code == 302
    portal.refresh_from_db()
    assert not portal.is_connected and portal.disconnected_at
    assert simulator.state(screen)["portals"][0]["webhooks"] == []
    dead = requests.get(
        f"{simulator.data_center('sim')['api_url']}/api/v2/{screen}/departments",
        headers={"Authorization": f"Zoho-oauthtoken {access}"},
        timeout=5,
    )
    assert dead.json()["error"]["code"] == 1008  # revoked at "Zoho"
    assert "Disconnected" in page_text(admin_client.get(reverse("portal_detail", args=[portal.pk])))

    response = admin_client.post(reverse("portal_connect", args=[portal.pk]))
    callback(
        admin_client, consent(simulator, response["Location"], account=f"admin@{screen}.example")
    )
    portal.refresh_from_db()
    assert portal.is_connected and portal.disconnected_at is None
    assert Portal.objects.filter(name="Zylker").count() == 1


# --- every failure: a page in words, nothing half-saved ------------------------------------


def test_it_refuses_a_replayed_callback(simulator, admin_client):
    screen = new_sim_portal(simulator)
    portal, url = add_portal(admin_client, screen_name=screen)
    params = consent(simulator, url, account=f"admin@{screen}.example")
    assert callback(admin_client, params).status_code == 302
    admin_client.post(reverse("portal_disconnect", args=[portal.pk]))

    replay = callback(admin_client, params)
    assert replay.status_code == 400
    assert "out of date or was already used" in page_text(replay)
    assert_nothing_saved(portal)


def test_it_refuses_a_forged_state(simulator, admin_client):
    screen = new_sim_portal(simulator)
    portal, url = add_portal(admin_client, screen_name=screen)
    params = consent(simulator, url, account=f"admin@{screen}.example")
    response = callback(admin_client, {**params, "state": "forged"})
    assert response.status_code == 400
    assert "Start the connection again" in page_text(response)
    assert_nothing_saved(portal)


def test_it_explains_a_refused_consent(simulator, admin_client):
    screen = new_sim_portal(simulator)
    portal, url = add_portal(admin_client, screen_name=screen)
    params = consent(simulator, url, account=f"admin@{screen}.example", decision="deny")
    response = callback(admin_client, params)
    assert response.status_code == 400
    text = page_text(response)
    assert "not approved" in text and "Accept" in text and "Try connecting again" in text
    assert_nothing_saved(portal)


def test_it_refuses_an_accounts_server_not_in_the_table(simulator, admin_client):
    screen = new_sim_portal(simulator)
    portal, url = add_portal(admin_client, screen_name=screen)
    params = consent(simulator, url, account=f"admin@{screen}.example")
    start = last_seq(simulator)
    response = callback(
        admin_client, {**params, "accounts-server": "https://accounts.evil.example"}
    )
    assert response.status_code == 400
    assert "SIQ_EXTRA_DATA_CENTERS" in page_text(response)
    assert not [c for c in simulator.calls(start) if c["path"].endswith("/token")]
    assert_nothing_saved(portal)


def test_it_explains_a_failed_exchange(simulator, admin_client):
    screen = new_sim_portal(simulator)
    portal, url = add_portal(
        admin_client, screen_name=screen, client_id="1000.SIMULATOR", client_secret="wrong"
    )
    response = callback(admin_client, consent(simulator, url, account=f"admin@{screen}.example"))
    assert response.status_code == 400
    assert "client id or secret" in page_text(response)
    assert "wrong" not in page_text(response)  # the secret is never shown
    assert_nothing_saved(portal)


def test_it_explains_a_grant_without_refresh_token(simulator, admin_client):
    screen = new_sim_portal(simulator)
    portal, url = add_portal(admin_client, screen_name=screen)
    callback(admin_client, consent(simulator, url, account=f"admin@{screen}.example"))
    admin_client.post(reverse("portal_disconnect", args=[portal.pk]))
    # Zoho gives a refresh token only on the first consent unless prompt=consent is sent.
    url = admin_client.post(reverse("portal_connect", args=[portal.pk]))["Location"]
    url = url.replace("&prompt=consent", "")
    response = callback(admin_client, consent(simulator, url, account=f"admin@{screen}.example"))
    assert response.status_code == 400
    assert "no refresh token" in page_text(response)
    assert_nothing_saved(portal)


def test_it_names_a_missing_scope_and_gives_the_grant_back(simulator, admin_client):
    screen = new_sim_portal(simulator)
    simulator.add_user(f"scant@{screen}.example", "sim", drop_scopes=["SalesIQ.conversations.READ"])
    portal, url = add_portal(admin_client, screen_name=screen)
    start = last_seq(simulator)
    response = callback(admin_client, consent(simulator, url, account=f"scant@{screen}.example"))
    assert response.status_code == 400
    assert "without the SalesIQ.conversations.READ permission" in page_text(response)
    assert_nothing_saved(portal)
    revokes = [c for c in simulator.calls(start) if c["path"].endswith("/token/revoke")]
    assert len(revokes) == 1  # the refused grant went back to Zoho


def test_it_offers_the_reachable_portals_for_a_wrong_screen_name(simulator, admin_client):
    screen = new_sim_portal(simulator)
    portal, url = add_portal(admin_client, screen_name="nosuchportal")
    response = callback(admin_client, consent(simulator, url, account=f"admin@{screen}.example"))
    picker = admin_client.get(response["Location"])
    text = page_text(picker)
    assert "cannot reach a SalesIQ portal named “nosuchportal”" in text
    assert screen in text
    assert_nothing_saved(portal)


def test_it_keeps_the_old_connection_when_a_reconnect_fails(simulator, admin_client):
    screen = new_sim_portal(simulator)
    portal, url = add_portal(admin_client, screen_name=screen)
    callback(admin_client, consent(simulator, url, account=f"admin@{screen}.example"))
    portal.refresh_from_db()
    before = portal.refresh_token_encrypted

    url = admin_client.post(reverse("portal_connect", args=[portal.pk]))["Location"]
    params = consent(simulator, url, account=f"admin@{screen}.example", decision="deny")
    response = callback(admin_client, params)
    assert response.status_code == 400
    assert "keeps its earlier, working connection" in page_text(response)
    portal.refresh_from_db()
    assert portal.is_connected and portal.refresh_token_encrypted == before


def test_it_reregisters_the_webhook_on_demand(simulator, admin_client):
    screen = new_sim_portal(simulator)
    portal, url = add_portal(admin_client, screen_name=screen)
    callback(admin_client, consent(simulator, url, account=f"admin@{screen}.example"))
    portal.refresh_from_db()
    first = portal.webhook_id
    response = admin_client.post(reverse("portal_webhook", args=[portal.pk]))
    assert response.status_code == 302
    portal.refresh_from_db()
    hooks = simulator.state(screen)["portals"][0]["webhooks"]
    assert [hook["id"] for hook in hooks] == [portal.webhook_id] != [first]


def test_it_validates_the_add_form_in_words(admin_client, settings):
    settings.ZOHO_CLIENT_ID = ""
    response = admin_client.post(
        reverse("portal_add"),
        {"name": "", "data_center": "sim", "dialect": "v2", "plan": "custom", "screen_name": "a b"},
    )
    assert response.status_code == 200
    text = page_text(response)
    assert "A custom plan needs both calls a minute and a day." in text
    assert "A screen name has no spaces or slashes." in text
    assert "ZOHO_CLIENT_ID is not set" in text
    assert not Portal.objects.exists()
