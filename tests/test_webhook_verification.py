"""Webhook signatures are checked over the raw bytes, in both dialects."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from siq_integration import webhooks
from siq_integration.exceptions import MalformedPayload, SignatureInvalid
from siq_integration.normalised import EventKind


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_b64_der(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def sign(key: rsa.RSAPrivateKey, body: bytes) -> str:
    return base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()


OLD, NEW, STRANGER = new_key(), new_key(), new_key()
OLD_PEM = webhooks.normalise_public_key(public_b64_der(OLD))
NEW_PEM = webhooks.normalise_public_key(public_b64_der(NEW))
BODY = json.dumps(
    {
        "event": "conversation.created",
        "entity_id": "466756000000969001",
        "event_time": "1708937855434",
        "attempt": 1,
        "entity": {"id": "466756000000969001", "visitor": {"name": "Zoë"}},
    },
    ensure_ascii=False,
).encode()


def test_it_accepts_a_good_v2_signature():
    webhooks.verify_v2(BODY, sign(OLD, BODY), [OLD_PEM])


def test_it_refuses_a_tampered_body():
    tampered = BODY.replace(b"Zo\xc3\xab", b"Zoe")
    assert tampered != BODY
    with pytest.raises(SignatureInvalid):
        webhooks.verify_v2(tampered, sign(OLD, BODY), [OLD_PEM])


def test_it_refuses_a_body_reserialised_with_other_spacing():
    respaced = json.dumps(json.loads(BODY), ensure_ascii=False, separators=(",", ":")).encode()
    with pytest.raises(SignatureInvalid):
        webhooks.verify_v2(respaced, sign(OLD, BODY), [OLD_PEM])


def test_it_refuses_a_signature_by_another_key():
    with pytest.raises(SignatureInvalid):
        webhooks.verify_v2(BODY, sign(STRANGER, BODY), [OLD_PEM, NEW_PEM])


def test_it_accepts_old_and_new_keys_during_rotation():
    webhooks.verify_v2(BODY, sign(OLD, BODY), [OLD_PEM, NEW_PEM])
    webhooks.verify_v2(BODY, sign(NEW, BODY), [OLD_PEM, NEW_PEM])
    with pytest.raises(SignatureInvalid):  # after the old key is deleted
        webhooks.verify_v2(BODY, sign(OLD, BODY), [NEW_PEM])


@pytest.mark.parametrize("signature", [None, "", "not base64 !!"])
def test_it_refuses_a_missing_or_garbled_signature(signature):
    with pytest.raises(SignatureInvalid):
        webhooks.verify_v2(BODY, signature, [OLD_PEM])


def test_it_says_when_there_is_no_key_to_check_with():
    with pytest.raises(SignatureInvalid) as caught:
        webhooks.verify_v2(BODY, sign(OLD, BODY), [])
    assert "Re-register" in caught.value.user_message


def test_it_reads_keys_as_pem_or_base64_der():
    pem = (
        OLD.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    assert webhooks.normalise_public_key(pem) == OLD_PEM
    with pytest.raises(ValueError):
        webhooks.normalise_public_key("45678998765")


def test_it_checks_reference_hmac_in_constant_time():
    secret = "shared-secret"
    good = webhooks.sign_reference(BODY, secret)
    webhooks.verify_reference(BODY, good, secret)
    webhooks.verify_reference(BODY, good.upper(), secret)  # hex case does not matter
    with pytest.raises(SignatureInvalid):
        webhooks.verify_reference(BODY + b" ", good, secret)
    with pytest.raises(SignatureInvalid):
        webhooks.verify_reference(BODY, webhooks.sign_reference(BODY, "other"), secret)
    with pytest.raises(SignatureInvalid):
        webhooks.verify_reference(BODY, None, secret)


def test_it_picks_the_header_of_the_portal_dialect():
    headers = {"x-siqsignature": sign(OLD, BODY)}
    webhooks.verify(dialect="v2", body=BODY, headers=headers, public_keys=[OLD_PEM])
    with pytest.raises(SignatureInvalid):
        webhooks.verify(dialect="reference", body=BODY, headers=headers, secret="s")


def test_it_parses_unknown_events_instead_of_failing():
    event = webhooks.parse("v2", b'{"event": "conversation.metrics", "entity_id": "1"}')
    assert event.kind is EventKind.UNKNOWN
    assert event.name == "conversation.metrics"


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'{"no": "event"}', b"\xff\xfe"])
def test_it_calls_a_body_that_is_not_an_event_malformed(body):
    with pytest.raises(MalformedPayload):
        webhooks.parse("v2", body)
