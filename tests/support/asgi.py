"""The ASGI application driven directly: a browser's headers, SalesIQ's deliveries."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import async_to_sync, sync_to_async
from django.db import connections
from django.test import Client

from dashboard.models import InboxEvent


def browser_headers(user) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    return [(b"cookie", cookie.encode()), (b"origin", b"http://localhost"), (b"host", b"localhost")]


def delivery_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    keep = {"content-type", "x-siqsignature", "x-salesiq-signature"}
    out = [(b"host", b"localhost")]
    out += [(k.encode(), v.encode()) for k, v in headers.items() if k in keep]
    return out


async def settled(portal, timeout: float = 10.0) -> None:
    """Until every stored event of ``portal`` is applied (or the time is up)."""
    waiting = sync_to_async(
        lambda: InboxEvent.objects.filter(portal=portal, state="pending").exists()
    )
    for _ in range(int(timeout / 0.05)):
        if not await waiting():
            return
        await asyncio.sleep(0.05)


def run_async(async_fn):
    """Run ``async_fn()`` to completion in a thread of its own and return its result.

    Browser tests leave Playwright's event loop running in the main thread, where
    async_to_sync refuses to start another; a fresh thread has none.
    """

    def in_thread():
        try:
            return async_to_sync(async_fn)()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(in_thread).result(timeout=120)
