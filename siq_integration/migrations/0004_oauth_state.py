"""OAuth states consumed atomically: one row per consent under way, keyed by SHA-256."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("siq_integration", "0003_connected_user"),
    ]

    operations = [
        migrations.CreateModel(
            name="OAuthState",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("state_sha256", models.CharField(max_length=64, unique=True)),
                ("created_at", models.DateTimeField(db_index=True)),
            ],
        ),
    ]
