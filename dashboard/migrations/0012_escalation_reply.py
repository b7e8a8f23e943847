"""An escalation keeps its receiver's HTTP status and a short reason, never the reply's body."""

import re

from django.db import migrations, models

_HTTP = re.compile(r"^HTTP (\d{3})")


def keep_status_only(apps, schema_editor):
    """Earlier rows kept "HTTP 500: <the body>": keep the status, drop the body."""
    Escalation = apps.get_model("dashboard", "Escalation")
    for row in Escalation.objects.exclude(error="").only("pk", "error").iterator():
        found = _HTTP.match(row.error)
        if found:
            row.http_status = int(found.group(1))
            row.error = f"HTTP {found.group(1)}"
        else:
            row.error = row.error[:200]
        row.save(update_fields=["http_status", "error"])


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0011_action_locks"),
    ]

    operations = [
        migrations.AddField(
            model_name="escalation",
            name="http_status",
            field=models.PositiveSmallIntegerField(blank=True, null=True),
        ),
        migrations.RunPython(keep_status_only, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="escalation",
            name="error",
            field=models.CharField(blank=True, max_length=200),
        ),
    ]
