"""Content-Security-Policy with nonces, and the production profile (issue 13, "Operations").

The attack: no CSP, no HSTS, no https redirect; `check --deploy` warned (W004, W008). Now
every page carries Django's CSP with a fresh nonce that the few inline scripts carry, no
template has an inline event handler, the live page works in Chromium under the real policy
(no eval, no console error), and SIQ_PROFILE=production passes `check --deploy` with no
warning, redirects to https and sends HSTS.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from dashboard.models import Profile, Role
from tests.factories import make_portal
from tests.support.live import world
from tests.support.servers import serving

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
# A key `check --deploy` accepts (50+ characters, varied); a test value, not a secret.
DEPLOY_KEY = "prod-profile-test-key-7Qx9vLm2Rt8wZk4Np6Hs3Jd5Fg1Bc0Yu"


def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


@pytest.fixture
def admin(db) -> Client:
    user = get_user_model().objects.create_user("olivia", password="a-long-test-password")
    Profile.objects.create(user=user, role=Role.ADMIN)
    client = Client()
    client.force_login(user)
    return client


# --- the policy ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_page_has_a_csp_whose_nonce_the_inline_scripts_carry(admin):
    for path in ("/audit/", "/alerts/"):
        response = admin.get(path)
        assert response.status_code == 200
        rules = policy(response)
        nonces = [value for value in rules["script-src"] if value.startswith("'nonce-")]
        assert len(nonces) == 1, rules["script-src"]
        nonce = nonces[0][len("'nonce-") : -1]
        assert rules["default-src"] == ["'self'"]
        assert rules["object-src"] == ["'none'"] and rules["frame-ancestors"] == ["'none'"]
        assert "'unsafe-inline'" not in rules["script-src"]
        page = response.content.decode()
        inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", page)
        assert inline, f"{path} was expected to have an inline script"
        assert all(f'nonce="{nonce}"' in attributes for attributes in inline), inline

    # A fresh nonce each response.
    assert policy(admin.get("/audit/"))["script-src"] != policy(admin.get("/audit/"))["script-src"]


@pytest.mark.django_db
def test_inline_styles_carry_the_nonce_and_the_login_page_has_the_policy(admin):
    response = admin.get("/users/")
    nonce = next(v for v in policy(response)["style-src"] if v.startswith("'nonce-"))[7:-1]
    styles = re.findall(r"<style([^>]*)>", response.content.decode())
    assert styles and all(f'nonce="{nonce}"' in attributes for attributes in styles)
    assert "Content-Security-Policy" in Client().get("/login/")


def test_no_template_has_an_inline_event_handler():
    offenders = []
    for template in TEMPLATES.rglob("*.html"):
        for number, line in enumerate(template.read_text().splitlines(), start=1):
            if re.search(r"<[^>]+\son[a-z]+\s*=", line):
                offenders.append(f"{template.relative_to(ROOT)}:{number}")
    assert offenders == [], "inline handlers are refused by the CSP: move them to static/js"


def test_without_the_test_switch_the_policy_allows_no_eval():
    script = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.SECURE_CSP['script-src'])"
    )
    env = {**os.environ, "SIQ_CSP_ALLOW_EVAL_FOR_TESTS": "0"}
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "unsafe-eval" not in out.stdout and "'self'" in out.stdout


# --- the production profile --------------------------------------------------------------------


def production_env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SIQ_", "SECURE_", "SESSION_", "DJANGO_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "dashboard.settings",
            "SIQ_PROFILE": "production",
            "SECRET_KEY": DEPLOY_KEY,
            "ALLOWED_HOSTS": "supervisor.example.com",
            "SIQ_VAR_DIR": str(ROOT / "var"),
        }
    )
    env.update(extra)
    return env


def test_the_production_profile_passes_check_deploy_without_a_warning():
    out = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    said = out.stdout + out.stderr
    assert out.returncode == 0, said
    # Only mail.W001 is silenced, and only while no SMTP_URL is set (dashboard/settings.py).
    assert "System check identified no issues (1 silenced)." in said, said
    assert "WARNING" not in said.upper(), said


def test_the_default_profile_is_what_check_deploy_warned_about():
    """The same check without the profile: the warnings the attack found (W004 HSTS, W008
    redirect) are there, so the test above passes because of the profile."""
    env = production_env()
    env.pop("SIQ_PROFILE")
    out = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    said = out.stdout + out.stderr
    assert "security.W004" in said and "security.W008" in said, said


PROBE = """
import json, django
django.setup()
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
client = Client(HTTP_HOST="supervisor.example.com")
plain = client.get("/login/")
secure = client.get("/login/", HTTP_X_FORWARDED_PROTO="https")
print(json.dumps({
    "plain_status": plain.status_code,
    "plain_location": plain.get("Location", ""),
    "secure_status": secure.status_code,
    "hsts": secure.get("Strict-Transport-Security", ""),
    "csp": secure.get("Content-Security-Policy", ""),
    "csrf_cookie_secure": bool(secure.cookies["csrftoken"]["secure"]),
    "healthz_redirected": client.get("/healthz").status_code in (301, 302),
}))
"""


def test_production_redirects_to_https_and_sends_hsts_behind_the_proxy():
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["plain_status"] == 301
    assert seen["plain_location"] == "https://supervisor.example.com/login/"
    assert seen["secure_status"] == 200
    assert seen["hsts"] == "max-age=31536000; includeSubDomains; preload"
    # The sign-in page has no inline script, so its policy names no nonce: 'self' only.
    assert "script-src 'self';" in seen["csp"] and "unsafe-eval" not in seen["csp"]
    assert seen["csrf_cookie_secure"] is True
    # A load balancer probing over plain http gets the health answer, not a redirect.
    assert seen["healthz_redirected"] is False


def test_production_refuses_debug():
    out = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=production_env(DJANGO_DEBUG="1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "SIQ_PROFILE=production cannot run with DJANGO_DEBUG on" in out.stderr


# --- the real policy in Chromium -------------------------------------------------------------


@pytest.fixture(scope="module")
def strict_server(django_db_setup, simulator, tmp_path_factory):
    """`manage.py serve --no-worker` on the test database under the real policy (no eval)."""
    log_dir = tmp_path_factory.mktemp("serve")
    with serving(simulator, log_dir, SIQ_CSP_ALLOW_EVAL_FOR_TESTS="0") as base:
        yield base


def poll(page, expression: str, timeout: float = 15.0) -> None:
    """Wait for ``expression`` to be true, asked through the DevTools protocol (as
    page.evaluate does, which the page's CSP does not govern): wait_for_function needs eval."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"never true: {expression}")
        time.sleep(0.1)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_pages_work_in_chromium_under_the_real_policy(strict_server, page):
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    owner = get_user_model().objects.create_superuser("owner", "o@example.org", "pw-long-x")
    world(make_portal())
    client = Client()
    client.force_login(owner)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": strict_server}]
    )

    response = page.goto(f"{strict_server}/")
    assert "script-src 'self' 'nonce-" in response.headers["content-security-policy"]
    assert "unsafe-eval" not in response.headers["content-security-policy"]
    # htmx, its websocket extension and live.js run: the snapshot arrives and is swapped in.
    poll(page, "window.SupervisorLive && SupervisorLive.stats.messages > 0")
    page.wait_for_selector("#connection[data-state='open']")
    assert page.locator("#chats-body > tr").count() == 5
    # The filter form is never submitted (its handler moved out of the HTML into live.js):
    # a submitted form would load the page anew, without the marker set here.
    page.evaluate("window.__stayed = true; document.getElementById('controls').requestSubmit()")
    time.sleep(0.5)
    assert page.evaluate("window.__stayed === true")
    # The drawer comes over htmx (a GET swapped into the page).
    page.click("#chats-body > tr:not([hidden]) .visitor-link")
    page.wait_for_selector("#drawer")

    for path in ("/audit/", "/alerts/", "/users/", "/portals/", "/admin/"):
        page.goto(f"{strict_server}{path}")
        page.wait_for_load_state("load")
    assert errors == [], f"{len(errors)} console error(s), first: {errors[:5]}"


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("SIQ_PROFILE", "staging", "SIQ_PROFILE='staging' must be default or production"),
        ("SIQ_HSTS_SECONDS", "soon", "SIQ_HSTS_SECONDS='soon' is not a number"),
        ("SIQ_TRUSTED_PROXY_COUNT", "-1", "SIQ_TRUSTED_PROXY_COUNT='-1' must be between"),
    ],
)
def test_a_bad_profile_setting_is_named(variable, value, words):
    out = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=production_env(**{variable: value}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert words in out.stderr
