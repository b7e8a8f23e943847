"""One action in flight per chat or operator (lock_key, action_one_in_flight), the process
running each action (runner), and refusals by role counted rather than stored (RefusalTally).
Issue 13; chained after the other parts' migrations at merge time."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0010_inbox_door"),
        ("siq_integration", "0003_connected_user"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="RefusalTally",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("username", models.CharField(max_length=150)),
                ("role", models.CharField(max_length=20)),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("transfer", "Transfer chat"),
                            ("end", "End chat"),
                            ("operator_status", "Change operator status"),
                            ("drain", "Drain operator"),
                        ],
                        max_length=20,
                    ),
                ),
                ("count", models.PositiveIntegerField(default=0)),
                ("first_at", models.DateTimeField()),
                ("last_at", models.DateTimeField()),
                ("minute", models.DateTimeField()),
                ("in_minute", models.PositiveIntegerField(default=0)),
            ],
            options={
                "ordering": ["-last_at", "-pk"],
            },
        ),
        migrations.AddField(
            model_name="action",
            name="lock_key",
            field=models.CharField(blank=True, max_length=120),
        ),
        migrations.AddField(
            model_name="action",
            name="runner",
            field=models.CharField(blank=True, max_length=80),
        ),
        migrations.AddIndex(
            model_name="action",
            index=models.Index(
                condition=models.Q(("outcome", "pending")),
                fields=["created_at"],
                name="action_pending",
            ),
        ),
        migrations.AddConstraint(
            model_name="action",
            constraint=models.UniqueConstraint(
                condition=models.Q(
                    ("outcome", "pending"), models.Q(("lock_key", ""), _negated=True)
                ),
                fields=("lock_key",),
                name="action_one_in_flight",
            ),
        ),
        migrations.AddField(
            model_name="refusaltally",
            name="portal",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="siq_integration.portal",
            ),
        ),
        migrations.AddField(
            model_name="refusaltally",
            name="user",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddIndex(
            model_name="refusaltally",
            index=models.Index(
                fields=["user", "portal", "kind", "last_at"], name="refusal_tally_run"
            ),
        ),
        migrations.AddIndex(
            model_name="refusaltally",
            index=models.Index(fields=["portal", "last_at"], name="refusal_tally_portal"),
        ),
    ]
