"""Admins edit a portal's alert rules; the defaults are the issue's."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from dashboard.alerts.rules import ensure_rules
from dashboard.models import AlertKind, AlertRule, Department, Profile, Role
from siq_integration.models import Portal

pytestmark = pytest.mark.django_db


@pytest.fixture
def portal():
    portal = Portal.objects.create(name="Zylker", data_center="us", screen_name="zylker")
    from django.utils import timezone

    Department.objects.create(portal=portal, remote_id="d1", name="Sales", seen_at=timezone.now())
    Department.objects.create(portal=portal, remote_id="d2", name="Support", seen_at=timezone.now())
    return portal


@pytest.fixture
def admin_client(client):
    client.force_login(
        get_user_model().objects.create_superuser("ada", "a@x.org", "pw-for-tests-1")
    )
    return client


def form_data(portal, **changes):
    data = {}
    for kind, rule in ensure_rules(portal).items():
        if rule.enabled:
            data[f"{kind}-enabled"] = "on"
        data[f"{kind}-threshold"] = rule.threshold
        data[f"{kind}-severity"] = rule.severity
    data.update(changes)
    return data


def test_it_starts_from_the_issues_defaults(portal):
    rules = ensure_rules(portal)
    assert rules[AlertKind.LONG_CHAT].threshold == 30  # minutes
    assert rules[AlertKind.LONG_WAIT].threshold == 60  # seconds
    assert rules[AlertKind.UNANSWERED].threshold == 3  # minutes
    assert rules[AlertKind.LOW_RATING].threshold == 2
    assert len(rules) == len(AlertKind)


def test_it_saves_thresholds_scope_and_escalation(admin_client, portal):
    response = admin_client.post(
        f"/portals/{portal.pk}/alerts/",
        form_data(
            portal,
            **{
                "long_wait-threshold": 45,
                "long_wait-department_ids": ["d2"],
                "long_wait-escalate_after_minutes": 5,
                "long_wait-escalate_emails": "lead@example.org ,boss@example.org",
                "long_wait-escalate_webhook_url": "https://hooks.example.org/x",
            },
        ),
    )
    assert response.status_code == 302
    rule = AlertRule.objects.get(portal=portal, kind=AlertKind.LONG_WAIT)
    assert (rule.threshold, rule.department_ids, rule.escalate_after_minutes) == (45, ["d2"], 5)
    assert rule.escalate_emails == "lead@example.org, boss@example.org"


def test_it_explains_what_is_wrong(admin_client, portal):
    response = admin_client.post(
        f"/portals/{portal.pk}/alerts/",
        form_data(
            portal,
            **{
                "low_rating-threshold": 9,
                "long_chat-escalate_after_minutes": 5,
                "unanswered-escalate_emails": "not an address",
            },
        ),
    )
    text = response.content.decode()
    assert response.status_code == 200
    assert "A rating runs from 1 to 5." in text
    assert "Say where to escalate" in text
    assert "is not an e-mail address" in text
    assert AlertRule.objects.get(portal=portal, kind=AlertKind.LOW_RATING).threshold == 2


def test_it_is_for_admins_only(client, portal):
    user = get_user_model().objects.create_user("sam", password="pw-for-tests-1")
    Profile.objects.create(user=user, role=Role.SUPERVISOR).portals.add(portal)
    client.force_login(user)
    assert client.get(f"/portals/{portal.pk}/alerts/").status_code == 403
    assert client.post(f"/portals/{portal.pk}/alerts/", {}).status_code == 403
