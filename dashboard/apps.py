from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Supervisor dashboard"

    def ready(self) -> None:
        # Imported once the app registry is ready (they import models), not to dodge a cycle.
        from . import revocation
        from .alerts import lifecycle
        from .realtime import publish
        from .state import changes

        # A live page's socket hears at once when its user's access ends.
        revocation.connect()
        # What changes reaches the one publisher; the alert rules follow each publication.
        changes.on_record(publish.changed)
        publish.after_publication(lifecycle.after_publication)
