"""Render: the live page of a portal with 2,000 open chats, 500 operators and 50 departments.

Server time is `GET /?portal=…` against serve on loopback, as a browser asks for it (gzip),
from the request to the last byte, warm, several times; the worker keeps polling the portal
meanwhile, as it would. The query count and an in-process time (no daphne, no gzip) come
from Django's test client in this process. Time to usable is the page's own ``live-ready``
performance mark in Chromium (navigation start to the tables sorted, filtered and counted).
"""

from __future__ import annotations

import time
from typing import Any

import requests

from .cpu import CpuMeter
from .figures import summary


def measure(
    *,
    browser: Any,
    serve_url: str,
    portal: Any,
    user: Any,
    session_key: str,
    runs: int,
    chromium_runs: int,
) -> dict[str, Any]:
    from django.db import connection
    from django.template.loader import render_to_string
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from dashboard.figures import queues
    from dashboard.models import Chat, Department, Operator

    path = f"/?portal={portal.pk}"

    # The queue view alone (issue 15): one row per department, read and rendered as the page
    # and a snapshot do, in this process.
    queue_ms: list[float] = []
    queue_count = 0
    for _ in range(max(5, runs)):
        started = time.perf_counter()
        rows = queues.queue_rows([portal])
        render_to_string("figures/parts.html#queues_body", {"queues": rows})
        queue_ms.append((time.perf_counter() - started) * 1000)
        queue_count = len(rows)

    client = Client()
    client.force_login(user)
    client.get(path)
    in_process: list[float] = []
    queries = 0
    for _ in range(max(3, runs // 2)):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            answer = client.get(path)
            in_process.append((time.perf_counter() - started) * 1000)
        queries = len(captured.captured_queries)
        assert answer.status_code == 200, answer.status_code
    html_bytes = len(answer.content)

    http = requests.Session()
    http.cookies.set("sessionid", session_key, domain="127.0.0.1")
    http.headers["Accept-Encoding"] = "gzip"
    # The first render after the portal's data arrived: nothing of it rendered before.
    started = time.perf_counter()
    http.get(serve_url + path).raise_for_status()
    cold = (time.perf_counter() - started) * 1000
    for _ in range(2):
        http.get(serve_url + path).raise_for_status()
    cpu = CpuMeter().start()
    served: list[float] = []
    first_byte: list[float] = []
    wire_bytes = 0
    for _ in range(runs):
        started = time.perf_counter()
        response = http.get(serve_url + path, stream=True)
        first_byte.append(response.elapsed.total_seconds() * 1000)
        body = response.raw.read(decode_content=False)
        served.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        wire_bytes = len(body)
    cpu_used = cpu.stop()

    usable: list[dict[str, float]] = []
    for _ in range(chromium_runs):
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.add_cookies([{"name": "sessionid", "value": session_key, "url": serve_url}])
        page = context.new_page()
        try:
            page.goto(serve_url + path, wait_until="commit", timeout=60_000)
            # Polled with evaluate, not wait_for_function: that one evaluates its text with
            # eval inside the page, which the page's Content-Security-Policy forbids.
            deadline = time.monotonic() + 60
            while not page.evaluate("performance.getEntriesByName('live-ready').length > 0"):
                if time.monotonic() > deadline:
                    raise TimeoutError("the live page never marked live-ready")
                page.wait_for_timeout(10)
            timing = page.evaluate(
                """() => {
                  const nav = performance.getEntriesByType('navigation')[0];
                  const mark = (name) => (performance.getEntriesByName(name)[0] || {}).startTime;
                  return {
                    first_byte: nav.responseStart, last_byte: nav.responseEnd,
                    dom_content_loaded: nav.domContentLoadedEventEnd,
                    live_start: mark('live-start'), live_ready: mark('live-ready'),
                  };
                }"""
            )
            page.wait_for_selector("#connection[data-state=open]", timeout=60_000)
            timing["socket_open"] = page.evaluate("performance.now()")
            usable.append({key: round(value, 1) for key, value in timing.items() if value})
        finally:
            context.close()

    ready = [run["live_ready"] for run in usable]
    return {
        "open_chats": Chat.objects.filter(
            portal=portal, status__in=["waiting", "connected"]
        ).count(),
        "operators": Operator.objects.filter(portal=portal).count(),
        "departments": Department.objects.filter(portal=portal).count(),
        "queue_rows": queue_count,
        "queue_view_ms": summary(queue_ms),
        "server_ms": summary(served),
        "server_first_render_ms": round(cold, 1),
        "server_first_byte_ms": summary(first_byte),
        "in_process_ms": summary(in_process),
        "queries": queries,
        "html_bytes": html_bytes,
        "gzip_bytes": wire_bytes,
        "chromium_usable_ms": summary(ready),
        "chromium_runs": usable,
        "cpu_during_server_runs": cpu_used,
    }
