"""The queues end to end (issue 15's "done means"): the simulator → webhooks → `manage.py
serve` (daphne and its worker) → every supervisor's page, live and without reloading; and
the same figures after a restart."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from dashboard.models import Department, PortalSync, Role, ServiceSettings
from tests.support.browser import console_errors_from_now, sign_in, watched
from tests.support.waits import wait_for
from tests.support.zones import far_from_midnight

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TARGET = 8  # seconds: short, so a wait crosses it within the test


def cell_texts(page, row_id: str) -> dict[str, str]:
    return page.evaluate(
        """(id) => {
          const row = document.getElementById(id);
          if (!row) return null;
          const out = {};
          row.querySelectorAll('td[data-label]').forEach((td) => {
            out[td.dataset.label] = td.textContent.replace(/\\s+/g, ' ').trim();
          });
          return out;
        }""",
        row_id,
    )


def wait_for_cells(page, row_id: str, check, what: str, timeout: float = 30) -> dict[str, str]:
    return wait_for(
        lambda: (cells := cell_texts(page, row_id)) and check(cells) and cells,
        timeout=timeout,
        what=what,
    )


def test_a_department_past_its_target_falls_on_every_supervisors_page_and_keeps_after_restart(
    server, simulator, connected_portal, browser
):
    portal = watched(server, connected_portal(open_chats=0, operators=4))
    # A zone where every chat of the test falls within one business day, whatever the hour.
    ServiceSettings.objects.update_or_create(
        portal=portal,
        defaults={"target_seconds": TARGET, "time_zone": far_from_midnight(timezone.now())},
    )
    sales = wait_for(
        lambda: Department.objects.filter(portal=portal, name="Sales").first(),
        timeout=20,
        what="the departments polled",
    )
    row = f"queue-{portal.pk}-{sales.remote_id}"

    pages = []
    for role in (None, Role.SUPERVISOR):
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        page = context.new_page()
        sign_in(page, server, role=role, portals=[portal])
        pages.append((page, console_errors_from_now(page), page.evaluate("performance.timeOrigin")))

    # A chat picked up at once: Sales is at 100 % on both pages.
    first = simulator.create_conversation(portal.screen_name, department="Sales")["id"]
    simulator.pickup(first)
    for page, _, _ in pages:
        wait_for_cells(
            page, row, lambda c: c["Service today"].startswith("100 %"), "Sales at 100 %"
        )

    # A visitor waits past the target: with no new event, both pages fall to 50 % (the
    # worker's clock publishes the crossing) and put Sales first.
    late = simulator.create_conversation(portal.screen_name, department="Sales")["id"]
    for page, _, _ in pages:
        cells = wait_for_cells(
            page,
            row,
            lambda c: c["Service today"].startswith("50 %"),
            "Sales falling to 50 % as the wait passes its target",
            timeout=TARGET + 20,
        )
        assert cells["Waiting"] == "1"
        assert page.evaluate(
            "(id) => document.getElementById('queues-body').firstElementChild.id === id", row
        )
        assert page.locator(f"#{row}").get_attribute("data-tone") == "bad"

    # The late visitor gives up: missed (after the target). Another leaves at once: abandoned,
    # counted apart and on neither side of the service level.
    simulator.end(late)
    quick = simulator.create_conversation(portal.screen_name, department="Sales")["id"]
    simulator.end(quick)
    for page, _, _ in pages:
        cells = wait_for_cells(
            page,
            row,
            lambda c: "1 abandoned" in c["Answered / missed"],
            "one missed and one abandoned chat",
        )
        assert cells["Answered / missed"].startswith("1 / 1"), cells
        assert cells["Service today"].startswith("50 %"), cells
        assert cells["Waiting"] == "0"

    for page, errors, opened_at in pages:
        assert page.evaluate("performance.timeOrigin") == opened_at  # never reloaded
        assert errors == []

    # The figures are kept in the database: a restarted server shows the same.
    server.stop()
    server.start()
    page = pages[0][0]
    page.reload()
    page.wait_for_selector("#connection[data-state=open]", timeout=30_000)
    cells = cell_texts(page, row)
    assert cells["Service today"].startswith("50 %"), cells
    counts = cells["Answered / missed"]
    assert counts.startswith("1 / 1") and "1 abandoned" in counts, cells

    # A gap: the dashboard is down for a while (its last poll ten minutes ago) and what
    # SalesIQ sends meanwhile never arrives. A chat comes, is answered at once and ends, all
    # unseen; back up, the worker reads today's ended chats back and the page counts it.
    server.stop()
    then = timezone.now() - timedelta(minutes=10)
    PortalSync.objects.filter(portal=portal).update(
        last_event_at=then, operators_polled_at=then, chats_polled_at=then
    )
    simulator.pause_webhooks()
    try:
        unseen = simulator.create_conversation(portal.screen_name, department="Sales")["id"]
        simulator.pickup(unseen)
        simulator.end(unseen)
        server.start()
        page.reload()
        page.wait_for_selector("#connection[data-state=open]", timeout=30_000)
        cells = wait_for_cells(
            page,
            row,
            lambda c: c["Answered / missed"].startswith("2 / 1"),
            "the chat that ended while the dashboard was down, read back",
            timeout=60,
        )
        assert cells["Service today"].startswith("66 %"), cells  # 2 of 3 within the target
    finally:
        simulator.resume_webhooks()
