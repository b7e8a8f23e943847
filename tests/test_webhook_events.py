"""Portals whose webhook was registered before the dashboard needed more events get them
by themselves: the worker adds what the webhook lacks, once, within the call budget, and
when SalesIQ says no the portal page names the missing events and offers "Register again".

Zoho's page: https://www.zoho.com/salesiq/help/developer-section/update-webhook-v2.html
("type" mandatory; the events sent replace the webhook's events).
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid

import pytest
import responses
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from dashboard import jobs
from dashboard.models import Profile, Role
from siq_integration import budget, connecting, health, webhook_events
from siq_integration import exceptions as exc
from siq_integration.budget import Priority
from siq_integration.models import Portal
from tests.factories import token_portal
from tests.support.simulator import OLD_V2_EVENTS as OLD_EVENTS
from tests.support.simulator import V2_SCOPES, connect, last_seq, v2, v2_error

NEW_EVENTS = [e for e in connecting.V2_WEBHOOK_EVENTS if e not in OLD_EVENTS]

API = "https://salesiq.zoho.eu/api/v2/zylker"
HOOK = f"{API}/webhooks/5001"


# --- unit: HTTP faked at the library level -------------------------------------------------


@pytest.fixture
def portal(db):
    """A connected v2 portal whose webhook 5001 is registered, with a grant that may update it."""
    portal = token_portal()
    portal.connected_at = timezone.now()
    portal.webhook_id = "5001"
    portal.webhook_url = "https://dash.example.org/webhooks/salesiq/1/"
    portal.granted_scopes = "SalesIQ.webhooks.READ,SalesIQ.webhooks.UPDATE"
    portal.save()
    return portal


def hook(events: list[str]) -> dict:
    return {
        "url": "/api/v2/zylker/webhooks/5001",
        "object": "webhook",
        "data": {"id": "5001", "url": "https://dash.example.org/", "events": events},
    }


@responses.activate
def test_it_adds_the_missing_events_in_one_update_keeping_the_others(portal, caplog):
    kept = [*OLD_EVENTS, "conversation.visitor.left"]  # one an admin added in SalesIQ
    responses.get(HOOK, json=hook(kept))
    put = responses.put(HOOK, json=hook([*kept, *NEW_EVENTS]))

    with caplog.at_level(logging.INFO, logger="siq_integration.webhook_events"):
        assert webhook_events.ensure(portal) is webhook_events.Outcome.UPDATED

    sent = json.loads(put.calls[0].request.body)
    assert sent == {"type": "data", "events": [*kept, *NEW_EVENTS]}
    assert put.calls[0].request.headers["Authorization"] == "Zoho-oauthtoken 1000.first"
    assert "added conversation.supervisor.added" in caplog.text
    portal.refresh_from_db()
    assert portal.webhook_events_missing == ""
    # Once: the next pass asks SalesIQ nothing.
    assert webhook_events.ensure(Portal.objects.get(pk=portal.pk)) is (
        webhook_events.Outcome.LEFT_ALONE
    )
    assert len(responses.calls) == 2


@responses.activate
def test_it_asks_nothing_more_when_the_webhook_has_every_event(portal):
    responses.get(HOOK, json=hook(list(connecting.V2_WEBHOOK_EVENTS)))
    assert webhook_events.ensure(portal) is webhook_events.Outcome.COMPLETE
    assert [call.request.method for call in responses.calls] == ["GET"]


@responses.activate
def test_it_keeps_the_missing_events_in_words_when_salesiq_refuses(portal):
    responses.get(HOOK, json=hook(OLD_EVENTS))
    responses.put(HOOK, json={"error": {"code": 1017, "message": "Plan limit reached"}})

    assert webhook_events.ensure(portal) is webhook_events.Outcome.REFUSED

    portal.refresh_from_db()
    assert webhook_events.missing_from(portal) == NEW_EVENTS
    sentence = webhook_events.missing_sentence(portal)
    assert "someone joining a chat (conversation.participants.added)" in sentence
    assert "a message deleted (conversation.message.deleted)" in sentence
    assert "Register again" in sentence
    # Refused once is not asked again on every pass.
    assert webhook_events.ensure(portal) is webhook_events.Outcome.LEFT_ALONE
    assert len(responses.calls) == 2


@responses.activate
def test_it_asks_again_on_a_later_pass_when_the_budget_has_no_call_left(portal):
    Portal.objects.filter(pk=portal.pk).update(calls_per_minute=10)
    portal.refresh_from_db()
    for _ in range(10):  # this minute's calls spent: only a supervisor's click may call
        with contextlib.suppress(exc.BudgetExhausted):
            budget.spend(portal, priority=Priority.BACKGROUND)

    assert webhook_events.ensure(portal) is webhook_events.Outcome.LATER

    assert len(responses.calls) == 0
    portal.refresh_from_db()
    assert portal.webhook_events_checked == ""  # not taken: the next pass looks again
    assert portal.webhook_events_missing == ""


@responses.activate
def test_it_does_not_bring_back_a_webhook_deleted_in_salesiq(portal):
    responses.get(HOOK, json={"error": {"code": 1019, "message": "Invalid resource"}})
    assert webhook_events.ensure(portal) is webhook_events.Outcome.REFUSED
    assert [call.request.method for call in responses.calls] == ["GET"]
    portal.refresh_from_db()
    assert (portal.webhook_id, portal.webhook_events_missing) == ("5001", "")


@responses.activate
def test_it_leaves_reference_portals_alone(portal):
    Portal.objects.filter(pk=portal.pk).update(dialect="reference", screen_name="")
    portal.refresh_from_db()
    assert webhook_events.ensure(portal) is webhook_events.Outcome.LEFT_ALONE
    assert len(responses.calls) == 0


def test_it_names_events_in_words_a_supervisor_reads():
    assert webhook_events.in_words(["conversation.message.edited"]) == (
        "a message edited (conversation.message.edited)"
    )
    assert webhook_events.in_words(["x.y", "conversation.rated", "a.b"]) == (
        "x.y, ratings (conversation.rated) and a.b"
    )


# --- integration: the simulator on a real port ---------------------------------------------


def registered_before(connected_portal, monkeypatch, **options) -> Portal:
    """A portal whose webhook was registered with the list the dashboard had before."""
    portal = connected_portal(open_chats=0, **options)
    with monkeypatch.context() as old:
        old.setattr(connecting, "V2_WEBHOOK_EVENTS", OLD_EVENTS)
        address = f"http://127.0.0.1:1/webhooks/salesiq/{portal.pk}/"
        assert connecting.register_webhooks(portal, url=address)
    return Portal.objects.get(pk=portal.pk)


def events_at_salesiq(simulator, portal: Portal) -> list[str]:
    (hook,) = simulator.state(portal.screen_name)["portals"][0]["webhooks"]
    return hook["events"]


def worker_pass(portal: Portal) -> None:
    """The worker's hookevents job, as a tick runs it (its round, on its own thread)."""
    job = jobs.WebhookEvents()
    job([portal], timezone.now())
    job.running.result(timeout=30)


def admin_page(portal: Portal) -> str:
    admin = get_user_model().objects.create_user(f"admin-{portal.pk}", password="pw")
    Profile.objects.create(user=admin, role=Role.ADMIN).portals.set([portal])
    browser = Client()
    browser.force_login(admin)
    return browser.get(f"/portals/{portal.pk}/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_it_gives_a_portal_registered_with_the_old_list_the_new_events_on_the_next_pass(
    simulator, connected_portal, monkeypatch
):
    portal = registered_before(connected_portal, monkeypatch)
    assert events_at_salesiq(simulator, portal) == OLD_EVENTS
    webhook_id = portal.webhook_id
    start = last_seq(simulator)

    worker_pass(portal)

    assert events_at_salesiq(simulator, portal) == [*OLD_EVENTS, *NEW_EVENTS]
    calls = [(c["method"], c["path"].rsplit("/api/v2", 1)[-1]) for c in simulator.calls(start)]
    where = f"/{portal.screen_name}/webhooks/{webhook_id}"
    assert calls == [("GET", where), ("PUT", where)]
    portal.refresh_from_db()
    assert portal.webhook_id == webhook_id  # updated in place: same webhook, same keys
    assert portal.webhook_events_missing == ""
    # Once: the next pass does not call SalesIQ.
    start = last_seq(simulator)
    worker_pass(Portal.objects.get(pk=portal.pk))
    assert simulator.calls(start) == []
    assert "Events missing" not in admin_page(portal)


@pytest.mark.django_db(transaction=True)
def test_it_registers_again_for_a_grant_made_before_the_update_scope_was_asked_for(
    simulator, connected_portal, monkeypatch
):
    simulator.configure_accounts(drop_scopes=["SalesIQ.webhooks.UPDATE"])
    try:
        portal = registered_before(connected_portal, monkeypatch)
    finally:
        simulator.configure_accounts(drop_scopes=[])
    # What such a grant's record says: the scopes asked for then (Zoho's answer lists none).
    portal.granted_scopes = ",".join(
        s for s in portal.granted_scopes.split(",") if s != "SalesIQ.webhooks.UPDATE"
    )
    portal.save(update_fields=["granted_scopes"])
    old_id = portal.webhook_id
    start = last_seq(simulator)

    worker_pass(portal)

    portal.refresh_from_db()
    assert portal.webhook_id != old_id
    assert events_at_salesiq(simulator, portal) == connecting.V2_WEBHOOK_EVENTS
    assert not [c for c in simulator.calls(start) if c["method"] == "PUT"]
    assert portal.webhook_keys.count() == 1 and portal.webhook_error == ""
    assert portal.webhook_events_missing == ""


@pytest.mark.django_db(transaction=True)
def test_it_registers_again_when_salesiq_refuses_the_update_for_want_of_the_scope(
    simulator, connected_portal, monkeypatch
):
    simulator.configure_accounts(drop_scopes=["SalesIQ.webhooks.UPDATE"])
    try:
        portal = registered_before(connected_portal, monkeypatch)
    finally:
        simulator.configure_accounts(drop_scopes=[])
    old_id = portal.webhook_id
    start = last_seq(simulator)

    worker_pass(portal)

    puts = [c for c in simulator.calls(start) if c["method"] == "PUT"]
    assert len(puts) == 1  # refused with 1009, then registered again
    portal.refresh_from_db()
    assert portal.webhook_id != old_id
    assert events_at_salesiq(simulator, portal) == connecting.V2_WEBHOOK_EVENTS
    assert portal.webhook_events_missing == ""
    # The refused update does not leave the portal saying "Reconnect needed".
    assert health.portal_health(portal).state is health.State.CONNECTED


@pytest.mark.django_db(transaction=True)
def test_a_refusal_leaves_a_sentence_and_register_again_on_the_portal_page(
    simulator, connected_portal, monkeypatch
):
    portal = registered_before(connected_portal, monkeypatch)
    simulator.set_faults(
        portal=portal.screen_name,
        errors=[{"method": "PUT", "path_regex": "/webhooks/", "code": 1017}],
    )
    try:
        worker_pass(portal)
    finally:
        simulator.clear_faults()

    assert events_at_salesiq(simulator, portal) == OLD_EVENTS
    page = admin_page(portal)
    assert "Events missing" in page
    assert "SalesIQ does not send this portal&#x27;s webhook" in page
    assert "someone leaving a chat (conversation.participants.deleted)" in page
    assert "data-webhook-events-missing" in page and ">Register again</button>" in page

    # The admin presses it: the webhook is registered with every event, the sentence goes.
    admin = get_user_model().objects.get(username=f"admin-{portal.pk}")
    browser = Client()
    browser.force_login(admin)
    answer = browser.post(f"/portals/{portal.pk}/webhook/")
    assert answer.status_code == 302
    portal.refresh_from_db()
    assert portal.webhook_events_missing == ""
    assert events_at_salesiq(simulator, portal) == connecting.V2_WEBHOOK_EVENTS
    assert "Events missing" not in browser.get(f"/portals/{portal.pk}/").content.decode()


def test_the_webhook_badge_names_the_missing_events_after_refusals_and_registration_errors(
    portal,
):
    portal.webhook_events_missing = "conversation.message.edited"
    said = health.webhook_health(portal)
    assert (said.label, said.tone) == ("Events missing", "warn")
    assert "a message edited (conversation.message.edited)" in said.sentence
    # A registration that failed outright, or a delivery refused, says so first.
    portal.webhook_error = "SalesIQ refused the address."
    assert health.webhook_health(portal).label == "Registration failed"
    portal.webhook_error = ""
    portal.last_webhook_at, portal.last_webhook_ok = timezone.now(), False
    assert health.webhook_health(portal).label == "Refused a delivery"
    portal.last_webhook_ok = True
    assert health.webhook_health(portal).label == "Events missing"
    portal.webhook_events_missing = ""
    assert health.webhook_health(portal).label == "Receiving"


def test_the_simulator_updates_a_webhook_as_zohos_page_says(simulator):
    screen = f"p{uuid.uuid4().hex[:10]}"
    simulator.add_portal(screen, dialect="v2", dc="sim", open_chats=0)
    user = f"admin@{screen}.example"
    token = connect(simulator, as_user=user, scopes=f"{V2_SCOPES},SalesIQ.webhooks.UPDATE")[
        "access_token"
    ]
    body = {"type": "data", "url": "http://127.0.0.1:1/hook", "events": OLD_EVENTS}
    hook = v2(simulator, token, "POST", f"/{screen}/webhooks", json=body)["data"]
    path = f"/{screen}/webhooks/{hook['id']}"

    # "type" is mandatory; unknown events are refused; nothing changes then.
    assert v2_error(v2(simulator, token, "PUT", path, json={"events": NEW_EVENTS})) == 1015
    refused = {"type": "data", "events": ["conversation.nonsense"]}
    assert v2_error(v2(simulator, token, "PUT", path, json=refused)) == 1007
    # The events sent replace the list ("will not get added to it").
    answer = v2(simulator, token, "PUT", path, json={"type": "data", "events": NEW_EVENTS})
    assert answer["object"] == "webhook" and answer["data"]["events"] == NEW_EVENTS
    assert answer["data"]["id"] == hook["id"] and answer["data"]["url"] == body["url"]
    # A grant without SalesIQ.webhooks.UPDATE may not.
    old_grant = connect(simulator, as_user=user)["access_token"]
    again = {"type": "data", "events": OLD_EVENTS}
    assert v2_error(v2(simulator, old_grant, "PUT", path, json=again)) == 1009
    assert v2(simulator, token, "GET", path)["data"]["events"] == NEW_EVENTS
