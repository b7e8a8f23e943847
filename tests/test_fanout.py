"""dashboard/realtime/fanout.py: in one process a page's live HTML goes straight to each page's
own send (after its snapshot, in order); control messages and other processes go through the
channel layer; a page never gets back what its own request already answered."""

from __future__ import annotations

import asyncio
import contextlib
from unittest import mock

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator

from dashboard.asgi import application
from dashboard.realtime import fanout
from dashboard.realtime.groups import group_name
from siq_integration.models import Portal
from tests.factories import make_admin
from tests.support.asgi import browser_headers, run_async

GROUP = "live.portal.x"


def page_sending_to(sent: list[str]) -> fanout.Page:
    async def send(html: str) -> None:
        sent.append(html)

    return fanout.Page(send=send)


def live(html: str, **extra) -> dict:
    return {"type": "live.html", "portal": "x", "html": html, **extra}


def test_it_keeps_what_comes_before_the_snapshot_for_after_it_in_order():
    async def scene():
        sent: list[str] = []
        page = page_sending_to(sent)
        fanout.join(page, [GROUP])
        try:
            await fanout.group_send(GROUP, live("<a>1</a>"))
            await fanout.group_send(GROUP, live("<a>2</a>"))
            assert sent == []  # the snapshot is not sent yet
            sent.append("snapshot")
            await page.open()
            await fanout.group_send(GROUP, live("<a>3</a>"))
            assert sent == ["snapshot", "<a>1</a>", "<a>2</a>", "<a>3</a>"]
            fanout.leave(page)
            await fanout.group_send(GROUP, live("<a>4</a>"))
            assert sent[-1] == "<a>3</a>"  # nothing after it left
            assert fanout.pages_of(GROUP) == []
        finally:
            fanout.leave(page)

    run_async(scene)


def test_it_sends_live_html_itself_and_control_messages_through_the_layer():
    async def scene():
        sent: list[str] = []
        page = page_sending_to(sent)
        fanout.join(page, [GROUP])
        await page.open()
        layer = channel_layers["default"]
        try:
            with mock.patch.object(layer, "group_send", wraps=layer.group_send) as through:
                await fanout.group_send(GROUP, live("<a>1</a>"))
                assert sent == ["<a>1</a>"] and through.call_count == 0
                await fanout.group_send(GROUP, {"type": "live.portal_gone", "portal": "x"})
                assert through.call_count == 1
        finally:
            fanout.leave(page)

    run_async(scene)


def test_a_broken_page_does_not_keep_the_message_from_the_others():
    async def scene():
        async def broken(html: str) -> None:
            raise ConnectionError("gone")

        sent: list[str] = []
        pages = [fanout.Page(send=broken), page_sending_to(sent)]
        for page in pages:
            fanout.join(page, [GROUP])
            await page.open()
        try:
            await fanout.group_send(GROUP, live("<a>1</a>"))
            assert sent == ["<a>1</a>"]
        finally:
            for page in pages:
                fanout.leave(page)

    run_async(scene)


# --- the page that acted does not get its own answer again ---------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("through_layer", [False, True], ids=["fanout", "layer"])
def test_it_does_not_send_a_page_what_its_own_request_answered(through_layer):
    portal = Portal.objects.create(name="Zylker", data_center="us", screen_name="zylker")
    owner = make_admin("owner")
    headers = browser_headers(owner)
    long_id = "p" * 65  # not an id a page makes: ignored

    async def scenario():
        pages = {}
        for page_id in ("page-A_1", "page-B", long_id, "bad id!"):
            ws = WebsocketCommunicator(
                application, f"/ws/live/?portals={portal.pk}&page={page_id}", headers=headers
            )
            connected, _ = await ws.connect(timeout=10)
            assert connected
            await ws.receive_from(timeout=10)  # the snapshot
            pages[page_id] = ws
        send = channel_layers["default"].group_send if through_layer else fanout.group_send
        for skip in ("page-A_1", long_id, "bad id!"):
            await send(group_name(portal.pk), live(f"<p>{skip}</p>", except_page=skip))
        heard = {}
        for page_id, ws in pages.items():
            got = []
            while not await ws.receive_nothing(timeout=0.5):
                got.append(await ws.receive_from(timeout=1))
            heard[page_id] = got
            await ws.disconnect()
        return heard

    heard = run_async(scenario)
    everything = ["<p>page-A_1</p>", f"<p>{long_id}</p>", "<p>bad id!</p>"]
    assert heard["page-A_1"] == everything[1:]
    assert heard["page-B"] == everything
    assert heard[long_id] == everything
    assert heard["bad id!"] == everything


@pytest.mark.django_db(transaction=True)
def test_a_page_hears_live_html_sent_while_it_was_connecting_after_its_snapshot(monkeypatch):
    """Published between joining and the snapshot: it follows the snapshot, in order."""
    from dashboard.realtime import consumers

    portal = Portal.objects.create(name="Zylker", data_center="us", screen_name="zylker")
    owner = make_admin("owner")
    headers = browser_headers(owner)
    original = consumers._snapshot

    async def slow_snapshot(portals):
        html = await original(portals)
        for n in range(3):  # published while the snapshot renders
            await fanout.group_send(group_name(portal.pk), live(f"<p>{n}</p>"))
        await asyncio.sleep(0)
        return html

    monkeypatch.setattr(consumers, "_snapshot", slow_snapshot)

    async def scenario():
        ws = WebsocketCommunicator(application, f"/ws/live/?portals={portal.pk}", headers=headers)
        connected, _ = await ws.connect(timeout=10)
        assert connected
        got = [await ws.receive_from(timeout=10) for _ in range(4)]
        await ws.disconnect()
        return got

    got = run_async(scenario)
    assert "hx-swap-oob" in got[0]  # the snapshot first
    assert got[1:] == ["<p>0</p>", "<p>1</p>", "<p>2</p>"]


@pytest.mark.django_db(transaction=True)
def test_a_page_that_fails_to_connect_is_not_kept(monkeypatch):
    from django.db import OperationalError

    from dashboard.realtime import consumers
    from dashboard.realtime.groups import user_group

    owner = make_admin("owner")
    headers = browser_headers(owner)

    def database_away(user, wanted):
        raise OperationalError("database is locked")

    monkeypatch.setattr(consumers, "_visible", database_sync_to_async(database_away))

    async def scenario():
        ws = WebsocketCommunicator(application, "/ws/live/", headers=headers)
        with contextlib.suppress(OperationalError):  # the app fails: the test hears it
            await ws.connect(timeout=10)
        return fanout.pages_of(user_group(owner.pk))

    assert run_async(scenario) == []
