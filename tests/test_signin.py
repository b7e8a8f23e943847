"""Sign-in throttling and the password policy (issue 13, "No throttling on sign-in").

The attack: hundreds of wrong passwords on /login/ and /admin/login/, then the right one
still worked. Now 5 failures for one username, or from one address, stop sign-in there for
15 minutes with a page in words, and an admin can unlock an account from the Users page.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.test import Client, RequestFactory

from dashboard import signin
from dashboard.models import Profile, Role
from dashboard.passwords import SeasonOrMonthWithYearValidator

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-test-password"
LOCKED_WORDS = (
    "Too many failed sign-ins for this account or address. Try again in 15 minutes, "
    "or ask an admin to unlock it."
)


def make_user(username: str, role: Role = Role.VIEWER, **fields):
    user = get_user_model().objects.create_user(username, password=PASSWORD, **fields)
    Profile.objects.create(user=user, role=role)
    return user


def sign_in(client: Client, username: str, password: str, *, path="/login/", address=None):
    extra = {"REMOTE_ADDR": address} if address else {}
    return client.post(path, {"username": username, "password": password}, **extra)


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_six_wrong_passwords_lock_the_account_on_login_even_with_the_right_one():
    make_user("alice")
    attacker = Client()
    for attempt in range(6):
        # A different address each time: the account's own count is what stops this.
        answer = sign_in(attacker, "alice", f"guess-{attempt}", address=f"198.51.100.{attempt}")
        assert answer.status_code in {200, 429}
        assert not signed_in(attacker)

    answer = sign_in(attacker, "alice", PASSWORD, address="198.51.100.77")

    assert answer.status_code == 429
    assert not signed_in(attacker)
    page = answer.content.decode()
    assert LOCKED_WORDS in page
    assert "login-card" in page  # styled like the sign-in page
    # Someone else, from an address with no failures, still signs in.
    make_user("bob")
    other = Client()
    assert sign_in(other, "bob", PASSWORD, address="192.0.2.10").status_code == 302
    assert signed_in(other)


def test_six_wrong_passwords_lock_the_account_on_the_admin_site_too():
    get_user_model().objects.create_superuser("root", password=PASSWORD, email="r@example.com")
    attacker = Client()
    for attempt in range(6):
        answer = sign_in(attacker, "root", f"guess-{attempt}", path="/admin/login/")
        assert answer.status_code in {200, 429}

    answer = sign_in(attacker, "root", PASSWORD, path="/admin/login/")

    assert answer.status_code == 429
    assert LOCKED_WORDS in answer.content.decode()
    assert not signed_in(attacker)
    # ...and the same account is locked on the dashboard's own sign-in page.
    assert sign_in(Client(), "root", PASSWORD, address="192.0.2.99").status_code == 429


def test_failures_on_one_page_count_on_the_other():
    make_user("alice")
    client = Client()
    for attempt in range(3):
        sign_in(client, "alice", f"guess-{attempt}", path="/admin/login/")
    for attempt in range(2):
        sign_in(client, "alice", f"guess-{attempt}", path="/login/")
    assert sign_in(client, "alice", PASSWORD).status_code == 429


def test_one_address_guessing_many_usernames_is_locked_out():
    make_user("alice")
    guesser = "203.0.113.7"
    for number in range(5):
        sign_in(Client(), f"user{number}", "password-guess", address=guesser)

    answer = sign_in(Client(), "alice", PASSWORD, address=guesser)
    assert answer.status_code == 429
    assert LOCKED_WORDS in answer.content.decode()

    # alice herself, from her own address, is not held back by someone else's guessing.
    mine = Client()
    assert sign_in(mine, "alice", PASSWORD, address="192.0.2.44").status_code == 302
    assert signed_in(mine)


def test_four_failures_do_not_lock_anyone_out():
    make_user("alice")
    client = Client()
    for attempt in range(4):
        assert sign_in(client, "alice", f"guess-{attempt}").status_code == 200
    assert sign_in(client, "alice", PASSWORD).status_code == 302
    assert signed_in(client)


def test_an_admin_sees_the_lockout_and_unlocks_the_account():
    admin = make_user("olivia", Role.ADMIN)
    make_user("alice")
    make_user("bob")
    for attempt in range(5):
        sign_in(Client(), "alice", f"guess-{attempt}", address=f"198.51.100.{attempt}")
    assert sign_in(Client(), "alice", PASSWORD, address="192.0.2.1").status_code == 429

    desk = Client()
    desk.force_login(admin)
    page = desk.get("/users/").content.decode()
    assert page.count("Locked out") == 1 and "Unlock alice" in page
    assert "Unlock bob" not in page

    alice = get_user_model().objects.get(username="alice")
    answer = desk.post(f"/users/{alice.pk}/unlock/", follow=True)
    assert "Unlocked alice: they can sign in again now." in answer.content.decode()
    assert "Unlock alice" not in answer.content.decode()

    client = Client()
    assert sign_in(client, "alice", PASSWORD, address="192.0.2.1").status_code == 302
    assert signed_in(client)


def test_only_admins_unlock_and_only_by_post():
    make_user("alice")
    supervisor = make_user("sam", Role.SUPERVISOR)
    for attempt in range(5):
        sign_in(Client(), "alice", f"guess-{attempt}")
    alice = get_user_model().objects.get(username="alice")

    client = Client()
    client.force_login(supervisor)
    assert client.post(f"/users/{alice.pk}/unlock/").status_code == 403
    admin = Client()
    admin.force_login(make_user("olivia", Role.ADMIN))
    assert admin.get(f"/users/{alice.pk}/unlock/").status_code == 405
    assert sign_in(Client(), "alice", PASSWORD, address="192.0.2.1").status_code == 429


# --- the client's address ----------------------------------------------------------------


def request_from(remote: str, forwarded: str | None = None):
    headers = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().post("/login/", **headers)


def test_without_trusted_proxies_a_forwarded_header_is_ignored(settings):
    settings.SIQ_TRUSTED_PROXY_COUNT = 0
    assert signin.client_ip(request_from("192.0.2.5", "203.0.113.1")) == "192.0.2.5"


@pytest.mark.parametrize(
    ("count", "forwarded", "expected"),
    [
        (1, "203.0.113.9", "203.0.113.9"),
        (1, "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # the client wrote 6.6.6.6 itself
        (2, "6.6.6.6, 203.0.113.9, 10.0.0.2", "203.0.113.9"),
        (2, "203.0.113.9", "203.0.113.9"),  # came in past the outer proxy
        (1, "not-an-address", "10.0.0.1"),
        (1, "[2001:db8::1]:443", "2001:db8::1"),
        (1, "203.0.113.9:51234", "203.0.113.9"),
    ],
)
def test_behind_n_proxies_only_their_entries_are_trusted(settings, count, forwarded, expected):
    settings.SIQ_TRUSTED_PROXY_COUNT = count
    assert signin.client_ip(request_from("10.0.0.1", forwarded)) == expected


def test_rotating_a_forged_forwarded_prefix_does_not_escape_the_address_lockout(settings):
    settings.SIQ_TRUSTED_PROXY_COUNT = 1
    make_user("alice")
    for number in range(5):
        Client().post(
            "/login/",
            {"username": f"user{number}", "password": "guess"},
            REMOTE_ADDR="10.0.0.1",
            HTTP_X_FORWARDED_FOR=f"1.2.3.{number}, 203.0.113.7",
        )
    answer = Client().post(
        "/login/",
        {"username": "alice", "password": PASSWORD},
        REMOTE_ADDR="10.0.0.1",
        HTTP_X_FORWARDED_FOR="9.9.9.9, 203.0.113.7",
    )
    assert answer.status_code == 429


# --- the password policy -------------------------------------------------------------------


@pytest.mark.parametrize(
    "password",
    ["Summer2024", "summer2024", "SUMMER-2024!", "Autumn 25", "2024winter", "September_2025!!"],
)
def test_a_season_or_month_with_a_year_is_refused(password):
    with pytest.raises(ValidationError) as refused:
        SeasonOrMonthWithYearValidator().validate(password)
    assert "season or a month with a year" in refused.value.messages[0]


@pytest.mark.parametrize(
    "password", ["summer-picnic-by-the-lake", "correct horse battery", "Decemberists 2024 live"]
)
def test_other_passwords_pass_the_season_rule(password):
    SeasonOrMonthWithYearValidator().validate(password)


def test_the_add_user_form_refuses_summer2024_in_words():
    admin = Client()
    admin.force_login(make_user("olivia", Role.ADMIN))
    for password in ("Summer2024", "September-2025!"):
        answer = admin.post(
            "/users/add/",
            {
                "username": "sam",
                "role": "viewer",
                "password1": password,
                "password2": password,
            },
        )
        assert answer.status_code == 200
        errors = answer.context["form"].errors["password1"]
        assert any("season or a month with a year" in error for error in errors), errors
    assert not get_user_model().objects.filter(username="sam").exists()
    # Short passwords are refused too: at least 12 characters.
    answer = admin.post(
        "/users/add/",
        {"username": "sam", "role": "viewer", "password1": "k9#Tq!x2", "password2": "k9#Tq!x2"},
    )
    assert any("at least 12 characters" in e for e in answer.context["form"].errors["password1"])


def test_an_admin_unlocks_an_address_that_guessed_many_usernames():
    admin = Client()
    admin.force_login(make_user("olivia", Role.ADMIN))
    make_user("alice")
    office = "203.0.113.50"
    for number in range(5):
        sign_in(Client(), f"user{number}", "guess", address=office)
    assert sign_in(Client(), "alice", PASSWORD, address=office).status_code == 429

    page = admin.get("/users/").content.decode()
    assert "Addresses refused at sign-in" in page and f"Unlock {office}" in page
    answer = admin.post("/users/unlock-address/", {"address": office}, follow=True)
    assert f"Unlocked {office}: sign-in from there works again now." in answer.content.decode()
    assert "Addresses refused at sign-in" not in answer.content.decode()
    client = Client()
    assert sign_in(client, "alice", PASSWORD, address=office).status_code == 302
    assert signed_in(client)

    answer = admin.post("/users/unlock-address/", {"address": "not an address"}, follow=True)
    assert "That is not an address: nothing was unlocked." in answer.content.decode()
    supervisor = Client()
    supervisor.force_login(make_user("sam", Role.SUPERVISOR))
    assert supervisor.post("/users/unlock-address/", {"address": office}).status_code == 403
