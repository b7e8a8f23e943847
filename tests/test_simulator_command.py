"""``python -m salesiq_simulator`` as the demo runs it: a child process, stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def test_it_serves_the_demo_world_and_stops_on_sigterm() -> None:
    env = {**os.environ, "DJANGO_DEBUG": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "salesiq_simulator", "--port", "0", "--seed", "3"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"on (http://127\.0\.0\.1:\d+)", first)
        assert match, first
        base = match.group(1)
        extra = process.stdout.readline()
        assert extra.startswith("SIQ_EXTRA_DATA_CENTERS=")
        table = json.loads(extra.split("=", 1)[1].strip().strip("'"))
        assert table["sim"]["api_url"] == f"{base}/dc/sim"
        assert table["sim-eu"]["accounts_url"] == f"{base}/dc/sim-eu/accounts"

        state = requests.get(f"{base}/_sim/state", timeout=5).json()
        screens = {p["screen_name"]: p for p in state["portals"]}
        assert screens["zylker"]["dialect"] == "v2"
        assert {d["name"] for d in screens["zylker"]["departments"]} == {
            "Sales",
            "Support",
            "Billing",
        }
        assert screens["acme-ref"]["dialect"] == "reference"

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert "stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
