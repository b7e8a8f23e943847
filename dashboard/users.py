"""Users and their portal access: what the Users pages read and change.

Views call these; the rules that keep an admin from locking themselves out live here,
so they hold whoever calls (a page today, a command tomorrow).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from siq_integration.models import Portal

from .models import Profile, Role
from .signin import locked_out_usernames

if TYPE_CHECKING:
    from django.contrib.auth.models import User
else:
    User = get_user_model()


CANNOT_DEMOTE_SELF = (
    "You cannot remove your own Admin role: you would lock yourself out of the Users and "
    "Portals pages. Ask another admin to change your role."
)
CANNOT_DEACTIVATE_SELF = (
    "You cannot deactivate your own account: you would be signed out and could not sign "
    "in again. Ask another admin to do it."
)
SUPERUSER_IS_ADMIN = "A superuser is always an Admin; their role cannot be changed here."
ONLY_SUPERUSERS_GUARD_SUPERUSERS = (
    "Only a superuser can change a superuser's password or deactivate them (they also reach "
    "Django's admin site)."
)


# --- selectors --------------------------------------------------------------------------


def shown_name(user: Any) -> str:
    """How every screen names a user of the dashboard (who acted, acknowledged, snoozed):
    their name, else their username."""
    return " ".join(user.get_full_name().split()) or user.get_username()


def assigned_role(user: User) -> Role:
    """The role a user holds, active or not (superusers are Admins, no Profile is Viewer).

    ``access.role_of`` answers "what may this request do" and is None for inactive users;
    this answers "what is this account set up as", for the Users pages.
    """
    if user.is_superuser:
        return Role.ADMIN
    try:
        return Role(user.profile.role)
    except Profile.DoesNotExist:
        return Role.VIEWER


def assigned_portals(user: User) -> list[Portal]:
    """The portals ticked for this user (Admins see all of them whatever is ticked)."""
    try:
        return list(user.profile.portals.all())
    except Profile.DoesNotExist:
        return []


@dataclass(frozen=True)
class UserAccess:
    user: User
    role: Role
    portals: list[Portal]
    locked_out: bool = False  # too many failed sign-ins lately (dashboard.signin)

    @property
    def sees_all_portals(self) -> bool:
        return self.role is Role.ADMIN


def user_access_list() -> list[UserAccess]:
    """Every user with their role, portals and lockout, sorted by username, in four queries."""
    users = (
        User.objects.order_by("username")
        .select_related("profile")
        .prefetch_related("profile__portals")
    )
    locked = locked_out_usernames()
    return [
        UserAccess(user, assigned_role(user), assigned_portals(user), user.username in locked)
        for user in users
    ]


# --- operations -------------------------------------------------------------------------


@transaction.atomic
def user_create(
    *,
    username: str,
    first_name: str,
    last_name: str,
    email: str,
    role: Role,
    portals: Iterable[Portal],
    password: str,
) -> User:
    """A new, active user with a role and portal access. ``password`` is already validated."""
    user = User(username=username, first_name=first_name, last_name=last_name, email=email)
    user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    profile = Profile.objects.create(user=user, role=role)
    profile.portals.set(portals)
    return user


@transaction.atomic
def user_update(
    *,
    user: User,
    by: User,
    first_name: str,
    last_name: str,
    email: str,
    role: Role,
    portals: Iterable[Portal],
    is_active: bool,
    new_password: str = "",
) -> User:
    """Change a user's details, role, portal access and, when given, password.

    ``by`` is the admin making the change. Raises ValidationError (keyed by field: ``role``,
    ``is_active``, ``new_password1``) and saves nothing when the change would lock ``by``
    out, give a superuser a role other than Admin, or let a non-superuser take over a
    superuser. A blank ``new_password`` keeps the current one.
    """
    problems: dict[str, str] = {}
    if user.is_superuser and role != Role.ADMIN:
        problems["role"] = SUPERUSER_IS_ADMIN
    if user.is_superuser and not by.is_superuser:
        # Otherwise an Admin could take over a superuser account and, with it, /admin/.
        if new_password:
            problems["new_password1"] = ONLY_SUPERUSERS_GUARD_SUPERUSERS
        if not is_active and user.is_active:
            problems["is_active"] = ONLY_SUPERUSERS_GUARD_SUPERUSERS
    if user.pk == by.pk:
        if role != Role.ADMIN:
            problems["role"] = CANNOT_DEMOTE_SELF
        if not is_active:
            problems["is_active"] = CANNOT_DEACTIVATE_SELF
    if problems:
        raise ValidationError(problems)

    user.first_name = first_name
    user.last_name = last_name
    user.email = email
    user.is_active = is_active
    fields = ["first_name", "last_name", "email", "is_active"]
    if new_password:
        user.set_password(new_password)
        fields.append("password")
    user.save(update_fields=fields)

    profile, _ = Profile.objects.get_or_create(user=user)
    profile.role = role
    profile.save(update_fields=["role"])
    profile.portals.set(portals)
    return user
