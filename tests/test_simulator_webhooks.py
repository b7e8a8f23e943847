"""Webhook deliveries from the simulator to a tiny local receiver: signatures and retries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from salesiq_simulator import Simulator
from tests.support.simulator import REFERENCE_SCOPES, connect, v2


class Receiver:
    """Records every POST (headers and raw body); answers with the scripted statuses."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.requests.append(
                        ({k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(
        self, predicate: Callable[[list[tuple[dict[str, str], bytes]]], bool], timeout: float = 5
    ) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                got = list(self.requests)
            if predicate(got):
                return got
            time.sleep(0.02)
        raise AssertionError(
            f"the receiver got {len(got)} requests: {[json.loads(b) for _, b in got]}"
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator(seed=5, life=False, retry_delays=(0.05, 0.1, 0.2))
    simulator.add_portal("zylker", dialect="v2", dc="sim", operators=4, open_chats=2)
    simulator.add_portal("acme-ref", dialect="reference", dc="sim", operators=3, open_chats=2)
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.stop()


def _events(got: list[tuple[dict[str, str], bytes]]) -> list[str]:
    return [json.loads(body)["event"] for _, body in got]


def _verify(public_b64: str, signature_b64: str, body: bytes) -> bool:
    key = serialization.load_der_public_key(base64.b64decode(public_b64))
    try:
        key.verify(base64.b64decode(signature_b64), body, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def test_it_signs_v2_deliveries_with_the_oldest_key(sim: Simulator, receiver: Receiver) -> None:
    token = connect(sim, as_user="admin@zylker.example")["access_token"]
    events = ["conversation.created", "conversation.visitor.replied", "conversation.completed"]
    hook = v2(
        sim,
        token,
        "POST",
        "/zylker/webhooks",
        json={"type": "data", "url": receiver.url, "events": events, "version": "1"},
    )["data"]
    keys_path = f"/zylker/webhooks/{hook['id']}/keys"
    v2(sim, token, "POST", keys_path)
    keys = v2(sim, token, "POST", keys_path)["data"]["public_keys"]
    oldest, newest = keys[0]["key"], keys[1]["key"]

    conv = sim.create_conversation("zylker", visitor_name="Zoë <script>alert(1)</script>")
    got = receiver.wait_for(lambda g: len(g) >= 1)
    headers, body = got[0]
    payload = json.loads(body)
    assert payload["event"] == "conversation.created"
    assert payload["entity_type"] == "conversation" and payload["entity_id"] == conv["id"]
    assert payload["attempt"] == 1 and payload["version"] == "1"
    assert payload["org_id"] == sim.state("zylker")["portals"][0]["id"]
    assert payload["event_time"].isdigit()
    assert payload["entity"]["visitor"]["name"] == "Zoë <script>alert(1)</script>"
    assert "Zoë".encode() in body  # raw UTF-8, signed as sent
    assert headers["content-type"] == "application/json"
    assert _verify(oldest, headers["x-siqsignature"], body)
    assert not _verify(newest, headers["x-siqsignature"], body)
    assert not _verify(oldest, headers["x-siqsignature"], body.replace(b"Zo", b"Zu"))

    sim.visitor_message(conv["id"], "still there?")
    sim.pickup(conv["id"])  # not subscribed: no delivery
    sim.end(conv["id"])
    got = receiver.wait_for(lambda g: len(g) >= 3)
    assert _events(got) == events
    assert json.loads(got[2][1])["entity"]["status"] == "closed"


def test_it_delivers_unsigned_while_a_v2_webhook_has_no_key(
    sim: Simulator, receiver: Receiver
) -> None:
    token = connect(sim, as_user="admin@zylker.example")["access_token"]
    v2(
        sim,
        token,
        "POST",
        "/zylker/webhooks",
        json={"type": "data", "url": receiver.url, "events": ["operator.updated"]},
    )
    operator_id = sim.state("zylker")["portals"][0]["operators"][1]["id"]
    sim.set_operator_status(operator_id, "Offline")  # presence: v2 has no event for it
    sim.update_operator(operator_id, nick_name="Åsa")
    headers, body = receiver.wait_for(lambda g: len(g) >= 1)[0]
    payload = json.loads(body)
    assert payload["event"] == "operator.updated" and payload["entity_type"] == "operator"
    assert payload["entity"]["nick_name"] == "Åsa"
    assert "x-siqsignature" not in headers
    time.sleep(0.2)
    assert len(receiver.requests) == 1


def test_it_signs_reference_deliveries_with_hmac(sim: Simulator, receiver: Receiver) -> None:
    token = connect(sim, as_user="admin@acme-ref.example", scopes=REFERENCE_SCOPES)["access_token"]
    answer = requests.post(
        sim.data_center("sim")["api_url"] + "/api/v2/webhooks",
        headers={"Authorization": f"Zoho-oauthtoken {token}"},
        json={
            "name": "dash",
            "url": receiver.url,
            "events": ["chat.started", "message.received", "chat.ended", "operator.status_changed"],
            "enabled": True,
            "secret": "shh-secret",
        },
        timeout=5,
    )
    assert answer.status_code == 201
    conv = sim.create_conversation("acme-ref")
    sim.pickup(conv["id"])
    sim.operator_message(conv["id"], "Hej <b>där</b>")
    sim.end(conv["id"])
    operator_id = sim.state("acme-ref")["portals"][0]["operators"][2]["id"]
    sim.set_operator_status(operator_id, "away")
    got = receiver.wait_for(lambda g: len(g) >= 4)
    assert sorted(_events(got)) == sorted(
        ["chat.started", "message.received", "chat.ended", "operator.status_changed"]
    )
    for headers, body in got:
        expected = hmac.new(b"shh-secret", body, hashlib.sha256).hexdigest()
        assert headers["x-salesiq-signature"] == expected
        assert "x-salesiq-delivery-attempt" not in headers
    by_event = {json.loads(b)["event"]: json.loads(b) for _, b in got}
    assert by_event["chat.started"]["data"]["chat_id"] == conv["id"]
    assert by_event["chat.started"]["timestamp"].endswith("Z")
    assert by_event["message.received"]["data"]["message"] == "Hej <b>där</b>"
    assert by_event["message.received"]["data"]["sender_type"] == "operator"
    assert by_event["operator.status_changed"]["data"]["status"] == "away"
    assert by_event["chat.ended"]["data"]["ended_at"]


def test_it_retries_v2_deliveries_with_an_increasing_attempt(
    sim: Simulator, receiver: Receiver
) -> None:
    token = connect(sim, as_user="admin@zylker.example")["access_token"]
    hook = v2(
        sim,
        token,
        "POST",
        "/zylker/webhooks",
        json={"type": "data", "url": receiver.url, "events": ["conversation.created"]},
    )["data"]
    key = v2(sim, token, "POST", f"/zylker/webhooks/{hook['id']}/keys")["data"]["public_keys"][0]
    receiver.statuses = [500, 503]
    sim.create_conversation("zylker")
    got = receiver.wait_for(lambda g: len(g) >= 3)
    attempts = [json.loads(body)["attempt"] for _, body in got]
    assert attempts == [1, 2, 3]
    for headers, body in got:  # every attempt is signed over its own bytes
        assert _verify(key["key"], headers["x-siqsignature"], body)
    time.sleep(0.3)
    assert len(receiver.requests) == 3
    log = requests.get(sim.base_url + "/_sim/deliveries", timeout=5).json()
    assert [(d["attempt"], d["status"]) for d in log] == [(1, 500), (2, 503), (3, 200)]
    assert log[0]["error"] == "HTTP 500" and log[2]["error"] is None


def test_it_retries_reference_deliveries_with_the_same_body(
    sim: Simulator, receiver: Receiver
) -> None:
    token = connect(sim, as_user="admin@acme-ref.example", scopes=REFERENCE_SCOPES)["access_token"]
    requests.post(
        sim.data_center("sim")["api_url"] + "/api/v2/webhooks",
        headers={"Authorization": f"Zoho-oauthtoken {token}"},
        json={"name": "d", "url": receiver.url, "events": ["chat.started"], "secret": "k"},
        timeout=5,
    )
    receiver.statuses = [500, 500, 500, 500]
    sim.create_conversation("acme-ref")
    got = receiver.wait_for(lambda g: len(g) >= 4)
    assert len({body for _, body in got}) == 1
    assert len({h["x-salesiq-signature"] for h, _ in got}) == 1
    assert [h.get("x-salesiq-delivery-attempt") for h, _ in got] == [None, "2", "3", "4"]
    time.sleep(0.3)
    assert len(receiver.requests) == 4  # 1 + 3 retries, then it gives up


def test_it_stays_silent_while_webhooks_are_paused(sim: Simulator, receiver: Receiver) -> None:
    token = connect(sim, as_user="admin@zylker.example")["access_token"]
    v2(
        sim,
        token,
        "POST",
        "/zylker/webhooks",
        json={"type": "data", "url": receiver.url, "events": ["conversation.created"]},
    )
    assert requests.post(sim.base_url + "/_sim/webhooks/pause", timeout=5).json()["paused"]
    sim.create_conversation("zylker")
    time.sleep(0.3)
    assert receiver.requests == []
    assert sim.deliveries()[-1]["error"].startswith("paused")
    requests.post(sim.base_url + "/_sim/webhooks/resume", timeout=5)
    created = sim.create_conversation("zylker")
    _headers, body = receiver.wait_for(lambda g: len(g) >= 1)[0]
    assert json.loads(body)["entity_id"] == created["id"]
