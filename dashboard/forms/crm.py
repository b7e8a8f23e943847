"""The portal page's Zoho CRM settings (Admins)."""

from __future__ import annotations

from django import forms


class CrmSettingsForm(forms.Form):
    big_deal_amount = forms.DecimalField(
        label="A visitor matters with an open deal above",
        min_value=0,
        max_digits=14,
        decimal_places=2,
    )
    credits_per_day = forms.IntegerField(
        label="Zoho CRM credits the dashboard may use a day", min_value=1, max_value=10_000_000
    )
