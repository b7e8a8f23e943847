"""Every URL of the portals and users pages against every kind of visitor.

anonymous → sent to sign in; a portal one may not see → 404 (its name never leaks);
a visible thing one may not change → 403 and nothing changes; Admins may do it all.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from dashboard.models import Profile, Role
from siq_integration.models import Portal

pytestmark = pytest.mark.django_db

WHO = ["anonymous", "viewer", "supervisor_elsewhere", "supervisor_here", "admin"]


@pytest.fixture
def world(connected_portal, settings):
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:1"
    here = connected_portal()
    elsewhere = Portal.objects.create(name="Elsewhere", data_center="sim", screen_name="x")
    users = {}
    make = get_user_model().objects.create_user
    for name, role, portals in [
        ("viewer", Role.VIEWER, [here]),
        ("supervisor_elsewhere", Role.SUPERVISOR, [elsewhere]),
        ("supervisor_here", Role.SUPERVISOR, [here]),
    ]:
        user = make(name, password="pw-for-tests-1")
        Profile.objects.create(user=user, role=role).portals.set(portals)
        users[name] = user
    users["admin"] = get_user_model().objects.create_superuser("admin", "a@x.org", "pw-for-tests-1")
    return {"here": here, "elsewhere": elsewhere, "users": users}


def as_(client, world, who):
    if who != "anonymous":
        client.force_login(world["users"][who])
    return client


def urls(world) -> dict[str, str]:
    pk = world["here"].pk
    target = world["users"]["viewer"].pk
    return {
        "portals": "/portals/",
        "detail": f"/portals/{pk}/",
        "add": "/portals/add/",
        "edit": f"/portals/{pk}/edit/",
        "connect": f"/portals/{pk}/connect/",
        "screen_name": f"/portals/{pk}/screen-name/",
        "webhook": f"/portals/{pk}/webhook/",
        "disconnect": f"/portals/{pk}/disconnect/",
        "delete": f"/portals/{pk}/delete/",
        "callback": "/oauth/callback/",
        "users": "/users/",
        "user_add": "/users/add/",
        "user_edit": f"/users/{target}/edit/",
    }


# (name, method, expected status per visitor in WHO order)
MATRIX = [
    ("portals", "get", [302, 200, 200, 200, 200]),
    ("detail", "get", [302, 200, 404, 200, 200]),
    ("add", "get", [302, 403, 403, 403, 200]),
    ("edit", "get", [302, 403, 403, 403, 200]),
    ("edit", "post", [302, 403, 403, 403, 302]),
    ("connect", "post", [302, 403, 403, 403, 302]),
    ("screen_name", "get", [302, 403, 403, 403, 400]),  # admin: no sign-in waiting
    ("webhook", "post", [302, 403, 403, 403, 302]),
    ("disconnect", "get", [302, 403, 403, 403, 200]),
    ("disconnect", "post", [302, 403, 403, 403, 302]),
    ("delete", "get", [302, 403, 403, 403, 200]),  # the POST: tests/test_portal_delete.py
    ("callback", "get", [302, 403, 403, 403, 400]),  # admin: no state, a page in words
    ("users", "get", [302, 403, 403, 403, 200]),
    ("user_add", "get", [302, 403, 403, 403, 200]),
    ("user_edit", "get", [302, 403, 403, 403, 200]),
]


@pytest.mark.parametrize(
    ("name", "method", "expected"), MATRIX, ids=[f"{m[1]} {m[0]}" for m in MATRIX]
)
@pytest.mark.parametrize("who", WHO)
def test_it_lets_each_visitor_do_only_their_part(client, world, who, name, method, expected):
    url = urls(world)[name]
    data = {"name": "Renamed", "data_center": "sim", "dialect": "v2", "plan": "basic"}
    response = getattr(as_(client, world, who), method)(url, data if method == "post" else None)
    want = expected[WHO.index(who)]
    assert response.status_code == want, f"{who} {method.upper()} {url}"
    if want == 302 and who == "anonymous":
        assert response["Location"].startswith("/login/?next=")
    here = Portal.objects.get(pk=world["here"].pk)
    if who != "admin":  # nobody but an admin changed anything
        assert here.name != "Renamed"
        assert here.is_connected


def test_it_lists_only_the_portals_a_user_may_see(client, world):
    for who, sees_here in [("viewer", True), ("supervisor_elsewhere", False), ("admin", True)]:
        client.force_login(world["users"][who])
        text = client.get("/portals/").content.decode()
        assert (world["here"].name in text) is sees_here, who
        assert ("Elsewhere" in text) is (who != "viewer"), who


def test_it_refuses_an_inactive_user_everything(client, world):
    admin = world["users"]["admin"]
    client.force_login(admin)
    admin.is_active = False
    admin.save()
    response = client.get("/portals/")
    assert response.status_code == 302  # the session no longer counts


def test_it_keeps_machine_endpoints_open_but_signed(client, world):
    assert client.get("/healthz").status_code == 200
    hook = f"/webhooks/salesiq/{world['here'].pk}/"
    assert client.post(hook, b"{}", content_type="application/json").status_code == 401
