"""`python manage.py rotate_token_keys`: re-encrypt every stored secret with the newest key.

Rotation: put the new key first in TOKEN_ENCRYPTION_KEYS (keep the old ones after it),
restart, run this command, then drop the old keys.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from siq_integration import crypto
from siq_integration.exceptions import SalesIQError
from siq_integration.models import Portal


class Command(BaseCommand):
    help = "Re-encrypt every stored SalesIQ secret with the first TOKEN_ENCRYPTION_KEYS key."

    def handle(self, *args, **options):
        rotated = 0
        unreadable: list[str] = []
        portals = Portal.objects.all()
        for portal in portals:
            changes = {}
            try:
                for field in Portal.ENCRYPTED_FIELDS:
                    value = getattr(portal, field)
                    if value:
                        changes[field] = crypto.rotate(value)
            except SalesIQError as failure:
                # Name the portal, never the value.
                unreadable.append(f"{portal.name} ({portal.pk}): {failure.user_message}")
                continue
            with transaction.atomic():
                Portal.objects.filter(pk=portal.pk).update(**changes)
            rotated += len(changes)
        self.stdout.write(
            f"Re-encrypted {rotated} secret{'s' if rotated != 1 else ''} of "
            f"{len(portals) - len(unreadable)} portal(s) with the newest key."
        )
        if unreadable:
            raise CommandError(
                "These portals' secrets could not be read with any configured key and were left "
                "as they were:\n  " + "\n  ".join(unreadable)
            )
