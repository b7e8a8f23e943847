from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Supervisor dashboard"

    def ready(self) -> None:
        # A live page's socket hears at once when its user's access ends.
        from . import revocation

        revocation.connect()
