"""The Zoho OAuth round trip through the simulator on a real port."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from cryptography.fernet import Fernet
from django.db import connection
from django.utils import timezone

from siq_integration import exceptions as exc
from siq_integration import oauth
from siq_integration.client import SalesIQClient
from siq_integration.models import Portal
from tests.support.simulator import SIM_REDIRECT, consent, last_seq, oauth_connect, token_calls


def test_it_asks_zoho_for_offline_access_with_consent_and_comma_scopes(sim_portal):
    portal = sim_portal()
    session: dict = {}
    url = oauth.start_authorization(session=session, portal=portal, redirect_uri=SIM_REDIRECT)
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(f"{portal.data_center_entry.accounts_url}/oauth/v2/auth?")
    assert query["access_type"] == ["offline"]
    assert query["prompt"] == ["consent"]
    assert query["response_type"] == ["code"]
    assert query["client_id"] == ["1000.SIMULATOR"]
    # The scopes the portal needs, then messaging, updating the webhook's events and who
    # the grant acts as (asked for, never required).
    assert query["scope"][0].split(",") == [
        *oauth.scopes_for("v2"),
        "SalesIQ.conversations.CREATE",
        "SalesIQ.webhooks.UPDATE",
        "AaaServer.profile.READ",
    ]
    assert query["state"][0] in session[oauth.SESSION_KEY]


def test_it_asks_zoho_accounts_who_the_grant_acts_as(simulator, sim_portal):
    portal = oauth_connect(simulator, sim_portal(open_chats=0, operators=3))
    start = last_seq(simulator)

    user = oauth.connected_user(portal)

    admin = next(
        operator
        for operator in simulator.state(portal.screen_name)["portals"][0]["operators"]
        if operator["email"] == f"admin@{portal.screen_name}.example"
    )
    assert (user.email, user.name) == (admin["email"], admin["name"])
    assert user.zuid.isdigit()
    (call,) = [c for c in simulator.calls(start) if c["path"].endswith("/oauth/user/info")]
    assert call["method"] == "GET" and call["dc"] == portal.data_center
    assert oauth.may_read_profile(portal)


def test_it_says_so_when_zoho_will_not_say_who_the_grant_acts_as(simulator, sim_portal):
    simulator.configure_accounts(drop_scopes=[oauth.PROFILE_SCOPE])
    try:
        portal = oauth_connect(simulator, sim_portal(open_chats=0, operators=2))
    finally:
        simulator.configure_accounts(drop_scopes=[])
    assert portal.is_connected  # the profile scope is asked for, never required
    with pytest.raises(exc.OAuthError) as refused:
        oauth.connected_user(portal)
    assert refused.value.http_status == 401 and "invalid_oauthscope" in refused.value.detail


def test_it_connects_and_stores_tokens_encrypted(simulator, sim_portal):
    portal = oauth_connect(simulator, sim_portal())
    assert portal.is_connected
    assert portal.token_expires_at > timezone.now() + timedelta(minutes=50)
    assert portal.get_access_token().startswith("1000.")
    assert portal.get_access_token() not in portal.access_token_encrypted
    assert portal.get_refresh_token() not in portal.refresh_token_encrypted
    # And the token works: a real call through the client.
    assert SalesIQClient(portal).list_departments()


def test_it_exchanges_the_code_at_the_data_centre_the_callback_names(simulator, sim_portal):
    # The admin's Zoho account lives in sim-eu; the portal was added as sim.
    portal = sim_portal(dc="sim-eu")
    Portal.objects.filter(pk=portal.pk).update(data_center="sim")
    portal.refresh_from_db()
    start = last_seq(simulator)
    session, params = consent(simulator, portal)
    assert params["location"] == "sim-eu"
    assert params["accounts-server"] == simulator.data_center("sim-eu")["accounts_url"]

    authorization = oauth.complete_authorization(
        session=session, params=params, redirect_uri=SIM_REDIRECT
    )
    oauth.store_authorization(portal, authorization)

    exchanges = token_calls(simulator, start, "authorization_code")
    assert [call["dc"] for call in exchanges] == ["sim-eu"]
    portal.refresh_from_db()
    assert portal.data_center == "sim-eu"
    assert SalesIQClient(portal).list_departments()


def test_it_refuses_a_replayed_or_forged_callback(simulator, sim_portal):
    portal = sim_portal()
    session, params = consent(simulator, portal)
    oauth.complete_authorization(session=session, params=params, redirect_uri=SIM_REDIRECT)
    with pytest.raises(exc.StateMismatch):  # the same callback again
        oauth.complete_authorization(session=session, params=params, redirect_uri=SIM_REDIRECT)
    session, params = consent(simulator, portal)
    with pytest.raises(exc.StateMismatch):
        oauth.complete_authorization(
            session=session, params={**params, "state": "forged"}, redirect_uri=SIM_REDIRECT
        )
    with pytest.raises(exc.StateMismatch):  # another browser's session
        oauth.complete_authorization(session={}, params=params, redirect_uri=SIM_REDIRECT)


def test_it_says_what_happened_when_the_admin_denies(simulator, sim_portal):
    portal = sim_portal()
    session: dict = {}
    url = oauth.start_authorization(session=session, portal=portal, redirect_uri=SIM_REDIRECT)
    page = requests.get(url, timeout=10)
    assert page.status_code == 200 and 'id="deny"' in page.text
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    answer = requests.post(
        url.split("?")[0], data={**query, "decision": "deny"}, allow_redirects=False, timeout=10
    )
    params = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}
    assert params["error"] == "access_denied"
    with pytest.raises(exc.AuthorizationDenied) as caught:
        oauth.complete_authorization(session=session, params=params, redirect_uri=SIM_REDIRECT)
    assert "Accept" in caught.value.user_message
    portal.refresh_from_db()
    assert not portal.is_connected


def test_it_never_sends_the_code_to_an_accounts_server_it_does_not_know(simulator, sim_portal):
    portal = sim_portal()
    session, params = consent(simulator, portal)
    start = last_seq(simulator)
    with pytest.raises(exc.UnknownAccountsServer):
        oauth.complete_authorization(
            session=session,
            params={**params, "accounts-server": "https://accounts.evil.example"},
            redirect_uri=SIM_REDIRECT,
        )
    assert token_calls(simulator, start) == []


def test_it_explains_a_failed_exchange(simulator, sim_portal):
    portal = sim_portal(client_id="1000.SIMULATOR")
    portal.set_client_secret("not-the-secret")
    portal.save()
    session, params = consent(simulator, portal)
    with pytest.raises(exc.TokenExchangeFailed) as caught:
        oauth.complete_authorization(session=session, params=params, redirect_uri=SIM_REDIRECT)
    assert "client id or secret" in caught.value.user_message


def test_it_refuses_a_grant_without_a_refresh_token(simulator, sim_portal):
    portal = sim_portal()
    oauth_connect(simulator, portal)  # the first consent of this account
    session, params = consent(simulator, portal, drop_prompt=True)  # Zoho: no refresh token now
    with pytest.raises(exc.NoRefreshToken):
        oauth.complete_authorization(session=session, params=params, redirect_uri=SIM_REDIRECT)


def test_it_refreshes_an_expired_token_and_carries_on(simulator, connected_portal, settings):
    simulator.configure_accounts(token_ttl=2)
    settings.SIQ_TOKEN_REFRESH_MARGIN = 0
    try:
        portal = connected_portal()
    finally:
        simulator.configure_accounts(token_ttl=3600)
    first = portal.get_access_token()
    SalesIQClient(portal).list_departments()
    time.sleep(2.2)
    start = last_seq(simulator)
    SalesIQClient(portal).list_departments()
    assert len(token_calls(simulator, start, "refresh_token")) == 1
    portal.refresh_from_db()
    assert portal.get_access_token() != first


def test_it_recovers_when_salesiq_drops_the_token_early(simulator, connected_portal):
    portal = connected_portal()
    simulator.invalidate_tokens(portal.screen_name)
    start = last_seq(simulator)
    assert SalesIQClient(portal).list_departments()
    api = [c for c in simulator.calls(start) if "/api/v2/" in c["path"]]
    assert [c["error_code"] for c in api] == [1008, None]
    assert len(token_calls(simulator, start, "refresh_token")) == 1


def test_it_accepts_the_older_milliseconds_expiry(simulator, sim_portal):
    simulator.configure_accounts(legacy_expires_in=True)
    try:
        portal = oauth_connect(simulator, sim_portal())
    finally:
        simulator.configure_accounts(legacy_expires_in=False)
    lifetime = portal.token_expires_at - timezone.now()
    assert timedelta(minutes=55) < lifetime <= timedelta(hours=1)


@pytest.mark.django_db(transaction=True)
def test_it_refreshes_once_when_many_threads_need_a_token(simulator, connected_portal):
    portal = connected_portal()
    Portal.objects.filter(pk=portal.pk).update(
        token_expires_at=timezone.now() - timedelta(seconds=1)
    )
    start = last_seq(simulator)
    barrier = threading.Barrier(5)
    tokens, errors = [], []

    def worker():
        try:
            barrier.wait()
            tokens.append(oauth.access_token(Portal.objects.get(pk=portal.pk)))
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(set(tokens)) == 1
    assert len(token_calls(simulator, start, "refresh_token")) == 1


def test_it_stops_asking_zoho_after_the_token_limit(simulator, connected_portal):
    portal = connected_portal()
    start = last_seq(simulator)
    with pytest.raises(exc.TokenRefreshLimited) as caught:
        for _ in range(12):
            oauth.access_token(portal, rejected=portal.get_access_token())
    assert caught.value.retry_at > timezone.now() + timedelta(minutes=9)
    asked = len(token_calls(simulator, start, "refresh_token"))
    assert asked == 11  # ten granted, the eleventh refused
    with pytest.raises(exc.TokenRefreshLimited):
        oauth.access_token(portal, rejected=portal.get_access_token())
    assert len(token_calls(simulator, start, "refresh_token")) == asked  # not asked again


def test_it_revokes_at_zoho_and_wipes_the_tokens(simulator, connected_portal):
    portal = connected_portal()
    access, refresh = portal.get_access_token(), portal.get_refresh_token()
    oauth.revoke(portal)
    portal.refresh_from_db()
    assert not portal.is_connected and portal.access_token_encrypted == ""
    api = portal.data_center_entry.api_url
    answer = requests.get(
        f"{api}/api/v2/{portal.screen_name}/departments",
        headers={"Authorization": f"Zoho-oauthtoken {access}"},
        timeout=5,
    )
    assert answer.json()["error"]["code"] == 1008
    refreshed = requests.post(
        f"{portal.accounts_url}/oauth/v2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "client_id": "1000.SIMULATOR",
            "client_secret": "sim-secret",
        },
        timeout=5,
    )
    assert "error" in refreshed.json()
    with pytest.raises(exc.ReconnectNeeded):
        SalesIQClient(portal).list_departments()


def test_it_calls_a_wrong_encryption_key_an_error_not_a_token(
    simulator, connected_portal, settings
):
    portal = connected_portal()
    settings.TOKEN_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    start = last_seq(simulator)
    with pytest.raises(exc.TokenDecryptionError) as caught:
        SalesIQClient(Portal.objects.get(pk=portal.pk)).list_departments()
    assert "TOKEN_ENCRYPTION_KEYS" in caught.value.user_message
    assert simulator.calls(start) == []  # nothing was sent with a garbled token
