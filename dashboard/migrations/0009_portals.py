"""Remove the "Not connected" portals that Add portal used to leave behind.

Before issue 12, Add portal saved the portal before Zoho's consent, so a refused,
cancelled or abandoned consent left a portal that was never connected and that nobody
could delete. Now nothing is saved until the portal is connected. A portal is such a
leftover when it never held a grant (no refresh token, never connected, never
disconnected, no successful call, no webhook) and nothing of it was ever kept here (no
chats, operators, departments, audit entries, alerts or webhook deliveries): deleting it
loses nothing but its settings, which can be typed again. Its alert rules, lease row,
call windows and user assignments go with it (they cascade).
"""

from __future__ import annotations

from django.db import migrations


def remove_never_connected(apps, schema_editor) -> None:
    Portal = apps.get_model("siq_integration", "Portal")
    kept_here = [
        apps.get_model("dashboard", name)
        for name in ("Chat", "Operator", "Department", "Action", "Alert", "InboxEvent")
    ]
    leftovers = Portal.objects.filter(
        refresh_token_encrypted="",
        connected_at__isnull=True,
        disconnected_at__isnull=True,
        last_success_at__isnull=True,
        webhook_id="",
    )
    for model in kept_here:
        leftovers = leftovers.exclude(pk__in=model.objects.values("portal_id"))
    leftovers.delete()


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0008_outcomes"),
        ("siq_integration", "0003_connected_user"),
    ]

    # Nothing to put back: the rows were leftovers with no history.
    operations = [migrations.RunPython(remove_never_connected, migrations.RunPython.noop)]
