"""Who may see and do what: a role per user and the portals they are assigned to."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from siq_integration.models import Portal


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    SUPERVISOR = "supervisor", "Supervisor"
    VIEWER = "viewer", "Viewer"


ROLE_HELP = {
    Role.ADMIN: "Manages portals, users and their portal access; sees and acts on every portal.",
    Role.SUPERVISOR: "Sees and acts on the portals assigned to them.",
    Role.VIEWER: "Sees the portals assigned to them, read-only (wallboards).",
}


class Profile(models.Model):
    """A user's role and portal access. Superusers are Admins whatever this says."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    portals = models.ManyToManyField(Portal, blank=True, related_name="members")

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()})"
