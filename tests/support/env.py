"""Settings loaded in a child process from a given environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

PROBE = (
    "import json, django; from django.conf import settings; django.setup(); "
    "print(json.dumps({'layer': settings.CHANNEL_LAYERS['default']['BACKEND'], "
    "'prefix': settings.CHANNEL_LAYERS['default']['CONFIG'].get('prefix'), "
    "'db': settings.DATABASES['default']['ENGINE'], "
    "'dcs': {c: [d.accounts_url, d.api_url] for c, d in settings.SIQ_DATA_CENTERS.items()}, "
    "'methods': settings.SIQ_HTTP_METHODS, 'frame_once': settings.SIQ_FRAME_ONCE}))"
)


def run_settings(**env: str) -> subprocess.CompletedProcess:
    base = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "REDIS_PREFIX",
            "SIQ_EXTRA_DATA_CENTERS",
            "SIQ_HTTP_METHODS",
            "SIQ_FRAME_ONCE",
        }
    }
    base.update({"DJANGO_SETTINGS_MODULE": "dashboard.settings", "SECRET_KEY": "x" * 50})
    base.update(env)
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=base, capture_output=True, text=True
    )


def loaded(**env: str) -> dict:
    result = run_settings(**env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def refused(**env: str) -> str:
    result = run_settings(**env)
    assert result.returncode != 0, "settings accepted a bad value"
    assert "ImproperlyConfigured" in result.stderr
    return result.stderr.strip().splitlines()[-1]
