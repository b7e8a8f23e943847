"""Webhook deliveries: signing, a small pool of sender threads, retries with backoff.

Events are turned into jobs under the simulator's lock (the entity is a snapshot of
that moment); sending, signing and waiting happen outside it, on the pool.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

V2_SIGNATURE_HEADER = "x-siqsignature"
REFERENCE_SIGNATURE_HEADER = "X-Salesiq-Signature"
ATTEMPT_HEADER = "X-Salesiq-Delivery-Attempt"


def sign_v2(private_key: Any, body: bytes) -> str:
    """Base64 RSA PKCS#1 v1.5 SHA-256 signature over the exact body bytes."""
    signature = private_key.sign(body, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()


def sign_reference(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode(payload: dict[str, Any]) -> bytes:
    # Raw UTF-8, not \u escapes: the receiver must verify over the bytes as sent.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass
class Signer:
    """How to sign one attempt, looked up fresh for each attempt (keys may rotate)."""

    url: str
    private_key: Any = None
    secret: str | None = None


@dataclass
class Job:
    portal: str
    webhook_id: str
    dialect: str
    event: str
    entity_id: str | None
    payload: dict[str, Any]
    attempt: int = 1
    # Reference retries re-send the very same bytes; v2 retries carry a new attempt number.
    body: bytes | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Deliverer:
    def __init__(
        self,
        *,
        resolve: Callable[[Job], Signer | None],
        retry_delays: Sequence[float] = (0.5, 2.0, 5.0),
        threads: int = 4,
        timeout: float = 10.0,
        log_size: int = 20000,
    ) -> None:
        self._resolve = resolve
        self.retry_delays = list(retry_delays)
        self.timeout = timeout
        self._threads_wanted = threads
        self._heap: list[tuple[float, int, Job]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._busy: set[str] = set()
        self.paused = False
        self._log: deque[dict[str, Any]] = deque(maxlen=log_size)
        self._log_lock = threading.Lock()
        self._seq = 0
        self._local = threading.local()

    # ----- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        for n in range(self._threads_wanted):
            thread = threading.Thread(target=self._run, name=f"sim-webhooks-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=2)
        self._threads.clear()

    def clear(self) -> None:
        with self._cond:
            self._heap.clear()
        with self._log_lock:
            self._log.clear()

    # ----- queue ---------------------------------------------------------------------------

    def enqueue(self, job: Job, *, delay: float = 0.0) -> None:
        if self.paused:
            self._record(job, status=None, error="paused: not sent", url=None, signed=False, ms=0)
            return
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._counter), job))
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def log(self, since: int = 0) -> list[dict[str, Any]]:
        with self._log_lock:
            return [dict(e) for e in self._log if e["seq"] > since]

    def _record(
        self,
        job: Job,
        *,
        status: int | None,
        error: str | None,
        url: str | None,
        signed: bool,
        ms: float,
        sent_at: float | None = None,
    ) -> None:
        with self._log_lock:
            self._seq += 1
            self._log.append(
                {
                    "seq": self._seq,
                    "time": time.time(),
                    # When the request left (epoch seconds, same clock as "time"): latency
                    # measurements start here, after signing. None when nothing was sent.
                    "sent_at": sent_at,
                    "portal": job.portal,
                    "webhook_id": job.webhook_id,
                    "event": job.event,
                    "entity_id": job.entity_id,
                    "url": url,
                    "attempt": job.attempt,
                    "status": status,
                    "error": error,
                    "signed": signed,
                    "duration_ms": round(ms, 1),
                }
            )

    # ----- workers -------------------------------------------------------------------------

    def _next_job(self) -> Job | None:
        """The earliest due job whose webhook has nothing in flight.

        One delivery at a time per webhook keeps first attempts in event order (a pool
        of senders would otherwise reorder them); a retry waiting for its backoff does
        not hold later events back.
        """
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                skipped: list[tuple[float, int, Job]] = []
                chosen: Job | None = None
                next_due: float | None = None
                while self._heap:
                    item = heapq.heappop(self._heap)
                    if item[0] > now:
                        next_due = item[0]
                        heapq.heappush(self._heap, item)
                        break
                    if item[2].webhook_id in self._busy:
                        skipped.append(item)
                        continue
                    chosen = item[2]
                    break
                for item in skipped:
                    heapq.heappush(self._heap, item)
                if chosen is not None:
                    self._busy.add(chosen.webhook_id)
                    return chosen
                wait = 0.5 if next_due is None else min(0.5, max(0.0, next_due - now))
                self._cond.wait(timeout=wait)
            return None

    def _run(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            try:
                self._send(job)
            except Exception as exc:
                # A sender thread must survive anything; the failure is in the log.
                self._record(
                    job, status=None, error=f"simulator: {exc!r}", url=None, signed=False, ms=0
                )
            finally:
                with self._cond:
                    self._busy.discard(job.webhook_id)
                    self._cond.notify_all()

    def _http(self) -> requests.Session:
        # A session per sender thread: keep-alive without sharing one across threads.
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _send(self, job: Job) -> None:
        if self.paused:
            self._record(job, status=None, error="paused: not sent", url=None, signed=False, ms=0)
            return
        signer = self._resolve(job)
        if signer is None:
            self._record(job, status=None, error="webhook deleted", url=None, signed=False, ms=0)
            return
        headers = {"Content-Type": "application/json", "User-Agent": "SalesIQ-Simulator/1"}
        if job.body is not None and job.extra.get("raw"):
            body = job.body  # a fault: these very bytes, signed as any delivery is
            if job.dialect == "v2" and signer.private_key is not None:
                headers[V2_SIGNATURE_HEADER] = sign_v2(signer.private_key, body)
            elif job.dialect != "v2" and signer.secret:
                headers[REFERENCE_SIGNATURE_HEADER] = sign_reference(signer.secret, body)
        elif job.dialect == "v2":
            body = encode({**job.payload, "attempt": job.attempt})
            if signer.private_key is not None:
                headers[V2_SIGNATURE_HEADER] = sign_v2(signer.private_key, body)
        else:
            if job.body is None:
                job.body = encode(job.payload)
            body = job.body
            if signer.secret:
                headers[REFERENCE_SIGNATURE_HEADER] = sign_reference(signer.secret, body)
            if job.attempt > 1:
                headers[ATTEMPT_HEADER] = str(job.attempt)
        signed = V2_SIGNATURE_HEADER in headers or REFERENCE_SIGNATURE_HEADER in headers
        started = time.monotonic()
        sent_at = time.time()
        status: int | None = None
        error: str | None = None
        try:
            # Reference: https://www.zoho.com/salesiq/help/developer-section/webhooks.html
            response = self._http().post(
                signer.url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False
            )
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except requests.RequestException as exc:
            error = type(exc).__name__
        elapsed = (time.monotonic() - started) * 1000
        self._record(
            job,
            status=status,
            error=error,
            url=signer.url,
            signed=signed,
            ms=elapsed,
            sent_at=sent_at,
        )
        if error is not None and job.attempt <= len(self.retry_delays):
            delay = self.retry_delays[job.attempt - 1]
            job.attempt += 1
            self.enqueue(job, delay=delay)
