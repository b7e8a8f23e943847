from django.db import migrations, models


def applying_to_pending(apps, schema_editor):
    # Nothing sets "applying" any more (claiming, applying and marking are one transaction);
    # a row an older release left there goes back to pending, as that release's sweep did.
    InboxEvent = apps.get_model("dashboard", "InboxEvent")
    InboxEvent.objects.filter(state="applying").update(state="pending")


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0014_worker_heartbeat"),
    ]

    operations = [
        migrations.RunPython(applying_to_pending, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="inboxevent",
            name="state",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("applied", "Applied"),
                    ("unknown", "Unknown"),
                    ("failed", "Failed"),
                    ("rejected", "Rejected"),
                ],
                default="pending",
                max_length=10,
            ),
        ),
    ]
