"""A real daphne process with frame-once on and pages that only listen, for
tests/test_frame_once_contract.py: ``python -m tests.support.frame_once_server PORT PAGES``.

Once PAGES websockets are open it sends each message of ``MESSAGES`` to all of them through
dashboard.realtime.fanout (the first one bigger than any socket buffer, so a page that is not
reading takes part of it and Twisted keeps the rest), prints "sent" and serves on until
stopped.
"""

from __future__ import annotations

import asyncio
import os
import sys

MESSAGES = ["<big>" + "é" * 1_500_000 + "</big>", "<p>1</p>", "<p>2</p>", "<p>3</p>" * 50]


def main(port: int, pages: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    os.environ.setdefault("SECRET_KEY", "contract-" + "x" * 50)
    os.environ["SIQ_FRAME_ONCE"] = "1"
    import django

    django.setup()
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.routing import URLRouter
    from daphne.endpoints import build_endpoint_description_strings
    from daphne.server import Server
    from django.urls import path

    from dashboard.realtime import fanout
    from dashboard.realtime.consumers import frame_once_writer
    from dashboard.server.frame_once import KeepSocket

    running: list[asyncio.Future] = []

    async def send_all() -> None:
        for html in MESSAGES:
            await fanout.group_send("contract", {"type": "live.html", "portal": "x", "html": html})
        print("sent", flush=True)

    class Page(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            await self.accept()
            fast = frame_once_writer(self.scope)
            assert fast is not None, "frame-once is not in use"
            page = fanout.Page(send=self.send_html, fast=fast)
            fanout.join(page, ["contract"])
            await page.open()
            if len(fanout.pages_of("contract")) == pages:
                running.append(asyncio.ensure_future(send_all()))

        async def send_html(self, html: str) -> None:
            await self.send(text_data=html)

    Server(
        application=KeepSocket(URLRouter([path("ws/", Page.as_asgi())])),
        endpoints=build_endpoint_description_strings(host="127.0.0.1", port=port),
        websocket_timeout=-1,
    ).run()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
