"""`POST /webhooks/salesiq/<portal uuid>/`: SalesIQ's deliveries.

Verified over the raw bytes with the portal's dialect, stored in the inbox with a
de-duplication key, answered at once; applied after commit (dashboard.ingest).

Under ASGI (``serve``, daphne) ``Receiver`` takes these requests before Django does:
a delivery needs no session, user, CSRF token or template, and SalesIQ waits for each
answer before it sends the next, so every millisecond of Django's request cycle (a
thread per request, a hop per middleware, a database connection opened and closed)
would cap the stream. The Django view serves the same address everywhere else (the
test client, WSGI); both end in ``ingest``.
"""

from __future__ import annotations

import asyncio
import json

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.http.request import split_domain_port, validate_host
from django.urls import Resolver404, resolve
from django.utils.datastructures import CaseInsensitiveMapping
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from siq_integration.webhooks import MAX_BODY_BYTES

from .. import ingest


@csrf_exempt  # SalesIQ signs its deliveries; there is no browser session here
@require_POST
def receive(request: HttpRequest, portal_id) -> JsonResponse:
    size = ingest.declared_length(request.headers)
    body = request.body if size <= MAX_BODY_BYTES else b""  # never read a body over the cap
    address = request.META.get("REMOTE_ADDR") or ""
    delivery = ingest.Delivery(
        portal_id, body, request.headers, size=max(size, len(body)), address=address
    )
    receipt = ingest.receive_one(delivery)
    return JsonResponse(receipt.body, status=receipt.status)


def _portal_of(path: str):
    """The portal id when ``path`` is the URLconf's `webhook` route, else None."""
    try:
        match = resolve(path)
    except Resolver404:
        return None
    return match.kwargs["portal_id"] if match.url_name == "webhook" else None


class Receiver:
    """ASGI: deliveries straight to ``ingest.store``; every other request to ``app``."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        # The views that run in threads schedule their work onto this loop (ingest.schedule).
        ingest.serving_loop.set(asyncio.get_running_loop())
        portal_id = _portal_of(scope["path"]) if scope["method"] == "POST" else None
        if portal_id is None:
            await self.app(scope, receive, send)  # GET and others: Django's 405, 404, …
            return
        headers = CaseInsensitiveMapping(
            {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        )
        host, _ = split_domain_port(headers.get("host", ""))
        if not validate_host(host, settings.ALLOWED_HOSTS):
            await _respond(send, 400, {"error": "host not allowed"})
            return
        body, size = await _read(receive, ingest.declared_length(headers))
        if body is None:
            return  # the sender went away
        client = scope.get("client") or ("", 0)
        delivery = ingest.Delivery(portal_id, body, headers, size=size, address=str(client[0]))
        receipt = await ingest.store(delivery)
        await _respond(send, receipt.status, receipt.body)


async def _read(receive, declared: int) -> tuple[bytes | None, int]:
    """The body, or b"" and its size when it is over the cap (not kept in memory)."""
    if declared > MAX_BODY_BYTES:
        return b"", declared
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, size
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= MAX_BODY_BYTES:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return (b"".join(chunks) if size <= MAX_BODY_BYTES else b""), size


async def _respond(send, status: int, body: dict) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"x-content-type-options", b"nosniff"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
