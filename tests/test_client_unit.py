"""The client's choke point, with HTTP faked at the library level (responses)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import requests
import responses
from django.utils import timezone
from urllib3.exceptions import MaxRetryError, NewConnectionError

from siq_integration import exceptions as exc
from siq_integration.budget import Priority
from siq_integration.client import SalesIQClient
from siq_integration.models import Portal
from siq_integration.normalised import ChatStatus
from tests.factories import token_portal

API = "https://salesiq.zoho.eu/api/v2/zylker"
TOKEN_URL = "https://accounts.zoho.eu/oauth/v2/token"


@pytest.fixture
def portal(db):
    return token_portal()


def conversation(n: int) -> dict:
    return {
        "id": str(466756000000969000 + n),
        "status": "waiting",
        "chat_status": {"state_key": "waiting"},
    }


@responses.activate
def test_it_sends_the_zoho_header_and_unwraps_the_envelope(portal):
    responses.get(
        f"{API}/conversations/466756000000969001",
        json={"object": "conversation", "data": conversation(1)},
    )
    chat = SalesIQClient(portal).get_conversation("466756000000969001")
    assert chat.id == "466756000000969001"
    assert chat.status is ChatStatus.WAITING
    assert responses.calls[0].request.headers["Authorization"] == "Zoho-oauthtoken 1000.first"


@responses.activate
def test_it_retries_a_read_after_a_server_error(portal):
    url = f"{API}/conversations/1"
    responses.get(url, status=502, body="<html>bad gateway</html>")
    responses.get(url, json={"error": {"code": 1001, "message": "Unknown"}})
    responses.get(url, json={"data": conversation(1)})
    assert SalesIQClient(portal).get_conversation("1").id.endswith("001")
    assert len(responses.calls) == 3


@responses.activate
def test_it_gives_up_a_read_after_the_configured_attempts(portal, settings):
    settings.SIQ_RETRY_ATTEMPTS = 2
    responses.get(f"{API}/conversations/1", status=503)
    with pytest.raises(exc.Unavailable):
        SalesIQClient(portal).get_conversation("1")
    assert len(responses.calls) == 2
    portal.refresh_from_db()
    assert portal.current_error == "SalesIQ is not answering right now."


@responses.activate
def test_it_never_resends_a_transfer_that_may_have_happened(portal):
    responses.put(f"{API}/conversations/1/transfer", status=500)
    with pytest.raises(exc.Unavailable):
        SalesIQClient(portal, priority=Priority.ACTION).transfer("1", department_id="9")
    assert len(responses.calls) == 1


@responses.activate
def test_it_resends_a_transfer_that_never_left(portal):
    refused = requests.ConnectionError(
        MaxRetryError(
            None, f"{API}/conversations/1/transfer", reason=NewConnectionError(None, "refused")
        )
    )
    responses.put(f"{API}/conversations/1/transfer", body=refused)
    responses.put(f"{API}/conversations/1/transfer", json={"data": conversation(1)})
    SalesIQClient(portal, priority=Priority.ACTION).transfer("1", department_id="9", note="VIP")
    assert len(responses.calls) == 2
    assert json.loads(responses.calls[1].request.body) == {"department_id": "9", "note": "VIP"}


@responses.activate
def test_it_refreshes_once_when_the_token_is_refused(portal):
    url = f"{API}/departments"
    responses.get(url, json={"error": {"code": 1008, "message": "Invalid OAuthToken."}})
    responses.post(
        TOKEN_URL,
        json={
            "access_token": "1000.second",
            "token_type": "Bearer",
            "expires_in": 3600,
            "api_domain": "https://www.zohoapis.eu",
        },
    )
    responses.get(url, json={"data": [{"id": "11", "name": "Sales"}]})
    departments = SalesIQClient(portal).list_departments()
    assert [d.name for d in departments] == ["Sales"]
    assert responses.calls[2].request.headers["Authorization"] == "Zoho-oauthtoken 1000.second"
    refresh = dict(x.split("=") for x in responses.calls[1].request.body.split("&"))
    assert refresh["grant_type"] == "refresh_token"
    assert refresh["refresh_token"] == "1000.refresh"
    portal.refresh_from_db()
    assert portal.get_access_token() == "1000.second"
    assert "1000.second" not in portal.access_token_encrypted


@responses.activate
def test_it_says_reconnect_when_a_fresh_token_is_refused_too(portal):
    responses.get(
        f"{API}/departments", json={"error": {"code": 1008, "message": "Invalid OAuthToken."}}
    )
    responses.post(
        TOKEN_URL, json={"access_token": "1000.second", "token_type": "Bearer", "expires_in": 3600}
    )
    with pytest.raises(exc.TokenInvalid) as caught:
        SalesIQClient(portal).list_departments()
    assert "reconnect" in caught.value.user_message
    assert len([c for c in responses.calls if c.request.url.startswith(API)]) == 2


@responses.activate
def test_it_refreshes_before_expiry_not_after(portal, settings):
    settings.SIQ_TOKEN_REFRESH_MARGIN = 300
    Portal.objects.filter(pk=portal.pk).update(
        token_expires_at=timezone.now() + timedelta(seconds=120)
    )
    responses.post(
        TOKEN_URL, json={"access_token": "1000.early", "token_type": "Bearer", "expires_in": 3600}
    )
    responses.get(f"{API}/departments", json={"data": []})
    SalesIQClient(portal).list_departments()
    assert responses.calls[0].request.url == TOKEN_URL
    assert responses.calls[1].request.headers["Authorization"] == "Zoho-oauthtoken 1000.early"


@responses.activate
def test_it_reads_every_page(portal):
    pages = [
        [conversation(n) for n in range(start, start + size)]
        for start, size in ((0, 99), (99, 99), (198, 3))
    ]
    for number, items in enumerate(pages, start=1):
        responses.get(
            f"{API}/conversations",
            match=[
                responses.matchers.query_param_matcher(
                    {"status": "open", "page": str(number), "limit": "99"}
                )
            ],
            json={"data": items, "more_data_available": number < 3},
        )
    chats = SalesIQClient(portal).list_open_conversations()
    assert len(chats) == 201
    assert len({c.id for c in chats}) == 201


@responses.activate
def test_it_backs_off_every_process_after_a_rate_limit(portal):
    responses.get(
        f"{API}/departments", json={"error": {"code": 1023, "message": "Too many requests"}}
    )
    with pytest.raises(exc.RateLimited):
        SalesIQClient(portal).list_departments()
    portal.refresh_from_db()
    assert portal.rate_limited_until > timezone.now()
    with pytest.raises(exc.RateLimited):  # refused before reaching SalesIQ
        SalesIQClient(Portal.objects.get(pk=portal.pk)).list_departments()
    assert len(responses.calls) == 1


@responses.activate
def test_it_uses_the_configured_method_for_unconfirmed_calls(portal, settings):
    settings.SIQ_HTTP_METHODS = {**settings.SIQ_HTTP_METHODS, "v2.conversation_close": "PUT"}
    responses.put(
        f"{API}/conversations/1/close",
        json={
            "data": {**conversation(1), "status": "closed", "chat_status": {"state_key": "closed"}}
        },
    )
    closed = SalesIQClient(portal, priority=Priority.ACTION).close("1")
    assert closed.status is ChatStatus.ENDED


@responses.activate
def test_it_stops_before_the_reference_429(portal):
    Portal.objects.filter(pk=portal.pk).update(dialect="reference")
    portal.refresh_from_db()
    reset = int((timezone.now() + timedelta(seconds=30)).timestamp())
    responses.get(
        "https://salesiq.zoho.eu/api/v2/chats/1",
        json={"status": "success", "data": {"id": "1", "status": "waiting"}},
        headers={
            "X-RateLimit-Limit": "10",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(reset),
        },
    )
    SalesIQClient(portal).get_conversation("1")
    with pytest.raises(exc.RateLimited):
        SalesIQClient(portal).get_conversation("1")
    assert len(responses.calls) == 1
