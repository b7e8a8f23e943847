"""Password validators of our own (AUTH_PASSWORD_VALIDATORS)."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

_WORDS = (
    "spring|summer|autumn|fall|winter|"
    "january|february|march|april|may|june|july|august|september|october|november|december|"
    "jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec"
)
_YEAR = r"(?:\d{2}|\d{4})"
# Only a season or month and a year, either way round, once punctuation and spaces are gone.
_SEASON_OR_MONTH_WITH_YEAR = re.compile(rf"(?:(?:{_WORDS}){_YEAR}|{_YEAR}(?:{_WORDS}))")


class SeasonOrMonthWithYearValidator:
    """Refuses "Summer2024", "october-2025!", "2024 Winter": the first guesses anyone tries."""

    message = (
        "This password is a season or a month with a year (like “Summer2024”), which is one "
        "of the first guesses anyone tries. Choose something else."
    )

    def validate(self, password: str, user=None) -> None:
        letters_and_digits = re.sub(r"[\W_]+", "", password.casefold())
        if _SEASON_OR_MONTH_WITH_YEAR.fullmatch(letters_and_digits):
            raise ValidationError(self.message, code="password_season_or_month_with_year")

    def get_help_text(self) -> str:
        return "Your password cannot be a season or a month with a year, like “Summer2024”."
