"""Shared fixtures: a real simulator on a real port, Django pointed at it, Chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-results"


@pytest.fixture(scope="session")
def simulator() -> Iterator:
    """One simulator for the session, life off: tests make scenes happen explicitly."""
    from siq_integration.simulator import Simulator

    sim = Simulator(seed=1, life=False)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def sim_settings(settings, simulator):
    """Django settings whose data-centre table includes the simulator's data centres."""
    from siq_integration.datacenters import build_table

    settings.SIQ_DATA_CENTERS = build_table(simulator.extra_data_centers_json())
    return settings


def _chromium_path() -> str | None:
    path = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if os.path.exists(path):
        return path
    return shutil.which("chromium")


@pytest.fixture(scope="session")
def browser() -> Iterator:
    path = _chromium_path()
    if path is None:
        pytest.skip(
            "Chromium is not installed here (make test installs it: apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; Django's ORM calls from the
    # test body are still synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def screenshot(page, request):
    """Save a screenshot under test-results/ for a person to look at."""

    def take(name: str | None = None) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name or request.node.name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
