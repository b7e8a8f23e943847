"""Secrets at rest: MultiFernet over TOKEN_ENCRYPTION_KEYS (newest first).

A value that no configured key can decrypt is an error, never passed on: the
caller must not mistake ciphertext for a token.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from .exceptions import EncryptionNotConfigured, TokenDecryptionError


@lru_cache(maxsize=4)
def _multi_fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def _current() -> MultiFernet:
    keys = tuple(settings.TOKEN_ENCRYPTION_KEYS)
    if not keys:
        raise EncryptionNotConfigured()
    return _multi_fernet(keys)


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(ciphertext: str) -> str:
    try:
        return _current().decrypt(ciphertext.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        raise TokenDecryptionError() from None


def rotate(ciphertext: str) -> str:
    """Re-encrypt with the newest key (decrypting with whichever key works)."""
    try:
        return _current().rotate(ciphertext.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError):
        raise TokenDecryptionError() from None
