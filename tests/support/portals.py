"""The Add portal pages and the consent round trip through the simulator."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth import get_user_model
from django.urls import reverse

from siq_integration import oauth


@pytest.fixture
def admin_client(client, sim_settings):
    sim_settings.PUBLIC_BASE_URL = "http://127.0.0.1:1"  # deliveries to here fail fast
    admin = get_user_model().objects.create_superuser("ada", "ada@example.org", "pw-for-tests-1")
    client.force_login(admin)
    return client


def new_sim_portal(simulator, *, dialect="v2", dc="sim") -> str:
    screen = f"p{uuid.uuid4().hex[:10]}"
    simulator.add_portal(screen, dialect=dialect, dc=dc, open_chats=2)
    return screen


def add_portal(client, **fields) -> tuple[str, str]:
    """Post the Add form; returns the id the portal will have once connected (nothing is
    saved before) and the consent URL it sends the admin to."""
    data = {"name": "Zylker", "data_center": "sim", "dialect": "v2", "plan": "professional"}
    data.update(fields)
    response = client.post(reverse("portal_add"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    url = response["Location"]
    state = parse_qs(urlsplit(url).query)["state"][0]
    return client.session[oauth.SESSION_KEY][state]["portal"], url


def consent(simulator, url: str, *, account: str, decision: str = "accept") -> dict[str, str]:
    """The admin's answer on the simulator's consent page; returns the callback params."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    answer = requests.post(
        url.split("?")[0],
        data={**query, "decision": decision, "account": account},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.text
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}


def callback(client, params: dict[str, str]):
    return client.get(reverse("oauth_callback"), params)
