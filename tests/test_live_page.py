"""The live page as the server renders it: rows, operators, banners, controls, escaping."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard import selectors
from dashboard.models import Chat, Operator, Profile, Role
from dashboard.state import apply
from siq_integration.models import Portal
from siq_integration.normalised import (
    ChatStatus,
    Message,
    OperatorStatus,
    SenderType,
)
from tests.factories import make_portal
from tests.support.live import NASTY, chat, disconnected, fill, staff

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_push(monkeypatch):
    """Nothing listens in these tests; keep the publisher quiet."""
    monkeypatch.setattr("dashboard.realtime.publish.send", lambda portal_id, html: None)


@pytest.fixture
def owner(client):
    user = get_user_model().objects.create_superuser("owner", "owner@example.org", "pw-long-x")
    client.force_login(user)
    return user


def operator_row(html: str, remote_id: str) -> str:
    match = re.search(rf'<tr id="op-\d+"[^>]*data-operator="{remote_id}".*?</tr>', html, re.S)
    assert match, f"no operator {remote_id}"
    return match.group(0)


def row(html: str, element_id: str) -> str:
    match = re.search(rf'<tr id="{element_id}"[^>]*>.*?</tr>', html, re.S)
    assert match, f"no row {element_id}"
    return match.group(0)


def test_it_renders_chats_operators_and_key_figures(client, owner):
    portal = make_portal()
    fill(
        portal,
        [
            chat("c1", visitor="Ada", minutes=7),
            chat("c2", status=ChatStatus.CONNECTED, visitor="Bo", minutes=20,
                 operator=("o1", "Asha Rao"), department=("d2", "Support"), last="Hello?"),
        ],
    )  # fmt: skip
    waiting = Chat.objects.get(remote_id="c1")
    connected = Chat.objects.get(remote_id="c2")

    html = client.get("/").content.decode()

    first = row(html, f"chat-{waiting.pk}")
    assert 'data-container="chats-body"' in first
    assert 'data-status="waiting"' in first
    assert f'data-portal="{portal.pk}"' in first
    assert 'data-department="d1"' in first
    assert re.search(r'data-waiting-since="\d{4}-\d\d-\d\dT[\d:.]+Z"', first)
    assert ">waiting<" in first  # nobody has it yet, said in the operator column
    assert 'data-tick="wait"' in first
    second = row(html, f"chat-{connected.pk}")
    assert 'data-operator="o1"' in second and "Asha Rao" in second
    assert 'data-awaiting-reply="1"' in second
    assert 'data-tick="unanswered"' in second  # the visitor wrote last: how long unanswered
    assert "Hello?" in second
    # Operators: status, time in status, load against capacity, departments.
    asha = operator_row(html, "o1")
    assert 'data-status="available"' in asha and 'data-load="1"' in asha
    assert 'data-capacity="4"' in asha and 'data-departments="d1"' in asha
    assert 'role="meter"' in asha and '1<span class="of">/4</span>' in asha
    assert "Sales" in asha
    assert 'data-enabled="1"' in asha
    # The key figures the browser fills, and the data the average comes from.
    for kpi in ("open", "waiting", "longest-wait", "average-wait", "available", "busy",
                "offline", "utilisation"):  # fmt: skip
        assert f'data-kpi="{kpi}"' in html
    meta = re.search(rf'<div id="meta-{portal.pk}"[^>]*>', html).group(0)
    assert "data-wait-sum=" in meta and 'data-wait-count="2"' in meta
    assert re.search(r'data-chats-as-of="[^"]+Z"', meta)
    assert re.search(r'data-operators-as-of="[^"]+Z"', meta)


def test_it_gives_the_page_the_servers_thresholds(client, owner, monkeypatch):
    """The page script reads how old is stale, how long a wait is amber or red and how full
    the seats are before utilisation is amber or red from the page (static/js/live/page.js):
    the server's values, whatever they are."""
    fill(make_portal(), [chat("c1")])

    html = client.get("/").content.decode()
    assert 'data-stale-after="120" data-wait-warn="60" data-wait-bad="180"' in html
    assert 'data-utilisation-warn="85" data-utilisation-bad="100"' in html

    live_context = selectors.live_context

    def with_thresholds(portals, now=None):
        thresholds = {
            "stale_after": 300,
            "wait_warn": 45,
            "wait_bad": 90,
            "utilisation_warn": 70,
            "utilisation_bad": 95,
        }
        return {**live_context(portals, now), "thresholds": thresholds}

    monkeypatch.setattr(selectors, "live_context", with_thresholds)
    html = client.get("/").content.decode()
    assert 'data-stale-after="300" data-wait-warn="45" data-wait-bad="90"' in html
    assert 'data-utilisation-warn="70" data-utilisation-bad="95"' in html


def test_it_says_on_each_operator_row_what_it_counts_as_in_the_figures(client, owner):
    """One definition of the operator figures (selectors.operator_figure): away counts as
    busy, a disabled operator not at all, capacity is the available ones' seats. The JSON
    figures use it, and each row carries it for the page to sum over the rows it shows."""
    portal = make_portal()
    fill(portal, [chat("c1")])
    staff(
        portal,
        ("o1", "Asha Rao", OperatorStatus.AVAILABLE, ("d1",), 4),
        ("o2", "Ben Okafor", OperatorStatus.AWAY, ("d1",), 3),
        ("o3", "Chloé Karimi", OperatorStatus.OFFLINE, ("d2",), 5),
        ("o4", "Dee Park", OperatorStatus.AVAILABLE, ("d2",), 6),
        ("o5", "Eli Moss", OperatorStatus.BUSY, ("d2",), 2),
    )
    Operator.objects.filter(portal=portal, remote_id="o4").update(enabled=False)

    html = client.get("/").content.decode()
    figures = {
        remote: re.search(r'data-figure="(\w*)" data-seats="(\d+)"', operator_row(html, remote))
        for remote in ("o1", "o2", "o3", "o4", "o5")
    }
    assert {remote: found.groups() for remote, found in figures.items()} == {
        "o1": ("available", "4"),
        "o2": ("busy", "0"),
        "o3": ("offline", "0"),
        "o4": ("", "0"),  # disabled
        "o5": ("busy", "0"),
    }
    kpis = selectors.kpis([portal])
    assert (kpis["operators_available"], kpis["operators_busy"], kpis["operators_offline"]) == (
        1,
        2,
        1,
    )
    assert kpis["capacity_available"] == 4


def test_it_offers_sorting_and_filters(client, owner):
    portal = make_portal()
    fill(portal, [chat("c1")])

    html = client.get("/").content.decode()

    for sort in ("visitor", "operator", "department", "status", "wait", "duration", "last"):
        assert f'data-sort="{sort}"' in html
    assert 'class="o-name" data-sort="name"' in html
    assert 'class="o-status" data-sort="status"' in html
    assert 'class="o-load" data-sort="load"' in html
    for name in ("department", "operator", "status", "presence"):
        assert f'data-filter="{name}"' in html
    assert f'<option value="{portal.pk}:d1">Sales</option>' in html
    assert f'<option value="{portal.pk}:d2">Support</option>' in html
    assert '<option value="waiting">Waiting</option>' in html
    assert '<option value="awaiting">Awaits reply</option>' in html
    assert 'id="drawer-slot"' in html
    assert 'ws-connect="/ws/live/?portals=' in html


def test_it_renders_visitor_text_as_text(client, owner):
    portal = make_portal()
    fill(portal, [chat("c1", visitor=NASTY, last=NASTY)])
    item = Chat.objects.get(remote_id="c1")
    apply.apply_transcript(
        item,
        [Message("m9", "c1", SenderType.VISITOR, f"{NASTY}\nsecond line", timezone.now(),
                 sender_name=NASTY)],
        fetched_at=timezone.now(),
    )  # fmt: skip

    page = client.get("/").content.decode()
    drawer = client.get(f"/live/chats/{item.pk}/").content.decode()

    for html in (page, drawer):
        assert "<script>alert(1)" not in html
        assert "<b>x</b>" not in html
        assert "&lt;b&gt;x&lt;/b&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'data-visitor="&lt;b&gt;x&lt;/b&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in page
    assert f'id="transcript-{item.pk}"' in drawer
    assert "second line" in drawer and "<br>" in drawer  # line breaks kept, nothing else
    assert "Ghent" in drawer  # visitor details


def admin_notes(html: str) -> str:
    return re.search(r'<ul id="admin-notes".*?</ul>', html, re.S).group(0)


def test_it_neither_shows_nor_counts_a_portal_that_is_not_connected(client, owner):
    zylker, acme = make_portal("Zylker"), make_portal("Acme")
    fill(zylker, [chat("z1"), chat("z2", status=ChatStatus.CONNECTED, operator=("o1", "Asha"))])
    fill(acme, [chat("a1"), chat("a2"), chat("a3")])
    from dashboard import selectors
    from dashboard.alerts import lifecycle
    from dashboard.alerts.conditions import Condition
    from dashboard.alerts.rules import ensure_rules
    from dashboard.models import AlertKind

    rules = ensure_rules(acme)
    lifecycle._raise(
        Condition(rules[AlertKind.LONG_WAIT], "chat:a1", "Acme's long wait", ""),
        timezone.now(),
    )
    disconnected(acme)

    html = client.get("/").content.decode()

    # Acme's chats, operators, departments and alerts are history, not what is happening.
    for remote_id in ("a1", "a2", "a3"):
        assert f'id="chat-{Chat.objects.get(remote_id=remote_id).pk}"' not in html
    assert html.count('data-container="chats-body"') == 2
    assert html.count('data-container="operators-body"') == 3  # Zylker's three
    assert "Acme's long wait" not in html
    assert f'<option value="{acme.pk}:d1">' not in html
    meta = re.search(rf'<div id="meta-{acme.pk}"[^>]*>', html).group(0)
    assert 'data-live="0"' in meta and 'data-wait-count="0"' in meta
    figures = selectors.kpis([zylker, acme])
    assert figures["open_chats"] == 2 and figures["waiting"] == 1
    assert figures["operators_available"] == 1  # Zylker's Asha; Acme's Asha is not live
    # Said once, in one place: one line naming Acme, no banner.
    notes = admin_notes(html)
    line = re.search(rf'<li id="admin-note-{acme.pk}"[^>]*>(.*?)</li>', notes, re.S).group(1)
    assert re.sub(r"<[^>]+>", "", line).startswith("Acme needs an admin: connect it again")
    assert f'href="/portals/{acme.pk}/"' in line
    assert re.search(rf'<li id="admin-note-{zylker.pk}"[^>]*hidden', notes)
    assert 'class="banner"' not in html
    assert "not connected to SalesIQ" not in html


def test_it_tells_others_than_admins_in_words_without_a_link(client):
    acme = disconnected(make_portal("Acme"))
    user = get_user_model().objects.create_user("sam", password="pw-long-x")
    Profile.objects.create(user=user, role=Role.SUPERVISOR).portals.add(acme)
    client.force_login(user)

    html = client.get("/").content.decode()

    assert 'data-can-manage="0"' in html  # the page shows .for-others, hides .for-admins
    line = re.search(r'<li id="admin-note-[^"]+"[^>]*>(.*?)</li>', html, re.S).group(1)
    others = re.search(r'<span class="for-others">(.*?)</span>', line).group(1)
    assert others == "it is disconnected, so nothing of it shows here."


def test_it_says_in_the_snapshot_that_a_portal_is_not_live(client, owner):
    acme = make_portal("Acme")
    fill(acme, [chat("a1")])
    live_now = client.get(f"/api/portals/{acme.pk}/snapshot.json").json()
    disconnected(acme)

    gone = client.get(f"/api/portals/{acme.pk}/snapshot.json").json()

    assert live_now["portal"]["live"] is True and live_now["kpis"]["open_chats"] == 1
    assert gone["portal"]["live"] is False
    assert gone["health"]["state"] == "disconnected"
    assert gone["chats"] == [] and gone["operators"] == []
    assert gone["kpis"]["open_chats"] == 0 and gone["kpis"]["operators_available"] == 0


def test_it_names_a_portal_that_needs_reconnecting_once_and_keeps_its_rows_stale(client, owner):
    acme = make_portal("Acme")
    fill(acme, [chat("a1")])
    Portal.objects.filter(pk=acme.pk).update(
        last_error_at=timezone.now(),
        last_error="The connection to this portal was revoked at Zoho.",
        last_error_kind="ReconnectNeeded",
    )

    html = client.get("/").content.decode()

    meta = re.search(rf'<div id="meta-{acme.pk}".*?</div>', html, re.S).group(0)
    assert 'data-stale="1"' in meta and 'data-live="1"' in meta
    assert 'class="banner"' not in meta  # said in the needs-admin line instead
    assert html.count("needs an admin") == 1
    assert "Acme</strong> needs an admin: <span" in html and "reconnect it on" in html
    # Still connected: its last known chats stay, marked stale by the page.
    assert f'id="chat-{Chat.objects.get(remote_id="a1").pk}"' in html
    # The panels have a place to say how old their data is, and "stale".
    assert html.count('class="stale-pill"') == 2


def test_it_shows_healthy_fresh_data_without_a_banner(client, owner, connected_portal):
    portal = connected_portal()
    fill(portal, [chat("c1")])

    html = client.get("/").content.decode()

    meta = re.search(rf'<div id="meta-{portal.pk}".*?</div>', html, re.S).group(0)
    assert 'data-stale="0"' in meta
    assert 'class="banner"' not in meta


def test_it_shows_several_portals_together_or_one_at_a_time(client, owner):
    zylker, acme = make_portal("Zylker"), make_portal("Acme")
    fill(zylker, [chat("z1")])
    fill(acme, [chat("a1")])

    together = client.get("/").content.decode()
    alone = client.get(f"/?portal={acme.pk}").content.decode()

    assert 'class="live multi-portal"' in together
    assert together.count("data-portal-tag") >= 4  # every row has a place for its portal's tag
    assert '<optgroup label="Zylker">' in together and '<optgroup label="Acme">' in together
    assert f'ws-connect="/ws/live/?portals={zylker.pk},{acme.pk}&amp;since=' in together or (
        f'ws-connect="/ws/live/?portals={acme.pk},{zylker.pk}&amp;since=' in together
    )
    assert "data-portal-select" in together
    assert 'class="live"' in alone and "multi-portal" not in alone
    assert f'ws-connect="/ws/live/?portals={acme.pk}&amp;since=' in alone
    assert f'<option value="{acme.pk}" selected>Acme</option>' in alone
    assert f'id="chat-{Chat.objects.get(remote_id="a1").pk}"' in alone
    assert f'id="chat-{Chat.objects.get(remote_id="z1").pk}"' not in alone


def test_it_renders_a_wallboard_without_the_drawer(client, owner):
    fill(make_portal(), [chat("c1")])

    html = client.get("/?wallboard=1").content.decode()

    assert 'class="live-page wallboard"' in html
    assert 'data-wallboard="1"' in html
    assert 'id="drawer-slot"' not in html
    assert "siq-theme-wallboard" in html and '"dark"' in html  # dark unless chosen otherwise
    assert "data-wall-clock" in html
    assert "Leave wallboard" in html


def test_it_shows_only_the_portals_a_supervisor_may_see(client):
    mine, theirs = make_portal("Mine"), make_portal("Theirs")
    fill(mine, [chat("m1")])
    fill(theirs, [chat("t1")])
    user = get_user_model().objects.create_user("sam", password="pw-long-x")
    Profile.objects.create(user=user, role=Role.SUPERVISOR).portals.add(mine)
    client.force_login(user)

    html = client.get("/").content.decode()

    assert f'id="chat-{Chat.objects.get(remote_id="m1").pk}"' in html
    assert f'id="chat-{Chat.objects.get(remote_id="t1").pk}"' not in html
    assert "Theirs" not in html
    assert client.get(f"/?portal={theirs.pk}").status_code == 404


def test_it_renders_the_page_without_a_query_per_row(client, owner):
    portal = make_portal()
    fill(portal, [chat(f"c{i}") for i in range(3)])
    client.get("/")  # what is cached across pages (the unanswered rule's threshold) is read
    with CaptureQueriesContext(connection) as few:
        client.get("/")
    fill(portal, [chat(f"c{i}", visitor=f"V{i}") for i in range(60)])
    with CaptureQueriesContext(connection) as many:
        html = client.get("/").content.decode()

    assert html.count('data-container="chats-body"') == 60
    assert len(many.captured_queries) == len(few.captured_queries)


def test_it_pushes_rows_in_the_shape_the_page_swaps(owner):
    from dashboard.realtime import render

    portal = make_portal()
    fill(portal, [chat("c1", visitor=NASTY)])
    item = Chat.objects.get(remote_id="c1")

    html = render.render_changes(apply.Changes(portal.pk, chats={item.pk}))

    pushed = row(html, f"chat-{item.pk}")
    assert 'hx-swap-oob="true"' in pushed and 'data-container="chats-body"' in pushed
    assert "<script>" not in html
    # The same row on the page carries no swap instruction.
    body = render_to_string(
        "live/parts.html#chats_body", {"chats": [item], "oob": True, "operator_views": []}
    )
    assert 'id="chats-body" hx-swap-oob="true"' in body
    assert 'hx-swap-oob="true"' not in row(body, f"chat-{item.pk}")


def test_it_sums_the_last_hours_waits_in_the_database():
    from dashboard import selectors
    from dashboard.models import ChatStatus as Status

    portal = make_portal()
    now = timezone.now()

    def add(remote_id, status, started_ago, *, attended_after=None, ended_after=None):
        started = now - timedelta(seconds=started_ago)
        Chat.objects.create(
            portal=portal,
            remote_id=remote_id,
            status=status,
            started_at=started,
            attended_at=started + timedelta(seconds=attended_after)
            if attended_after is not None
            else None,
            ended_at=started + timedelta(seconds=ended_after) if ended_after is not None else None,
            fact_at=now,
        )

    add("picked-up", Status.CONNECTED, 600, attended_after=60)  # waited 60 s
    add("waiting", Status.WAITING, 120)  # waits so far: 120 s
    add("missed", Status.MISSED, 900, ended_after=30)  # given up after 30 s
    add("seen-connected", Status.CONNECTED, 300)  # no pickup time known: not counted
    add("odd-clock", Status.ENDED, 300, attended_after=-5, ended_after=40)  # never below 0
    add("long-ago", Status.ENDED, 7200, attended_after=500, ended_after=900)  # not this hour

    total, count = selectors.wait_stats(portal, now)

    assert count == 4
    assert total == pytest.approx(60 + 120 + 30 + 0, abs=0.01)
    # The same rules where the database has no SQL of ours (the fallback).
    since = now - timedelta(hours=1)
    in_python = selectors._wait_stats_in_python(portal, now, since)
    assert in_python == (pytest.approx(total, abs=0.01), count)


def test_it_ships_the_page_script_as_modules_that_find_each_other(client, owner, tmp_path):
    """No bundler: the page loads static/js/live/main.js as a module, which imports its
    neighbours by relative address. Collected for a proxy to serve (unhashed names, the
    project's storage), every import still finds its file beside it."""
    from django.core.management import call_command
    from django.test import override_settings

    fill(make_portal(), [chat("c1")])
    html = client.get("/").content.decode()
    assert re.search(r'<script type="module" src="/static/js/live/main\.js" nonce="[^"]+"', html)
    assert "js/live.js" not in html

    with override_settings(STATIC_ROOT=tmp_path):
        call_command("collectstatic", interactive=False, verbosity=0)
    folder = tmp_path / "js" / "live"
    modules = sorted(folder.glob("*.js"))
    assert folder / "main.js" in modules
    imported = set()
    for module in modules:
        # Static imports, and import("./x.js") for what only some pages load (the wallboard).
        found = re.findall(r'(?:^import .*?"|import\(")\./([\w-]+\.js)"', module.read_text(), re.M)
        for name in found:
            assert (folder / name).is_file(), f"{module.name} imports a missing {name}"
            imported.add(name)
    # Every module is reached from main.js (none left over, none loaded on its own).
    assert {m.name for m in modules} - imported == {"main.js"}
