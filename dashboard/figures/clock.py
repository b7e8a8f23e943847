"""Which departments' queue rows are due for publishing, asked by the worker's ``queues`` job
(dashboard/jobs.py) every second:

- those whose chats or operators changed since the last look (a department's row reads its
  open chats and its last hour: computed once a second at most, not once per event; at 50
  events a second, a row per event cost more than the events themselves);
- what time alone changes, with no fact arriving: a waiting chat crossing its department's
  target (the service level drops then, on every page, not at the next event) and a portal's
  business day turning over at its midnight.

The state is read from the database, so it holds whichever process applied the facts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db.models import Q

from siq_integration.models import Portal

from ..models import Chat, ChatStatus, DepartmentService, Operator, ServiceSettings
from .counting import settings_of, zone_of
from .definitions import day_start
from .queues import target_of


class Crossings:
    """Remembers when it last looked, and each portal's business day then."""

    def __init__(self) -> None:
        self.looked: datetime | None = None
        self.days: dict[Any, datetime] = {}

    def due(self, portals: Sequence[Portal], now: datetime) -> dict[Any, set[str]]:
        """The departments, per portal, whose figures time changed since the last look
        (every department of a portal whose business day turned over: the key ``"*"``)."""
        portals = list(portals)
        found: dict[Any, set[str]] = defaultdict(set)
        if not portals:
            return found
        services = {s.portal_id: s for s in ServiceSettings.objects.filter(portal__in=portals)}
        for portal in portals:
            service = services.get(portal.pk) or settings_of(portal.pk)
            services[portal.pk] = service
            day = day_start(now, zone_of(service))
            if self.days.get(portal.pk) not in (None, day):
                found[portal.pk].add("*")
            self.days[portal.pk] = day
        since, self.looked = self.looked, now
        if since is None:
            return found
        changed = Chat.objects.filter(portal__in=portals, updated_at__gt=since).values_list(
            "portal_id", "department_id", "served_department_id", "operator_id"
        )
        holders: set[str] = set()
        for portal_id, department_id, served_id, operator_id in changed:
            found[portal_id].add(department_id)
            if served_id:
                found[portal_id].add(served_id)
            if operator_id:
                holders.add(operator_id)
        # An operator's seats are taken or freed by a chat of one department, but who is best
        # to assign to (the queue rows' "Assign to Ana", actions/assign.py) changes in every
        # department they serve: those rows are due too.
        staff = Operator.objects.filter(portal__in=portals).filter(
            Q(updated_at__gt=since) | Q(remote_id__in=holders)
        )
        for portal_id, department_ids in staff.values_list("portal_id", "department_ids"):
            found[portal_id].update(str(d) for d in department_ids or ())
        own = {
            (d.portal_id, d.department_id): d
            for d in DepartmentService.objects.filter(portal__in=portals)
        }
        waiting = Chat.objects.filter(portal__in=portals, status=ChatStatus.WAITING).values_list(
            "portal_id", "department_id", "waiting_since", "started_at"
        )
        for portal_id, department_id, waiting_since, started_at in waiting:
            began = waiting_since or started_at
            if began is None:
                continue
            target = target_of(services[portal_id], own.get((portal_id, department_id)))
            crossed = began.timestamp() + target.seconds
            if since.timestamp() < crossed <= now.timestamp():
                found[portal_id].add(department_id)
        return found
