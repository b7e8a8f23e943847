from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from . import times
from .access import role_of
from .models import Role


def access(request: HttpRequest) -> dict:
    """The signed-in user's role, for navigation (the server checks again on every request)."""
    role = role_of(request.user)
    return {"user_role": role, "user_is_admin": role is Role.ADMIN}


def clock(request: HttpRequest) -> dict:
    """How this viewer reads times of day (dashboard.times): read when a page writes one."""
    return {"viewer_clock": SimpleLazyObject(lambda: times.viewer_clock(request))}
