"""Sign-in throttling (django-axes) as this project wires it.

* ``client_ip``: the address a sign-in comes from, which axes counts failures against.
  ``REMOTE_ADDR``, unless ``SIQ_TRUSTED_PROXY_COUNT`` says N reverse proxies stand in front:
  then the entry the outermost trusted proxy appended to ``X-Forwarded-For`` (the N-th from
  the right). Entries to the left of it were written by the client and are never trusted.
* ``locked_out``: the 429 page a locked-out sign-in gets, on /login/ and /admin/login/.
* ``locked_out_usernames`` and ``unlock``: what the Users page shows and its Unlock button does.
"""

from __future__ import annotations

import ipaddress
import logging
from datetime import timedelta

from axes.helpers import get_cool_off
from axes.models import AccessAttempt
from axes.utils import reset
from django.conf import settings
from django.db.models import Max, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

logger = logging.getLogger(__name__)


def _address(raw: str) -> str | None:
    """``raw`` as a normalised IP address, or None (ports and brackets tolerated)."""
    text = raw.strip()
    if text.startswith("[") and "]" in text:  # [2001:db8::1]:443
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # 203.0.113.9:51234
        text = text.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    """The client's address as far as this deployment can trust it (AXES_CLIENT_IP_CALLABLE)."""
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = settings.SIQ_TRUSTED_PROXY_COUNT
    if proxies > 0:
        entries = [e for e in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if e.strip()]
        if entries:
            # Each trusted proxy appended the address it was reached from; the outermost of
            # them wrote the N-th entry from the right. Fewer entries: the first is the one
            # a trusted proxy wrote (the request came in past the outer ones).
            chosen = _address(entries[-proxies] if len(entries) >= proxies else entries[0])
            if chosen:
                return chosen
    return _address(remote) or remote or None


def cool_off_minutes(request: HttpRequest | None = None) -> int:
    cool_off = get_cool_off(request) or timedelta(0)
    return max(1, round(cool_off.total_seconds() / 60))


def locked_out(request: HttpRequest, response=None, credentials=None) -> HttpResponse:
    """The 429 page for a sign-in whose account or address is locked out (AXES_LOCKOUT_CALLABLE)."""
    return render(
        request,
        "registration/locked_out.html",
        {"minutes": cool_off_minutes(request)},
        status=429,
    )


def locked_out_usernames() -> set[str]:
    """Usernames with enough recent failures to be refused at sign-in."""
    since = timezone.now() - (get_cool_off() or timedelta(0))
    rows = (
        AccessAttempt.objects.filter(attempt_time__gte=since)
        .values("username")
        .annotate(failures=Sum("failures_since_start"))
        .filter(failures__gte=settings.AXES_FAILURE_LIMIT)
    )
    return {row["username"] for row in rows if row["username"]}


def locked_out_addresses() -> list[dict]:
    """Addresses refused at sign-in now: ``address``, ``failures``, ``last`` (newest first)."""
    since = timezone.now() - (get_cool_off() or timedelta(0))
    rows = (
        AccessAttempt.objects.filter(attempt_time__gte=since)
        .exclude(ip_address=None)
        .values("ip_address")
        .annotate(failures=Sum("failures_since_start"), last=Max("attempt_time"))
        .filter(failures__gte=settings.AXES_FAILURE_LIMIT)
        .order_by("-last")
    )
    return [
        {"address": row["ip_address"], "failures": row["failures"], "last": row["last"]}
        for row in rows
    ]


def unlock_address(address: str, *, by: str) -> int:
    """Forget the failed sign-ins from ``address`` (whatever username they named)."""
    removed = reset(ip=address)
    logger.info("sign-in: %s unlocked the address %s (%d failure records)", by, address, removed)
    return removed


def unlock(username: str, *, by: str) -> int:
    """Forget the failed sign-ins made with ``username`` (from any address); how many rows."""
    removed = reset(username=username)
    logger.info("sign-in: %s unlocked the account %s (%d failure records)", by, username, removed)
    return removed
