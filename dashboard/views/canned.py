"""A portal's canned lines (Admins): the lines a supervisor can send a visitor from the chat
drawer with a click (docs/step-in.md). One line of the box is one canned line; saving
replaces the portal's lines in one transaction, in the order typed."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from siq_integration import oauth

from ..access import admin_required, portal_for
from ..models import CannedLine

logger = logging.getLogger(__name__)

MAX_LINES = 30


def canned_lines_problems(lines: list[str]) -> list[str]:
    """What is wrong with ``lines`` (the box's non-empty lines), in sentences; none: save."""
    problems = []
    if len(lines) > MAX_LINES:
        problems.append(
            f"A portal can have at most {MAX_LINES} canned lines; there are {len(lines)}. "
            "Remove some and save again."
        )
    for number, line in enumerate(lines, start=1):
        if len(line) > CannedLine.MAX_LENGTH:
            problems.append(
                f"Line {number} is {len(line):,} characters long; a canned line can have at "
                f"most {CannedLine.MAX_LENGTH:,}."
            )
    return problems


@admin_required
@require_http_methods(["GET", "POST"])
def portal_canned_lines(request: HttpRequest, portal_id) -> HttpResponse:
    portal = portal_for(request.user, portal_id)
    stored = list(CannedLine.objects.filter(portal=portal))
    typed = "\n".join(line.text for line in stored)
    problems: list[str] = []
    if request.method == "POST":
        typed = request.POST.get("lines", "")
        lines = [line.strip() for line in typed.splitlines() if line.strip()]
        problems = canned_lines_problems(lines)
        if not problems:
            with transaction.atomic():
                CannedLine.objects.filter(portal=portal).delete()
                CannedLine.objects.bulk_create(
                    CannedLine(portal=portal, text=text, position=n) for n, text in enumerate(lines)
                )
            logger.info("Portal %s: %d canned lines saved", portal.pk, len(lines))
            messages.success(
                request,
                f"Saved {len(lines)} canned line{'s' if len(lines) != 1 else ''} for "
                f"{portal.name}.",
            )
            return redirect("portal_canned_lines", portal_id=portal.pk)
        messages.error(request, "Nothing was saved. Correct what is said below and save again.")
    return render(
        request,
        "portals/canned_lines.html",
        {
            "portal": portal,
            "typed": typed,
            "problems": problems,
            "max_lines": MAX_LINES,
            "max_length": CannedLine.MAX_LENGTH,
            "may_message": oauth.may_message(portal),
        },
    )
