"""Webhook deliveries: verify the signature over the raw bytes, then parse.

v2: ``x-siqsignature`` is a Base64 RSA signature (SHA-256, PKCS#1 v1.5) of the
exact body; SalesIQ keeps up to two public keys per webhook and both must verify
during a rotation. Reference: ``X-Salesiq-Signature`` is the hex HMAC-SHA256 of
the body with the shared secret, compared in constant time.

Verification always runs on the bytes as received: never re-serialise JSON
before checking a signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from . import dialects
from .exceptions import MalformedPayload, SignatureInvalid
from .normalised import WebhookEvent

MAX_BODY_BYTES = 256 * 1024


def normalise_public_key(text: str) -> str:
    """A PEM for ``text``, which may be PEM or bare Base64 DER (as SalesIQ returns it).

    Raises ValueError when it is neither or not an RSA key.
    """
    text = text.strip()
    if not text:
        raise ValueError("empty public key")
    if "BEGIN" in text:
        key = serialization.load_pem_public_key(text.encode("ascii"))
    else:
        try:
            der = base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("public key is neither PEM nor Base64 DER") from None
        key = serialization.load_der_public_key(der)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("public key is not an RSA key")
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


@lru_cache(maxsize=64)
def _load(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.encode("ascii"))
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def verify_v2(body: bytes, signature: str | None, public_keys: Iterable[str]) -> str:
    """The one of ``public_keys`` (PEM) that signed ``body``; SignatureInvalid if none."""
    if not signature:
        raise SignatureInvalid(
            "A webhook arrived without a signature (x-siqsignature).", detail="missing signature"
        )
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureInvalid(detail="signature is not Base64") from None
    keys = [pem for pem in public_keys if pem]
    if not keys:
        raise SignatureInvalid(
            "A webhook arrived but this portal has no webhook key to check it with. "
            "Re-register the webhook from the portals page.",
            detail="no public key stored",
        )
    for pem in keys:
        try:
            _load(pem).verify(raw, body, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            continue
        return pem
    raise SignatureInvalid(detail=f"no match among {len(keys)} key(s)")


def sign_reference(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_reference(body: bytes, signature: str | None, secret: str) -> None:
    """Raise SignatureInvalid unless ``signature`` is the HMAC of ``body`` with ``secret``."""
    if not signature:
        raise SignatureInvalid(
            "A webhook arrived without a signature (X-Salesiq-Signature).",
            detail="missing signature",
        )
    if not secret:
        raise SignatureInvalid(
            "A webhook arrived but this portal has no webhook secret to check it with. "
            "Re-register the webhook from the portals page.",
            detail="no secret stored",
        )
    expected = sign_reference(body, secret)
    if not hmac.compare_digest(expected, signature.strip().lower()):
        raise SignatureInvalid(detail="HMAC mismatch")


def verify(
    *,
    dialect: str,
    body: bytes,
    headers: Mapping[str, str],
    public_keys: Iterable[str] = (),
    secret: str = "",
) -> str | None:
    """Verify a delivery in ``dialect``; header names are matched without case. Returns
    the public key (PEM) that signed a v2 delivery, None for the reference dialect."""
    signature = signature_of(dialect, headers)
    if dialects.get(dialect).has_webhook_keys:
        return verify_v2(body, signature, public_keys)
    verify_reference(body, signature, secret)
    return None


def signature_of(dialect: str, headers: Mapping[str, str]) -> str | None:
    """The delivery's signature header in ``dialect`` (names matched without case)."""
    wanted = dialects.get(dialect).signature_header.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def parse(dialect: str, body: bytes) -> WebhookEvent:
    """Parse a verified body into a normalised event; unknown event types parse to UNKNOWN."""
    if len(body) > MAX_BODY_BYTES:
        raise MalformedPayload(detail=f"body of {len(body)} bytes")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedPayload(detail="body is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("event"), str):
        raise MalformedPayload(detail="JSON without an event name")
    return dialects.get(dialect).parse_event(document)
