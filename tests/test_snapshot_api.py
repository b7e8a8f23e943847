"""GET /api/portals/<uuid>/snapshot.json: the live state for wallboards and integrations."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from dashboard.models import Profile, Role
from dashboard.state import apply
from siq_integration.normalised import (
    ChatStatus,
    Conversation,
    Department,
    Operator,
    OperatorStatus,
    OperatorSync,
    Visitor,
)
from tests.factories import live_portal

pytestmark = pytest.mark.django_db


@pytest.fixture
def portal():
    portal = live_portal(name="Zylker", screen_name="zylker")
    now = timezone.now()
    apply.apply_departments(portal, [Department(id="d1", name="Support")], taken_at=now)
    apply.apply_operators(
        portal,
        OperatorSync(
            [
                Operator(
                    id="o1",
                    name="Asha",
                    email="",
                    status=OperatorStatus.AVAILABLE,
                    max_chats=4,
                    department_ids=("d1",),
                ),
                Operator(id="o2", name="Ben", email="", status=OperatorStatus.OFFLINE, max_chats=3),
            ],
            "s",
            True,
        ),
        taken_at=now,
    )
    chats = [
        Conversation(
            id="466756000000969001",
            status=ChatStatus.WAITING,
            visitor=Visitor(id="$1", name="Zoë <b>"),
            started_at=now - timedelta(minutes=3),
            department_id="d1",
            department_name="Support",
        ),
        Conversation(
            id="466756000000969002",
            status=ChatStatus.CONNECTED,
            visitor=Visitor(id="$2", name="Li"),
            started_at=now - timedelta(minutes=10),
            attended_at=now - timedelta(minutes=9),
            operator_id="o1",
            operator_name="Asha",
        ),
    ]
    apply.apply_chats(portal, chats, taken_at=now, complete=True)
    apply.count_pending(portal.pk)  # as the worker's queues job does within a second
    return portal


def test_it_gives_chats_operators_departments_kpis_and_age(client, portal):
    admin = get_user_model().objects.create_superuser("ada", "a@x.org", "pw-for-tests-1")
    client.force_login(admin)
    data = client.get(f"/api/portals/{portal.pk}/snapshot.json").json()
    assert data["portal"]["name"] == "Zylker"
    # Waiting chats first (longest wait first), then connected ones.
    assert [c["id"] for c in data["chats"]] == ["466756000000969001", "466756000000969002"]
    assert data["chats"][0]["visitor"]["name"] == "Zoë <b>"  # JSON carries the text as it is
    assert {o["id"]: o["open_chats"] for o in data["operators"]} == {"o1": 1, "o2": 0}
    assert data["departments"] == [{"id": "d1", "name": "Support"}]
    kpis = data["kpis"]
    assert (
        kpis["open_chats"],
        kpis["waiting"],
        kpis["operators_available"],
        kpis["operators_offline"],
    ) == (2, 1, 1, 1)
    assert 170 <= kpis["longest_wait_seconds"] <= 200
    assert kpis["utilisation"] == 0.5  # 2 open chats, capacity 4 available
    assert kpis["average_wait_last_hour_seconds"] is not None
    assert data["data_age_seconds"]["chats"] < 60


def test_it_follows_the_page_access_rules(client, portal):
    stranger = get_user_model().objects.create_user("sam", password="pw-for-tests-1")
    Profile.objects.create(user=stranger, role=Role.SUPERVISOR)
    client.force_login(stranger)
    assert client.get(f"/api/portals/{portal.pk}/snapshot.json").status_code == 404
    stranger.profile.portals.add(portal)
    assert client.get(f"/api/portals/{portal.pk}/snapshot.json").status_code == 200
    client.logout()
    assert client.get(f"/api/portals/{portal.pk}/snapshot.json").status_code == 302


def test_it_gives_each_departments_queue_figures(client, portal):
    admin = get_user_model().objects.create_superuser("ada", "a@x.org", "pw-for-tests-1")
    client.force_login(admin)
    data = client.get(f"/api/portals/{portal.pk}/snapshot.json").json()
    queues = {q["department"]["id"]: q for q in data["queues"]}
    support = queues["d1"]
    assert support["department"]["name"] == "Support"
    # Zoë has waited 3 minutes against the 60 s default target: the service level is 0 %.
    assert (support["waiting"], support["waiting_past_target"]) == (1, 1)
    assert support["today"]["service_level_percent"] == 0.0
    assert support["today"]["offered"] == 1
    # Asha (4 seats) serves Support and has Li's chat: 3 seats free.
    assert support["operators_available"] == 1 and support["free_seats"] == 3
    assert support["target"] == {"seconds": 60, "share_percent": 80}
    assert support["tone"] == "bad"
    # Li's chat has no department: its row counts one answered chat, picked up after 60 s.
    unassigned = queues[""]
    assert unassigned["today"]["answered"] == 1
    assert unassigned["today"]["answer_seconds_average"] == 60.0
    assert data["figures_incomplete"] is None
