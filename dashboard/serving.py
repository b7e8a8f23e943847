"""Running daphne for the dashboard: no websocket cut-off, an access log without query strings.

The OAuth callback carries Zoho's authorization code in its query string; an access
log must not keep it. Supervisors keep the page open all day, so websockets never time
out (daphne's default closes them after 24 hours).
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from daphne.access import AccessLogGenerator
from daphne.endpoints import build_endpoint_description_strings
from daphne.server import Server


class AccessLogWithoutQueries(AccessLogGenerator):
    def __call__(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        path = details.get("path")
        if isinstance(path, str) and "?" in path:
            details = {**details, "path": path.split("?", 1)[0] + "?…"}
        super().__call__(protocol, action, details)


def run(*, host: str, port: int, stream: TextIO | None = sys.stdout) -> None:
    """Serve dashboard.asgi:application on host:port until SIGINT/SIGTERM."""
    from dashboard.asgi import application

    server = Server(
        application=application,
        endpoints=build_endpoint_description_strings(host=host, port=port),
        websocket_timeout=-1,
        action_logger=AccessLogWithoutQueries(stream) if stream else None,
    )
    server.run()
