"""An action's outcome reaches the acting page once: by its HTTP answer, not again by the
publication made while answering (``X-Live-Page`` names that page). Later publications
(SalesIQ's confirmation, a poll) go to every page."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from django.test import RequestFactory

from dashboard.actions import outcomes
from dashboard.models import Action
from dashboard.realtime import publish
from dashboard.views.actions import page_id
from siq_integration.normalised import EventKind, WebhookEvent
from tests.support.actions import post, scene


@pytest.fixture
def browser(client, db):
    admin = get_user_model().objects.create_superuser("ada", "ada@example.org", "pw-for-tests-1")
    client.force_login(admin)
    return client


@pytest.fixture
def published(monkeypatch) -> list[tuple[int, str | None]]:
    sent: list[tuple[int, str | None]] = []

    def record(action_id: int, *, except_page: str | None = None) -> None:
        sent.append((action_id, except_page))

    monkeypatch.setattr(publish, "action_outcome", record)
    return sent


@pytest.mark.django_db(transaction=True)
def test_it_skips_the_acting_page_while_answering_and_no_page_later(
    simulator, connected_portal, browser, published
):
    world = scene(simulator, connected_portal, "reference")
    browser.defaults["HTTP_X_LIVE_PAGE"] = "tab-7_Ab"

    response = post(browser, world, "end")

    assert response.status_code == 200
    action = Action.objects.get()
    assert published == [(action.pk, "tab-7_Ab")]

    event = WebhookEvent(
        kind=EventKind.CHAT_ENDED,
        name="conversation.ended",
        dedupe_key="page-test-1",
        occurred_at=datetime.now(tz=UTC),
        chat_id=world["chat"].remote_id,
    )
    assert outcomes.confirm(world["portal"], event) is not None
    assert published[1:] == [(action.pk, None)]


@pytest.mark.parametrize(
    ("sent", "page"),
    [
        ("tab-1", "tab-1"),
        ("A" * 64, "A" * 64),
        ("A" * 65, None),
        ("", None),
        ("tab 1", None),
        ("tab<1>", None),
        ("tab\u00e91", None),
    ],
)
def test_it_reads_only_a_well_formed_page_id(sent, page):
    request = RequestFactory().post("/", headers={"X-Live-Page": sent} if sent else {})
    assert page_id(request) == page
