"""Editing a portal's service levels (Admins): its time zone and target, and per department
an own target and business hours."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from django import forms

from .. import times
from ..models import Department, DepartmentService, ServiceSettings

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
SECONDS_RANGE = (1, 3600)
SHARE_RANGE = (1, 100)


def _seconds_field(**kwargs: Any) -> forms.IntegerField:
    low, high = SECONDS_RANGE
    return forms.IntegerField(
        min_value=low,
        max_value=high,
        error_messages={
            "min_value": "Give at least 1 second.",
            "max_value": "Give at most 3600 seconds (an hour).",
            "invalid": "Give a whole number of seconds.",
        },
        **kwargs,
    )


def _share_field(**kwargs: Any) -> forms.IntegerField:
    low, high = SHARE_RANGE
    return forms.IntegerField(
        min_value=low,
        max_value=high,
        error_messages={
            "min_value": "Give a share from 1 to 100 %%.",  # formatted with the limit
            "max_value": "Give a share from 1 to 100 %%.",
            "invalid": "Give a whole number from 1 to 100.",
        },
        **kwargs,
    )


class ServiceSettingsForm(forms.ModelForm):
    time_zone = forms.CharField(
        label="Time zone",
        max_length=64,
        help_text="The portal's business day runs from midnight to midnight here. Type a "
        "city or pick from the list (IANA names, such as Europe/Berlin).",
        error_messages={"required": "Give the portal's time zone, such as Europe/Berlin."},
    )
    target_seconds = _seconds_field(
        label="Picked up within (seconds)", help_text="T: from 1 to 3600 seconds."
    )
    target_share = _share_field(
        label="Share of chats (%)", help_text="The service level to hold, from 1 to 100 %."
    )

    class Meta:
        model = ServiceSettings
        fields = ["time_zone", "target_seconds", "target_share"]

    def clean_time_zone(self) -> str:
        typed = self.cleaned_data["time_zone"].strip()
        names = times.zone_names()
        if typed in names:
            return typed
        # "europe/berlin" or "Europe/New York": the zone meant, as the database spells it.
        by_folded = {name.casefold(): name for name in names}
        folded = typed.replace(" ", "_").casefold()
        if folded in by_folded:
            return by_folded[folded]
        close = difflib.get_close_matches(folded, list(by_folded), n=1, cutoff=0.8)
        hint = f" Did you mean {by_folded[close[0]]}?" if close else " Pick one from the list."
        raise forms.ValidationError(f"“{typed}” is not a time zone this server knows.{hint}")


@dataclass(frozen=True)
class DayRow:
    """One weekday of a department's business hours, as the page shows it."""

    name: str
    opens: forms.BoundField
    closes: forms.BoundField

    @property
    def errors(self) -> list[str]:
        return [*self.opens.errors, *self.closes.errors]


def _time_field(label: str) -> forms.TimeField:
    return forms.TimeField(
        label=label,
        required=False,
        input_formats=["%H:%M", "%H:%M:%S"],
        widget=forms.TimeInput(attrs={"type": "time", "aria-label": label}, format="%H:%M"),
        error_messages={"invalid": "Give a time of day such as 09:00."},
    )


class DepartmentServiceForm(forms.Form):
    """One department: its own target (blank: the portal's) and its business hours (none:
    always open). Saved as a ``DepartmentService`` row; none is kept when nothing is set."""

    ALWAYS, HOURS = "always", "hours"

    target_seconds = _seconds_field(label="Own T (seconds)", required=False)
    target_share = _share_field(label="Own share (%)", required=False)
    opening = forms.ChoiceField(
        label="Open",
        choices=[(ALWAYS, "Always"), (HOURS, "During these hours")],
        widget=forms.RadioSelect,
        initial=ALWAYS,
        error_messages={"required": "Choose Always or During these hours."},
    )

    def __init__(
        self,
        *args: Any,
        department: Department,
        own: DepartmentService | None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("prefix", f"department-{department.pk}")
        kwargs.setdefault("initial", self.initial_for(own))
        super().__init__(*args, **kwargs)
        self.department = department
        self.own = own
        for number, name in enumerate(WEEKDAYS):
            self.fields[f"opens_{number}"] = _time_field(f"{name} opens")
            self.fields[f"closes_{number}"] = _time_field(f"{name} closes")

    @classmethod
    def initial_for(cls, own: DepartmentService | None) -> dict[str, Any]:
        if own is None:
            return {"opening": cls.ALWAYS}
        initial: dict[str, Any] = {
            "target_seconds": own.target_seconds,
            "target_share": own.target_share,
            "opening": cls.HOURS if own.hours else cls.ALWAYS,
        }
        for day, span in (own.hours or {}).items():
            if span:
                initial[f"opens_{day}"], initial[f"closes_{day}"] = span
        return initial

    def was_on_the_page(self) -> bool:
        """Whether the posted page had this department (one that arrived from SalesIQ
        after the page was loaded is left as it is)."""
        return not self.is_bound or self.add_prefix("opening") in self.data

    @property
    def days(self) -> list[DayRow]:
        return [
            DayRow(name, self[f"opens_{number}"], self[f"closes_{number}"])
            for number, name in enumerate(WEEKDAYS)
        ]

    @property
    def has_own_settings(self) -> bool:
        """Worth showing open: something set, or something to correct."""
        if self.is_bound and self.errors:
            return True
        own = self.own
        return bool(own and (own.target_seconds or own.target_share or own.hours))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("opening") != self.HOURS:
            data["hours"] = {}
            return data
        hours: dict[str, list[str]] = {}
        for number, name in enumerate(WEEKDAYS):
            opens_field, closes_field = f"opens_{number}", f"closes_{number}"
            if opens_field in self.errors or closes_field in self.errors:
                continue
            opens, closes = data.get(opens_field), data.get(closes_field)
            if opens is None and closes is None:
                continue  # closed all day
            if opens is None or closes is None:
                self.add_error(
                    closes_field if opens else opens_field,
                    f"{name}: give both the opening and the closing time, "
                    "or neither to keep it closed all day.",
                )
                continue
            if closes <= opens:
                self.add_error(
                    closes_field,
                    f"{name}: it closes at {closes:%H:%M}, which is not after it opens "
                    f"({opens:%H:%M}). Hours past midnight are not supported: "
                    "end the day at 23:59 and open the next day at 00:00.",
                )
                continue
            hours[str(number)] = [f"{opens:%H:%M}", f"{closes:%H:%M}"]
        if not hours and not self.errors:
            self.add_error(
                "opening",
                "Give the hours of at least one day, or choose Always (no business hours).",
            )
        data["hours"] = hours
        return data

    def save(self) -> DepartmentService | None:
        """Store the department's settings; nothing kept when none differ from the
        defaults (the portal's target, always open)."""
        data = self.cleaned_data
        values = {
            "target_seconds": data.get("target_seconds"),
            "target_share": data.get("target_share"),
            "hours": data["hours"],
        }
        department = self.department
        if not any(values.values()):
            DepartmentService.objects.filter(
                portal_id=department.portal_id, department_id=department.remote_id
            ).delete()
            return None
        own, _ = DepartmentService.objects.update_or_create(
            portal_id=department.portal_id, department_id=department.remote_id, defaults=values
        )
        return own
