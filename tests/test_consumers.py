"""The live websocket over a long day: a page stays in its portal's group however long it is
open (channel layers forget memberships after their group expiry; the consumer renews them)."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from dashboard.asgi import application
from dashboard.realtime import consumers
from dashboard.realtime.groups import group_name
from siq_integration.models import Portal
from tests.support.asgi import browser_headers, run_async

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def short_memory(settings):
    """The embedded default's layer, forgetting group memberships after a second."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 100, "expiry": 30, "group_expiry": 1},
        }
    }
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def heard_after_the_group_expiry(portal, user) -> bool:
    headers = browser_headers(user)

    async def scenario():
        ws = WebsocketCommunicator(application, f"/ws/live/?portals={portal.pk}", headers=headers)
        connected, _ = await ws.connect(timeout=10)
        assert connected
        await ws.receive_from(timeout=10)  # the snapshot
        await asyncio.sleep(2.5)  # well past the layer's memory of the membership
        layer = channel_layers["default"]
        await layer.group_send(group_name(portal.pk), {"type": "live.html", "html": "<p>x</p>"})
        heard = not await ws.receive_nothing(timeout=1)
        await ws.disconnect()
        return heard

    return run_async(scenario)


def test_it_stays_in_its_portals_group_past_the_layers_group_expiry(short_memory, monkeypatch):
    portal = Portal.objects.create(name="Zylker", data_center="us", screen_name="zylker")
    owner = get_user_model().objects.create_superuser("owner", "o@example.org", "pw-long-x1")
    monkeypatch.setattr(consumers, "REJOIN_EVERY", 0.3)
    assert heard_after_the_group_expiry(portal, owner)


def test_it_would_go_deaf_without_joining_again(short_memory, monkeypatch):
    # The same day without the renewal: what the renewal is for (and that the test can fail).
    portal = Portal.objects.create(name="Zylker", data_center="us", screen_name="zylker")
    owner = get_user_model().objects.create_superuser("owner", "o@example.org", "pw-long-x1")
    monkeypatch.setattr(consumers, "REJOIN_EVERY", 3600.0)
    assert not heard_after_the_group_expiry(portal, owner)
