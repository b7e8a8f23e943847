"""One run of every measurement, in this order: memory (on a fresh serve), the floor, event
to screen, ingest, render; the API economy runs alongside all of them in a thread and the
run waits for it at the end. Prints the table, writes var/bench/results-<time>.json and
var/bench/latest.json."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import traceback
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import economy as economy_phase
from . import ingest as ingest_phase
from . import memory as memory_phase
from . import render as render_phase
from . import report
from . import screen as screen_phase
from .environment import (
    BENCH_DIR,
    CHROMIUM_FLAGS,
    Child,
    Serve,
    bench_env,
    connect_portal,
    free_port,
    make_admin,
    raise_open_files,
    session_keys,
    setup_django,
    wait_until,
)

PHASES = ("memory", "floor", "screen", "ingest", "render", "economy")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Measure the dashboard against the simulator."
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="shorter runs for development (1-minute API economy, 20 s of events)",
    )
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(PHASES)}")
    parser.add_argument("--out", type=Path, default=BENCH_DIR)
    parser.add_argument("--keep", action="store_true", help="keep the run's database and logs")
    parser.add_argument(
        "--clients", type=int, default=200, help="websocket clients besides the page"
    )
    parser.add_argument("--rate", type=float, default=50, help="events a second")
    parser.add_argument("--seconds", type=float, help="seconds of events measured (60; quick 20)")
    parser.add_argument("--idle-clients", type=int, default=1000)
    parser.add_argument("--economy-seconds", type=float, help="(300; quick 60)")
    parser.add_argument("--ingest-chats", type=int, help="five webhooks each (600; quick 200)")
    parser.add_argument("--ingest-connections", type=int, default=8)
    parser.add_argument("--render-runs", type=int, help="(10; quick 5)")
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (20 if args.quick else 60)
    args.economy_seconds = args.economy_seconds or (60 if args.quick else 300)
    args.ingest_chats = args.ingest_chats or (200 if args.quick else 600)
    args.render_runs = args.render_runs or (5 if args.quick else 10)
    args.phases = [p.strip() for p in args.only.split(",") if p.strip()] or list(PHASES)
    unknown = set(args.phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    return args


def say(text: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    open_files = raise_open_files()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work = BENCH_DIR / f"work-{stamp}"
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "phases": args.phases,
        "settings": {
            "clients": args.clients,
            "rate_per_second": args.rate,
            "event_seconds": args.seconds,
            "idle_clients": args.idle_clients,
            "economy_seconds": args.economy_seconds,
            "ingest_chats": args.ingest_chats,
            "ingest_connections": args.ingest_connections,
            "render_runs": args.render_runs,
            "open_files_limit": open_files,
        },
        "load_average_at_start": report.load_average(),
        "errors": {},
    }
    say(f"work directory {work} (throw-away database and secrets)")
    failed = False
    with ExitStack() as stack:
        from salesiq_simulator import Simulator

        sim = Simulator(seed=7, life=False)
        sim.start()
        stack.callback(sim.stop)
        env = bench_env(work, sim.extra_data_centers_json())
        setup_django(env)
        user, _ = make_admin()
        serve = Serve(env, work / "serve.log", free_port())
        to_serve = f"{serve.url}/webhooks/salesiq/{{portal}}/"

        sim.add_portal("live", operators=12)
        sim.add_portal("floor", operators=12)
        sim.add_portal("ingest", operators=12, open_chats=0)
        sim.add_portal("free", operators=12, rate_limit_per_minute=10)
        for screen in ("live", "floor", "ingest"):
            for op in sim.state(screen)["portals"][0]["operators"]:
                sim.set_operator_status(op["id"], "available")
        live = connect_portal(
            sim,
            screen="live",
            name="Live (bench)",
            plan="professional",
            calls_per_minute=50,
            calls_per_day=20_000,
            webhook_url=to_serve,
        )
        free = None
        if "economy" in args.phases:
            free = connect_portal(
                sim,
                screen="free",
                name="Free plan (bench)",
                plan="free",
                calls_per_minute=10,
                calls_per_day=1_000,
                webhook_url=to_serve,
            )
        keys = session_keys(user, max(args.clients, args.idle_clients))
        cookies_file = work / "sessions.txt"
        cookies_file.write_text("\n".join(keys) + "\n")
        os.chmod(cookies_file, 0o600)

        say("starting manage.py serve (daphne and the worker, in-memory channel layer)")
        serve.start()
        stack.callback(serve.stop)
        _wait_for_first_polls([p for p in (live, free) if p is not None])
        results["serve_pid"] = serve.pid

        economy = None
        if free is not None:
            economy = economy_phase.Economy(
                sim=sim,
                serve_url=serve.url,
                portal=free,
                session_key=keys[0],
                seconds=args.economy_seconds,
            )
            economy.start()
            say(f"API economy: the Free-plan portal is polled for {args.economy_seconds:.0f} s")

        from playwright.sync_api import sync_playwright

        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(
            executable_path=os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"),
            args=CHROMIUM_FLAGS,
        )
        stack.callback(browser.close)
        results["machine"] = report.machine(browser.version)

        origin = serve.url
        since = int(time.time() * 1000)
        live_ws = f"ws://127.0.0.1:{serve.port}/ws/live/?portals={live.pk}&since={since}"

        def phase(name: str, run) -> None:
            nonlocal failed
            if name not in args.phases:
                return
            say(f"{name} …")
            started = time.monotonic()
            try:
                results[_key(name)] = run()
            except Exception as error:
                failed = True
                results["errors"][name] = f"{type(error).__name__}: {error}"
                traceback.print_exc()
            say(f"{name} done in {time.monotonic() - started:.0f} s")

        phase(
            "memory",
            lambda: memory_phase.measure(
                serve_pid=serve.pid,
                ws_url=live_ws,
                origin=origin,
                cookies_file=cookies_file,
                clients=args.idle_clients,
                work=work,
            ),
        )
        phase("floor", lambda: _floor(sim, browser, args, work, stack))
        phase(
            "screen",
            lambda: screen_phase.measure(
                browser=browser,
                sim=sim,
                screen="live",
                label="dashboard",
                page_url=f"{serve.url}/?portal={live.pk}",
                ready_selector="#connection[data-state=open]",
                cookie={"name": "sessionid", "value": keys[0], "url": serve.url},
                ws_url=live_ws,
                origin=origin,
                cookies_file=cookies_file,
                clients=args.clients,
                rate=args.rate,
                warmup=5,
                seconds=args.seconds,
                work=work,
            ),
        )
        if "event_to_screen" in results and "floor" in results:
            results["event_to_screen_ratio"] = _ratio(results["event_to_screen"], results["floor"])
        phase("ingest", lambda: _ingest(sim, serve, args))
        phase("render", lambda: _render(sim, browser, serve, user, keys[0], args, to_serve))

        if economy is not None:
            left = economy.started + args.economy_seconds - time.time()
            if left > 0:
                say(f"waiting {left:.0f} s for the API economy run to finish")
            economy.join(timeout=max(0, left) + 60)
            economy.stopping.set()
            results["api_economy"] = economy.result()
        results["load_average_at_end"] = report.load_average()
        results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")

    print()
    results["table"] = report.print_table(results)
    path = report.write(results, args.out)
    print(f"\nWrote {path} and {args.out / 'latest.json'}")
    if results["errors"]:
        print(f"Phases that failed: {', '.join(results['errors'])}", file=sys.stderr)
    if args.keep or failed:
        print(f"Kept {work} (database, serve.log, client logs)")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


def _key(phase: str) -> str:
    return {"screen": "event_to_screen", "economy": "api_economy"}.get(phase, phase)


def _wait_for_first_polls(portals: list[Any]) -> None:
    from dashboard.models import PortalSync

    wait_until(
        lambda: (
            PortalSync.objects.filter(
                portal__in=portals, operators_polled_at__isnull=False, chats_polled_at__isnull=False
            ).count()
            == len(portals)
        ),
        timeout=120,
        what="the worker's first polls",
    )


def _ratio(screen: dict[str, Any], floor: dict[str, Any]) -> dict[str, float | None]:
    ours, theirs = screen["event_to_screen_ms"], floor["event_to_screen_ms"]
    return {
        share: round(ours[share] / theirs[share], 1) if ours[share] and theirs[share] else None
        for share in ("p50", "p95", "p99")
    }


def _floor(sim: Any, browser: Any, args: argparse.Namespace, work: Path, stack: ExitStack):
    floor = Child(["-m", "bench.floor"], work / "floor.log")
    stack.callback(floor.stop)
    ports = floor.next(timeout=30)
    connect_portal(
        sim,
        screen="floor",
        name="Floor (bench)",
        plan="professional",
        calls_per_minute=50,
        calls_per_day=20_000,
        webhook_url=f"http://127.0.0.1:{ports['http']}/hook",
    )
    try:
        return screen_phase.measure(
            browser=browser,
            sim=sim,
            screen="floor",
            label="floor",
            page_url=f"http://127.0.0.1:{ports['http']}/",
            ready_selector="body[data-state=open]",
            cookie=None,
            ws_url=f"ws://127.0.0.1:{ports['ws']}/",
            origin=f"http://127.0.0.1:{ports['http']}",
            cookies_file=None,
            clients=args.clients,
            rate=args.rate,
            warmup=5,
            seconds=args.seconds,
            work=work,
        )
    finally:
        floor.stop()


def _ingest(sim: Any, serve: Serve, args: argparse.Namespace) -> dict[str, Any]:
    capture = ingest_phase.Capture()
    try:
        portal = connect_portal(
            sim,
            screen="ingest",
            name="Ingest (bench)",
            plan="professional",
            calls_per_minute=50,
            calls_per_day=20_000,
            webhook_url=capture.url,
        )
        return ingest_phase.measure(
            sim=sim,
            portal=portal,
            capture=capture,
            serve_port=serve.port,
            chats=args.ingest_chats,
            connections=args.ingest_connections,
        )
    finally:
        capture.close()


def _render(
    sim: Any,
    browser: Any,
    serve: Serve,
    user: Any,
    session_key: str,
    args: argparse.Namespace,
    to_serve: str,
) -> dict[str, Any]:
    from dashboard.models import Chat, Department, Operator, PortalSync

    sim.add_portal("scale", operators=500, open_chats=2000, departments=50)
    portal = connect_portal(
        sim,
        screen="scale",
        name="Scale (bench)",
        plan="enterprise",
        calls_per_minute=100,
        calls_per_day=50_000,
        webhook_url=to_serve,
    )
    say("render: waiting for the worker to bring in 2,000 chats, 500 operators, 50 departments")
    wait_until(
        lambda: (
            Chat.objects.filter(portal=portal, status__in=["waiting", "connected"]).count() >= 2000
            and Operator.objects.filter(portal=portal).count() >= 500
            and Department.objects.filter(portal=portal).count() >= 50
            and PortalSync.objects.filter(portal=portal, chats_polled_at__isnull=False).exists()
        ),
        timeout=600,
        what="the scale portal's first polls",
        every=1.0,
    )
    return render_phase.measure(
        browser=browser,
        serve_url=serve.url,
        portal=portal,
        user=user,
        session_key=session_key,
        runs=args.render_runs,
        chromium_runs=2 if args.quick else 3,
    )
