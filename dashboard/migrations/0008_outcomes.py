"""Every action gets the state every screen shows (dashboard.models.ActionState), derived
from what is stored already, so the audit can filter by it."""

from __future__ import annotations

from django.db import migrations, models

BATCH = 500


def _state(action, dialect: str) -> str:
    # A frozen copy of Action.derive_state for single actions (drains follow their steps).
    if action.outcome in ("pending", "done"):
        if action.kind == "transfer" and action.confirmed_at:
            rejected = action.confirmation.endswith((".rejected", ".declined"))
            return "declined" if rejected else "accepted"
        if action.outcome == "pending":
            return "pending"
        if action.kind == "transfer" and dialect == "v2":
            return "pending"
        return "done"
    if action.outcome == "refused":
        return "refused"
    if action.error_code in ("BudgetExhausted", "RateLimited"):
        return "not_sent"
    return "unclear"


def fill_states(apps, schema_editor) -> None:
    Action = apps.get_model("dashboard", "Action")
    singles = Action.objects.exclude(kind="drain").select_related("portal").order_by("pk")
    changed = []
    for action in singles.iterator(chunk_size=BATCH):
        action.state = _state(action, action.portal.dialect)
        changed.append(action)
        if len(changed) >= BATCH:
            Action.objects.bulk_update(changed, ["state"])
            changed = []
    Action.objects.bulk_update(changed, ["state"])
    changed = []
    for drain in Action.objects.filter(kind="drain").select_related("portal").order_by("pk"):
        steps = list(Action.objects.filter(parent_id=drain.pk).values_list("state", flat=True))
        if drain.outcome != "pending" and steps:
            if "pending" in steps:
                drain.state = "pending"
            elif all(step in ("done", "accepted") for step in steps):
                drain.state = "done"
            else:
                drain.state = "partial"
        else:
            drain.state = _state(drain, drain.portal.dialect)
        changed.append(drain)
    Action.objects.bulk_update(changed, ["state"], batch_size=BATCH)


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0007_names_and_time_settings"),
    ]

    operations = [
        migrations.AddField(
            model_name="action",
            name="state",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("accepted", "Accepted"),
                    ("declined", "Declined"),
                    ("done", "Done"),
                    ("partial", "Partly done"),
                    ("refused", "Refused"),
                    ("not_sent", "Not sent"),
                    ("unclear", "No clear answer"),
                ],
                default="pending",
                editable=False,
                max_length=10,
            ),
        ),
        migrations.RunPython(fill_states, migrations.RunPython.noop),
    ]
