"""Ingest: webhooks a second that one serve process accepts, verifies, stores and applies.

The deliveries are the simulator's own, signed with the webhook's key: the ingest portal's
webhook is registered (the dashboard stores its public key) with its address pointing at a
small capture server here, scenes make the simulator sign and post a few thousand events,
and the capture keeps body and headers. Then several connections post them, as fast as the
answers come, to the portal's webhook address on serve; a share is posted twice (SalesIQ's
retries). Afterwards every accepted event must be in the inbox exactly once and applied, and
the chats must end as the simulator says they did.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from salesiq_simulator import SimulatorError

from .cpu import CpuMeter
from .environment import wait_until
from .figures import summary


class Capture:
    """Records what is posted to it (headers, raw body) and answers 200."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        lock = threading.Lock()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def make_deliveries(sim: Any, screen: str, capture: Capture, *, chats: int) -> list[str]:
    """Five events per chat (created, picked up, two visitor lines, ended), in batches of 20
    chats at a time, as a busy portal interleaves them. Returns the conversation ids."""
    ids: list[str] = []
    events = 0
    for first in range(0, chats, 20):
        batch = [
            sim.create_conversation(screen, visitor_name=f"Ingest {n}", question=f"question {n}")[
                "id"
            ]
            for n in range(first, min(chats, first + 20))
        ]
        for chat in batch:
            try:
                sim.pickup(chat)
            except SimulatorError:  # nobody free: the chat stays waiting until it ends
                continue
            events += 1
        for line in range(2):
            for chat in batch:
                sim.visitor_message(chat, f"line {line} of {chat}")
        for chat in batch:
            sim.end(chat)
        events += 4 * len(batch)
        ids.extend(batch)
    wait_until(
        lambda: len(capture.received) >= events,
        timeout=300,
        what="the simulator's deliveries to the capture",
    )
    return ids


@dataclass
class Answer:
    index: int
    status: int
    duplicate: bool
    sent: float  # time.time()
    done: float


async def _post_all(
    host: str, port: int, path: str, items: list[tuple[int, dict[str, str], bytes]], workers: int
) -> list[Answer]:
    pending = list(reversed(items))
    answers: list[Answer] = []

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while pending:
                index, headers, body = pending.pop()
                head = (
                    f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                    f"x-siqsignature: {headers.get('x-siqsignature', '')}\r\n"
                    "User-Agent: bench-ingest\r\n\r\n"
                )
                sent = time.time()
                writer.write(head.encode("latin-1") + body)
                await writer.drain()
                status, reply = await _read_response(reader)
                duplicate = status == 200 and bool(json.loads(reply or b"{}").get("duplicate"))
                answers.append(Answer(index, status, duplicate, sent, time.time()))
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(workers)))
    return answers


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status = int((await reader.readline()).split()[1])
    headers = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int((await reader.readline()).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return status, body
            body += chunk[:-2]
    return status, await reader.readexactly(int(headers.get("content-length") or 0))


def measure(
    *,
    sim: Any,
    portal: Any,
    capture: Capture,
    serve_port: int,
    chats: int,
    connections: int,
    duplicate_share: float = 0.05,
) -> dict[str, Any]:
    from dashboard.models import Chat, ChatMessage, InboxEvent
    from siq_integration import webhooks

    make_started = time.monotonic()
    conversation_ids = make_deliveries(sim, portal.screen_name, capture, chats=chats)
    captured = list(capture.received)
    made_in = time.monotonic() - make_started
    parsed = [webhooks.parse("v2", body) for _, body in captured]
    keys = [event.dedupe_key for event in parsed]
    # Every visitor or operator line the deliveries carry (v2: the conversation's last one),
    # by chat: a message's id (its sequence number) is unique within its chat only.
    lines_sent = {
        (event.chat_id, message.id)
        for event in parsed
        for message in (event.message, event.conversation and event.conversation.last_message)
        if message is not None and message.id
    }

    # A share posted twice, the second copy later in the stream (SalesIQ's retries).
    rng = random.Random(11)
    items = [(i, headers, body) for i, (headers, body) in enumerate(captured)]
    again = rng.sample(items, int(len(items) * duplicate_share))
    for copy in again:
        position = rng.randrange(copy[0] + 1, len(items) + 1)
        items.insert(position, copy)

    path = f"/webhooks/salesiq/{portal.pk}/"
    cpu = CpuMeter().start()
    with ThreadPoolExecutor(max_workers=1) as thread:  # Playwright owns this thread's loop
        answers = thread.submit(
            asyncio.run, _post_all("127.0.0.1", serve_port, path, items, connections)
        ).result()
    first_sent = min(answer.sent for answer in answers)
    last_answer = max(answer.done for answer in answers)

    def settled() -> bool:
        return not InboxEvent.objects.filter(portal=portal, state=InboxEvent.State.PENDING).exists()

    wait_until(settled, timeout=600, what="every stored event applied", every=0.1)
    cpu_used = cpu.stop()
    rows = list(
        InboxEvent.objects.filter(portal=portal).values("dedupe_key", "state", "applied_at")
    )

    stored_keys = [row["dedupe_key"] for row in rows]
    accepted_keys = {keys[answer.index] for answer in answers if answer.status == 200}
    applied = [row for row in rows if row["state"] == InboxEvent.State.APPLIED]
    last_applied = max((row["applied_at"] for row in applied), default=None)
    applied_span = (last_applied.timestamp() - first_sent) if last_applied else None
    chats_shown = {
        chat.remote_id: chat.status
        for chat in Chat.objects.filter(portal=portal, remote_id__in=conversation_ids)
    }
    expected = {
        conversation["id"]: conversation["status"]
        for conversation in sim.state(portal.screen_name)["portals"][0]["conversations"]
        if conversation["id"] in set(conversation_ids)
    }
    status_words = {"closed": "ended", "missed": "missed", "waiting": "waiting"}
    disagree = sum(
        1
        for remote_id, status in expected.items()
        if chats_shown.get(remote_id) != status_words.get(status, status)
    )
    lines_stored = set(
        ChatMessage.objects.filter(chat__portal=portal).values_list("chat__remote_id", "remote_id")
    )
    return {
        "deliveries": len(captured),
        "posted": len(items),
        "posted_twice": len(again),
        "connections": connections,
        "made_in_seconds": round(made_in, 1),
        "answers": {
            "stored": sum(1 for a in answers if a.status == 200 and not a.duplicate),
            "duplicate": sum(1 for a in answers if a.duplicate),
            "refused": sum(1 for a in answers if a.status != 200),
        },
        "answer_ms": summary([(a.done - a.sent) * 1000 for a in answers]),
        "accepted_per_second": round(len(answers) / (last_answer - first_sent), 1),
        "applied_per_second": round(len(applied) / applied_span, 1) if applied_span else None,
        "seconds_to_answer_all": round(last_answer - first_sent, 2),
        "seconds_to_apply_all": round(applied_span, 2) if applied_span else None,
        "inbox_rows": len(rows),
        "lost": len(accepted_keys - set(stored_keys)),
        "stored_twice": len(stored_keys) - len(set(stored_keys)),
        "not_applied": len(rows) - len(applied),
        "chats": len(conversation_ids),
        "chats_stored": len(chats_shown),
        "chats_disagreeing_with_salesiq": disagree,
        "messages_stored": len(lines_stored),
        "messages_expected": len(lines_sent),
        # Lines a stored delivery carried that no transcript has: lost, the run not clean.
        "messages_lost": len(lines_sent - lines_stored),
        "cpu": cpu_used,
    }
