"""Users and portals, built the same way in every test.

Users by role: ``make_admin``, ``make_supervisor`` and ``make_viewer`` (a Profile with that
role on the portals given); ``owner`` is the superuser fixture, ``member(portal)`` a
Supervisor of the portal, ``outsider(portal)`` a Supervisor of another portal only.
Portals: ``live_portal`` (connected, offline) and ``make_portal`` (named, connected).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.utils import timezone

from dashboard.models import Profile, Role
from siq_integration.models import Portal


def live_portal(**fields) -> Portal:
    """A portal the pages treat as connected (live), without a real grant: for tests of
    what pages show. Nothing may reach Zoho or SalesIQ for it: its token refresh is
    blocked for a day, so a call (a drawer loading a transcript) fails at once, offline."""
    now = timezone.now()
    fields.setdefault("data_center", "us")
    return Portal.objects.create(
        refresh_token_encrypted=Portal._write("not-a-real-grant"),
        connected_at=now,
        token_refresh_blocked_until=now + timedelta(days=1),
        **fields,
    )


def make_portal(name: str = "Zylker") -> Portal:
    """A connected (live) portal: only those show on the live page."""
    return live_portal(name=name, screen_name=name.lower())


PASSWORD = "a-long-test-password"


def make_user(username: str, role: Role | None = None, *portals: Portal, **fields) -> User:
    """A user with a password; a Profile only when a role is given (none means Viewer)."""
    user = get_user_model().objects.create_user(username, password=PASSWORD, **fields)
    if role is not None:
        profile = Profile.objects.create(user=user, role=role)
        profile.portals.set(portals)
    return user


def make_admin(username: str = "admin", *portals: Portal, **fields) -> User:
    return make_user(username, Role.ADMIN, *portals, **fields)


def make_supervisor(username: str, *portals: Portal, **fields) -> User:
    return make_user(username, Role.SUPERVISOR, *portals, **fields)


def make_viewer(username: str, *portals: Portal, **fields) -> User:
    return make_user(username, Role.VIEWER, *portals, **fields)


def member(portal: Portal, username: str = "member") -> User:
    """A Supervisor of ``portal``: sees it and acts on it."""
    return make_supervisor(username, portal)


def outsider(portal: Portal, username: str = "outsider") -> User:
    """A Supervisor of a portal of their own, not of ``portal``."""
    elsewhere = live_portal(name=f"Not {portal.name}", screen_name=f"not-{portal.screen_name}")
    return make_supervisor(username, elsewhere)


@pytest.fixture
def owner(db) -> User:
    """The superuser: every portal, every page."""
    return get_user_model().objects.create_superuser("owner", "owner@example.org", "pw-long-x")


def token_portal() -> Portal:
    """A v2 portal in the EU data centre with tokens and room in its budget, for the
    client's tests with HTTP faked (nothing from a sign-in)."""
    portal = Portal(
        name="Zylker",
        data_center="eu",
        dialect="v2",
        screen_name="zylker",
        calls_per_minute=100,
        calls_per_day=10_000,
        accounts_url="https://accounts.zoho.eu",
        token_expires_at=timezone.now() + timedelta(hours=1),
    )
    portal.access_token_encrypted = Portal._write("1000.first")
    portal.refresh_token_encrypted = Portal._write("1000.refresh")
    portal.save()
    return portal
