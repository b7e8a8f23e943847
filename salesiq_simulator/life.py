"""The seeded life of the world: who arrives, who picks up, who writes, who leaves.

Everything random comes from one ``random.Random(seed)``. Time is passed in
(``step(now)``), and work is an event queue ordered by (due time, sequence), so the
same seed and the same calls give the same world however the steps are sliced.
"""

from __future__ import annotations

import heapq
import random
import unicodedata
from collections.abc import Sequence
from typing import Any

from . import texts
from .world import (
    Clock,
    Conversation,
    Department,
    IdGen,
    Operator,
    Portal,
    PortalSettings,
    Visitor,
    World,
    WorldError,
)

DEFAULT_DEPARTMENTS = ("Sales", "Support", "Billing")


def _ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


class Life:
    def __init__(self, world: World, seed: int) -> None:
        self.world = world
        self.seed = seed
        self.rng = random.Random(seed)
        # Supervisors joining, lines edited or deleted: drawn from a generator of their own,
        # so the rest of a seeded world (arrivals, pickups, lines) stays as it always was.
        self.extras_rng = random.Random(f"{seed}/extras")
        self._queue: list[tuple[float, int, str, str, int]] = []
        self._seq = 0
        self.last_step: float | None = None
        world.on_conversation_change = self.replan

    # ----- building ------------------------------------------------------------------------

    def build_portal(
        self,
        *,
        screen_name: str,
        dialect: str,
        dc: str,
        name: str | None,
        operators: int,
        departments: Sequence[str] | int,
        open_chats: int | None,
        settings: PortalSettings,
        now: float,
    ) -> Portal:
        world, rng, ids = self.world, self.rng, self.world.ids
        admin_email = f"admin@{screen_name}.example"
        portal = Portal(
            id=ids(),
            screen_name=screen_name,
            name=name or screen_name.replace("-", " ").title(),
            dialect=dialect,
            dc=dc,
            app_id=ids(),
            brand_id=ids(),
            admin_email=admin_email,
            settings=settings,
        )
        world.portals[screen_name] = portal
        if isinstance(departments, int):
            dept_names = [
                DEFAULT_DEPARTMENTS[i] if i < len(DEFAULT_DEPARTMENTS) else f"Team {i + 1}"
                for i in range(max(1, departments))
            ]
        else:
            dept_names = list(departments) or list(DEFAULT_DEPARTMENTS)
        depts = [world.add_department(portal, n) for n in dept_names]

        for n in range(max(1, operators)):
            self._make_operator(portal, n, depts, now)

        count = 6 if open_chats is None else max(0, open_chats)
        self._seed_conversations(portal, depts, count, now)
        portal.next_arrival_at = now + rng.uniform(*settings.visitor_interval)
        portal.next_presence_at = now + rng.uniform(30, 90)
        self._push(portal.next_arrival_at, "arrival", portal.screen_name, 0)
        self._push(portal.next_presence_at, "presence", portal.screen_name, 0)
        return portal

    def _make_operator(self, portal: Portal, n: int, depts: list[Department], now: float) -> None:
        rng, ids = self.rng, self.world.ids
        if n == 0:
            # The portal's admin is operator #1, so "set my own status" has an operator.
            first, last = rng.choice(texts.OPERATOR_FIRST_NAMES), "Admin"
            email, role, dept_ids, presence = (
                portal.admin_email,
                "Administrator",
                [d.id for d in depts],
                "online",
            )
        else:
            first = texts.OPERATOR_FIRST_NAMES[
                (n + rng.randrange(3)) % len(texts.OPERATOR_FIRST_NAMES)
            ]
            last = rng.choice(texts.OPERATOR_LAST_NAMES)
            slug = _ascii_slug(first) or "operator"
            email = f"{slug}.{n}@{portal.screen_name}.example"
            role = "Supervisor" if n % 7 == 1 else "Associate"
            k = 1 if len(depts) == 1 else rng.choice((1, 1, 2))
            dept_ids = [d.id for d in rng.sample(depts, k)]
            presence = rng.choices(("online", "busy", "offline"), weights=(75, 15, 10))[0]
        op_id = ids()
        self.world.add_operator(
            portal,
            Operator(
                id=op_id,
                zuid=str(60000000 + int(op_id) % 10_000_000),
                email=email,
                first_name=first,
                last_name=last,
                nick_name=first,
                role=role,
                department_ids=dept_ids,
                max_chats=rng.randint(3, 6),
                presence=presence,
                modified_time=now - rng.uniform(3600, 86400),
                last_active=now - rng.uniform(0, 600),
                slow=rng.random() < 0.2,
            ),
        )

    def _seed_conversations(
        self, portal: Portal, depts: list[Department], count: int, now: float
    ) -> None:
        """The world as it stands when the simulator starts.

        The first two chats have run for more than half an hour and the third is a
        visitor who has waited several minutes, so alerts have something to find.
        """
        rng = self.rng
        plans: list[tuple[float, str]] = []
        for i in range(count):
            if i < 2:
                plans.append((now - rng.uniform(31 * 60, 50 * 60), "long"))
            elif i == 2:
                plans.append((now - rng.uniform(4 * 60, 7 * 60), "stuck"))
            else:
                plans.append((now - rng.uniform(30, 15 * 60), "normal"))
        # Create in start order so the open index is in start order too.
        plans.sort(key=lambda p: p[0])
        for start, kind in plans:
            dept = rng.choice(depts)
            conv = self.world.new_conversation(
                portal,
                visitor=self._visitor(),
                department_id=dept.id,
                question=rng.choice(texts.QUESTIONS),
                start_time=start,
                emit=False,
                now=now,
            )
            conv.miss_at = start + portal.settings.miss_after
            if kind == "stuck":
                # Left waiting on purpose; life picks it up (or misses it) minutes from now.
                conv.miss_at = max(conv.miss_at, now + rng.uniform(240, 420))
                conv.pickup_at = now + rng.uniform(150, 300)
                self.replan(conv, now)
                continue
            op = self._free_operator(portal, dept.id)
            if op is None:
                conv.pickup_at = now + rng.uniform(3, 20)
                conv.miss_at = max(conv.miss_at, now + 120)
                self.replan(conv, now)
                continue
            self.world._attach(conv, op)
            conv.status = "connected"
            conv.attended_time = start + rng.uniform(5, 40)
            conv.turns_left = rng.randint(60, 120) if kind == "long" else rng.randint(3, 12)
            # A history of alternating messages up to now.
            t = conv.attended_time
            speaker = "operator"
            while True:
                t += rng.uniform(20, 90) if kind == "long" else rng.uniform(8, 40)
                if t >= now - 5:
                    break
                sender = op if speaker == "operator" else None
                text = rng.choice(texts.OPERATOR_LINES if sender else texts.VISITOR_LINES)
                self.world._add_message(
                    conv,
                    speaker,
                    sender.id if sender else conv.visitor.id,
                    sender.name if sender else conv.visitor.name,
                    text,
                    t,
                )
                speaker = "visitor" if speaker == "operator" else "operator"
            conv.next_speaker = speaker
            conv.last_modified_time = conv.messages[-1].time
            conv.next_turn_at = now + rng.uniform(2, 30)
            self.replan(conv, now)

    def _visitor(self) -> Visitor:
        rng, ids = self.rng, self.world.ids
        name = rng.choice(texts.VISITOR_NAMES)
        country, city = rng.choice(texts.COUNTRIES)
        n = rng.randrange(10000)
        return Visitor(
            id="$" + ids(),
            name=name,
            email=f"visitor{n}@example.org" if rng.random() < 0.8 else "",
            ip=f"203.0.113.{rng.randrange(1, 255)}",
            country=country,
            city=city,
        )

    def _free_operator(self, portal: Portal, dept_id: str) -> Operator | None:
        candidates = [
            op
            for op in portal.operators.values()
            if dept_id in op.department_ids and op.has_capacity
        ]
        if not candidates:
            return None
        # Least loaded first, like SalesIQ's round robin; ties broken by the seeded rng.
        least = min(len(op.chat_ids) for op in candidates)
        return self.rng.choice([op for op in candidates if len(op.chat_ids) == least])

    # ----- planning ------------------------------------------------------------------------

    def _push(self, due: float, kind: str, key: str, token: int) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (due, self._seq, kind, key, token))

    def replan(self, conv: Conversation, now: float) -> None:
        """Called after every change to a conversation: decide when it acts next."""
        rng = self.rng
        if (
            conv.transfer
            and conv.transfer["status"] == "initiated"
            and conv.transfer_due_at is None
        ):
            conv.transfer_due_at = now + rng.uniform(10, 40)
        if conv.status == "waiting":
            if conv.miss_at is None:
                portal = self.world.portal_for_conversation(conv.id)
                miss_after = portal.settings.miss_after if portal else 480.0
                conv.miss_at = conv.start_time + miss_after
            if conv.pickup_at is None:
                # Now and then nobody notices a visitor for minutes (long waits, misses).
                if rng.random() < 0.08:
                    conv.pickup_at = now + rng.uniform(120, (conv.miss_at - now) + 60)
                else:
                    conv.pickup_at = now + rng.uniform(5, 45)
        elif conv.status == "connected":
            if conv.next_turn_at is None or conv.next_turn_at <= now:
                conv.next_turn_at = now + self._turn_delay(conv)
        elif (
            conv.status == "closed"
            and conv.rating is None
            and conv.rating_due_at is None
            and rng.random() < 0.6
        ):
            conv.rating_due_at = now + rng.uniform(5, 30)
        times = [
            t
            for t in (
                conv.transfer_due_at,
                conv.pickup_at if conv.status == "waiting" else None,
                conv.miss_at if conv.status == "waiting" else None,
                conv.next_turn_at if conv.status == "connected" else None,
                conv.rating_due_at if conv.status == "closed" and conv.rating is None else None,
            )
            if t is not None
        ]
        conv.plan_token += 1
        if times:
            self._push(max(min(times), now), "conv", conv.id, conv.plan_token)

    def _turn_delay(self, conv: Conversation) -> float:
        rng = self.rng
        if conv.next_speaker == "visitor":
            return rng.uniform(5, 40)
        op = self.world.operator(conv.attender_id or "")
        slow = rng.random() < (0.35 if op is not None and op.slow else 0.1)
        # Sometimes an operator is slow to answer: supervisors want to see that.
        return rng.uniform(60, 200) if slow else rng.uniform(4, 25)

    # ----- running -------------------------------------------------------------------------

    def step(self, now: float) -> int:
        """Play every planned action due up to ``now``, each at its own time.

        Returns how many actions ran.
        """
        done = 0
        while self._queue and self._queue[0][0] <= now:
            due, _seq, kind, key, token = heapq.heappop(self._queue)
            try:
                if kind == "conv":
                    conv = self.world.conversation(key)
                    if conv is not None and conv.plan_token == token:
                        self._act(conv, due)
                elif kind == "arrival":
                    self._arrival(key, due)
                elif kind == "presence":
                    self._presence(key, due)
            except WorldError:
                # The API or a scene moved the world on in between: nothing to do.
                pass
            done += 1
        self.last_step = now
        return done

    def _act(self, conv: Conversation, t: float) -> None:
        rng, world = self.rng, self.world
        portal = world.portal_for_conversation(conv.id)
        if portal is None:
            return
        if conv.transfer_due_at is not None and conv.transfer_due_at <= t:
            conv.transfer_due_at = None
            if conv.transfer and conv.transfer["status"] == "initiated":
                world.transfer_settle(conv, rng.random() < 0.7, t)
                return
        if conv.status == "waiting":
            if conv.miss_at is not None and conv.miss_at <= t:
                world.miss(conv, t)
                return
            if conv.pickup_at is not None and conv.pickup_at <= t:
                op = self._free_operator(portal, conv.department_id)
                if op is None:
                    conv.pickup_at = t + rng.uniform(5, 15)
                    self.replan(conv, t)
                    return
                conv.pickup_at = None
                conv.turns_left = rng.randint(3, 12)
                conv.next_turn_at = t + rng.uniform(2, 8)
                world.pickup(conv, op, t)
                return
            self.replan(conv, t)
        elif conv.status == "connected":
            if conv.next_turn_at is None or conv.next_turn_at > t:
                self.replan(conv, t)
                return
            conv.next_turn_at = None
            if conv.turns_left <= 0:
                world.close(conv, t)
                return
            if conv.next_speaker == "operator":
                pending = conv.transfer and conv.transfer["status"] == "initiated"
                if not pending and len(portal.departments) > 1 and rng.random() < 0.04:
                    self._life_transfer(portal, conv, t)
                    return
                first = not any(m.sender_type == "operator" for m in conv.messages)
                lines = texts.GREETINGS if first else texts.OPERATOR_LINES
                conv.turns_left -= 1
                world.message(conv, "operator", rng.choice(lines), t)
            else:
                conv.turns_left -= 1
                world.message(conv, "visitor", rng.choice(texts.VISITOR_LINES), t)
            self._extras(portal, conv, t)
        elif (
            conv.status == "closed"
            and conv.rating is None
            and conv.rating_due_at is not None
            and conv.rating_due_at <= t
        ):
            rating = rng.choices((1, 2, 3, 4, 5), weights=(10, 10, 15, 30, 35))[0]
            if rating <= 2:
                feedback: str | None = rng.choice(texts.FEEDBACK_LOW)
            elif rng.random() < 0.3:
                feedback = rng.choice(texts.FEEDBACK_HIGH)
            else:
                feedback = None
            world.rate(conv, rating, feedback, t)

    def _extras(self, portal: Portal, conv: Conversation, t: float) -> None:
        """Now and then, after a line: a supervisor joins the chat (once), the operator
        corrects their last line, or the visitor deletes theirs (v2 webhooks
        conversation.supervisor.added, .message.edited, .message.deleted)."""
        extras, world = self.extras_rng, self.world
        roll = extras.random()
        try:
            if roll < 0.008 and not any(
                p["type"] == "supervisor" for p in conv.participants.values()
            ):
                present = {conv.attender_id, *conv.participants}
                watchers = [
                    op
                    for op in portal.operators.values()
                    if op.id not in present and op.presence != "offline"
                ]
                if watchers:
                    world.add_participant(conv, extras.choice(watchers), "supervisor", t)
            elif roll < 0.023:
                last = conv.messages[-1] if conv.messages else None
                if last is not None and last.sender_type == "operator":
                    world.edit_message(conv, last, extras.choice(texts.OPERATOR_LINES), t)
            elif roll < 0.026:
                last = conv.messages[-1] if conv.messages else None
                if last is not None and last.sender_type == "visitor":
                    world.delete_message(conv, last, t)
        except WorldError:
            pass  # not possible in this chat now: life goes on

    def _life_transfer(self, portal: Portal, conv: Conversation, t: float) -> None:
        rng = self.rng
        others = [d for d in portal.departments.values() if d.id != conv.department_id]
        dept = rng.choice(others)
        op = self._free_operator(portal, dept.id) if rng.random() < 0.5 else None
        self.world.transfer_initiate(conv, dept, op, rng.choice(texts.TRANSFER_NOTES), t)

    def _arrival(self, screen_name: str, t: float) -> None:
        rng, world = self.rng, self.world
        portal = world.portals.get(screen_name)
        if portal is None:
            return
        dept = rng.choice(list(portal.departments.values()))
        world.new_conversation(
            portal,
            visitor=self._visitor(),
            department_id=dept.id,
            question=rng.choice(texts.QUESTIONS),
            start_time=t,
        )
        portal.next_arrival_at = t + rng.uniform(*portal.settings.visitor_interval)
        self._push(portal.next_arrival_at, "arrival", screen_name, 0)

    def _presence(self, screen_name: str, t: float) -> None:
        rng, world = self.rng, self.world
        portal = world.portals.get(screen_name)
        if portal is None:
            return
        ops = [op for op in portal.operators.values() if op.email != portal.admin_email]
        if ops:
            op = rng.choice(ops)
            if op.presence == "online":
                new = rng.choices(("busy", "away", "offline"), weights=(6, 2, 2))[0]
            else:
                new = "online"
            world.set_presence(op, new, t)
        portal.next_presence_at = t + rng.uniform(45, 120)
        self._push(portal.next_presence_at, "presence", screen_name, 0)

    # ----- scene helpers (tests make things happen now) ------------------------------------

    def scene_conversation(
        self,
        portal: Portal,
        *,
        department_id: str | None,
        visitor_name: str | None,
        question: str | None,
        waiting_seconds: float,
        now: float,
        visitor_email: str | None = None,
    ) -> Conversation:
        rng = self.rng
        if department_id is None:
            department_id = next(iter(portal.departments))
        visitor = self._visitor()
        if visitor_name is not None:
            visitor.name = visitor_name
        if visitor_email is not None:
            visitor.email = visitor_email
        return self.world.new_conversation(
            portal,
            visitor=visitor,
            department_id=department_id,
            question=question if question is not None else rng.choice(texts.QUESTIONS),
            start_time=now - max(0.0, waiting_seconds),
            now=now,
        )

    def pick_operator(self, portal: Portal, dept_id: str) -> Operator | None:
        return self._free_operator(portal, dept_id)

    def random_line(self, sender_type: str) -> str:
        lines: Any = texts.OPERATOR_LINES if sender_type == "operator" else texts.VISITOR_LINES
        return self.rng.choice(lines)


def new_world(seed: int, start_time: float | None) -> tuple[World, Life, Clock]:
    clock = Clock(start_time)
    world = World(clock, IdGen())
    life = Life(world, seed)
    return world, life, clock
