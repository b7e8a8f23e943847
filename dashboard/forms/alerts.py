"""Editing a portal's alert rules (Admins)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import validate_email

from .. import outbound
from ..alerts.rules import RULES
from ..models import AlertKind, AlertRule, Department, Severity

# The service rules' bounds: a window long enough to hold a few chats, short enough to be
# "now"; a share that can be crossed.
WINDOW_MINUTES = (5, 480)
SHARE_BOUNDS = {AlertKind.SERVICE_LEVEL_LOW: (1, 100), AlertKind.MISSED_SHARE_HIGH: (0, 99)}


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
            "window_minutes",
            "minimum_chats",
        ]
        labels = {
            "window_minutes": "Over the last (minutes)",
            "minimum_chats": "Only with at least (chats)",
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
        if spec.judges_a_window:
            self.fields["threshold"].label = {
                AlertKind.SERVICE_LEVEL_LOW: "Alert below (%)",
                AlertKind.MISSED_SHARE_HIGH: "Alert above (%)",
            }[spec.kind]
            self.fields["window_minutes"].help_text = (
                "The chats that arrived in this many minutes, and the ones waiting past the "
                f"target time now. Default {spec.window}."
            )
            self.fields["minimum_chats"].help_text = (
                "Say nothing until this many chats of the window can be judged, so one missed "
                f"chat early in the day pages nobody. Default {spec.minimum}."
            )
        else:
            del self.fields["window_minutes"], self.fields["minimum_chats"]

    def _kept_when_left_out(self, name: str) -> bool:
        """A post without the field at all (an older page, a script) keeps the value; the
        page always sends it, so an empty one there is a mistake to name."""
        return self.add_prefix(name) not in self.data

    def clean_threshold(self) -> int:
        value = self.cleaned_data["threshold"]
        if self.instance.kind == "low_rating" and not 1 <= value <= 5:
            raise forms.ValidationError("A rating runs from 1 to 5.")
        if self.instance.kind in SHARE_BOUNDS:
            low, high = SHARE_BOUNDS[self.instance.kind]
            if value is None or not low <= value <= high:
                raise forms.ValidationError(f"Give a share from {low} to {high} %.")
        return value

    def clean_window_minutes(self) -> int | None:
        value = self.cleaned_data.get("window_minutes")
        if value is None and self._kept_when_left_out("window_minutes"):
            return self.instance.window_minutes
        low, high = WINDOW_MINUTES
        if value is None or not low <= value <= high:
            raise forms.ValidationError(f"Say over how many minutes: {low} to {high}.")
        return value

    def clean_minimum_chats(self) -> int | None:
        value = self.cleaned_data.get("minimum_chats")
        if value is None and self._kept_when_left_out("minimum_chats"):
            return self.instance.minimum_chats
        if value is None or value < 1:
            raise forms.ValidationError("Say how many chats at least: 1 or more.")
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
