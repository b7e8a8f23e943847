"""Tokens at rest: MultiFernet over TOKEN_ENCRYPTION_KEYS, newest first."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from siq_integration import crypto
from siq_integration.exceptions import EncryptionNotConfigured, TokenDecryptionError

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()


def test_it_round_trips_and_never_stores_plaintext(settings):
    settings.TOKEN_ENCRYPTION_KEYS = [NEW]
    stored = crypto.encrypt("1000.secret-token.value")
    assert "secret-token" not in stored
    assert crypto.decrypt(stored) == "1000.secret-token.value"


def test_it_reads_old_values_after_a_new_key_is_put_first(settings):
    settings.TOKEN_ENCRYPTION_KEYS = [OLD]
    stored = crypto.encrypt("refresh-me")
    settings.TOKEN_ENCRYPTION_KEYS = [NEW, OLD]
    assert crypto.decrypt(stored) == "refresh-me"
    rotated = crypto.rotate(stored)
    settings.TOKEN_ENCRYPTION_KEYS = [NEW]  # the old key can now be dropped
    assert crypto.decrypt(rotated) == "refresh-me"
    with pytest.raises(TokenDecryptionError):
        crypto.decrypt(stored)


def test_it_refuses_to_pass_on_ciphertext_it_cannot_read(settings):
    settings.TOKEN_ENCRYPTION_KEYS = [OLD]
    stored = crypto.encrypt("a-token")
    settings.TOKEN_ENCRYPTION_KEYS = [NEW]
    with pytest.raises(TokenDecryptionError) as caught:
        crypto.decrypt(stored)
    assert "TOKEN_ENCRYPTION_KEYS" in caught.value.user_message
    assert "a-token" not in str(caught.value)


def test_it_says_when_no_key_is_configured(settings):
    settings.TOKEN_ENCRYPTION_KEYS = []
    with pytest.raises(EncryptionNotConfigured):
        crypto.encrypt("x")
