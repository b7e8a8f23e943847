"""Websockets only from the dashboard's own pages: the Origin must be this server's origin.

Channels' AllowedHostsOriginValidator compares only the Origin's host with ALLOWED_HOSTS, so a
page served by anything else on the same host (``http://localhost:9999``, another app behind
the same name) could open a live socket with the user's cookie and read what it streams.

This compares scheme, host and port, the way Django's CSRF check compares a form's Origin: the
Origin must equal the origin of the request itself (its Host, validated against ALLOWED_HOSTS;
https when the socket is wss or SECURE_PROXY_SSL_HEADER says so behind a TLS proxy), or be one
of CSRF_TRUSTED_ORIGINS (exactly, or a ``*.`` subdomain entry). A socket without an Origin, or
with ``null``, is refused, as it was. Default ports count as given: ``https://x`` is
``https://x:443``.
"""

from __future__ import annotations

import io
import logging
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.http.request import split_domain_port
from django.utils.http import is_same_domain

logger = logging.getLogger(__name__)

DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]  # scheme, host (lower case), port


def parse_origin(value: str) -> Origin | None:
    """``scheme://host[:port]`` as a comparable triple, or None when it is not one."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.username or parts.password:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    return scheme, parts.hostname.lower(), port if port is not None else DEFAULT_PORTS[scheme]


def _request_of(scope) -> ASGIRequest:
    """The websocket's handshake as Django sees an HTTP request, for get_host() (Host or
    X-Forwarded-Host, checked against ALLOWED_HOSTS) and is_secure() (SECURE_PROXY_SSL_HEADER)."""
    secure = scope.get("scheme") in ("wss", "https")
    http_scope = {**scope, "type": "http", "method": "GET", "scheme": "https" if secure else "http"}
    return ASGIRequest(http_scope, io.BytesIO())


def own_origin(scope) -> Origin | None:
    """This server's origin as the socket's handshake names it, or None for a host that is
    not ours (not in ALLOWED_HOSTS)."""
    request = _request_of(scope)
    try:
        host = request.get_host()
    except DisallowedHost:
        return None
    domain, port = split_domain_port(host)
    if not domain:
        return None
    scheme = "https" if request.is_secure() else "http"
    try:
        number = int(port) if port else DEFAULT_PORTS[scheme]
    except ValueError:
        return None
    return scheme, domain.strip("[]"), number  # "[::1]" as urlsplit names it: "::1"


def _trusted(origin: Origin) -> bool:
    scheme, host, port = origin
    for entry in settings.CSRF_TRUSTED_ORIGINS:
        if "*" in entry:
            # "https://*.example.com": any subdomain, on the port given (or the default).
            wildcard = parse_origin(entry.replace("*", "wildcard", 1))
            if wildcard is None or (wildcard[0], wildcard[2]) != (scheme, port):
                continue
            suffix = wildcard[1].removeprefix("wildcard")
            if is_same_domain(host, suffix):
                return True
        elif parse_origin(entry) == origin:
            return True
    return False


def allowed(scope) -> bool:
    origins = [value for name, value in scope.get("headers", []) if name.lower() == b"origin"]
    if len(origins) != 1:
        return False
    origin = parse_origin(origins[0].decode("latin-1"))
    if origin is None:
        return False
    return origin == own_origin(scope) or _trusted(origin)


class SameOriginValidator:
    """ASGI middleware: a websocket whose Origin is not this server's is refused (403) before
    it reaches the session, the user or a consumer."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket" or allowed(scope):
            return await self.application(scope, receive, send)
        origin = dict(scope.get("headers", [])).get(b"origin", b"").decode("latin-1")[:200]
        logger.warning("Refused a websocket from origin %r: not this dashboard's address", origin)
        return await WebsocketDenier()(scope, receive, send)
