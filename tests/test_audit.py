"""The audit page and its CSV export: what each user sees, every filter, drain steps,
the technical detail, escaping, and a look at the page in Chromium."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from dashboard.models import Action, ActionKind, ActionOutcome
from tests.support.history import (
    NASTY,
    csv_rows,
    record,
    world,
)

pytestmark = pytest.mark.django_db

__all__ = ["world"]  # fixtures from tests/support


def shown(client, world, who, **query):
    """The pks of the actions the page lists (drain steps included), in page order."""
    client.force_login(world["users"][who])
    response = client.get("/audit/", query)
    assert response.status_code == 200, response.content[:300]
    return [int(pk) for pk in _attr(response.content.decode(), "data-action")]


def _attr(html: str, name: str) -> list[str]:
    import re

    return re.findall(rf'{name}="(\d+)"', html)


def pks(world, *names):
    return [world["rows"][name].pk for name in names]


# --- access --------------------------------------------------------------------------------


def test_it_shows_an_admin_every_portal_newest_first(client, world):
    assert shown(client, world, "ada") == pks(
        world,
        "elsewhere_pending",
        "transfer_done",
        "drain",
        "drain_transfer",
        "drain_status",
        "end_refused",
        "status_failed",
    )


def test_it_shows_a_supervisor_only_their_portals(client, world):
    everything_here = pks(
        world,
        "transfer_done",
        "drain",
        "drain_transfer",
        "drain_status",
        "end_refused",
        "status_failed",
    )
    assert shown(client, world, "sam") == everything_here  # the admin's actions there too
    assert shown(client, world, "sue") == pks(world, "elsewhere_pending")
    text = client.get("/audit/").content.decode()
    assert "Zylker Support" not in text and "Jonas Berg" not in text


@pytest.mark.parametrize("url", ["/audit/", "/audit.csv"])
def test_it_answers_404_for_a_portal_one_may_not_see(client, world, url):
    client.force_login(world["users"]["sue"])
    assert client.get(url, {"portal": world["here"].pk}).status_code == 404
    assert client.get(url, {"portal": "not-a-uuid"}).status_code == 404
    client.force_login(world["users"]["ada"])
    assert client.get(url, {"portal": "5b0f6f4e-0000-4000-8000-000000000000"}).status_code == 404


@pytest.mark.parametrize("url", ["/audit/", "/audit.csv"])
def test_it_refuses_viewers(client, world, url):
    client.force_login(world["users"]["viewer"])
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("url", ["/audit/", "/audit.csv"])
def test_it_sends_anonymous_visitors_to_sign_in(client, world, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_it_links_the_page_for_admins_and_supervisors_only(client, world):
    for who, linked in [("ada", True), ("sam", True), ("viewer", False)]:
        client.force_login(world["users"][who])
        assert ('href="/audit/"' in client.get("/portals/").content.decode()) is linked, who


# --- filters ---------------------------------------------------------------------------------


def test_it_filters_by_portal(client, world):
    assert shown(client, world, "ada", portal=world["elsewhere"].pk) == pks(
        world, "elsewhere_pending"
    )
    here = shown(client, world, "sam", portal=world["here"].pk)
    assert world["rows"]["elsewhere_pending"].pk not in here and len(here) == 6


def test_it_filters_by_user(client, world):
    assert shown(client, world, "ada", user="sam") == pks(world, "transfer_done", "status_failed")
    assert shown(client, world, "ada", user="nobody") == []


def test_it_filters_by_action_and_keeps_a_drain_with_its_steps(client, world):
    assert shown(client, world, "ada", kind="end") == pks(world, "end_refused")
    # Transfers: the drain's transfer step counts, shown under its drain.
    assert shown(client, world, "ada", kind="transfer") == pks(
        world, "elsewhere_pending", "transfer_done", "drain", "drain_transfer", "drain_status"
    )
    client.force_login(world["users"]["ada"])
    html = client.get("/audit/", {"kind": "transfer"}).content.decode()
    status_step = f'data-action="{world["rows"]["drain_status"].pk}"'
    row = html[html.index(status_step) - 200 : html.index(status_step)]
    assert "audit-step-other" in row  # the step that does not match is dimmed


def test_it_filters_by_outcome(client, world):
    # The states every screen uses: a v2 transfer nobody accepted yet is pending, and so is
    # the drain waiting for it.
    assert shown(client, world, "ada", outcome="pending") == pks(
        world, "elsewhere_pending", "drain", "drain_transfer", "drain_status"
    )
    assert shown(client, world, "ada", outcome="refused") == pks(
        world, "drain", "drain_transfer", "drain_status", "end_refused"
    )
    assert shown(client, world, "ada", outcome="unclear") == pks(world, "status_failed")
    assert shown(client, world, "ada", outcome="accepted") == pks(world, "transfer_done")
    assert shown(client, world, "ada", outcome="done") == []


def test_it_filters_by_time_range(client, world):
    now = timezone.now()

    def typed(moment):  # as a datetime-local input sends it, here in UTC
        return moment.strftime("%Y-%m-%dT%H:%M")

    recent = shown(client, world, "ada", **{"from": typed(now - timedelta(days=1))})
    assert recent == pks(
        world, "elsewhere_pending", "transfer_done", "drain", "drain_transfer", "drain_status"
    )
    old = shown(
        client,
        world,
        "ada",
        **{"from": typed(now - timedelta(days=20)), "to": typed(now - timedelta(days=1))},
    )
    assert old == pks(world, "end_refused", "status_failed")
    # The viewer's zone, 2 h east of UTC all year: "from" typed in that zone's wall time.
    two_east = shown(
        client,
        world,
        "ada",
        tz="Africa/Johannesburg",
        **{"from": typed(now + timedelta(hours=2) - timedelta(minutes=30))},
    )
    assert two_east == pks(world, "elsewhere_pending", "transfer_done")
    whole_days = shown(client, world, "ada", to=(now - timedelta(days=5)).date().isoformat())
    assert whole_days == pks(world, "status_failed")


@pytest.mark.parametrize(
    ("period", "words", "expected"),
    [
        ("24h", "Last 24 hours", ["elsewhere_pending", "transfer_done", "drain"]),
        ("7d", "Last 7 days", ["elsewhere_pending", "transfer_done", "drain", "end_refused"]),
        ("30d", "Last 30 days", ["elsewhere_pending", "transfer_done", "drain", "end_refused"]),
    ],
)
def test_it_has_presets_in_words(client, world, period, words, expected):
    listed = shown(client, world, "ada", period=period)
    tops = [pk for pk in listed if pk not in pks(world, "drain_transfer", "drain_status")]
    assert tops == pks(world, *expected) + (pks(world, "status_failed") if period == "30d" else [])
    text = client.get("/audit/", {"period": period}).content.decode()
    assert words in text and 'aria-pressed="true"' in text


def test_it_has_a_today_preset(client, world):
    listed = shown(client, world, "ada", period="today", tz="UTC")
    assert world["rows"]["end_refused"].pk not in listed
    assert world["rows"]["elsewhere_pending"].pk in listed or timezone.now().hour == 0


def test_it_says_which_dates_it_cannot_read(client, world):
    client.force_login(world["users"]["ada"])
    page = client.get("/audit/", {"from": "yesterday-ish", "kind": "teleport"})
    text = page.content.decode()
    assert page.status_code == 200
    assert "Not a date and time" in text and "There is no such action." in text
    assert len(_attr(text, "data-action")) == 7  # unusable filters are not applied
    export = client.get("/audit.csv", {"from": "yesterday-ish"})
    assert export.status_code == 400 and "Not a date and time" in export.content.decode()


def test_it_describes_the_filters_in_words(client, world):
    client.force_login(world["users"]["ada"])
    text = client.get(
        "/audit/", {"portal": world["here"].pk, "user": "sam", "kind": "end", "outcome": "refused"}
    ).content.decode()
    assert "0 actions · Zylker Support · by sam · End chat · refused" in text
    assert "No action matches these filters." in text


def test_it_pages_a_hundred_at_a_time(client, world):
    here, sam = world["here"], world["users"]["sam"]
    Action.objects.bulk_create(
        Action(
            key=f"bulk-{n:04d}",
            user=sam,
            username="sam",
            portal=here,
            kind=ActionKind.END,
            outcome=ActionOutcome.DONE,
            chat_label=f"Visitor {n}",
            message="Chat ended.",
        )
        for n in range(120)
    )
    first = shown(client, world, "ada")
    assert (
        len([pk for pk in first if pk not in pks(world, "drain_transfer", "drain_status")]) == 100
    )
    text = client.get("/audit/", {"user": "sam"}).content.decode()
    assert "Page 1 of 2" in text and "page=2" in text and "user=sam" in text
    second = shown(client, world, "ada", page=2)
    assert set(first).isdisjoint(second) and len(second) > 0


def test_it_asks_the_database_the_same_few_times_however_many_rows(
    client, world, django_assert_max_num_queries
):
    client.force_login(world["users"]["ada"])
    with django_assert_max_num_queries(12) as few:
        client.get("/audit/")
    here, ada = world["here"], world["users"]["ada"]
    for n in range(30):
        drain = record(here, ada, ActionKind.DRAIN, ActionOutcome.DONE, ago=timedelta(seconds=n))
        for kind in (ActionKind.TRANSFER, ActionKind.OPERATOR_STATUS):
            record(here, ada, kind, ActionOutcome.DONE, ago=timedelta(seconds=n), parent=drain)
    with django_assert_max_num_queries(len(few)):
        assert len(_attr(client.get("/audit/").content.decode(), "data-action")) == 97
    with django_assert_max_num_queries(len(few)):
        assert len(csv_rows(client.get("/audit.csv"))) == 97


# --- what a row says ----------------------------------------------------------------------


def test_it_says_each_action_in_words(client, world):
    client.force_login(world["users"]["ada"])
    text = client.get("/audit/").content.decode()
    assert "to Support · Asha Rao · note: VIP, wants a refund" in text
    assert "Asha Rao accepted the transfer." in text
    assert "Transfer accepted" in text and "conversation.transfer.accepted" in text
    assert "That chat has already ended." in text
    assert "cannot tell whether it managed to change the operator&#x27;s status" in text
    assert "to Busy" in text and "1 chat to move, then Busy" in text


def test_it_tucks_the_technical_detail_away(client, world):
    client.force_login(world["users"]["ada"])
    text = client.get("/audit/").content.decode()
    refused = world["rows"]["end_refused"]
    row = text[text.index(f'data-action="{refused.pk}"') :]
    row = row[: row.index("</tr>")]
    details = row[row.index("<details") : row.index("</details>")]
    assert "<code>1019</code>" in details and "ChatGone code=1019 http=200 Invalid" in details
    assert refused.key in details
    done = world["rows"]["transfer_done"]
    row = text[text.index(f'data-action="{done.pk}"') :]
    assert "<details" not in row[: row.index("</tr>")]  # nothing technical to show


def test_it_shows_a_drain_with_its_steps_beneath(client, world):
    client.force_login(world["users"]["ada"])
    text = client.get("/audit/").content.decode()
    drain = world["rows"]["drain"]
    for step in ("drain_transfer", "drain_status"):
        assert f'data-parent="{drain.pk}"' in text
        pk = world["rows"][step].pk
        assert text.index(f'data-action="{drain.pk}"') < text.index(f'data-action="{pk}"')
    assert "audit-step" in text and "↳" in text
    assert "SalesIQ lets this portal&#x27;s connected user change only their own status" in text


def test_it_escapes_what_visitors_and_users_typed(client, world):
    here, sam = world["here"], world["users"]["sam"]
    record(
        here,
        sam,
        ActionKind.TRANSFER,
        ActionOutcome.REFUSED,
        ago=timedelta(minutes=2),
        chat_label="<script>alert('chat')</script>",
        params={"department_name": "<b>Sales</b>", "note": "<i>note</i>"},
        message="<u>sentence</u>",
        error_detail="<em>detail</em>",
    )
    client.force_login(world["users"]["ada"])
    text = client.get("/audit/").content.decode()
    for raw in (NASTY, "<script>alert(", "<b>Sales</b>", "<i>note</i>", "<u>", "<em>"):
        assert raw not in text
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;Zoë" in text
    assert "&lt;script&gt;alert(&#x27;chat&#x27;)&lt;/script&gt;" in text
    assert "to &lt;b&gt;Sales&lt;/b&gt; · note: &lt;i&gt;note&lt;/i&gt;" in text


# --- CSV ---------------------------------------------------------------------------------------


def test_it_exports_every_action_with_its_steps(client, world):
    client.force_login(world["users"]["ada"])
    response = client.get("/audit.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'attachment; filename="salesiq-audit-' in response["Content-Disposition"]
    rows = csv_rows(response)
    assert list(rows[0]) == [
        "id",
        "time",
        "user",
        "portal",
        "action",
        "target",
        "parameters",
        "outcome",
        "message",
        "error_code",
        "error_detail",
        "confirmation",
        "confirmed_at",
        "parent",
    ]
    assert [int(row["id"]) for row in rows] == pks(
        world,
        "elsewhere_pending",
        "transfer_done",
        "drain",
        "drain_transfer",
        "drain_status",
        "end_refused",
        "status_failed",
    )
    by_id = {int(row["id"]): row for row in rows}
    done = by_id[world["rows"]["transfer_done"].pk]
    assert done["time"].endswith("Z") and "T" in done["time"]
    assert done["user"] == "sam" and done["portal"] == "Zylker Support"
    assert done["action"] == "transfer" and done["target"] == f"chat: {NASTY}"
    assert '"department_name": "Support"' in done["parameters"]
    assert done["outcome"] == "accepted"
    assert done["confirmation"] == "conversation.transfer.accepted"
    assert done["confirmed_at"].endswith("Z") and done["parent"] == ""
    refused = by_id[world["rows"]["end_refused"].pk]
    assert refused["error_code"] == "1019" and refused["message"] == "That chat has already ended."
    assert refused["error_detail"] == "ChatGone code=1019 http=200 Invalid"
    step = by_id[world["rows"]["drain_status"].pk]
    assert step["parent"] == str(world["rows"]["drain"].pk) and step["error_code"] == "1016"


def test_it_exports_with_the_same_filters(client, world):
    client.force_login(world["users"]["ada"])
    only = csv_rows(client.get("/audit.csv", {"outcome": "refused", "user": "ada"}))
    assert [int(row["id"]) for row in only] == pks(
        world, "drain", "drain_transfer", "drain_status", "end_refused"
    )
    portal = csv_rows(client.get("/audit.csv", {"portal": world["elsewhere"].pk}))
    assert [row["target"] for row in portal] == ["chat: Mia Chen"]
    client.force_login(world["users"]["sue"])
    assert [row["portal"] for row in csv_rows(client.get("/audit.csv"))] == ["Acme Sales"]
    client.force_login(world["users"]["sam"])
    assert "Acme Sales" not in {row["portal"] for row in csv_rows(client.get("/audit.csv"))}


def test_it_links_the_export_with_the_filters_on_the_page(client, world):
    client.force_login(world["users"]["ada"])
    text = client.get("/audit/", {"kind": "end", "period": "7d"}).content.decode()
    assert 'href="/audit.csv?kind=end&amp;period=7d"' in text


def test_it_keeps_spreadsheets_from_running_what_visitors_typed(client, world):
    record(
        world["here"],
        world["users"]["sam"],
        ActionKind.END,
        ActionOutcome.DONE,
        ago=timedelta(seconds=1),
        chat_label='=HYPERLINK("http://evil.example","x")',
        message="@SUM(1+1)",
    )
    client.force_login(world["users"]["ada"])
    first = csv_rows(client.get("/audit.csv"))[0]
    assert first["target"] == 'chat: =HYPERLINK("http://evil.example","x")'  # not first
    assert first["message"] == "'@SUM(1+1)"


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
    page.goto(live_server.url + "/audit/")
    assert page.locator("tr.audit-row").count() == 7
    assert page.locator("tr.audit-step").count() == 2
    # The visitor's "name" stayed text: no image element was made of it.
    assert page.locator(".audit-target img").count() == 0
    assert NASTY in page.locator(".audit-target").all_inner_texts()[1]
    # Times in the viewer's zone, with seconds; the zone hint goes once the script knows it.
    assert page.locator("[data-audit-tz]").input_value() != ""
    assert "UTC" not in page.locator("td.audit-when").first.inner_text()
    page.locator(".audit-tech summary").first.click()
    screenshot("audit-page")
    page.get_by_role("button", name="Last 7 days").click()
    page.wait_for_url("**period=7d**")
    assert page.locator("tr.audit-row").count() == 6
    assert page.get_by_role("button", name="Last 7 days").get_attribute("aria-pressed") == "true"
    screenshot("audit-page-last-7-days")
