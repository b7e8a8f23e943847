"""ASGI entry point: Django for HTTP, Channels for websockets."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
# Build the Django app first: it sets up the app registry before anything imports models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from dashboard.origin import SameOriginValidator  # noqa: E402
from dashboard.routing import websocket_urlpatterns  # noqa: E402
from dashboard.server.frame_once import KeepSocket  # noqa: E402
from dashboard.views.webhooks import Receiver  # noqa: E402

# SameOriginValidator: only this server's own pages, scheme, host and port.
websocket = SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
if settings.SIQ_FRAME_ONCE:
    # Opt-in: live messages framed once for every page (dashboard/server/frame_once.py).
    websocket = KeepSocket(websocket)

application = ProtocolTypeRouter(
    {
        "http": Receiver(django_asgi_app),  # SalesIQ's deliveries skip the request cycle
        "websocket": websocket,
    }
)
