"""Forms for adding and editing a portal."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from siq_integration.models import Dialect, Plan, Portal

DIALECT_HELP = {
    Dialect.V2: "Zoho's documented API. Choose this for a portal on salesiq.zoho.*.",
    Dialect.REFERENCE: "The older chats API with HMAC-signed webhooks (some proxies speak it).",
}


def data_center_choices() -> list[tuple[str, str]]:
    table = settings.SIQ_DATA_CENTERS
    return [(code, f"{dc.name} — {dc.accounts_url}") for code, dc in table.items()]


def plan_choices() -> list[tuple[str, str]]:
    choices = [
        (key, f"{plan['label']} — {plan['per_minute']} calls a minute, {plan['per_day']:,} a day")
        for key, plan in settings.SIQ_PLANS.items()
    ]
    return [*choices, (Plan.CUSTOM, "Custom — set the budget below")]


class PortalForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What supervisors will see, e.g. “Zylker support (EU)”.",
    )
    data_center = forms.ChoiceField(
        label="Data centre",
        help_text="Where the portal's Zoho account lives. Zoho may redirect to another one "
        "during sign-in; the dashboard follows it.",
    )
    dialect = forms.ChoiceField(
        label="API", choices=Dialect.choices, initial=Dialect.V2, widget=forms.RadioSelect
    )
    plan = forms.ChoiceField(
        label="SalesIQ plan",
        initial="professional",
        help_text="Sets how many calls a minute and a day the dashboard may make to SalesIQ.",
    )
    calls_per_minute = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=10_000,
        label="Calls a minute",
        help_text="Blank: the plan's figure.",
    )
    calls_per_day = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=10_000_000,
        label="Calls a day",
        help_text="Blank: the plan's figure.",
    )
    screen_name = forms.CharField(
        required=False,
        max_length=100,
        label="Screen name",
        help_text="The portal's name in SalesIQ addresses (salesiq.zoho.com/<b>zylker</b>). "
        "Leave it blank to pick from your Zoho account's portals after signing in.",
    )
    client_id = forms.CharField(
        required=False,
        max_length=200,
        label="Zoho client id",
        help_text="Blank: this dashboard's own Zoho client (ZOHO_CLIENT_ID).",
    )
    client_secret = forms.CharField(
        required=False,
        max_length=200,
        label="Zoho client secret",
        widget=forms.PasswordInput(render_value=False),
        help_text="Only with a client id of the portal's own. Stored encrypted; never shown.",
    )

    def __init__(self, *args: Any, portal: Portal | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.portal = portal
        self.fields["data_center"].choices = data_center_choices()
        self.fields["plan"].choices = plan_choices()
        self.fields["dialect"].choices = [
            (value, f"{label}: {DIALECT_HELP[value]}") for value, label in Dialect.choices
        ]
        if portal is not None:
            self.fields[
                "client_secret"
            ].help_text = "Blank keeps the stored secret. Stored encrypted; never shown."
            if portal.is_connected:
                # Changing these would point the stored grant at the wrong place.
                for name in ("data_center", "dialect"):
                    self.fields[name].disabled = True
                    self.fields[name].help_text = "Disconnect the portal first to change this."

    def clean_screen_name(self) -> str:
        value = self.cleaned_data["screen_name"].strip()
        if "/" in value or " " in value:
            raise forms.ValidationError("A screen name has no spaces or slashes.")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        plan = data.get("plan")
        if plan == Plan.CUSTOM and not (data.get("calls_per_minute") and data.get("calls_per_day")):
            self.add_error(None, "A custom plan needs both calls a minute and a day.")
        client_id = (data.get("client_id") or "").strip()
        data["client_id"] = client_id
        stored_secret = bool(self.portal and self.portal.client_secret_encrypted)
        if client_id and not data.get("client_secret") and not stored_secret:
            self.add_error("client_secret", "Enter the secret that goes with this client id.")
        if not client_id and not settings.ZOHO_CLIENT_ID:
            self.add_error(
                "client_id",
                "This dashboard has no Zoho client of its own (ZOHO_CLIENT_ID is not set): "
                "enter this portal's client id and secret.",
            )
        return data

    def budget(self) -> tuple[int, int]:
        data = self.cleaned_data
        plan = settings.SIQ_PLANS.get(data["plan"], {})
        per_minute = data.get("calls_per_minute") or plan.get("per_minute")
        per_day = data.get("calls_per_day") or plan.get("per_day")
        return int(per_minute), int(per_day)

    @classmethod
    def initial_for(cls, portal: Portal) -> dict[str, Any]:
        return {
            "name": portal.name,
            "data_center": portal.data_center,
            "dialect": portal.dialect,
            "plan": portal.plan,
            "calls_per_minute": portal.calls_per_minute,
            "calls_per_day": portal.calls_per_day,
            "screen_name": portal.screen_name,
            "client_id": portal.client_id,
        }


class ScreenNameForm(forms.Form):
    choice = forms.ChoiceField(required=False, widget=forms.RadioSelect, label="Portal")
    typed = forms.CharField(
        required=False,
        max_length=100,
        label="Or type the screen name",
    )

    def __init__(self, *args: Any, choices: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["choice"].choices = choices

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        screen = (data.get("typed") or "").strip() or data.get("choice") or ""
        if not screen:
            raise forms.ValidationError("Pick the portal, or type its screen name.")
        data["screen_name"] = screen
        return data
