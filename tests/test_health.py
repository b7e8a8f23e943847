"""Connection health in words, /healthz, and deliveries recorded on the portal."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.urls import reverse
from django.utils import timezone

from dashboard.models import PortalSync
from siq_integration import exceptions as exc
from siq_integration import webhooks
from siq_integration.client import record_failure
from siq_integration.exceptions import Misconfigured, ReconnectNeeded, ScopeMissing, Unavailable
from siq_integration.health import State, portal_health, webhook_health
from siq_integration.models import Portal, WebhookPublicKey

pytestmark = pytest.mark.django_db
NOON = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture
def portal():
    portal = Portal(name="Zylker", data_center="us", screen_name="zylker", connected_at=NOON)
    portal.refresh_token_encrypted = Portal._write("1000.refresh")
    portal.access_token_encrypted = Portal._write("1000.access")
    portal.last_success_at = NOON
    portal.save()
    return portal


def test_it_says_connected_when_calls_succeed(portal):
    health = portal_health(portal, now=NOON)
    assert (health.state, health.label, health.tone) == (State.CONNECTED, "Connected", "ok")


def test_it_says_since_when_salesiq_is_unreachable_and_forgets_after_a_success(portal, monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: NOON + timedelta(minutes=3))
    record_failure(portal, Unavailable())
    monkeypatch.setattr(timezone, "now", lambda: NOON + timedelta(minutes=5))
    record_failure(portal, Unavailable())
    portal.refresh_from_db()
    health = portal_health(portal, now=NOON + timedelta(minutes=6))
    assert health.state is State.UNREACHABLE
    assert health.label == "SalesIQ unreachable"
    assert health.since == NOON + timedelta(minutes=3)  # the first failure of the run
    assert "keeps trying by itself" in health.sentence

    portal.last_success_at = NOON + timedelta(minutes=7)
    portal.problem_since = None
    assert portal_health(portal, now=NOON + timedelta(minutes=8)).state is State.CONNECTED


@pytest.mark.parametrize(
    ("failure", "state", "words"),
    [
        (ReconnectNeeded(), State.RECONNECT, "reconnect"),
        (ScopeMissing(scope="SalesIQ.webhooks.CREATE"), State.RECONNECT, "SalesIQ.webhooks.CREATE"),
        (Misconfigured(code=1005), State.MISCONFIGURED, "screen name"),
        # Subclasses mean what their family means: the stored name maps back to its class.
        (exc.RequestHeadersRefused(code=1002), State.MISCONFIGURED, "set up wrongly"),
        (exc.WrongScreenName(), State.MISCONFIGURED, "cannot reach"),
        (exc.TokenRefreshLimited(), State.SLOWED, "paused new sign-ins"),
        (exc.NotOwnStatus(code=1016), State.DEGRADED, "not allowed"),
    ],
)
def test_it_names_what_needs_doing(portal, failure, state, words, monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: NOON + timedelta(minutes=1))
    record_failure(portal, failure)
    health = portal_health(portal, now=NOON + timedelta(minutes=2))
    assert health.state is state
    assert words in health.sentence


def test_it_maps_a_stored_failure_name_back_to_its_class():
    assert exc.by_name("WrongScreenName") is exc.WrongScreenName
    assert exc.by_name("ReconnectNeeded") is exc.ReconnectNeeded
    assert exc.by_name("") is None
    assert exc.by_name("NoSuchFailure") is None


def test_it_tells_disconnected_from_never_connected():
    fresh = Portal.objects.create(name="New", data_center="us")
    assert portal_health(fresh).label == "Not connected"
    fresh.disconnected_at = NOON
    assert portal_health(fresh).label == "Disconnected"


def test_it_says_when_salesiq_slowed_us_down(portal):
    portal.rate_limited_until = NOON + timedelta(seconds=40)
    health = portal_health(portal, now=NOON)
    assert health.label == "Slowed down" and health.since == portal.rate_limited_until


def test_it_answers_healthz_without_portal_data(client, portal):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "channel_layer": "ok"}
    assert b"Zylker" not in response.content


def test_it_answers_503_when_the_channel_layer_is_down(client, settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
        }
    }
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    try:
        response = client.get("/healthz")
    finally:
        channel_layers.backends.clear()
    assert response.status_code == 503
    assert response.json()["channel_layer"] == "failing"
    assert response.json()["database"] == "ok"


# --- deliveries ----------------------------------------------------------------------------


def signed_body(key: rsa.RSAPrivateKey, document: dict) -> tuple[bytes, str]:
    body = json.dumps(document).encode()
    signature = base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()
    return body, signature


@pytest.fixture
def v2_key(portal):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    WebhookPublicKey.objects.create(portal=portal, key_id="k1", public_key_pem=pem)
    Portal.objects.filter(pk=portal.pk).update(webhook_id="w1")
    return key


EVENT = {
    "event": "conversation.created",
    "entity_id": "466756000000969001",
    "event_time": "17",
    "entity": {"id": "466756000000969001", "status": "waiting"},
}


def test_it_records_a_verified_delivery(client, portal, v2_key):
    body, signature = signed_body(v2_key, EVENT)
    response = client.post(
        reverse("webhook", args=[portal.pk]),
        body,
        content_type="application/json",
        headers={"x-siqsignature": signature},
    )
    assert response.status_code == 200
    portal.refresh_from_db()
    assert portal.last_webhook_ok is True and portal.last_webhook_at
    assert webhook_health(portal).label == "Receiving"


def test_it_refuses_a_bad_signature_and_says_so(client, portal, v2_key):
    body, signature = signed_body(v2_key, EVENT)
    response = client.post(
        reverse("webhook", args=[portal.pk]),
        body + b" ",
        content_type="application/json",
        headers={"x-siqsignature": signature},
    )
    assert response.status_code == 401
    portal.refresh_from_db()
    # Anyone can POST to the address: a refusal is counted apart, never "a webhook".
    assert portal.last_webhook_at is None and portal.last_webhook_ok is None
    assert PortalSync.objects.get(portal=portal).refused_deliveries == 1
    assert webhook_health(portal).label == "Registered"


def test_it_rejects_malformed_json_and_refuses_too_big_bodies(client, portal):
    portal.dialect = "reference"
    portal.set_webhook_secret("s")
    portal.save()
    body = b"not json"
    response = client.post(
        reverse("webhook", args=[portal.pk]),
        body,
        content_type="application/json",
        headers={"X-Salesiq-Signature": webhooks.sign_reference(body, "s")},
    )
    # Signed: SalesIQ sent it, and would send it again on anything but 2xx; kept aside.
    assert response.status_code == 200 and response.json()["ok"] is False
    big = b"{" + b" " * (webhooks.MAX_BODY_BYTES + 1) + b"}"
    response = client.post(
        reverse("webhook", args=[portal.pk]), big, content_type="application/json"
    )
    assert response.status_code == 413


def test_it_answers_404_for_an_unknown_webhook_address(client):
    response = client.post(
        reverse("webhook", args=["00000000-0000-0000-0000-000000000000"]),
        b"{}",
        content_type="application/json",
    )
    assert response.status_code == 404


def test_it_keeps_query_strings_out_of_the_access_log():
    import io

    from dashboard.server.run import AccessLogWithoutQueries

    stream = io.StringIO()
    log = AccessLogWithoutQueries(stream)
    log(
        "http",
        "complete",
        {
            "client": "127.0.0.1:5",
            "method": "GET",
            "status": 302,
            "size": 0,
            "path": "/oauth/callback/?code=1000.secret-code&state=s",
        },
    )
    log(
        "http",
        "complete",
        {"client": "127.0.0.1:5", "method": "GET", "status": 200, "size": 9, "path": "/portals/"},
    )
    written = stream.getvalue()
    assert "secret-code" not in written and "/oauth/callback/?…" in written
    assert '"GET /portals/"' in written
