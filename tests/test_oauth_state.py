"""The OAuth state is single-use under concurrency (issue 13): five parallel callbacks
with one state used to make five code exchanges, each sending the client secret. Each
parallel request loads the admin's session before any saves it, so the session cannot
decide; a DELETE of the state's row does, and only its winner talks to Zoho."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.urls import reverse

from siq_integration import exceptions as exc
from siq_integration import oauth
from siq_integration.models import OAuthState
from tests.support.portals import add_portal, new_sim_portal
from tests.support.portals import consent as consent_page
from tests.support.simulator import SIM_REDIRECT, consent, last_seq, token_calls

pytestmark = pytest.mark.django_db(transaction=True)

PARALLEL = 5
ALREADY_USED = "This sign-in link was already used; start again."


def in_parallel(work, count: int = PARALLEL) -> list:
    """Run ``work(n)`` in ``count`` threads at once; what each returned or raised."""
    results: list = [None] * count

    def run(n: int) -> None:
        try:
            results[n] = work(n)
        except Exception as error:
            results[n] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_parallel_callbacks_with_one_state_exchange_the_code_once(simulator, sim_portal):
    portal = sim_portal()
    session, params = consent(simulator, portal)
    start = last_seq(simulator)
    barrier = threading.Barrier(PARALLEL)

    def callback(n: int):
        copy = dict(session)  # each request loaded the session before any saved it
        barrier.wait()
        return oauth.complete_authorization(session=copy, params=params, redirect_uri=SIM_REDIRECT)

    results = in_parallel(callback)
    won = [r for r in results if isinstance(r, oauth.Authorization)]
    lost = [r for r in results if isinstance(r, exc.StateAlreadyUsed)]
    assert (len(won), len(lost)) == (1, PARALLEL - 1), results
    assert all(error.user_message == ALREADY_USED for error in lost)
    assert len(token_calls(simulator, start, "authorization_code")) == 1
    assert not OAuthState.objects.exists()  # claimed: nothing left to claim


def test_parallel_callbacks_through_the_page_connect_once(simulator, sim_settings, monkeypatch):
    """The same through the callback view, five browsers' worth of requests carrying the
    admin's one session cookie; the losers get a page that says what happened."""
    sim_settings.PUBLIC_BASE_URL = "http://127.0.0.1:1"
    admin = get_user_model().objects.create_superuser("ada", "ada@example.org", "pw-for-tests-1")
    client = Client()
    client.force_login(admin)
    screen = new_sim_portal(simulator)
    _pk, url = add_portal(client, name="Zylker", screen_name=screen)
    params = consent_page(simulator, url, account=f"admin@{screen}.example")
    start = last_seq(simulator)

    barrier = threading.Barrier(PARALLEL)
    loaded = oauth.pending_portal

    def pending_portal_then_wait(session, state):
        portal = loaded(session, state)  # the session is loaded by now
        barrier.wait()
        return portal

    monkeypatch.setattr(oauth, "pending_portal", pending_portal_then_wait)

    def callback(n: int):
        browser = Client()
        browser.cookies = client.cookies  # the same session
        return browser.get(reverse("oauth_callback"), params)

    responses = in_parallel(callback)
    assert not [r for r in responses if isinstance(r, Exception)], responses
    assert len(token_calls(simulator, start, "authorization_code")) == 1
    connected = [r for r in responses if r.status_code == 302]
    refused = [r for r in responses if r.status_code == 400]
    assert (len(connected), len(refused)) == (1, PARALLEL - 1)
    for response in refused:
        assert ALREADY_USED in response.content.decode()


def test_a_state_is_kept_by_its_hash_and_ages_out(simulator, sim_portal, settings):
    portal = sim_portal()
    session, params = consent(simulator, portal)
    (row,) = OAuthState.objects.all()
    assert params["state"] not in row.state_sha256 and len(row.state_sha256) == 64
    # Past its time the state cannot be claimed, even with the session entry.
    OAuthState.objects.update(created_at=row.created_at - oauth.STATE_TTL)
    with pytest.raises(exc.StateAlreadyUsed):
        oauth.complete_authorization(session=session, params=params, redirect_uri=SIM_REDIRECT)
    consent(simulator, portal)  # a new consent clears the aged rows
    assert OAuthState.objects.count() == 1
