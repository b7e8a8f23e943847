"""The Users pages: Admins manage users, their role and the portals they see."""

from __future__ import annotations

import itertools

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.test import Client

from dashboard import access
from dashboard.models import Profile, Role
from siq_integration.models import Portal
from tests.factories import PASSWORD, make_user
from tests.support.users import NEW_PASSWORD, edit_form

_portal_numbers = itertools.count(1)


def make_portal(name: str | None = None) -> Portal:
    # These pages never call SalesIQ: a plain row is enough, no simulator needed.
    return Portal.objects.create(name=name or f"Portal {next(_portal_numbers)}", data_center="us")


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def add_form(**overrides) -> dict:
    data = {
        "username": "sam",
        "first_name": "Sam",
        "last_name": "Okafor",
        "email": "sam@example.com",
        "role": "supervisor",
        "portals": [],
        "password1": NEW_PASSWORD,
        "password2": NEW_PASSWORD,
    }
    data.update(overrides)
    return data


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.fixture
def owner(db) -> User:
    return make_user("olivia", Role.ADMIN, first_name="Olivia", last_name="Admin")


@pytest.fixture
def admin_client(owner) -> Client:
    return signed_in(owner)


# --- adding ---------------------------------------------------------------------------


def test_it_adds_a_supervisor_who_then_sees_exactly_their_portals(admin_client):
    north, south, _elsewhere = make_portal("North"), make_portal("South"), make_portal("West")

    response = admin_client.post(
        "/users/add/", add_form(portals=[str(north.pk), str(south.pk)]), follow=True
    )

    assert response.redirect_chain == [("/users/", 302)]
    assert messages_of(response) == ["Added sam as Supervisor."]
    sam = User.objects.get(username="sam")
    assert (sam.get_full_name(), sam.email, sam.is_active) == (
        "Sam Okafor",
        "sam@example.com",
        True,
    )
    assert sam.check_password(NEW_PASSWORD)
    assert access.role_of(sam) is Role.SUPERVISOR
    assert set(access.visible_portals(sam)) == {north, south}


def test_it_shows_the_add_form_with_roles_explained_and_every_portal(admin_client):
    make_portal("North")
    make_portal("South")

    page = admin_client.get("/users/add/").content.decode()

    assert "csrfmiddlewaretoken" in page
    assert "Sees and acts on the portals assigned to them." in page
    assert "read-only (wallboards)" in page
    assert "North" in page and "South" in page
    assert "Admins see all portals, whatever is ticked here." in page


def test_it_refuses_a_weak_password_with_djangos_message(admin_client):
    response = admin_client.post(
        "/users/add/", add_form(password1="12345678", password2="12345678")
    )

    assert response.status_code == 200
    errors = response.context["form"].errors["password1"]
    assert "This password is too common." in errors
    assert "This password is entirely numeric." in errors
    assert "This password is too common." in response.content.decode()
    assert not User.objects.filter(username="sam").exists()


def test_it_refuses_a_password_like_the_username(admin_client):
    response = admin_client.post(
        "/users/add/",
        add_form(username="samokafor", password1="samokafor1", password2="samokafor1"),
    )

    assert (
        "The password is too similar to the username."
        in response.context["form"].errors["password1"]
    )
    assert not User.objects.filter(username="samokafor").exists()


def test_it_refuses_two_different_passwords(admin_client):
    response = admin_client.post("/users/add/", add_form(password2="something-else-entirely"))

    assert response.context["form"].errors["password2"] == ["The two passwords do not match."]
    assert not User.objects.filter(username="sam").exists()


def test_it_refuses_a_username_already_taken_whatever_the_case(admin_client):
    make_user("sam")

    response = admin_client.post("/users/add/", add_form(username="SAM"))

    assert response.context["form"].errors["username"] == [
        "Someone already has that username. Choose another."
    ]
    assert User.objects.count() == 2


# --- editing --------------------------------------------------------------------------


def test_it_changes_role_portals_and_details(admin_client):
    north, south = make_portal("North"), make_portal("South")
    sam = make_user("sam", Role.VIEWER, north)

    response = admin_client.post(
        f"/users/{sam.pk}/edit/",
        edit_form(sam, role="supervisor", portals=[str(south.pk)], email="sam@new.example"),
        follow=True,
    )

    assert response.redirect_chain == [("/users/", 302)]
    assert messages_of(response) == ["Saved the changes to sam."]
    sam.refresh_from_db()
    assert sam.email == "sam@new.example"
    assert access.role_of(sam) is Role.SUPERVISOR
    assert list(access.visible_portals(sam)) == [south]


def test_it_fills_the_edit_form_with_the_current_role_and_portals(admin_client):
    north, _south = make_portal("North"), make_portal("South")
    sam = make_user("sam", Role.SUPERVISOR, north, email="sam@example.com")

    form = admin_client.get(f"/users/{sam.pk}/edit/").context["form"]

    assert form["role"].value() == Role.SUPERVISOR
    assert [str(pk) for pk in form["portals"].value()] == [str(north.pk)]
    assert form["email"].value() == "sam@example.com"
    assert form["is_active"].value() is True
    checked = [radio.data["value"] for radio in form["role"] if radio.data["selected"]]
    assert checked == ["supervisor"]


def test_it_gives_a_user_without_a_profile_one_on_save(admin_client):
    north = make_portal("North")
    sam = make_user("sam")  # e.g. made with manage.py: a Viewer with no Profile yet

    admin_client.post(f"/users/{sam.pk}/edit/", edit_form(sam, portals=[str(north.pk)]))

    assert Profile.objects.get(user=sam).role == Role.VIEWER
    assert list(access.visible_portals(sam)) == [north]


def test_it_keeps_the_password_when_the_new_one_is_left_blank(admin_client):
    sam = make_user("sam", Role.VIEWER)

    response = admin_client.post(f"/users/{sam.pk}/edit/", edit_form(sam, first_name="Samuel"))

    assert response.status_code == 302
    sam.refresh_from_db()
    assert sam.first_name == "Samuel"
    assert sam.check_password(PASSWORD)


def test_it_sets_a_new_password_when_given(admin_client):
    sam = make_user("sam", Role.VIEWER)

    admin_client.post(
        f"/users/{sam.pk}/edit/",
        edit_form(sam, new_password1=NEW_PASSWORD, new_password2=NEW_PASSWORD),
    )

    sam.refresh_from_db()
    assert sam.check_password(NEW_PASSWORD)


def test_it_refuses_a_weak_new_password_and_keeps_the_old_one(admin_client):
    sam = make_user("sam", Role.VIEWER)

    response = admin_client.post(
        f"/users/{sam.pk}/edit/", edit_form(sam, new_password1="short", new_password2="short")
    )

    assert response.status_code == 200
    assert any("too short" in error for error in response.context["form"].errors["new_password1"])
    sam.refresh_from_db()
    assert sam.check_password(PASSWORD)


def test_it_deactivates_another_user(admin_client):
    sam = make_user("sam", Role.SUPERVISOR)

    admin_client.post(f"/users/{sam.pk}/edit/", edit_form(sam, is_active=None))

    sam.refresh_from_db()
    assert not sam.is_active
    assert access.role_of(sam) is None


def test_it_refuses_to_let_an_admin_remove_their_own_admin_role(admin_client, owner):
    north = make_portal("North")

    response = admin_client.post(
        f"/users/{owner.pk}/edit/",
        edit_form(owner, role="viewer", first_name="Changed", portals=[str(north.pk)]),
    )

    assert response.status_code == 200
    assert response.context["form"].errors["role"] == [
        "You cannot remove your own Admin role: you would lock yourself out of the Users and "
        "Portals pages. Ask another admin to change your role."
    ]
    assert "You cannot remove your own Admin role" in response.content.decode()
    owner.refresh_from_db()
    assert owner.first_name == "Olivia"
    assert owner.profile.role == Role.ADMIN
    assert not owner.profile.portals.exists()


def test_it_refuses_to_let_an_admin_deactivate_themselves(admin_client, owner):
    response = admin_client.post(
        f"/users/{owner.pk}/edit/", edit_form(owner, is_active=None, first_name="Changed")
    )

    assert response.status_code == 200
    assert response.context["form"].errors["is_active"] == [
        "You cannot deactivate your own account: you would be signed out and could not sign "
        "in again. Ask another admin to do it."
    ]
    owner.refresh_from_db()
    assert owner.is_active
    assert owner.first_name == "Olivia"


def test_it_keeps_an_admin_signed_in_after_changing_their_own_password(admin_client, owner):
    admin_client.post(
        f"/users/{owner.pk}/edit/",
        edit_form(owner, new_password1=NEW_PASSWORD, new_password2=NEW_PASSWORD),
    )

    owner.refresh_from_db()
    assert owner.check_password(NEW_PASSWORD)
    assert admin_client.get("/users/").status_code == 200


def test_it_says_a_superusers_role_is_fixed_instead_of_offering_a_choice(admin_client):
    root = get_user_model().objects.create_superuser("root", password=PASSWORD)

    page = admin_client.get(f"/users/{root.pk}/edit/").content.decode()

    assert 'name="role"' not in page
    assert "root is a superuser (made with createsuperuser), so always an Admin" in page


def test_it_saves_a_superuser_as_an_admin_whatever_role_is_posted(admin_client):
    root = get_user_model().objects.create_superuser("root", password=PASSWORD)

    response = admin_client.post(
        f"/users/{root.pk}/edit/", edit_form(root, role="viewer", first_name="Rita")
    )

    assert response.status_code == 302
    root.refresh_from_db()
    assert root.first_name == "Rita"
    assert root.profile.role == Role.ADMIN
    assert access.role_of(root) is Role.ADMIN


def test_it_lets_a_superuser_who_has_no_profile_edit_users(db):
    root = get_user_model().objects.create_superuser("root", password=PASSWORD)

    assert signed_in(root).get("/users/").status_code == 200


def test_it_answers_404_for_a_user_that_does_not_exist(admin_client):
    assert admin_client.get("/users/999999/edit/").status_code == 404


# --- the list -------------------------------------------------------------------------


def test_it_lists_every_user_sorted_with_role_portals_and_state(admin_client):
    north, south = make_portal("North"), make_portal("South")
    make_user("zoe", Role.SUPERVISOR, south, north, first_name="Zoe", email="zoe@example.com")
    make_user("bob", Role.VIEWER, is_active=False)
    make_user("carl")  # no Profile: a Viewer
    get_user_model().objects.create_superuser("root", password=PASSWORD)

    response = admin_client.get("/users/")

    rows = response.context["rows"]
    assert [row.user.username for row in rows] == ["bob", "carl", "olivia", "root", "zoe"]
    by_name = {row.user.username: row for row in rows}
    assert by_name["root"].role is Role.ADMIN
    assert by_name["carl"].role is Role.VIEWER
    assert by_name["bob"].role is Role.VIEWER  # inactive, but still set up as a Viewer
    assert by_name["zoe"].portals == [north, south]
    page = response.content.decode()
    assert "superuser" in page
    assert "All portals" in page
    assert "Inactive" in page
    assert "zoe@example.com" in page
    assert f'href="/users/{by_name["zoe"].user.pk}/edit/"' in page
    assert 'href="/users/add/"' in page
    assert "pbkdf2" not in page  # never a password hash


def test_it_shows_a_superuser_as_an_admin(admin_client):
    get_user_model().objects.create_superuser("root", password=PASSWORD)

    page = admin_client.get("/users/").content.decode()
    root_row = page[page.index("<strong>root</strong>") :].split("</tr>")[0]

    assert "Admin" in root_row
    assert "superuser" in root_row
    assert "All portals" in root_row


# --- who may use these pages ------------------------------------------------------------


def pages(target: User) -> list[tuple[str, str, dict]]:
    """Every Users page, as GET and as a POST that would change something."""
    return [
        ("get", "/users/", {}),
        ("get", "/users/add/", {}),
        ("get", f"/users/{target.pk}/edit/", {}),
        ("post", "/users/", {}),
        ("post", "/users/add/", add_form(username="intruder")),
        ("post", f"/users/{target.pk}/edit/", edit_form(target, role="admin", first_name="X")),
    ]


def assert_nothing_changed(target: User) -> None:
    assert not User.objects.filter(username="intruder").exists()
    target.refresh_from_db()
    assert target.first_name == "Tess"
    assert target.profile.role == Role.VIEWER


@pytest.fixture
def target(db) -> User:
    return make_user("tess", Role.VIEWER, first_name="Tess")


def test_it_sends_anonymous_visitors_to_sign_in(target):
    client = Client()
    for method, url, data in pages(target):
        response = getattr(client, method)(url, data)
        assert response.status_code == 302, (method, url)
        assert response["Location"] == f"/login/?next={url}", (method, url)
    assert_nothing_changed(target)


@pytest.mark.parametrize("role", [Role.VIEWER, Role.SUPERVISOR])
def test_it_refuses_viewers_and_supervisors(target, role):
    client = signed_in(make_user("someone", role, make_portal()))
    for method, url, data in pages(target):
        response = getattr(client, method)(url, data)
        assert response.status_code == 403, (method, url)
        assert "Only admins can do that." in response.content.decode()
    assert_nothing_changed(target)


def test_it_refuses_an_inactive_admin(target):
    client = Client()
    client.force_login(make_user("gone", Role.ADMIN))
    User.objects.filter(username="gone").update(is_active=False)
    for method, url, data in pages(target):
        assert getattr(client, method)(url, data).status_code in (302, 403), (method, url)
    assert_nothing_changed(target)


def test_it_lets_admins_in(admin_client, target):
    for method, url, data in pages(target)[:3]:
        assert getattr(admin_client, method)(url, data).status_code == 200, url
    assert admin_client.post("/users/add/", add_form(username="newcomer")).status_code == 302
    response = admin_client.post(f"/users/{target.pk}/edit/", edit_form(target, first_name="T"))
    assert response.status_code == 302


def test_it_requires_the_csrf_token(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)

    response = client.post("/users/add/", add_form())

    assert response.status_code == 403
    assert not User.objects.filter(username="sam").exists()


# --- in a browser -----------------------------------------------------------------------


def sign_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login/" not in url)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_adds_a_supervisor_in_the_browser(live_server, page, screenshot):
    make_user("olivia", Role.ADMIN, first_name="Olivia", last_name="Admin")
    get_user_model().objects.create_superuser("root", password=PASSWORD, email="root@example.com")
    make_user("vic", Role.VIEWER, make_portal("Wallboard EU"), first_name="Vic", is_active=False)
    north = make_portal("North America support")
    make_portal("Europe sales")

    sign_in(page, live_server, "olivia")
    page.click("nav.mainnav >> text=Users")
    page.click("text=Add user")
    page.fill("#id_username", "sam")
    page.fill("#id_first_name", "Sam")
    page.fill("#id_last_name", "Okafor")
    page.fill("#id_email", "sam@example.com")
    page.check("label:has-text('Supervisor') input[type=radio]")
    page.check(f"input[name=portals][value='{north.pk}']")

    # First a password Django refuses: the form says why and keeps what was typed.
    page.fill("#id_password1", "password")
    page.fill("#id_password2", "password")
    page.click("button:has-text('Add user')")
    page.wait_for_selector(".field.has-error")
    assert "This password is too common." in page.inner_text("main")
    assert page.input_value("#id_username") == "sam"
    assert page.is_checked(f"input[name=portals][value='{north.pk}']")
    screenshot("users-add-form-with-a-weak-password")

    page.fill("#id_password1", NEW_PASSWORD)
    page.fill("#id_password2", NEW_PASSWORD)
    page.click("button:has-text('Add user')")

    page.wait_for_selector(".message.success")
    assert page.url == f"{live_server.url}/users/"
    assert "Added sam as Supervisor." in page.inner_text(".messages")
    row = page.locator("tr", has_text="Sam Okafor")
    assert "Supervisor" in row.inner_text()
    assert "North America support" in row.inner_text()
    assert "Europe sales" not in row.inner_text()
    screenshot("users-list-after-adding-a-supervisor")

    sam = User.objects.get(username="sam")
    assert list(access.visible_portals(sam)) == [north]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_tells_an_admin_in_the_browser_why_they_cannot_lock_themselves_out(
    live_server, page, screenshot
):
    olivia = make_user("olivia", Role.ADMIN, first_name="Olivia", last_name="Admin")
    root = get_user_model().objects.create_superuser("root", password=PASSWORD)

    sign_in(page, live_server, "olivia")
    page.goto(f"{live_server.url}/users/")
    page.click("a[aria-label='Edit olivia']")
    page.check("label:has-text('Viewer') input[type=radio]")
    page.uncheck("#id_is_active")
    page.click("button:has-text('Save changes')")

    page.wait_for_selector(".field.has-error")
    text = page.inner_text("main")
    assert "You cannot remove your own Admin role" in text
    assert "You cannot deactivate your own account" in text
    screenshot("users-edit-self-refused")
    olivia.refresh_from_db()
    assert olivia.is_active and olivia.profile.role == Role.ADMIN

    page.goto(f"{live_server.url}/users/{root.pk}/edit/")
    assert "so always an Admin" in page.inner_text("main")
    assert page.locator("input[name=role]").count() == 0
    screenshot("users-edit-superuser")


def test_it_lets_only_a_superuser_take_a_superusers_password_or_account(admin_client, db):
    root = get_user_model().objects.create_superuser("root", "root@example.org", PASSWORD)
    before = root.password

    response = admin_client.post(
        f"/users/{root.pk}/edit/",
        edit_form(root, role="admin", new_password1=NEW_PASSWORD, new_password2=NEW_PASSWORD),
    )
    assert response.status_code == 200
    assert "Only a superuser can change a superuser" in response.content.decode()
    response = admin_client.post(
        f"/users/{root.pk}/edit/", edit_form(root, role="admin", is_active=None)
    )
    assert "Only a superuser can change a superuser" in response.content.decode()
    root.refresh_from_db()
    assert root.password == before and root.is_active

    other_root = get_user_model().objects.create_superuser("root2", "r2@example.org", PASSWORD)
    response = signed_in(other_root).post(
        f"/users/{root.pk}/edit/",
        edit_form(root, role="admin", new_password1=NEW_PASSWORD, new_password2=NEW_PASSWORD),
    )
    assert response.status_code == 302
    root.refresh_from_db()
    assert root.check_password(NEW_PASSWORD)
