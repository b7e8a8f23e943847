"""The live websocket opens only from this server's own origin: scheme, host AND port.

Through the real ASGI application (dashboard.asgi), as a signed-in admin, so the only thing
that differs between a refused and an accepted socket is its Origin (and Host) header.
"""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from dashboard.asgi import application
from dashboard.origin import parse_origin
from tests.support.asgi import run_async

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cookie(db) -> bytes:
    admin = get_user_model().objects.create_superuser("ada", "ada@example.org", "pw-long-x1")
    client = Client()
    client.force_login(admin)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def opens(cookie: bytes, *, host: str, origin: str | None, scheme: str = "ws") -> bool:
    headers = [(b"cookie", cookie), (b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))

    async def scenario():
        ws = WebsocketCommunicator(application, "/ws/live/", headers=headers)
        ws.scope["scheme"] = scheme
        connected, _ = await ws.connect(timeout=10)
        await ws.disconnect()
        return connected

    return run_async(scenario)


def test_a_page_on_another_port_of_the_same_host_is_refused(cookie):
    assert not opens(cookie, host="localhost:8000", origin="http://localhost:9999")


def test_the_servers_own_origin_is_accepted(cookie):
    assert opens(cookie, host="localhost:8000", origin="http://localhost:8000")
    assert opens(cookie, host="localhost", origin="http://localhost")
    assert opens(cookie, host="localhost:80", origin="http://localhost")  # the default port
    assert opens(cookie, host="[::1]:8000", origin="http://[::1]:8000")


@pytest.mark.parametrize(
    ("host", "origin", "why"),
    [
        ("localhost", "http://localhost:8000", "a port where the server has none"),
        ("localhost:8000", "http://localhost", "no port where the server has one"),
        ("localhost:8000", "https://localhost:8000", "https to an http server"),
        ("localhost:8000", "http://127.0.0.1:8000", "another host, allowed though it is"),
        ("localhost:8000", "http://evil.example", "another site"),
        ("localhost:8000", "null", "an opaque origin (a sandboxed frame, a file)"),
        ("localhost:8000", "http://localhost:8000@evil.example", "userinfo"),
        ("localhost:8000", None, "no Origin at all"),
        ("evil.example", "http://evil.example", "a Host not in ALLOWED_HOSTS"),
    ],
)
def test_anything_else_is_refused(cookie, host, origin, why):
    assert not opens(cookie, host=host, origin=origin), why


def test_wss_is_https(cookie):
    assert opens(cookie, host="localhost", origin="https://localhost", scheme="wss")
    assert not opens(cookie, host="localhost", origin="http://localhost", scheme="wss")


def test_behind_a_tls_proxy_the_proxy_header_makes_it_https(cookie, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    headers = [(b"cookie", cookie), (b"host", b"localhost"), (b"x-forwarded-proto", b"https")]

    def connects(origin: bytes) -> bool:
        async def scenario():
            ws = WebsocketCommunicator(
                application, "/ws/live/", headers=[*headers, (b"origin", origin)]
            )
            connected, _ = await ws.connect(timeout=10)
            await ws.disconnect()
            return connected

        return run_async(scenario)

    assert connects(b"https://localhost")
    assert not connects(b"http://localhost")


def test_csrf_trusted_origins_are_trusted_with_their_port(cookie, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://siq.example.com:8443", "https://*.corp.example"]
    # A proxy that passes its own address as Host: the trusted origins name the public one.
    assert opens(cookie, host="localhost:8000", origin="https://siq.example.com:8443")
    assert not opens(cookie, host="localhost:8000", origin="https://siq.example.com")
    assert opens(cookie, host="localhost:8000", origin="https://desk.corp.example")
    assert not opens(cookie, host="localhost:8000", origin="https://desk.corp.example:444")
    assert not opens(cookie, host="localhost:8000", origin="http://desk.corp.example")
    assert not opens(cookie, host="localhost:8000", origin="https://corp.example.evil")


def test_origins_compare_as_scheme_host_and_port():
    assert parse_origin("HTTP://LocalHost") == ("http", "localhost", 80)
    assert parse_origin("https://x.example:8443") == ("https", "x.example", 8443)
    assert parse_origin("http://localhost:99999") is None
    assert parse_origin("ftp://localhost") is None
    assert parse_origin("http://localhost/path") is None
