"""The embedded default's in-memory channel layer: channels' own behaviour, without its
scan of every channel on every message."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

from dashboard.realtime import layers
from dashboard.realtime.layers import InMemoryChannelLayer


def run(coroutine):
    # A thread of its own: browser tests leave Playwright's loop running in this one.
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, coroutine).result(timeout=30)


def test_it_delivers_a_group_message_to_every_member_once():
    async def scene():
        layer = InMemoryChannelLayer(capacity=10, expiry=30)
        members = [await layer.new_channel() for _ in range(3)]
        for channel in members:
            await layer.group_add("live.portal.x", channel)
        outsider = await layer.new_channel()
        await layer.group_send("live.portal.x", {"type": "live.html", "html": "<tr></tr>"})
        got = [await layer.receive(channel) for channel in members]
        assert all(message == {"type": "live.html", "html": "<tr></tr>"} for message in got)
        assert got[0] is not got[1]  # each member gets its own copy
        assert outsider not in layer.channels
        assert all(layer.channels[channel].empty() for channel in members)  # nothing twice

    run(scene())


def test_it_drops_a_message_to_a_full_channel_and_keeps_serving_the_others():
    async def scene():
        layer = InMemoryChannelLayer(capacity=2, expiry=30)
        slow, quick = await layer.new_channel(), await layer.new_channel()
        for channel in (slow, quick):
            await layer.group_add("g", channel)
        for n in range(3):
            await layer.group_send("g", {"type": "t", "n": n})
            if n < 2:
                assert (await layer.receive(quick))["n"] == n
        assert (await layer.receive(quick))["n"] == 2
        assert [(await layer.receive(slow))["n"] for _ in range(2)] == [0, 1]
        assert layer.channels[slow].empty()  # the third never reached the full channel

    run(scene())


def test_it_keeps_a_readers_queue_and_drops_it_when_the_reader_leaves():
    async def scene():
        layer = InMemoryChannelLayer(capacity=10, expiry=30)
        page = await layer.new_channel()
        await layer.group_add("g", page)
        reading = asyncio.ensure_future(layer.receive(page))
        await asyncio.sleep(0)
        queue = layer.channels[page]
        for n in range(3):
            await layer.group_send("g", {"type": "t", "n": n})
            assert (await reading)["n"] == n
            reading = asyncio.ensure_future(layer.receive(page))
            await asyncio.sleep(0)
            assert layer.channels[page] is queue  # the same queue, not a new one a message
        await layer.group_discard("g", page)  # the page closes: it leaves, then stops reading
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
        assert page not in layer.channels

    run(scene())


def test_it_still_expires_old_messages_and_their_channels_group_membership():
    async def scene():
        layer = InMemoryChannelLayer(capacity=10, expiry=30)
        gone, stays = await layer.new_channel(), await layer.new_channel()
        for channel in (gone, stays):
            await layer.group_add("g", channel)
        with mock.patch("time.time", return_value=1_000.0):
            await layer.group_send("g", {"type": "t"})
        await layer.receive(stays)
        layer._cleaned_at = -layers.CLEAN_EVERY  # the next call sweeps
        with mock.patch("time.time", return_value=1_031.0):
            layer._clean_expired()
        assert gone not in layer.channels
        assert set(layer.groups["g"]) == {stays}

    run(scene())


def test_it_sweeps_at_most_once_a_second():
    layer = InMemoryChannelLayer()
    with mock.patch.object(
        layers.layers.InMemoryChannelLayer, "_clean_expired", autospec=True
    ) as sweep:
        for _ in range(50):
            layer._clean_expired()
    assert sweep.call_count == 1
