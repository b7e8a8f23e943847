"""The alert history and its CSV export: what each user sees, every filter, the time to
acknowledge, how each alert ended and who was told, the counts per rule and per day,
escaping, a constant number of queries, and a look at the page in Chromium."""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from dashboard import times
from dashboard.alerts.rules import ensure_rules
from dashboard.models import Alert, AlertKind, Chat, Escalation, Operator, Profile, Role
from dashboard.views.alert_history import duration_in_words
from siq_integration.models import Portal
from tests.support.history import raise_alert

pytestmark = pytest.mark.django_db

NASTY = '<img src=x onerror="alert(1)">Zoë'


@pytest.fixture
def world(db):
    here = Portal.objects.create(name="Zylker Support", data_center="sim", screen_name="zylker")
    elsewhere = Portal.objects.create(name="Acme Sales", data_center="sim", screen_name="acme")
    make = get_user_model().objects.create_user
    users = {}
    for name, role, portals in [
        ("viewer", Role.VIEWER, [here]),
        ("sam", Role.SUPERVISOR, [here]),
        ("sue", Role.SUPERVISOR, [elsewhere]),
    ]:
        user = make(name, password="pw-for-tests-1")
        Profile.objects.create(user=user, role=role).portals.set(portals)
        users[name] = user
    users["ada"] = get_user_model().objects.create_superuser("ada", "a@x.org", "pw-for-tests-1")
    sam, ada = users["sam"], users["ada"]
    now = timezone.now()
    chat = Chat.objects.create(
        portal=here, remote_id="9001", status="connected", visitor_name=NASTY, fact_at=now
    )
    asha = Operator.objects.create(portal=here, remote_id="21", name="Asha Rao", fact_at=now)
    rows = {
        "wait_acked": raise_alert(
            here,
            AlertKind.LONG_WAIT,
            ago=timedelta(minutes=10),
            title=f"{NASTY} has waited 1 min for pickup (Support)",
            target="chat:9001",
            chat=chat,
            acknowledged_after=timedelta(seconds=130),
            by=sam,
            resolved_after=timedelta(minutes=5),
            reason="An operator picked the chat up.",
        ),
        "wait_open": raise_alert(
            here,
            AlertKind.LONG_WAIT,
            ago=timedelta(hours=2),
            title="A visitor has waited 3 min for pickup",
            target="chat:9002",  # the chat is gone from the dashboard
        ),
        "missed": raise_alert(
            here,
            AlertKind.MISSED_CHAT,
            ago=timedelta(days=3),
            title="Missed chat: Jonas Berg left unanswered",
            target="chat:9003",
            acknowledged_after=timedelta(seconds=45),
            by=ada,
            resolved_after=timedelta(seconds=45),
            reason="Acknowledged by ada.",
        ),
        "away_escalated": raise_alert(
            here,
            AlertKind.OPERATOR_AWAY_WITH_CHATS,
            ago=timedelta(hours=26),
            title="Asha Rao is busy with 2 open chats",
            target="operator:21",
            operator=asha,
            resolved_after=timedelta(minutes=40),
            reason="The operator is available again or has no open chats.",
            escalations=[
                (Escalation.Channel.EMAIL, "lead@zylker.example", ""),
                (Escalation.Channel.WEBHOOK, "https://hooks.example/T1", "HTTP 500: no_service"),
            ],
        ),
        "old_wait": raise_alert(
            here,
            AlertKind.LONG_WAIT,
            ago=timedelta(days=20),
            title="Noor Haddad has waited 2 min for pickup",
            target="chat:9004",
            acknowledged_after=timedelta(minutes=10),
            by=sam,
            resolved_after=timedelta(minutes=12),
            reason="An operator picked the chat up.",
        ),
        "ancient": raise_alert(
            here,
            AlertKind.LOW_RATING,
            ago=timedelta(days=60),
            title="Mia Chen rated the chat 1/5",
            target="chat:9005",
        ),
        "elsewhere_unreachable": raise_alert(
            elsewhere,
            AlertKind.SALESIQ_UNREACHABLE,
            ago=timedelta(minutes=1),
            title="Acme Sales: SalesIQ unreachable since 09:30 UTC",
        ),
    }
    return {"here": here, "elsewhere": elsewhere, "users": users, "rows": rows}


NEWEST_FIRST = [
    "elsewhere_unreachable",
    "wait_acked",
    "wait_open",
    "away_escalated",
    "missed",
    "old_wait",
    "ancient",
]


def fetch(client, world, who, **query) -> str:
    client.force_login(world["users"][who])
    response = client.get("/alerts/", query)
    assert response.status_code == 200, response.content[:300]
    return response.content.decode()


def shown(client, world, who, **query) -> list[int]:
    """The pks of the alerts the page lists, in page order."""
    return [int(pk) for pk in re.findall(r'data-alert="(\d+)"', fetch(client, world, who, **query))]


def pks(world, *names) -> list[int]:
    return [world["rows"][name].pk for name in names]


def row_of(html: str, alert: Alert) -> str:
    start = html.index(f'data-alert="{alert.pk}"')
    return html[start : html.index("</tr>", start)]


def summary(html: str, name: str) -> str:
    start = html.index(f'data-summary="{name}"')
    return html[start : html.index("</table>", start)]


def cells(html: str, marker: str) -> list[str]:
    """The texts of the cells of the summary row marked ``marker`` (tags stripped)."""
    start = html.index(marker)
    row = html[start : html.index("</tr>", start)]
    return [
        re.sub(r"<[^>]+>", "", cell).strip()
        for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row)
    ]


def day_rows(html: str) -> list[tuple[date, date]]:
    """The per-day table's lines as (first day, last day): a run of quiet days is one line."""
    found = re.findall(r'data-days?="(\d{4}-\d\d-\d\d)(?:/(\d{4}-\d\d-\d\d))?"', html)
    return [(date.fromisoformat(a), date.fromisoformat(b or a)) for a, b in found]


def csv_rows(response) -> list[dict[str, str]]:
    body = b"".join(response.streaming_content)
    assert body.startswith("\ufeff".encode())
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


# --- access --------------------------------------------------------------------------------


def test_it_shows_an_admin_every_portal_newest_first(client, world):
    assert shown(client, world, "ada") == pks(world, *NEWEST_FIRST)
    text = fetch(client, world, "ada")
    assert 'id="history-portal"' in text and '<span class="tag">Acme Sales</span>' in text


@pytest.mark.parametrize("who", ["sam", "viewer"])
def test_it_shows_supervisors_and_viewers_only_their_portals(client, world, who):
    here = [name for name in NEWEST_FIRST if name != "elsewhere_unreachable"]
    assert shown(client, world, who) == pks(world, *here)
    text = fetch(client, world, who)
    assert "Acme Sales" not in text
    assert 'id="history-portal"' not in text  # one portal: nothing to choose
    assert shown(client, world, "sue") == pks(world, "elsewhere_unreachable")


@pytest.mark.parametrize("url", ["/alerts/", "/alerts.csv"])
def test_it_answers_404_for_a_portal_one_may_not_see(client, world, url):
    client.force_login(world["users"]["sue"])
    assert client.get(url, {"portal": world["here"].pk}).status_code == 404
    assert client.get(url, {"portal": "not-a-uuid"}).status_code == 404
    client.force_login(world["users"]["viewer"])
    assert client.get(url, {"portal": world["elsewhere"].pk}).status_code == 404
    client.force_login(world["users"]["ada"])
    assert client.get(url, {"portal": "5b0f6f4e-0000-4000-8000-000000000000"}).status_code == 404


@pytest.mark.parametrize("url", ["/alerts/", "/alerts.csv"])
def test_it_sends_anonymous_visitors_to_sign_in(client, world, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_it_links_the_page_for_every_role(client, world):
    for who in ("ada", "sam", "sue", "viewer"):
        client.force_login(world["users"][who])
        assert 'href="/alerts/">Alerts</a>' in client.get("/portals/").content.decode(), who
        current = client.get("/alerts/").content.decode()
        assert 'href="/alerts/" aria-current="page">Alerts</a>' in current, who


# --- filters ---------------------------------------------------------------------------------


def test_it_filters_by_portal(client, world):
    assert shown(client, world, "ada", portal=world["elsewhere"].pk) == pks(
        world, "elsewhere_unreachable"
    )
    assert world["rows"]["elsewhere_unreachable"].pk not in shown(
        client, world, "ada", portal=world["here"].pk
    )


def test_it_filters_by_rule(client, world):
    assert shown(client, world, "ada", rule="long_wait") == pks(
        world, "wait_acked", "wait_open", "old_wait"
    )
    assert shown(client, world, "sam", rule="salesiq_unreachable") == []


def test_it_filters_by_severity(client, world):
    assert shown(client, world, "ada", severity="critical") == pks(
        world, "elsewhere_unreachable", "wait_acked", "wait_open", "old_wait"
    )
    assert shown(client, world, "ada", severity="warning") == pks(
        world, "away_escalated", "missed", "ancient"
    )


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("open", ["elsewhere_unreachable", "wait_open", "ancient"]),
        ("unacknowledged", ["elsewhere_unreachable", "wait_open", "away_escalated", "ancient"]),
        ("acknowledged", ["wait_acked", "missed", "old_wait"]),
        ("resolved", ["wait_acked", "away_escalated", "missed", "old_wait"]),
        ("escalated", ["away_escalated"]),
        ("escalation_failed", ["away_escalated"]),
    ],
)
def test_it_filters_by_what_became_of_an_alert(client, world, state, expected):
    assert shown(client, world, "ada", state=state) == pks(world, *expected)


def test_it_tells_a_failed_escalation_from_one_that_worked(client, world):
    raise_alert(
        world["here"],
        AlertKind.LONG_CHAT,
        ago=timedelta(minutes=3),
        title="Fine",
        escalations=[(Escalation.Channel.EMAIL, "lead@zylker.example", "")],
    )
    assert len(shown(client, world, "ada", state="escalated")) == 2
    assert shown(client, world, "ada", state="escalation_failed") == pks(world, "away_escalated")


def test_it_filters_by_time_range(client, world):
    now = timezone.now()

    def typed(moment):  # as a datetime-local input sends it, here in UTC
        return moment.strftime("%Y-%m-%dT%H:%M")

    recent = shown(client, world, "ada", **{"from": typed(now - timedelta(hours=3))})
    assert recent == pks(world, "elsewhere_unreachable", "wait_acked", "wait_open")
    between = {"from": typed(now - timedelta(days=30)), "to": typed(now - timedelta(days=1))}
    assert shown(client, world, "ada", **between) == pks(
        world, "away_escalated", "missed", "old_wait"
    )
    # The viewer's zone, 2 h east of UTC all year: "from" typed in that zone's wall time.
    two_east = shown(
        client,
        world,
        "ada",
        tz="Africa/Johannesburg",
        **{"from": typed(now + timedelta(hours=2) - timedelta(minutes=30))},
    )
    assert two_east == pks(world, "elsewhere_unreachable", "wait_acked")
    whole_days = shown(client, world, "ada", to=(now - timedelta(days=10)).date().isoformat())
    assert whole_days == pks(world, "old_wait", "ancient")


@pytest.mark.parametrize(
    ("period", "words", "expected"),
    [
        ("24h", "Last 24 hours", ["elsewhere_unreachable", "wait_acked", "wait_open"]),
        (
            "7d",
            "Last 7 days",
            ["elsewhere_unreachable", "wait_acked", "wait_open", "away_escalated", "missed"],
        ),
        ("30d", "Last 30 days", NEWEST_FIRST[:-1]),
    ],
)
def test_it_has_presets_in_words(client, world, period, words, expected):
    assert shown(client, world, "ada", period=period) == pks(world, *expected)
    text = fetch(client, world, "ada", period=period)
    assert f"· {words}</p>" in text
    assert f'value="{period}" aria-pressed="true"' in text


def test_it_has_a_today_preset(client, world):
    listed = shown(client, world, "ada", period="today", tz="UTC")
    assert world["rows"]["away_escalated"].pk not in listed
    assert world["rows"]["elsewhere_unreachable"].pk in listed or timezone.now().hour == 0


def test_it_says_which_filters_it_cannot_use(client, world):
    text = fetch(client, world, "ada", **{"from": "last tuesday", "rule": "teleport"})
    assert "Not a date and time" in text and "There is no such rule." in text
    text = fetch(client, world, "ada", severity="dire", state="lost", period="fortnight")
    assert "There is no such severity." in text and "There is no such state." in text
    assert "There is no such period." in text
    assert len(re.findall(r'data-alert="\d+"', text)) == 7  # unusable filters are not applied
    client.force_login(world["users"]["ada"])
    export = client.get("/alerts.csv", {"from": "last tuesday"})
    assert export.status_code == 400 and "Not a date and time" in export.content.decode()


def test_it_describes_the_filters_in_words(client, world):
    text = fetch(
        client,
        world,
        "ada",
        portal=world["here"].pk,
        rule="long_wait",
        severity="critical",
        state="open",
        period="7d",
    )
    assert (
        "1 alert · Zylker Support · Visitor waiting for pickup · critical · still open"
        " · Last 7 days</p>" in text
    )
    text = fetch(client, world, "ada", rule="reconnect_needed")
    assert "0 alerts · Connection needs reconnecting" in text
    assert "No alert matches these filters." in text
    assert "every portal you can see" in fetch(client, world, "ada")


def test_it_pages_a_hundred_at_a_time(client, world):
    here = world["here"]
    rule = ensure_rules(here)[AlertKind.LONG_CHAT]
    now = timezone.now()
    Alert.objects.bulk_create(
        Alert(
            portal=here,
            rule=rule,
            kind=rule.kind,
            severity=rule.severity,
            target=f"chat:{n}",
            title=f"Chat {n} has run 31 min",
            raised_at=now - timedelta(seconds=n),
            resolved_at=now,
        )
        for n in range(120)
    )
    first = shown(client, world, "ada")
    assert len(first) == 100
    text = fetch(client, world, "ada", rule="long_chat")
    assert "Page 1 of 2" in text and "page=2" in text and "rule=long_chat" in text
    second = shown(client, world, "ada", page=2)
    assert set(first).isdisjoint(second) and len(second) == 127 - 100


def test_it_asks_the_database_the_same_few_times_however_many_rows(
    client, world, django_assert_max_num_queries
):
    client.force_login(world["users"]["ada"])
    with django_assert_max_num_queries(14) as few:
        client.get("/alerts/")
    here, elsewhere, sam = world["here"], world["elsewhere"], world["users"]["sam"]
    now = timezone.now()
    for n in range(40):
        operator = Operator.objects.create(
            portal=here, remote_id=f"op{n}", name=f"Operator {n}", fact_at=now
        )
        raise_alert(
            here if n % 2 else elsewhere,
            list(AlertKind)[n % len(AlertKind)],
            ago=timedelta(days=n % 35, minutes=n),
            title=f"Alert {n}",
            target=f"operator:op{n}",
            operator=operator if n % 2 else None,
            acknowledged_after=timedelta(seconds=n * 7) if n % 3 else None,
            by=sam,
            escalations=[(Escalation.Channel.WEBHOOK, "https://hooks.example/T", "HTTP 500")]
            if n % 4 == 0
            else (),
        )
    listed = re.compile(r'data-alert="\d+"')
    with django_assert_max_num_queries(len(few)):
        assert len(listed.findall(client.get("/alerts/").content.decode())) == 47
    with django_assert_max_num_queries(len(few)):
        acknowledged = client.get("/alerts/", {"tz": "America/Lima", "state": "acknowledged"})
        assert len(listed.findall(acknowledged.content.decode())) > 20
    with django_assert_max_num_queries(len(few)):
        assert len(csv_rows(client.get("/alerts.csv"))) == 47


# --- what a row says ----------------------------------------------------------------------


def test_it_shows_the_time_to_acknowledge_and_who(client, world):
    text = fetch(client, world, "ada")
    rows = world["rows"]
    acked = row_of(text, rows["wait_acked"])
    assert "2m 10s" in acked and "by sam" in acked
    assert "45s" in row_of(text, rows["missed"]) and "by ada" in row_of(text, rows["missed"])
    assert "10m 00s" in row_of(text, rows["old_wait"])
    for name in ("wait_open", "away_escalated", "elsewhere_unreachable"):
        assert "not acknowledged" in row_of(text, rows[name]), name


def test_it_shows_how_each_alert_ended(client, world):
    text = fetch(client, world, "ada")
    rows = world["rows"]
    picked = row_of(text, rows["wait_acked"])
    assert "An operator picked the chat up." in picked and "after 5m 00s" in picked
    assert "Still open" in row_of(text, rows["wait_open"])
    assert "Still open" not in picked


def test_it_names_each_target_and_links_each_alert(client, world):
    text = fetch(client, world, "ada")
    rows = world["rows"]
    assert "Asha Rao" in row_of(text, rows["away_escalated"])
    assert "a visitor (chat 9002)" in row_of(text, rows["wait_open"])
    assert "Acme Sales" in row_of(text, rows["elsewhere_unreachable"])
    for alert in rows.values():
        assert f'href="/alerts/{alert.pk}/"' in row_of(text, alert)


def test_it_shows_each_escalation_sent_or_failed(client, world):
    text = fetch(client, world, "ada")
    row = row_of(text, world["rows"]["away_escalated"])
    assert 'data-escalation="sent"' in row and "E-mail to" in row
    assert "lead@zylker.example" in row
    failed = row[row.index('data-escalation="failed"') :]
    # The address masked (a Slack path is its secret); the reason for Admins (ada is one).
    assert "Failed" in failed and "https://hooks.example/…" in failed
    assert "hooks.example/T1" not in failed
    assert "HTTP 500: no_service" in failed
    assert "data-escalation" not in row_of(text, world["rows"]["wait_open"])


def test_it_escapes_titles_and_names(client, world):
    raise_alert(
        world["here"],
        AlertKind.UNANSWERED,
        ago=timedelta(minutes=4),
        title="<script>alert('title')</script>",
        resolved_after=timedelta(minutes=1),
        reason="<b>reason</b>",
        escalations=[(Escalation.Channel.WEBHOOK, "https://x.example/<i>", "<u>error</u>")],
    )
    text = fetch(client, world, "ada")
    for raw in (NASTY, "<script>alert(", "<b>reason</b>", "<i>", "<u>error</u>"):
        assert raw not in text
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;Zoë has waited" in text
    assert "&lt;script&gt;alert(&#x27;title&#x27;)&lt;/script&gt;" in text


# --- the summary -----------------------------------------------------------------------------


def test_it_counts_per_rule(client, world):
    text = summary(fetch(client, world, "ada"), "rules")
    # Long waits: 3, two acknowledged after 130 s and 600 s; none escalated, one open.
    assert cells(text, 'data-rule="long_wait"') == [
        "Visitor waiting for pickup",
        "3",
        "2",
        "6m 05s",
        "10m 00s",
        "1",
        "0",
    ]
    assert cells(text, 'data-rule="missed_chat"') == [
        "Missed chat",
        "1",
        "1",
        "45s",
        "45s",
        "0",
        "0",
    ]
    assert cells(text, 'data-rule="operator_away_with_chats"')[1:] == ["1", "0", "—", "—", "0", "1"]
    # Most alerts first; then every rule together.
    assert text.index('data-rule="long_wait"') < text.index('data-rule="missed_chat"')
    assert cells(text, 'data-rule="all"') == [
        "All rules",
        "7",
        "3",
        "2m 10s",
        "10m 00s",
        "3",
        "1",
    ]


def test_it_counts_per_rule_within_the_filters(client, world):
    text = summary(fetch(client, world, "sam", period="24h"), "rules")
    assert cells(text, 'data-rule="long_wait"')[:5] == [
        "Visitor waiting for pickup",
        "2",
        "1",
        "2m 10s",
        "2m 10s",
    ]
    assert 'data-rule="salesiq_unreachable"' not in text  # another portal's
    assert 'data-rule="all"' not in text  # one rule: no totals line


@pytest.mark.parametrize("tz", [None, "Africa/Johannesburg", "America/Phoenix"])
def test_it_counts_per_day_in_the_viewers_zone(client, world, tz):
    query = {"tz": tz} if tz else {}
    text = summary(fetch(client, world, "ada", **query), "days")
    zone = ZoneInfo(tz) if tz else UTC
    recent = [
        a for a in world["rows"].values() if timezone.now() - a.raised_at < timedelta(days=30)
    ]
    expected = Counter((a.raised_at.astimezone(zone).date(), a.kind) for a in recent)
    for (day, kind), count in expected.items():
        line = cells(text, f'data-day="{day.isoformat()}"')
        heads = re.findall(r'<th class="num" data-kind="(\w+)">', text)
        assert line[1 + heads.index(kind)] == str(count), (day, kind)
    today = timezone.now().astimezone(zone).date()
    first = min(a.raised_at.astimezone(zone).date() for a in recent)
    rows = day_rows(text)
    assert rows[0][1] == today and rows[-1][0] == first  # newest first
    for newer, older in itertools.pairwise(rows):  # every day, quiet ones too
        assert newer[0] - timedelta(days=1) == older[1]
    quiet = [row for row in rows if row[0] != row[1]]
    assert quiet and all(f"no alert for {(b - a).days + 1} days" in text for a, b in quiet)
    assert cells(text, 'data-day="all"')[-1] == "6"  # the 60-day-old alert is left out
    full = fetch(client, world, "ada", **query)
    assert "1 older alert is counted per rule but not here." in full
    assert ("Days in UTC" in full) is (tz is None)
    assert ("data-history-local-days hidden>" in full) is (tz is None)  # the script shows it


# Europe/Berlin moves to summer time on the last Sunday of March (30 March 2025: 02:00 CET
# is 03:00 CEST) and back on the last Sunday of October (26 October 2025: 03:00 CEST is
# 02:00 CET, so 02:30 comes twice). Each alert in UTC, with the Berlin day it belongs to
# (None: outside the range typed).
SPRING = [
    ("2025-03-28T22:30:00+00:00", None),  # 23:30 CET on the 28th
    ("2025-03-28T23:30:00+00:00", "2025-03-29"),  # 00:30 CET
    ("2025-03-29T23:30:00+00:00", "2025-03-30"),  # 00:30 CET, the short day
    ("2025-03-30T21:30:00+00:00", "2025-03-30"),  # 23:30 CEST
    ("2025-03-30T22:30:00+00:00", "2025-03-31"),  # 00:30 CEST (23:30 at winter's offset)
    ("2025-03-31T21:30:00+00:00", "2025-03-31"),  # 23:30 CEST
    ("2025-03-31T22:30:00+00:00", None),  # 00:30 CEST on 1 April
]
AUTUMN = [
    ("2025-10-24T21:30:00+00:00", None),  # 23:30 CEST on the 24th
    ("2025-10-24T22:30:00+00:00", "2025-10-25"),  # 00:30 CEST
    ("2025-10-25T22:30:00+00:00", "2025-10-26"),  # 00:30 CEST, the long day
    ("2025-10-26T00:30:00+00:00", "2025-10-26"),  # 02:30 CEST, the first time
    ("2025-10-26T01:30:00+00:00", "2025-10-26"),  # 02:30 CET, the second
    ("2025-10-26T22:30:00+00:00", "2025-10-26"),  # 23:30 CET (00:30 at summer's offset)
    ("2025-10-26T23:30:00+00:00", "2025-10-27"),  # 00:30 CET
    ("2025-10-27T22:30:00+00:00", "2025-10-27"),  # 23:30 CET
    ("2025-10-27T23:30:00+00:00", None),  # 00:30 CET on the 28th
]


@pytest.mark.parametrize(
    ("moments", "first", "last"),
    [(SPRING, "2025-03-29", "2025-03-31"), (AUTUMN, "2025-10-25", "2025-10-27")],
    ids=["to-summer-time", "to-winter-time"],
)
def test_it_counts_days_in_the_viewers_zone_across_a_change_of_clocks(
    client, db, moments, first, last
):
    portal = Portal.objects.create(name="Berlin desk", data_center="sim", screen_name="berlin")
    ada = get_user_model().objects.create_superuser("ada", "a@x.org", "pw-for-tests-1")
    client.force_login(ada)
    made = {}
    for n, (moment, day) in enumerate(moments):
        alert = raise_alert(
            portal, AlertKind.MISSED_CHAT, ago=timedelta(0), title=f"Alert {n}", target=f"chat:{n}"
        )
        raised = datetime.fromisoformat(moment)
        Alert.objects.filter(pk=alert.pk).update(raised_at=raised, changed_at=raised)
        made[alert.pk] = (raised, day)
    # The page's script sends the browser's zone by name; typed days are Berlin's days.
    query = {"tz": "Europe/Berlin", "from": first, "to": last}
    text = client.get("/alerts/", query).content.decode()
    inside = {pk for pk, (_, day) in made.items() if day}
    assert set(map(int, re.findall(r'data-alert="(\d+)"', text))) == inside
    days = summary(text, "days")
    expected = Counter(day for _, day in made.values() if day)
    for day, count in expected.items():
        assert cells(days, f'data-day="{day}"')[-1] == str(count), day
    assert cells(days, 'data-day="all"')[-1] == str(len(inside))
    assert "Days in Europe/Berlin" in text
    assert '<span class="muted" data-audit-zone>(Europe/Berlin)</span>' in text
    # The export writes each time in Berlin, with the offset it had that day.
    exported = csv_rows(client.get("/alerts.csv", query))
    berlin = ZoneInfo("Europe/Berlin")
    assert {row["raised_at"] for row in exported} == {
        raised.astimezone(berlin).isoformat() for raised, day in made.values() if day
    }
    assert any(row["raised_at"].endswith("+02:00") for row in exported)
    assert any(row["raised_at"].endswith("+01:00") for row in exported)


def test_it_says_when_it_does_not_know_the_zone_and_uses_utc(client, world):
    text = fetch(client, world, "ada", tz="Mars/Olympus_Mons", period="today")
    assert "“Mars/Olympus_Mons” is not a time zone this server knows" in text
    assert "times here are in UTC" in text
    assert "Days in UTC" in text and "Today (UTC)" in text
    assert 'data-time-zone="UTC"' in text  # the page's script writes times in UTC too
    exported = csv_rows(client.get("/alerts.csv", {"tz": "Mars/Olympus_Mons"}))
    assert exported and all(row["raised_at"].endswith("Z") for row in exported)


def test_it_counts_in_the_zone_on_the_viewers_profile(client, world):
    ada = world["users"]["ada"]
    Profile.objects.create(user=ada, time_zone="America/Phoenix", time_format="12h")
    client.cookies[times.ZONE_COOKIE] = "Asia/Tokyo"  # the browser's: the profile wins
    text = fetch(client, world, "ada")
    assert "Days in America/Phoenix" in text
    zone = ZoneInfo("America/Phoenix")
    today = timezone.now().astimezone(zone).date()
    assert f'data-day="{today.isoformat()}"' in text
    # Rows say their time of day on the viewer's clock, in that zone.
    alert = world["rows"]["wait_open"]
    clock = times.Clock(zone=zone, hour12=True)
    shown_time = times.when(alert.raised_at, clock, timezone.now(), seconds=True)
    assert f">{shown_time}</time>" in row_of(text, alert)
    assert re.search(r"\d:\d\d:\d\d [AP]M</time>", row_of(text, alert))


def test_it_counts_in_the_browsers_zone_it_remembered(client, world):
    client.cookies[times.ZONE_COOKIE] = "Asia/Kolkata"
    text = fetch(client, world, "ada")
    assert "Days in Asia/Kolkata" in text
    assert 'name="tz" value="Asia/Kolkata"' in text


def test_it_counts_per_day_only_the_last_31_days_of_a_longer_range(client, world):
    until = timezone.now() - timedelta(days=2)
    text = fetch(client, world, "ada", to=until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M"))
    rows = day_rows(summary(text, "days"))
    assert rows[0][1] == until.date()  # the range's last day, however quiet
    assert rows[-1][0] == (timezone.now() - timedelta(days=20)).date()
    assert "1 older alert is counted per rule but not here." in text


def test_it_says_when_nothing_was_raised(client, world):
    Alert.objects.all().delete()
    text = fetch(client, world, "ada")
    assert "No alert has been raised on these portals yet" in text
    assert 'data-summary="rules"' not in text


# --- CSV ---------------------------------------------------------------------------------------


def test_it_exports_every_alert(client, world):
    client.force_login(world["users"]["ada"])
    response = client.get("/alerts.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'attachment; filename="salesiq-alerts-' in response["Content-Disposition"]
    rows = csv_rows(response)
    assert list(rows[0]) == [
        "id",
        "raised_at",
        "portal",
        "rule",
        "severity",
        "title",
        "detail",
        "target",
        "acknowledged_by",
        "acknowledged_at",
        "seconds_to_acknowledge",
        "resolved_at",
        "resolved_reason",
        "escalated_at",
        "escalations",
    ]
    assert [int(row["id"]) for row in rows] == pks(world, *NEWEST_FIRST)
    by_id = {int(row["id"]): row for row in rows}
    acked = by_id[world["rows"]["wait_acked"].pk]
    assert acked["raised_at"].endswith("Z") and acked["portal"] == "Zylker Support"
    assert acked["rule"] == "long_wait" and acked["severity"] == "critical"
    assert acked["target"] == f"chat: {NASTY}" and acked["acknowledged_by"] == "sam"
    assert acked["seconds_to_acknowledge"] == "130"
    assert acked["resolved_reason"] == "An operator picked the chat up."
    escalated = by_id[world["rows"]["away_escalated"].pk]
    assert escalated["escalations"] == (
        "E-mail to lead@zylker.example: delivered; "
        "Webhook to https://hooks.example/…: failed (HTTP 500: no_service)"
    )
    assert by_id[world["rows"]["wait_open"].pk]["seconds_to_acknowledge"] == ""


def test_it_exports_with_the_same_filters(client, world):
    client.force_login(world["users"]["ada"])
    only = csv_rows(client.get("/alerts.csv", {"rule": "long_wait", "state": "acknowledged"}))
    assert [int(row["id"]) for row in only] == pks(world, "wait_acked", "old_wait")
    week = csv_rows(client.get("/alerts.csv", {"period": "7d", "severity": "warning"}))
    assert [int(row["id"]) for row in week] == pks(world, "away_escalated", "missed")
    client.force_login(world["users"]["sue"])
    assert [row["portal"] for row in csv_rows(client.get("/alerts.csv"))] == ["Acme Sales"]
    client.force_login(world["users"]["viewer"])
    assert "Acme Sales" not in {row["portal"] for row in csv_rows(client.get("/alerts.csv"))}


def test_it_links_the_export_with_the_filters_on_the_page(client, world):
    text = fetch(client, world, "ada", rule="missed_chat", period="7d")
    assert 'href="/alerts.csv?rule=missed_chat&amp;period=7d"' in text


def test_it_keeps_spreadsheets_from_running_titles(client, world):
    raise_alert(
        world["here"],
        AlertKind.LOW_RATING,
        ago=timedelta(seconds=1),
        title='=HYPERLINK("http://evil.example","x")',
        detail="@SUM(1+1)",
        resolved_after=timedelta(seconds=0),
        reason="+cmd",
    )
    client.force_login(world["users"]["ada"])
    first = csv_rows(client.get("/alerts.csv"))[0]
    assert first["title"] == '\'=HYPERLINK("http://evil.example","x")'
    assert first["detail"] == "'@SUM(1+1)" and first["resolved_reason"] == "'+cmd"


# --- words -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "0s"),
        (45.4, "45s"),
        (60, "1m 00s"),
        (130, "2m 10s"),
        (3600 + 5 * 60 + 9, "1h 05m"),
        (2 * 86400 + 3 * 3600, "2d 3h"),
        (-3, "0s"),
    ],
)
def test_it_says_durations_in_words(seconds, words):
    assert duration_in_words(seconds) == words


# --- a look at it -----------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_reads_at_a_glance(world, live_server, page, screenshot):
    from django.test import Client

    client = Client()
    client.force_login(world["users"]["ada"])
    page.context.add_cookies(
        [
            {
                "name": "sessionid",
                "value": client.cookies["sessionid"].value,
                "url": live_server.url,
            }
        ]
    )
    page.set_viewport_size({"width": 1366, "height": 900})
    # A supervisor in India (UTC+05:30 all year): their days are not UTC's.
    page.context.new_cdp_session(page).send(
        "Emulation.setTimezoneOverride", {"timezoneId": "Asia/Kolkata"}
    )
    page.goto(live_server.url + "/alerts/")
    assert page.locator("tr.history-row").count() == 7
    # The visitor's "name" stayed text: no image element was made of it.
    assert page.locator(".history-table img").count() == 0
    # Times in the viewer's zone; the zone travels with the next filter.
    # (Chromium names India's zone by its older name; both are the same IANA zone.)
    india = page.locator("[data-audit-tz]").input_value()
    assert india in ("Asia/Kolkata", "Asia/Calcutta")
    assert "UTC" not in page.locator("td.audit-when").first.inner_text()
    failed = page.locator('[data-escalation="failed"]')
    assert "Failed" in failed.inner_text() and "HTTP 500" in failed.inner_text()
    assert page.get_by_role("link", name="Alerts").get_attribute("aria-current") == "page"
    # The first look counts days in UTC and offers the viewer's own.
    assert "Days in UTC" in page.locator(".history-block").nth(1).inner_text()
    page.get_by_role("link", name="Count the days in your time zone").click()
    page.wait_for_url(f"**tz={india.replace('/', '%2F')}**")
    assert f"Days in {india}" in page.locator(".history-block").nth(1).inner_text()
    assert page.locator("[data-history-local-days]").count() == 0
    screenshot("alert-history")
    page.get_by_role("button", name="Last 7 days").click()
    page.wait_for_url("**period=7d**")
    assert page.locator("tr.history-row").count() == 5
    assert f"tz={india.replace('/', '%2F')}" in page.url
    screenshot("alert-history-last-7-days")
