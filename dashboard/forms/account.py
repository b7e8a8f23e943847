"""A signed-in user's own settings: how they read times."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django import forms

from .. import times
from ..models import Profile, TimeFormat


def zone_groups(browser_zone: str) -> list[tuple[str, Any]]:
    """The zones to pick from: the browser's first, UTC, then by region ("Europe" → "Berlin")."""
    browser = f"My browser's ({browser_zone} now)" if browser_zone else "My browser's"
    regions: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for name in times.zone_choices():
        if name == "UTC":
            continue
        region, _, place = name.partition("/")
        if place:
            regions[region].append((name, place.replace("_", " ").replace("/", " / ")))
        else:
            regions["Other"].append((name, name))
    return [("", browser), ("UTC", "UTC"), *sorted(regions.items(), key=lambda r: r[0] == "Other")]


class TimeSettingsForm(forms.ModelForm):
    time_format = forms.ChoiceField(
        label="Clock",
        choices=TimeFormat.choices,
        required=False,
        widget=forms.RadioSelect,
    )
    time_zone = forms.ChoiceField(
        label="Time zone",
        required=False,
        help_text="Every time of day is shown in this zone; history pages count their days in it.",
        error_messages={"invalid_choice": "Pick a time zone from the list."},
    )

    class Meta:
        model = Profile
        fields = ["time_format", "time_zone"]

    def __init__(self, *args: Any, browser_zone: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = zone_groups(browser_zone)
