"""TOKEN_ENCRYPTION_KEYS rotation re-encrypts every stored secret."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from siq_integration.models import Portal

pytestmark = pytest.mark.django_db
OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()


def make_portal(name: str) -> Portal:
    portal = Portal(name=name, data_center="us", client_id="own")
    portal.access_token_encrypted = Portal._write(f"{name}-access")
    portal.refresh_token_encrypted = Portal._write(f"{name}-refresh")
    portal.set_client_secret(f"{name}-secret")
    portal.set_webhook_secret(f"{name}-hmac")
    portal.save()
    return portal


def test_it_reencrypts_every_secret_with_the_newest_key(settings, capsys):
    settings.TOKEN_ENCRYPTION_KEYS = [OLD]
    first, second = make_portal("a"), make_portal("b")
    settings.TOKEN_ENCRYPTION_KEYS = [NEW, OLD]
    call_command("rotate_token_keys")
    assert "Re-encrypted 8 secrets of 2 portal(s)" in capsys.readouterr().out

    settings.TOKEN_ENCRYPTION_KEYS = [NEW]  # the old key is gone now
    for portal, name in ((first, "a"), (second, "b")):
        portal.refresh_from_db()
        assert portal.get_access_token() == f"{name}-access"
        assert portal.get_refresh_token() == f"{name}-refresh"
        assert portal.get_client_secret() == f"{name}-secret"
        assert portal.get_webhook_secret() == f"{name}-hmac"


def test_it_names_portals_it_cannot_read_and_leaves_them_alone(settings):
    settings.TOKEN_ENCRYPTION_KEYS = [OLD]
    lost = make_portal("lost")
    settings.TOKEN_ENCRYPTION_KEYS = [NEW]
    kept = make_portal("kept")
    before = Portal.objects.get(pk=lost.pk).refresh_token_encrypted
    with pytest.raises(CommandError) as caught:
        call_command("rotate_token_keys")
    assert "lost" in str(caught.value) and "lost-refresh" not in str(caught.value)
    assert Portal.objects.get(pk=lost.pk).refresh_token_encrypted == before
    kept.refresh_from_db()
    assert kept.get_refresh_token() == "kept-refresh"
