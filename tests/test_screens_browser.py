"""Every page at a phone's, a tablet's and a desktop's width, in both themes, in Chromium.

Each page must fit its window (nothing wider than the screen, nothing drawn past its edge),
follow the theme the user chose, and log no console error; the chat drawer takes the whole
screen of a phone; a name is not cut where there is room for it. The theme the user chose is
on every page before it is painted, and the toggle is on every page.

The live page at 1440 x 900 must show its chats and operators above the fold with a handful of
alerts open, and the alert panel must not cut a row in half.

The data is made to be awkward: two portals with long names, long visitor and operator names
(one with no space to break at), long e-mail addresses, a 150-character username, a handful
of open alerts and an audit trail with long parameters.

Set SIQ_SCREENS_SHOTS to a directory to keep a screenshot of every page there.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client
from django.utils import timezone

from dashboard.models import (
    ActionKind,
    ActionOutcome,
    AlertKind,
    Chat,
    Escalation,
    Operator,
    Profile,
    Role,
)
from dashboard.state import apply
from siq_integration import connecting, oauth
from siq_integration.models import Portal
from siq_integration.normalised import (
    ChatStatus,
    Conversation,
    Department,
    Message,
    OperatorStatus,
    OperatorSync,
    SenderType,
    Visitor,
)
from siq_integration.normalised import Operator as RemoteOperator
from siq_integration.normalised import Portal as RemotePortal
from tests.support.history import raise_alert, record
from tests.support.servers import ws_server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

__all__ = ["ws_server"]  # fixtures from tests/support

# Width → height of the window: two phones, a tablet held upright, a laptop.
WINDOWS = {360: 740, 390: 844, 768: 1024, 1440: 900}
PHONE = 640  # at or below this width the drawer takes the whole screen
SHOTS = os.environ.get("SIQ_SCREENS_SHOTS", "")

LONG_USERNAME = ("supervisor.of.the.night.shift." + "x" * 150)[:150]
LONG_EMAIL = "maximiliana.alexandrina.featherstonehaugh-cholmondeley@customer-success.example.org"
UNBROKEN = "Wolfeschlegelsteinhausenbergerdorff-Featherstonehaugh-Cholmondeley-Smythe"
LONG_PLACE = "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch"
PORTAL_NAME = "Zylker Customer Success and Premium Support (Europe, Middle East and Africa)"
OTHER_PORTAL = "AcmeInternationalHoldingsWorldwideSalesAndServicePortal"
STATUSES = [
    OperatorStatus.AVAILABLE,
    OperatorStatus.BUSY,
    OperatorStatus.AWAY,
    OperatorStatus.OFFLINE,
]
NAMES = [
    "Maximiliana Featherstonehaugh",
    "Asha Rao",
    "Benedikt Okafor-Lindqvist",
    UNBROKEN,
    "Chloé Karimi",
    "Dmitri Alexandrovich Volkonsky",
]
VISITORS = [
    "Anastasia Papadopoulou-Richardson",
    "Bo Li",
    UNBROKEN,
    "Guillermo Fernández de la Cueva",
    "visitor 48213",
    "Sophie Müller-Lüdenscheidt",
    "Ng",
    "Oluwaseun Adebayo-Williams",
]


def build_world(portal: Portal) -> dict:
    """Two portals full of long names, alerts, an audit trail and the users who look."""
    Portal.objects.filter(pk=portal.pk).update(name=PORTAL_NAME)
    portal.refresh_from_db()
    other = Portal.objects.create(name=OTHER_PORTAL, data_center="us", screen_name="acme")
    now = timezone.now()
    departments = [
        Department(id="d1", name="Premium Enterprise Customer Success"),
        Department(id="d2", name="Billing"),
    ]
    for target in (portal, other):
        apply.apply_departments(target, departments, taken_at=now)
        apply.apply_operators(
            target,
            OperatorSync(
                operators=[
                    RemoteOperator(
                        f"o{i}",
                        name,
                        LONG_EMAIL if i == 0 else f"op{i}@example.org",
                        STATUSES[i % 4],
                        department_ids=("d1", "d2") if i % 2 else ("d1",),
                        max_chats=3,
                    )
                    for i, name in enumerate(NAMES)
                ],
                sync_time=None,
                complete=True,
            ),
            taken_at=now,
        )
        conversations = []
        for i, visitor in enumerate(VISITORS):
            connected = i % 3 != 0
            started = now - timedelta(minutes=3 + 7 * i)
            conversations.append(
                Conversation(
                    id=f"c{i}",
                    status=ChatStatus.CONNECTED if connected else ChatStatus.WAITING,
                    visitor=Visitor(
                        id=f"v{i}",
                        name=visitor,
                        email=LONG_EMAIL,
                        details={"city": LONG_PLACE},
                    ),
                    started_at=started,
                    operator_id=f"o{i % 2}" if connected else "",
                    operator_name=NAMES[i % 2] if connected else "",
                    department_id="d1",
                    department_name=departments[0].name,
                    attended_at=started + timedelta(seconds=40) if connected else None,
                    last_message=Message(
                        id=f"m{i}",
                        chat_id=f"c{i}",
                        sender_type=SenderType.VISITOR,
                        text="I was charged twice for https://zylker.example/orders/"
                        + "0123456789" * 6
                        + " and nobody answers",
                        sent_at=now,
                        sender_name=visitor,
                    ),
                )
            )
        apply.apply_chats(target, conversations, taken_at=now, complete=True)

    chat = Chat.objects.get(portal=portal, remote_id="c2")  # the unbroken visitor name
    apply.apply_transcript(
        chat,
        [
            Message("t1", "c2", SenderType.VISITOR, "Hello, my order " + "9" * 80, now, UNBROKEN),
            Message("t2", "c2", SenderType.OPERATOR, "Let me look at it.", now, NAMES[0]),
        ],
        fetched_at=now,
    )
    users = get_user_model().objects
    admin = users.create_superuser("ada", "ada@example.org", "pw-long-x")
    long_user = users.create_user(
        LONG_USERNAME,
        LONG_EMAIL,
        "pw-long-x",
        first_name="Maximiliana Alexandrina",
        last_name="Featherstonehaugh-Cholmondeley",
    )
    Profile.objects.create(user=long_user, role=Role.SUPERVISOR).portals.set([portal, other])
    viewer = users.create_user("viewer", "viewer@example.org", "pw-long-x")
    Profile.objects.create(user=viewer, role=Role.VIEWER).portals.set([portal])

    operator = Operator.objects.get(portal=portal, remote_id="o1")  # has chats: drain
    # A handful of open alerts: three critical waits, two unanswered messages, a busy operator.
    for chat_id in ("c0", "c3", "c6"):
        target = Chat.objects.get(portal=portal, remote_id=chat_id)
        raise_alert(
            portal,
            AlertKind.LONG_WAIT,
            ago=timedelta(minutes=4),
            title=f"{target.visitor_name} has waited 4 minutes for an operator",
            target=f"chat:{target.remote_id}",
            chat=target,
            detail=f"In {target.department_name}, nobody has picked up yet.",
        )
    for chat_id in ("c1", "c4"):
        target = Chat.objects.get(portal=portal, remote_id=chat_id)
        raise_alert(
            portal,
            AlertKind.UNANSWERED,
            ago=timedelta(minutes=6),
            title=f"{target.visitor_name}'s message is unanswered",
            target=f"chat:{target.remote_id}",
            chat=target,
            detail=target.last_message_text,
        )
    raise_alert(
        portal,
        AlertKind.OPERATOR_AWAY_WITH_CHATS,
        ago=timedelta(minutes=9),
        title=f"{NAMES[1]} is busy with open chats",
        target="operator:o1",
        operator=operator,
    )
    history = raise_alert(
        portal,
        AlertKind.LONG_CHAT,
        ago=timedelta(hours=3),
        title=f"The chat with {UNBROKEN} has run for 45 minutes",
        target="chat:gone",
        acknowledged_after=timedelta(minutes=2),
        by=long_user,
        resolved_after=timedelta(minutes=20),
        reason="The chat ended.",
        escalations=[
            (Escalation.Channel.EMAIL, LONG_EMAIL, ""),
            (
                Escalation.Channel.WEBHOOK,
                "https://hooks.slack.example/services/" + "A1" * 40,
                "HTTP 500: " + "no_service_" * 12,
            ),
        ],
    )

    record(
        portal,
        long_user,
        ActionKind.TRANSFER,
        ActionOutcome.DONE,
        ago=timedelta(minutes=5),
        chat_label=UNBROKEN,
        chat_remote_id="c2",
        operator_label=NAMES[3],
        operator_remote_id="o3",
        params={
            "department_id": "d1",
            "department_name": departments[0].name,
            "operator_name": UNBROKEN,
            "note": "https://zylker.example/orders/" + "0123456789" * 8,
        },
        message=f"{UNBROKEN} accepted the transfer.",
        confirmation="conversation.transfer.accepted",
        confirmed_at=now - timedelta(minutes=4),
    )
    drain = record(
        portal,
        admin,
        ActionKind.DRAIN,
        ActionOutcome.FAILED,
        ago=timedelta(minutes=2),
        operator_label=NAMES[1],
        operator_remote_id="o1",
        message="1 of 2 chats moved; SalesIQ did not answer about the other.",
        error_code="timeout",
        error_detail="ReadTimeout(" + "HTTPSConnectionPool/" * 12 + ")",
    )
    record(
        portal,
        admin,
        ActionKind.TRANSFER,
        ActionOutcome.DONE,
        ago=timedelta(minutes=2),
        parent=drain,
        chat_label=VISITORS[1],
        operator_label=NAMES[0],
    )

    return {
        "portal": portal,
        "other": other,
        "chat": chat,
        "operator": operator,
        "alert": history,
        "admin": admin,
        "long_user": long_user,
        "viewer": viewer,
    }


def session_of(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def pending_screen_name(session_key: str, portal: Portal) -> None:
    """A Zoho sign-in waiting in the admin's session for the screen name to be picked, as
    the OAuth callback leaves it when the account reaches several portals."""
    session = SessionStore(session_key=session_key)
    authorization = oauth.Authorization(
        portal_id=str(portal.pk),
        data_center=settings.SIQ_DATA_CENTERS["us"],
        accounts_url="https://accounts.zoho.com",
        tokens=oauth.TokenSet("access", "refresh", timezone.now() + timedelta(hours=1), ()),
    )
    choices = [
        RemotePortal("1", "zylkercustomersuccesspremiumsupportemea", PORTAL_NAME),
        RemotePortal("2", "acme", OTHER_PORTAL),
    ]
    connecting.remember_pending(session, authorization, choices)
    session.save()


@pytest.fixture(autouse=True)
def no_push(monkeypatch):
    """The pages are served by the child process; nothing here publishes."""
    monkeypatch.setattr("dashboard.realtime.publish.send", lambda portal_id, html: None)


# --- the theme ---------------------------------------------------------------------------

AT_FIRST_BODY = """
window.themeAtFirstBody = "no body seen";
new MutationObserver((changes, observer) => {
  if (!document.body) return;
  window.themeAtFirstBody = document.documentElement.getAttribute("data-theme");
  observer.disconnect();
}).observe(document, { childList: true, subtree: true });
"""


def test_it_switches_the_theme_from_any_page_for_every_page(
    ws_server,
    browser,
    connected_portal,
):
    world = build_world(connected_portal())
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.add_init_script(AT_FIRST_BODY)
    context.add_cookies(
        [{"name": "sessionid", "value": session_of(world["admin"]), "url": ws_server}]
    )
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        def first(path: str) -> str | None:
            page.goto(f"{ws_server}{path}")
            return page.evaluate("window.themeAtFirstBody")

        def background() -> str:
            return page.evaluate("getComputedStyle(document.body).backgroundColor")

        assert first("/portals/") is None  # no choice yet: the system's theme
        light = background()
        page.click("[data-theme-toggle]")
        assert page.get_attribute("html", "data-theme") == "dark"
        assert page.get_attribute("[data-theme-toggle]", "aria-pressed") == "true"
        assert page.evaluate("localStorage.getItem('siq-theme')") == "dark"
        assert background() != light
        for path in ("/audit/", "/users/", "/alerts/", f"/portals/{world['portal'].pk}/", "/"):
            assert first(path) == "dark", path

        # The live page's toggle switches every page back.
        page.wait_for_function("window.SupervisorLive && SupervisorLive.stats.messages > 0")
        page.click("[data-theme-toggle]")
        assert page.get_attribute("html", "data-theme") == "light"
        assert first("/audit/") == "light"
        assert background() == light

        # The wallboard keeps a choice of its own, dark until someone chooses otherwise.
        assert first("/?wallboard=1") == "dark"
        page.click("[data-theme-toggle]")
        assert page.evaluate("localStorage.getItem('siq-theme-wallboard')") == "light"
        assert page.evaluate("localStorage.getItem('siq-theme')") == "light"
        page.click("[data-theme-toggle]")
        assert first("/?wallboard=1") == "dark"
        assert first("/users/") == "light"
        assert errors == []
    finally:
        context.close()


# --- what is checked on every page ----------------------------------------------------------

FITS = """() => {
  const width = document.documentElement.clientWidth;
  const problems = [];
  const scrollWidth = document.documentElement.scrollWidth;
  if (scrollWidth > width) problems.push(`the page is ${scrollWidth} px wide in ${width} px`);
  // The part of the window where an element's content can show: its ancestors that clip
  // (the page itself does not count: a page that hides its overflow still cuts it off).
  const clips = new Map();
  function clipOf(el) {
    if (!el || el === document.body || el === document.documentElement) {
      return [-Infinity, Infinity];
    }
    if (clips.has(el)) return clips.get(el);
    let [left, right] = clipOf(el.parentElement);
    if (getComputedStyle(el).overflowX !== "visible") {
      const box = el.getBoundingClientRect();
      left = Math.max(left, box.left);
      right = Math.min(right, box.right);
    }
    clips.set(el, [left, right]);
    return [left, right];
  }
  function describe(el) {
    const name = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
      (el.classList.length ? "." + [...el.classList].join(".") : "");
    return `${name} "${(el.textContent || "").trim().slice(0, 40)}"`;
  }
  function past(box, el) {
    if (box.width === 0 && box.height === 0) return false;
    const [left, right] = clipOf(el);
    return Math.min(box.right, right) > width + 1 || Math.max(box.left, left) < -1;
  }
  const out = [];
  for (const el of document.body.querySelectorAll("*")) {
    const style = getComputedStyle(el);
    if (style.visibility === "hidden" || style.display === "contents") continue;
    const box = el.getBoundingClientRect();
    if (past(box, el.parentElement)) {
      out.push(`${describe(el)} reaches ${Math.round(box.left)}–${Math.round(box.right)} px`);
    }
    // A box that scrolls sideways hides what it cannot show: only the page scrolls, down.
    const sideways = el.scrollWidth > el.clientWidth + 1 && box.width > 0;
    if (["auto", "scroll"].includes(style.overflowX) && sideways) {
      out.push(`${describe(el)} scrolls sideways (${el.scrollWidth} px in ${el.clientWidth})`);
    }
  }
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const range = document.createRange();
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.textContent.trim() || !node.parentElement) continue;
    range.selectNodeContents(node);
    for (const box of range.getClientRects()) {
      if (past(box, node.parentElement)) {
        out.push(`the text ${describe(node.parentElement)} reaches ${Math.round(box.right)} px`);
        break;
      }
    }
  }
  return problems.concat([...new Set(out)].slice(0, 8));
}"""

# The colours that say which theme a page wears: the page, its surfaces, fields and text.
COLOURS = """() => {
  const luminance = (colour) => {
    const [r, g, b, a] = (colour.match(/[\\d.]+/g) || []).map(Number);
    if (a === 0) return null;
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
  };
  const seen = [];
  const look = (what, selector, property) => {
    for (const el of document.querySelectorAll(selector)) {
      if (!el.getClientRects().length) continue;
      const value = luminance(getComputedStyle(el)[property]);
      if (value !== null) seen.push([what, value]);
    }
  };
  look("the page", "body", "backgroundColor");
  look("a surface", ".card, .panel, .kpi, .drawer, .alerts-panel", "backgroundColor");
  look(
    "a field or button",
    "main :is(input[type=text], input[type=email], input[type=password], select, textarea), " +
      "main .button:not(.primary, .danger)",
    "backgroundColor",
  );
  look("text", "main :is(h1, td, dd, label)", "color");
  return seen;
}"""

NAMES_SHOWN = """() => {
  const cut = [];
  const names = ".visitor-link, .op-name, .c-operator, .drawer-kicker, .pick-name";
  for (const el of document.querySelectorAll(names)) {
    if (!el.getClientRects().length) continue;
    const text = el.textContent.replace(/\\s+/g, " ").trim();
    const shown = `${el.clientWidth}×${el.clientHeight} of ${el.scrollWidth}×${el.scrollHeight} px`;
    if (el.scrollWidth <= el.clientWidth + 1 && el.scrollHeight <= el.clientHeight + 1) continue;
    // Where a name is cut, a pointer over it shows the whole name.
    el.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    if (text.length <= 32) cut.push(`${text} (${shown})`);
    else if (!(el.title || "").includes(text)) cut.push(`${text.slice(0, 30)}… not on hover`);
  }
  return cut;
}"""


class Visit:
    """One browser window of one width: sessions in, console errors collected per page."""

    def __init__(self, browser, base: str, width: int, world: dict):
        self.base, self.width, self.world = base, width, world
        self.context = browser.new_context(viewport={"width": width, "height": WINDOWS[width]})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.problems: list[str] = []
        self.expected_status: set[str] = set()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        self.sessions = {
            "admin": session_of(world["admin"]),
            "long": session_of(world["long_user"]),
            "viewer": session_of(world["viewer"]),
        }
        pending_screen_name(self.sessions["admin"], world["portal"])

    def _console(self, message) -> None:
        if message.type != "error":
            return
        # Chromium reports the document's own status (a 403 or 404 page meant as such).
        url = (message.location or {}).get("url", "")
        if "the server responded with a status of" in message.text and url in self.expected_status:
            return
        self.errors.append(f"{message.text} ({url})")

    def sign_in_as(self, who: str | None) -> None:
        self.context.clear_cookies()
        if who:
            self.context.add_cookies(
                [{"name": "sessionid", "value": self.sessions[who], "url": self.base}]
            )

    def theme(self, theme: str) -> None:
        self.page.goto(f"{self.base}/login/")
        self.page.evaluate(
            """(theme) => { localStorage.setItem("siq-theme", theme);
                            localStorage.setItem("siq-theme-wallboard", theme); }""",
            theme,
        )

    def go(self, path: str, *, status: int = 200) -> None:
        url = f"{self.base}{path}"
        if status != 200:
            self.expected_status.add(url)
        answer = self.page.goto(url)
        assert answer is not None and answer.status == status, (path, answer and answer.status)

    def live_ready(self) -> None:
        self.page.wait_for_function("window.SupervisorLive && SupervisorLive.stats.messages > 0")
        self.page.wait_for_selector("#connection[data-state='open']")

    def check(self, name: str, theme: str) -> None:
        where = f"{name} at {self.width} px, {theme}"
        for problem in self.page.evaluate(FITS):
            self.problems.append(f"{where}: {problem}")
        if self.width >= 768:
            for problem in self.page.evaluate(NAMES_SHOWN):
                self.problems.append(f"{where}: name cut: {problem}")
        chosen = self.page.get_attribute("html", "data-theme")
        if chosen != theme:
            self.problems.append(f"{where}: the page wears data-theme={chosen!r}")
        wrong: dict[str, list[float]] = {}
        for what, value in self.page.evaluate(COLOURS):
            dark_enough = value < 0.35 if what != "text" else value > 0.5
            light_enough = value > 0.75 if what != "text" else value < 0.5
            if not (dark_enough if theme == "dark" else light_enough):
                wrong.setdefault(what, []).append(value)
        for what, values in wrong.items():
            self.problems.append(
                f"{where}: {what} does not follow the theme "
                f"({len(values)} times, luminance {min(values):.2f}–{max(values):.2f})"
            )
        toggles = self.page.locator("[data-theme-toggle]")
        if not any(toggles.nth(i).is_visible() for i in range(toggles.count())):
            self.problems.append(f"{where}: no theme toggle in sight")
        for error in self.errors:
            self.problems.append(f"{where}: console: {error}")
        self.errors.clear()
        if SHOTS and self.width in (390, 768, 1440):
            drawer = self.page.locator("#drawer").count() > 0  # it covers the window
            self.shoot(f"{name}-{self.width}-{theme}", full_page=self.width < 768 and not drawer)

    def shoot(self, name: str, *, full_page: bool) -> None:
        """A screenshot for a person to look at. Rows off screen are not painted (they skip
        layout by content-visibility), so a whole-page shot paints them for the picture."""
        folder = Path(SHOTS)
        folder.mkdir(parents=True, exist_ok=True)
        # Set on each row from script: the CSP refuses an added <style> without its nonce.
        paint_all = """(on) => document.querySelectorAll("tr").forEach((tr) => {
            tr.style.contentVisibility = on ? "visible" : "";
        })"""
        self.page.evaluate(paint_all, True)
        if not full_page:
            self.page.screenshot(path=str(folder / f"{name}.png"))
        else:  # a long page in window-sized pieces, each readable at its own size
            height = WINDOWS[self.width]
            total = self.page.evaluate("document.documentElement.scrollHeight")
            for piece in range(min(5, -(-total // height))):
                clip = {"x": 0, "y": piece * height, "width": self.width, "height": height}
                clip["height"] = min(height, total - clip["y"])
                self.page.screenshot(
                    path=str(folder / f"{name}-{piece + 1}.png"), full_page=True, clip=clip
                )
        self.page.evaluate(paint_all, False)

    def drawer_fills_a_phone(self, name: str, theme: str) -> None:
        if self.width > PHONE:
            return
        box = self.page.locator("#drawer").bounding_box()
        if box is None or box["x"] > 1 or box["width"] < self.width - 1:
            self.problems.append(f"{name} at {self.width} px, {theme}: the drawer is {box}")
        close = self.page.locator("#drawer [data-close-drawer]")
        if not close.is_visible() or not close.bounding_box()["x"] + 10 < self.width:
            self.problems.append(f"{name} at {self.width} px, {theme}: cannot reach Close")


def visit_every_page(visit: Visit, theme: str) -> None:
    world = visit.world
    portal, alert = world["portal"], world["alert"]

    def check(name: str) -> None:
        visit.check(name, theme)

    visit.theme(theme)

    visit.sign_in_as(None)
    visit.go("/login/")
    check("login")

    visit.sign_in_as("viewer")
    visit.go("/users/", status=403)
    check("403")

    visit.sign_in_as("admin")
    visit.go("/portals/00000000-0000-0000-0000-000000000000/", status=404)
    check("404")

    visit.go("/")
    visit.live_ready()
    check("live")
    page = visit.page
    page.click(f"#chat-{world['chat'].pk} .visitor-link")
    page.wait_for_selector(f"#drawer[data-chat='{world['chat'].pk}']")
    check("chat-drawer")
    visit.drawer_fills_a_phone("chat-drawer", theme)
    page.click("#drawer [data-action-button='transfer']")
    page.wait_for_selector("#drawer .transfer-form .pick")
    check("transfer-picker")
    page.click("#drawer [data-close-drawer]")
    page.wait_for_selector("#drawer", state="detached")
    page.click(f"#op-{world['operator'].pk} .op-name")
    page.wait_for_selector(f"#drawer[data-operator='{world['operator'].pk}']")
    check("operator-panel")
    visit.drawer_fills_a_phone("operator-panel", theme)
    page.click("#drawer [data-drain-preview]")
    page.wait_for_selector("#drawer .drain-form table.drain-plan")
    check("drain-preview")

    visit.go("/?wallboard=1")
    visit.live_ready()
    check("wallboard")

    visit.go("/alerts/")
    check("alerts-history")
    visit.go(f"/alerts/{alert.pk}/")
    check("alert-detail")
    visit.go("/audit/")
    check("audit")
    visit.go("/portals/")
    check("portals")
    visit.go(f"/portals/{portal.pk}/")
    check("portal-detail")
    visit.go(f"/portals/{portal.pk}/edit/")
    check("portal-form")
    visit.go("/portals/add/")
    check("portal-add")
    visit.go(f"/portals/{portal.pk}/alerts/")
    check("alert-rules")
    visit.go(f"/portals/{portal.pk}/disconnect/")
    check("portal-disconnect")
    visit.go(f"/portals/{portal.pk}/screen-name/")
    check("screen-name")
    visit.go(f"/portals/{world['other'].pk}/screen-name/", status=400)  # nothing pending
    check("connect-failed")
    visit.go("/users/")
    check("users")
    visit.go(f"/users/{world['long_user'].pk}/edit/")
    check("user-form")

    visit.sign_in_as("long")  # the 150-character username in the header
    visit.go("/")
    visit.live_ready()
    check("live-long-username")


@pytest.mark.parametrize("width", list(WINDOWS))
def test_it_fits_every_page_to_the_window_in_both_themes(
    ws_server,
    browser,
    connected_portal,
    width,
):
    world = build_world(connected_portal())
    visit = Visit(browser, ws_server, width, world)
    try:
        for theme in ("light", "dark"):
            visit_every_page(visit, theme)
    finally:
        visit.context.close()
    assert not visit.problems, "\n".join(visit.problems)


# --- the live page at 1440 x 900 --------------------------------------------------------

FOLD = """() => {
  const fold = window.innerHeight;
  const seen = (id) => {
    const panel = document.getElementById(id);
    const wrap = panel.querySelector(".table-wrap").getBoundingClientRect();
    const bottom = Math.min(fold, wrap.bottom);
    const rows = [...panel.querySelectorAll("tbody > tr")].filter((row) => {
      const box = row.getBoundingClientRect();
      return box.height > 0 && box.top >= wrap.top - 1 && box.bottom <= bottom + 1;
    });
    return { top: Math.round(panel.getBoundingClientRect().top), rows: rows.length };
  };
  const list = document.getElementById("alerts-list").getBoundingClientRect();
  const rows = [...document.querySelectorAll("#alerts-list > li")];
  const cut = rows.filter((row) => {
    const box = row.getBoundingClientRect();
    const shown = Math.min(box.bottom, list.bottom) - Math.max(box.top, list.top);
    return shown > 1 && shown < box.height - 1;
  }).map((row) => row.dataset.title);
  const below = rows.filter((row) => row.getBoundingClientRect().top >= list.bottom - 1).length;
  const more = document.querySelector("[data-alerts-more]");
  return {
    chats: seen("chats-panel"),
    operators: seen("operators-panel"),
    cut,
    below,
    more: more && !more.hidden ? more.textContent : "",
  };
}"""


def test_it_keeps_the_chats_and_operators_above_the_fold_with_alerts_open(
    ws_server,
    browser,
    connected_portal,
):
    world = build_world(connected_portal())
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.add_cookies(
        [{"name": "sessionid", "value": session_of(world["admin"]), "url": ws_server}]
    )
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        for theme in ("light", "dark"):
            page.goto(f"{ws_server}/login/")
            page.evaluate("(theme) => localStorage.setItem('siq-theme', theme)", theme)
            page.goto(f"{ws_server}/")
            page.wait_for_function("window.SupervisorLive && SupervisorLive.stats.messages > 0")
            page.wait_for_selector("#alerts-list > li[data-alert]")
            if SHOTS:
                Path(SHOTS).mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(Path(SHOTS) / f"fold-1440x900-{theme}.png"))
            seen = page.evaluate(FOLD)
            # A handful of alerts open, the question about notifications asked, two portals.
            assert page.locator("#alerts-list > li[data-alert]").count() == 6
            assert page.is_visible("[data-signal-ask]")
            for panel in ("chats", "operators"):
                assert seen[panel]["top"] < 900 * 0.6, seen
                assert seen[panel]["rows"] >= 5, seen  # whole rows, in the window
            assert seen["cut"] == [], seen  # no alert row half shown
            assert seen["below"] > 0, seen
            assert seen["more"] == f"{seen['below']} more below ↓", seen

            # The hint scrolls the list down to the rows it counted.
            page.click("[data-alerts-more]")
            page.wait_for_function(
                """(before) => {
                  const more = document.querySelector("[data-alerts-more]");
                  return document.getElementById("alerts-list").scrollTop > 0
                    && (more.hidden || !more.textContent.startsWith(before + " "));
                }""",
                arg=seen["below"],
            )
        if SHOTS:  # the live page on a big screen, for a person to look at
            page.set_viewport_size({"width": 1920, "height": 1080})
            for theme in ("light", "dark"):
                page.evaluate(
                    """(theme) => { localStorage.setItem("siq-theme", theme);
                                    localStorage.setItem("siq-theme-wallboard", theme); }""",
                    theme,
                )
                for query, name in (("", "live"), ("?wallboard=1", "wallboard")):
                    page.goto(f"{ws_server}/{query}")
                    page.wait_for_function(
                        "window.SupervisorLive && SupervisorLive.stats.messages > 0"
                    )
                    page.screenshot(path=str(Path(SHOTS) / f"{name}-1920x1080-{theme}.png"))
        assert errors == []
    finally:
        context.close()
