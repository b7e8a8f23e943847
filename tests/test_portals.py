"""Connecting portals through the views: every failure ends on a page that says what
happened and what to do, and nothing is half-saved."""

from __future__ import annotations

import json
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.urls import reverse

from siq_integration import oauth
from siq_integration.models import Portal, WebhookPublicKey
from tests.support.portals import (
    add_portal,
    admin_client,
    callback,
    consent,
    new_sim_portal,
)
from tests.support.simulator import last_seq

pytestmark = pytest.mark.django_db

__all__ = ["admin_client"]  # fixtures from tests/support


def connected(client, simulator, screen: str, *, name: str = "Zylker", **fields) -> Portal:
    """A portal added and connected through the pages, its screen name typed (v2)."""
    if fields.get("dialect") != "reference":
        fields.setdefault("screen_name", screen)
    pk, url = add_portal(client, name=name, **fields)
    response = callback(client, consent(simulator, url, account=f"admin@{screen}.example"))
    assert response["Location"] == reverse("portal_detail", args=[pk]), page_text(response)
    return Portal.objects.get(pk=pk)


def assert_nothing_saved() -> None:
    assert not Portal.objects.exists()
    assert not WebhookPublicKey.objects.exists()


def assert_not_connected(portal: Portal) -> None:
    portal.refresh_from_db()
    assert not portal.is_connected
    assert portal.access_token_encrypted == "" and portal.refresh_token_encrypted == ""
    assert portal.connected_at is None
    assert portal.webhook_id == ""
    assert not WebhookPublicKey.objects.filter(portal=portal).exists()


def page_text(response) -> str:
    return response.content.decode()


def revokes(simulator, since: int) -> list[dict]:
    return [c for c in simulator.calls(since) if c["path"].endswith("/token/revoke")]


# --- the happy paths ------------------------------------------------------------------------


def test_it_connects_a_v2_portal_picking_the_screen_name(simulator, admin_client):
    screen = new_sim_portal(simulator)
    other = new_sim_portal(simulator)  # the admin's Zoho account reaches both
    pk, url = add_portal(admin_client)
    assert url.startswith(simulator.data_center("sim")["accounts_url"])
    params = consent(simulator, url, account=f"admin@{screen}.example")

    response = callback(admin_client, params)
    assert response["Location"] == reverse("portal_screen_name", args=[pk])
    assert_nothing_saved()  # not until the admin has picked
    picker = page_text(admin_client.get(response["Location"]))
    assert screen in picker and other in picker

    response = admin_client.post(response["Location"], {"choice": screen})
    assert response["Location"] == reverse("portal_detail", args=[pk])
    portal = Portal.objects.get(pk=pk)
    assert portal.is_connected and portal.screen_name == screen and portal.name == "Zylker"
    # The webhook is registered through the API, with a public key stored.
    hooks = simulator.state(screen)["portals"][0]["webhooks"]
    assert [hook["url"] for hook in hooks] == [f"http://127.0.0.1:1/webhooks/salesiq/{pk}/"]
    assert WebhookPublicKey.objects.filter(portal=portal).count() == 1
    detail = page_text(admin_client.get(response["Location"]))
    assert "Connected" in detail and "Registered" in detail


def test_it_connects_a_typed_screen_name_without_asking(simulator, admin_client):
    screen = new_sim_portal(simulator)
    portal = connected(admin_client, simulator, screen)
    assert portal.is_connected
    # Who the grant acts as, from Zoho Accounts (v2 lets that user set only their own status).
    assert portal.connected_user_email == f"admin@{screen}.example"
    assert portal.connected_user_name and portal.connected_user_id == ""


def test_it_connects_a_reference_portal_with_an_hmac_secret(simulator, admin_client):
    screen = new_sim_portal(simulator, dialect="reference")
    pk, url = add_portal(admin_client, dialect="reference", name="Acme")
    assert "SalesIQ.chats.ALL" in parse_qs(urlsplit(url).query)["scope"][0]
    response = callback(admin_client, consent(simulator, url, account=f"admin@{screen}.example"))
    assert response["Location"] == reverse("portal_detail", args=[pk])
    portal = Portal.objects.get(pk=pk)
    assert portal.is_connected and portal.webhook_id
    assert len(portal.get_webhook_secret()) >= 32
    assert portal.get_webhook_secret() not in portal.webhook_secret_encrypted


def test_it_disconnects_and_reconnects_the_same_portal(simulator, admin_client):
    screen = new_sim_portal(simulator)
    portal = connected(admin_client, simulator, screen)
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
    assert Portal.objects.filter(name="Zylker").count() == 1  # the same portal, not a duplicate


# --- adding saves nothing until the portal is connected --------------------------------------


def test_it_saves_nothing_for_a_consent_never_answered(simulator, admin_client):
    new_sim_portal(simulator)
    pk, _url = add_portal(admin_client, name="Abandoned")  # the admin closes Zoho's tab

    assert_nothing_saved()
    assert "Abandoned" not in page_text(admin_client.get(reverse("portals")))
    assert "Nothing to supervise yet" in page_text(admin_client.get(reverse("home")))
    assert admin_client.get(reverse("portal_detail", args=[pk])).status_code == 404


def test_it_saves_nothing_when_the_consent_is_refused(simulator, admin_client):
    screen = new_sim_portal(simulator)
    _pk, url = add_portal(admin_client, screen_name=screen)
    params = consent(simulator, url, account=f"admin@{screen}.example", decision="deny")
    assert params["error"] == "access_denied"

    response = callback(admin_client, params)

    assert response.status_code == 400
    text = page_text(response)
    assert "not approved" in text and "Accept" in text and "Try connecting again" in text
    assert "Nothing was saved: Zylker was not added." in text
    assert_nothing_saved()


def test_it_tries_again_with_the_settings_it_was_given(simulator, admin_client):
    screen = new_sim_portal(simulator)
    pk, url = add_portal(
        admin_client,
        name="Zylker EU",
        screen_name=screen,
        plan="basic",
        client_id="1000.SIMULATOR",
        client_secret="sim-secret",
    )
    # The client secret waits in the session encrypted, as it would in the database.
    stored = json.dumps(dict(admin_client.session))
    assert "sim-secret" not in stored and pk in stored
    denied = consent(simulator, url, account=f"admin@{screen}.example", decision="deny")
    assert callback(admin_client, denied).status_code == 400

    retry = admin_client.post(reverse("portal_connect", args=[pk]))
    response = callback(
        admin_client, consent(simulator, retry["Location"], account=f"admin@{screen}.example")
    )

    assert response["Location"] == reverse("portal_detail", args=[pk])
    portal = Portal.objects.get()
    assert (portal.pk, portal.name, portal.plan) == (uuid.UUID(pk), "Zylker EU", "basic")
    assert portal.oauth_client_credentials() == ("1000.SIMULATOR", "sim-secret")
    assert portal.is_connected
    assert (
        oauth.DRAFTS_KEY not in admin_client.session
        or pk not in (admin_client.session[oauth.DRAFTS_KEY])
    )


def test_it_counts_the_calls_made_while_adding_in_the_new_portals_budget(simulator, admin_client):
    from siq_integration import budget

    screen = new_sim_portal(simulator)
    start = last_seq(simulator)
    portal = connected(admin_client, simulator, screen)

    api_calls = [c for c in simulator.calls(start) if c["path"].startswith("/api")]
    # Checking the grant (before the portal existed) and registering its webhook (after).
    assert len(api_calls) >= 7
    assert budget.usage(portal).day_used == len(api_calls)


def test_it_saves_nothing_when_picking_the_screen_name_is_cancelled(simulator, admin_client):
    screen = new_sim_portal(simulator)
    new_sim_portal(simulator)  # a second choice, so the admin is asked
    _pk, url = add_portal(admin_client)
    picker = callback(admin_client, consent(simulator, url, account=f"admin@{screen}.example"))
    start = last_seq(simulator)

    response = admin_client.post(picker["Location"], {"cancel": "1"})

    assert response["Location"] == reverse("portals")
    assert_nothing_saved()
    assert len(revokes(simulator, start)) == 1  # the unused grant went back to Zoho
    assert admin_client.get(picker["Location"]).status_code == 404  # nothing waits any more


# --- the same SalesIQ portal twice ------------------------------------------------------------


def assert_refused_as_a_duplicate(response, existing: Portal) -> str:
    assert response.status_code == 400
    text = page_text(response)
    assert f"is already in the dashboard as “{existing.name}”" in text
    assert f'href="/portals/{existing.pk}/"' in text
    assert "Nothing was saved" in text
    assert "Try connecting again" not in text
    return text


def test_it_refuses_a_second_portal_for_the_same_salesiq_portal(simulator, admin_client):
    screen = new_sim_portal(simulator)
    first = connected(admin_client, simulator, screen, name="Zylker support")
    hooks_before = simulator.state(screen)["portals"][0]["webhooks"]
    _pk, url = add_portal(admin_client, name="Zylker again", screen_name=screen)
    start = last_seq(simulator)

    response = callback(admin_client, consent(simulator, url, account=f"admin@{screen}.example"))

    text = assert_refused_as_a_duplicate(response, first)
    assert f"The SalesIQ portal “{screen}”" in text
    assert list(Portal.objects.all()) == [first]
    assert len(revokes(simulator, start)) == 1  # the new grant went back to Zoho
    assert simulator.state(screen)["portals"][0]["webhooks"] == hooks_before
    first.refresh_from_db()
    assert first.is_connected


def test_it_refuses_the_same_portal_picked_on_the_screen_name_page(simulator, admin_client):
    screen = new_sim_portal(simulator)
    new_sim_portal(simulator)
    first = connected(admin_client, simulator, screen, name="Zylker support")
    _pk, url = add_portal(admin_client, name="Zylker again")
    picker = callback(admin_client, consent(simulator, url, account=f"admin@{screen}.example"))

    response = admin_client.post(picker["Location"], {"choice": screen})

    assert_refused_as_a_duplicate(response, first)
    assert list(Portal.objects.all()) == [first]


def test_it_knows_the_same_portal_under_another_data_centre_code(
    simulator, admin_client, sim_settings
):
    from siq_integration.datacenters import DataCenter

    screen = new_sim_portal(simulator)
    first = connected(admin_client, simulator, screen, name="Zylker support")
    sim = sim_settings.SIQ_DATA_CENTERS["sim"]
    # An alias in SIQ_EXTRA_DATA_CENTERS: another code, the same SalesIQ address (written
    # differently), which an older portal was set up with.
    alias = DataCenter("sim-alias", "Simulator (alias)", sim.accounts_url, sim.api_url + "/")
    sim_settings.SIQ_DATA_CENTERS = {**sim_settings.SIQ_DATA_CENTERS, "sim-alias": alias}
    Portal.objects.filter(pk=first.pk).update(data_center="sim-alias", webhook_url="")
    _pk, url = add_portal(admin_client, name="Zylker again", screen_name=screen)

    response = callback(admin_client, consent(simulator, url, account=f"admin@{screen}.example"))

    assert_refused_as_a_duplicate(response, first)
    assert Portal.objects.count() == 1


def test_it_refuses_a_second_reference_portal_for_the_same_salesiq_portal(simulator, admin_client):
    screen = new_sim_portal(simulator, dialect="reference")
    first = connected(admin_client, simulator, screen, name="Acme", dialect="reference")
    _pk, url = add_portal(admin_client, name="Acme again", dialect="reference")

    response = callback(admin_client, consent(simulator, url, account=f"admin@{screen}.example"))

    text = assert_refused_as_a_duplicate(response, first)
    assert "reaches through the reference API" in text
    assert Portal.objects.count() == 1


def test_it_connects_another_salesiq_portal_beside_the_first(simulator, admin_client):
    first = connected(admin_client, simulator, new_sim_portal(simulator), name="Zylker")
    second = connected(admin_client, simulator, new_sim_portal(simulator), name="Acme")
    assert first.pk != second.pk and Portal.objects.count() == 2


# --- every failure: a page in words, nothing half-saved ------------------------------------


def test_it_refuses_a_replayed_callback(simulator, admin_client):
    screen = new_sim_portal(simulator)
    pk, url = add_portal(admin_client, screen_name=screen)
    params = consent(simulator, url, account=f"admin@{screen}.example")
    assert callback(admin_client, params).status_code == 302
    portal = Portal.objects.get(pk=pk)
    admin_client.post(reverse("portal_disconnect", args=[portal.pk]))

    replay = callback(admin_client, params)
    assert replay.status_code == 400
    assert "out of date or was already used" in page_text(replay)
    assert_not_connected(portal)


def test_it_refuses_a_forged_state(simulator, admin_client):
    screen = new_sim_portal(simulator)
    _pk, url = add_portal(admin_client, screen_name=screen)
    params = consent(simulator, url, account=f"admin@{screen}.example")
    response = callback(admin_client, {**params, "state": "forged"})
    assert response.status_code == 400
    assert "Start the connection again" in page_text(response)
    assert_nothing_saved()


def test_it_refuses_an_accounts_server_not_in_the_table(simulator, admin_client):
    screen = new_sim_portal(simulator)
    _pk, url = add_portal(admin_client, screen_name=screen)
    params = consent(simulator, url, account=f"admin@{screen}.example")
    start = last_seq(simulator)
    response = callback(
        admin_client, {**params, "accounts-server": "https://accounts.evil.example"}
    )
    assert response.status_code == 400
    assert "SIQ_EXTRA_DATA_CENTERS" in page_text(response)
    assert not [c for c in simulator.calls(start) if c["path"].endswith("/token")]
    assert_nothing_saved()


def test_it_explains_a_failed_exchange(simulator, admin_client):
    screen = new_sim_portal(simulator)
    pk, url = add_portal(
        admin_client, screen_name=screen, client_id="1000.SIMULATOR", client_secret="wrong"
    )
    response = callback(admin_client, consent(simulator, url, account=f"admin@{screen}.example"))
    assert response.status_code == 400
    assert "client id or secret" in page_text(response)
    assert "wrong" not in page_text(response)  # the secret is never shown
    assert f'href="/portals/add/?draft={pk}"' in page_text(response)  # change the settings
    assert_nothing_saved()


def test_it_explains_a_grant_without_refresh_token(simulator, admin_client):
    screen = new_sim_portal(simulator)
    portal = connected(admin_client, simulator, screen)
    admin_client.post(reverse("portal_disconnect", args=[portal.pk]))
    # Zoho gives a refresh token only on the first consent unless prompt=consent is sent.
    url = admin_client.post(reverse("portal_connect", args=[portal.pk]))["Location"]
    url = url.replace("&prompt=consent", "")
    response = callback(admin_client, consent(simulator, url, account=f"admin@{screen}.example"))
    assert response.status_code == 400
    assert "no refresh token" in page_text(response)
    assert_not_connected(portal)


def test_it_names_a_missing_scope_and_gives_the_grant_back(simulator, admin_client):
    screen = new_sim_portal(simulator)
    simulator.add_user(f"scant@{screen}.example", "sim", drop_scopes=["SalesIQ.conversations.READ"])
    _pk, url = add_portal(admin_client, screen_name=screen)
    start = last_seq(simulator)
    response = callback(admin_client, consent(simulator, url, account=f"scant@{screen}.example"))
    assert response.status_code == 400
    assert "without the SalesIQ.conversations.READ permission" in page_text(response)
    assert_nothing_saved()
    assert len(revokes(simulator, start)) == 1  # the refused grant went back to Zoho


def test_it_offers_the_reachable_portals_for_a_wrong_screen_name(simulator, admin_client):
    screen = new_sim_portal(simulator)
    _pk, url = add_portal(admin_client, screen_name="nosuchportal")
    response = callback(admin_client, consent(simulator, url, account=f"admin@{screen}.example"))
    picker = admin_client.get(response["Location"])
    text = page_text(picker)
    assert "cannot reach a SalesIQ portal named “nosuchportal”" in text
    assert screen in text
    assert_nothing_saved()


def test_it_keeps_the_old_connection_when_a_reconnect_fails(simulator, admin_client):
    screen = new_sim_portal(simulator)
    portal = connected(admin_client, simulator, screen)
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
    portal = connected(admin_client, simulator, screen)
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


def test_it_removes_the_never_connected_portals_older_versions_left_behind(db, sim_settings):
    import importlib

    from django.apps import apps
    from django.utils import timezone

    from dashboard.models import Chat

    cleanup = importlib.import_module("dashboard.migrations.0009_portals")
    now = timezone.now()
    leftover = Portal.objects.create(name="Refused", data_center="sim")
    with_history = Portal.objects.create(name="Old", data_center="sim")
    Chat.objects.create(
        portal=with_history, remote_id="c1", status="ended", fact_at=now, source="poll"
    )
    disconnected = Portal.objects.create(name="Off", data_center="sim", disconnected_at=now)
    live = Portal.objects.create(
        name="On", data_center="sim", refresh_token_encrypted="x", connected_at=now
    )

    cleanup.remove_never_connected(apps, None)

    assert set(Portal.objects.all()) == {with_history, disconnected, live}
    assert not Portal.objects.filter(pk=leftover.pk).exists()
