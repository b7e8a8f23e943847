"""The user pages' forms as a page would post them."""

from __future__ import annotations

from django.contrib.auth.models import User

from dashboard.models import Profile

NEW_PASSWORD = "another-long-passphrase"


def edit_form(user: User, **overrides) -> dict:
    """The edit form as the page would post it for ``user``, with changes."""
    profile = Profile.objects.filter(user=user).first()
    data = {
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "role": profile.role if profile else "viewer",
        "portals": [str(p.pk) for p in profile.portals.all()] if profile else [],
        "new_password1": "",
        "new_password2": "",
    }
    if user.is_active:
        data["is_active"] = "on"
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}
