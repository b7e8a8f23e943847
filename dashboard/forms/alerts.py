"""Editing a portal's alert rules (Admins)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import validate_email

from .. import outbound
from ..alerts.rules import RULES
from ..models import AlertRule, Department, Severity


class AlertRuleForm(forms.ModelForm):
    department_ids = forms.MultipleChoiceField(
        required=False,
        label="Only these departments",
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every department.",
    )

    class Meta:
        model = AlertRule
        fields = [
            "enabled",
            "threshold",
            "severity",
            "department_ids",
            "escalate_after_minutes",
            "escalate_emails",
            "escalate_webhook_url",
        ]
        labels = {
            "escalate_after_minutes": "Escalate when unacknowledged for (minutes)",
            "escalate_emails": "E-mail addresses",
            "escalate_webhook_url": "Webhook (Slack-compatible)",
        }
        widgets = {
            "severity": forms.Select(choices=Severity.choices),
            "escalate_emails": forms.TextInput(attrs={"placeholder": "lead@example.org, …"}),
            "escalate_webhook_url": forms.URLInput(
                attrs={"placeholder": "https://hooks.slack.com/services/…"}
            ),
        }

    def __init__(self, *args: Any, departments: list[Department], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        spec = RULES[self.instance.kind]
        self.spec = spec
        self.fields["department_ids"].choices = [(d.remote_id, d.name) for d in departments]
        self.fields["threshold"].label = f"Threshold ({spec.unit})" if spec.unit else "Threshold"
        self.fields["threshold"].help_text = spec.threshold_help
        if not spec.unit:
            self.fields["threshold"].widget = forms.HiddenInput()
        if not spec.scoped or not departments:
            self.fields["department_ids"].widget = forms.MultipleHiddenInput()
        if self.instance.kind == "low_rating":
            self.fields["threshold"].min_value = 1
            self.fields["threshold"].max_value = 5

    def clean_threshold(self) -> int:
        value = self.cleaned_data["threshold"]
        if self.instance.kind == "low_rating" and not 1 <= value <= 5:
            raise forms.ValidationError("A rating runs from 1 to 5.")
        return value

    def clean_escalate_emails(self) -> str:
        addresses = [
            a.strip() for a in self.cleaned_data["escalate_emails"].split(",") if a.strip()
        ]
        for address in addresses:
            try:
                validate_email(address)
            except forms.ValidationError:
                raise forms.ValidationError(f"“{address}” is not an e-mail address.") from None
        return ", ".join(addresses)

    def clean_escalate_webhook_url(self) -> str:
        url = self.cleaned_data["escalate_webhook_url"].strip()
        # The rules the outbound session applies when it calls (dashboard/outbound.py).
        if url and (why := outbound.refusal(url)):
            raise forms.ValidationError(why)
        return url

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        wants = data.get("escalate_after_minutes") is not None
        has_target = data.get("escalate_emails") or data.get("escalate_webhook_url")
        if wants and not has_target:
            self.add_error(
                "escalate_after_minutes", "Say where to escalate: e-mail addresses or a webhook."
            )
        return data
