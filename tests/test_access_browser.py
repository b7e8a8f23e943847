"""The live page in Chromium when its access ends while it is open: it says so in words and
stops, instead of reconnecting for ever.

The page is served by `manage.py serve --no-worker` (tests/test_live_browser.py's ws_server);
access ends the way a person ends it, by signing out in another tab of the same browser, so
the server's own channel layer carries the news to the page's socket.
"""

from __future__ import annotations

import re

import pytest

from tests.factories import make_portal, owner
from tests.support.browser import ARTIFACTS, console_errors, no_push, open_live
from tests.support.live import world
from tests.support.servers import ws_server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

__all__ = ["console_errors", "no_push", "owner", "ws_server"]  # fixtures used from there

THEMES = ("light", "dark")


def test_signing_out_in_another_tab_ends_the_page_in_words(ws_server, page, owner):
    world(make_portal())
    open_live(page, ws_server, owner)
    sockets: list[str] = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    assert page.is_hidden("#access-ended")

    other = page.context.new_page()
    other.goto(f"{ws_server}/")
    other.click("form[action='/logout/'] button")
    other.wait_for_url("**/login/**")

    page.wait_for_selector("#access-ended", state="visible", timeout=10_000)
    assert page.inner_text("[data-access-ended-text]") == (
        "Your access to this page has ended — sign in again."
    )
    assert page.inner_text("#access-ended a") == "Sign in again"
    assert page.get_attribute("#access-ended a", "href") == "/login/?next=%2F"
    assert page.get_attribute("#connection", "data-state") == "ended"
    assert page.inner_text("#connection .connection-state") == "Access ended"
    # It stays that way: no reconnecting (the ws extension and the page's own backoff would
    # try within a few seconds), and going back online does not start it again either.
    page.evaluate("window.dispatchEvent(new Event('online'))")
    page.wait_for_timeout(4000)
    assert sockets == []
    assert page.get_attribute("#connection", "data-state") == "ended"
    # The link signs in again and comes back to this page.
    page.click("#access-ended a")
    page.wait_for_url(re.compile(r"/login/\?next=%2F$"))
    assert page.is_visible("#id_password")

    # Screenshots: the ended page (a portal taken away), wide and narrow, light and dark.
    for width, height in ((1440, 900), (390, 844)):
        for theme in THEMES:
            page.set_viewport_size({"width": width, "height": height})
            open_live(page, ws_server, owner)
            page.evaluate(f"document.documentElement.dataset.theme = '{theme}'")
            page.evaluate(
                "document.getElementById('live')['htmx-internal-data'].webSocket.socket"
                ".dispatchEvent(new CloseEvent('close', {code: 4431}))"
            )
            page.wait_for_selector("#access-ended", state="visible")
            # The viewport only: rows below it are not painted until scrolled to
            # (content-visibility), so a full-page picture would show them blank.
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"access-ended-{width}-{theme}.png"))
    assert "Your access to a portal on this page has ended." in page.inner_text("#access-ended")
    assert page.get_attribute("#access-ended a", "href") == "/"
