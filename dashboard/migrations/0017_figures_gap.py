# Today's figures may be missing chats after a gap: when, and how reading them back goes.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0016_service_figures"),
    ]

    operations = [
        migrations.AddField(
            model_name="portalsync",
            name="figures_gap_from",
            field=models.DateTimeField(null=True),
        ),
        migrations.AddField(
            model_name="portalsync",
            name="figures_gap_until",
            field=models.DateTimeField(null=True),
        ),
        migrations.AddField(
            model_name="portalsync",
            name="figures_reconciled_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.AddField(
            model_name="portalsync",
            name="figures_retry_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.AddField(
            model_name="portalsync",
            name="figures_waiting_for",
            field=models.CharField(blank=True, max_length=16),
        ),
    ]
