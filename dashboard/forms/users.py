"""The add-user and edit-user forms: input checks only; the rules live in dashboard.users."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib.auth import get_user_model, password_validation

from siq_integration.models import Portal

from ..models import ROLE_HELP, Role
from ..users import assigned_portals, assigned_role

if TYPE_CHECKING:
    from django.contrib.auth.models import User
else:
    User = get_user_model()


class PortalChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Portal) -> str:
        return obj.name


class UserFields(forms.Form):
    """What add and edit share: names, e-mail, role and portal access."""

    first_name = forms.CharField(label="First name", max_length=150, required=False)
    last_name = forms.CharField(label="Last name", max_length=150, required=False)
    email = forms.EmailField(
        label="E-mail",
        required=False,
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
    )
    role = forms.TypedChoiceField(
        label="Role",
        choices=Role.choices,
        coerce=Role,
        initial=Role.VIEWER,
        widget=forms.RadioSelect,
    )
    portals = PortalChoiceField(
        label="Portals",
        queryset=Portal.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The portals this user sees. Admins see all portals, whatever is ticked here.",
    )

    def password_rules(self) -> list[str]:
        """What the project's password validators ask for, in their own words."""
        return password_validation.password_validators_help_texts()

    def role_options(self) -> Iterator[tuple[Any, str]]:
        """Each role's radio button with its one-line description, for the template."""
        for radio in self["role"]:
            yield radio, ROLE_HELP[Role(radio.data["value"])]

    def _check_password(self, first: str, second: str, user: User) -> str:
        """The password typed twice, checked by the project's validators ('' when none)."""
        password = self.cleaned_data.get(first) or ""
        again = self.cleaned_data.get(second) or ""
        if not password and not again:
            return ""
        if password != again:
            self.add_error(second, "The two passwords do not match.")
            return ""
        for name in ("first_name", "last_name", "email"):
            if name in self.cleaned_data:
                setattr(user, name, self.cleaned_data[name])
        try:
            password_validation.validate_password(password, user)
        except forms.ValidationError as error:
            self.add_error(first, error)
            return ""
        return password


class UserAddForm(UserFields):
    username = forms.CharField(
        label="Username",
        max_length=150,
        validators=[User.username_validator],
        help_text="Used to sign in. Letters, digits and @ . + - _ only.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "autofocus": True}),
    )
    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label="Password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    field_order = ["username", "first_name", "last_name", "email", "role", "portals"]

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("Someone already has that username. Choose another.")
        return username

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        user = User(username=cleaned.get("username", ""))
        cleaned["password"] = self._check_password("password1", "password2", user)
        return cleaned


class UserEditForm(UserFields):
    is_active = forms.BooleanField(
        label="Active",
        required=False,
        help_text="Only active users can sign in.",
    )
    new_password1 = forms.CharField(
        label="New password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Leave both blank to keep the current password.",
    )
    new_password2 = forms.CharField(
        label="New password again",
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {
                "first_name": user.first_name,
                "last_name": user.last_name,
                "email": user.email,
                "role": assigned_role(user),
                "portals": assigned_portals(user),
                "is_active": user.is_active,
            },
        )
        super().__init__(*args, **kwargs)
        self.user = user
        if user.is_superuser:
            # Always an Admin: offering the choice would only invite a refusal.
            del self.fields["role"]

    @property
    def role_is_fixed(self) -> bool:
        return "role" not in self.fields

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.role_is_fixed:
            cleaned["role"] = Role.ADMIN
        # A copy, so a refused form leaves the account as it was.
        cleaned["new_password"] = self._check_password(
            "new_password1", "new_password2", copy.copy(self.user)
        )
        return cleaned
