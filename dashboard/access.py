"""Access rules, checked server-side by every page, action and websocket.

Admins see and act on every portal. Supervisors see and act on the portals assigned
to them; Viewers only see theirs. A portal a user may not see does not exist for
them (404), so its name never leaks; a visible portal they may not change gives 403.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse

from siq_integration.models import Portal

from .models import Profile, Role


def role_of(user: Any) -> Role | None:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    profile = Profile.objects.filter(user=user).only("role").first()
    return Role(profile.role) if profile else Role.VIEWER


def is_admin(user: Any) -> bool:
    return role_of(user) is Role.ADMIN


def visible_portals(user: Any) -> QuerySet[Portal]:
    role = role_of(user)
    if role is None:
        return Portal.objects.none()
    if role is Role.ADMIN:
        return Portal.objects.all()
    return Portal.objects.filter(members__user=user)


def can_view(user: Any, portal: Portal) -> bool:
    return visible_portals(user).filter(pk=portal.pk).exists()


def can_act(user: Any, portal: Portal) -> bool:
    """Supervisors of the portal and Admins may act (transfer, end, set status)."""
    role = role_of(user)
    if role is Role.ADMIN:
        return True
    return role is Role.SUPERVISOR and can_view(user, portal)


def portal_for(user: Any, portal_id: Any) -> Portal:
    """The portal if ``user`` may see it, else 404 (whether or not it exists)."""
    try:
        return visible_portals(user).get(pk=portal_id)
    except (Portal.DoesNotExist, ValueError):
        raise Http404("No such portal") from None


def admin_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Signed-in Admins only: others are sent to sign in (anonymous) or refused (403)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not is_admin(request.user):
            raise PermissionDenied("Only admins can do that.")
        return view(request, *args, **kwargs)

    return wrapped
