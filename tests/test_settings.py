"""The settings module reads the environment and names the variable when a value is bad."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.env import loaded, refused

ROOT = Path(__file__).resolve().parent.parent


def test_it_defaults_to_sqlite_and_the_in_memory_layer(tmp_path):
    values = loaded(SIQ_VAR_DIR=str(tmp_path))
    assert values["db"] == "django.db.backends.sqlite3"
    # Channels' own (live HTML skips it: dashboard/realtime/fanout.py); frame-once is opt-in.
    assert values["layer"] == "channels.layers.InMemoryChannelLayer"
    assert values["frame_once"] is False
    assert values["dcs"]["eu"] == ["https://accounts.zoho.eu", "https://salesiq.zoho.eu"]


def test_it_switches_to_postgres_and_redis_from_urls():
    values = loaded(
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/test", REDIS_URL="redis://127.0.0.1:6379/0"
    )
    assert values["db"] == "django.db.backends.postgresql"
    assert values["layer"] == "channels_redis.core.RedisChannelLayer"
    assert values["prefix"] == "asgi"  # channels-redis's own default


def test_it_keeps_deployments_sharing_one_redis_apart_by_prefix():
    values = loaded(REDIS_URL="redis://127.0.0.1:6379/0", REDIS_PREFIX="supervisor-staging")
    assert values["prefix"] == "supervisor-staging"


def test_it_turns_frame_once_on_only_when_asked_and_refuses_a_non_boolean():
    assert loaded(SIQ_FRAME_ONCE="1")["frame_once"] is True
    assert loaded(SIQ_FRAME_ONCE="off")["frame_once"] is False
    assert "SIQ_FRAME_ONCE" in refused(SIQ_FRAME_ONCE="sometimes")


def test_it_adds_and_overrides_data_centres():
    extra = {
        "sim": {
            "name": "Simulator",
            "accounts_url": "http://127.0.0.1:9/a",
            "api_url": "http://127.0.0.1:9",
        },
        "eu": {
            "accounts_url": "https://proxy.example/accounts",
            "api_url": "https://proxy.example",
        },
    }
    values = loaded(SIQ_EXTRA_DATA_CENTERS=json.dumps(extra))
    assert values["dcs"]["sim"] == ["http://127.0.0.1:9/a", "http://127.0.0.1:9"]
    assert values["dcs"]["eu"] == ["https://proxy.example/accounts", "https://proxy.example"]
    assert values["dcs"]["us"][0] == "https://accounts.zoho.com"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SIQ_EXTRA_DATA_CENTERS": "{not json"}, "SIQ_EXTRA_DATA_CENTERS"),
        (
            {
                "SIQ_EXTRA_DATA_CENTERS": '{"x": {"accounts_url": "ftp://a", "api_url": "https://b"}}'
            },
            "SIQ_EXTRA_DATA_CENTERS",
        ),
        (
            {
                "SIQ_EXTRA_DATA_CENTERS": '{"x": {"accounts_url": "http://zoho.example", "api_url": "https://b"}}'
            },
            "SIQ_EXTRA_DATA_CENTERS",
        ),
        ({"SIQ_EXTRA_DATA_CENTERS": '{"x": {"api_url": "https://b"}}'}, "SIQ_EXTRA_DATA_CENTERS"),
        ({"TOKEN_ENCRYPTION_KEYS": "not-a-fernet-key"}, "TOKEN_ENCRYPTION_KEYS"),
        ({"DATABASE_URL": "nosuchdb://x"}, "DATABASE_URL"),
        ({"REDIS_URL": "127.0.0.1:6379"}, "REDIS_URL"),
        ({"SIQ_HTTP_METHODS": '{"v2.conversation_close": "TELEPORT"}'}, "SIQ_HTTP_METHODS"),
        ({"SIQ_HTTP_METHODS": '{"v2.nope": "POST"}'}, "SIQ_HTTP_METHODS"),
        ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG"),
        ({"SIQ_ACTION_RESERVE_SHARE": "2"}, "SIQ_ACTION_RESERVE_SHARE"),
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
    ],
)
def test_it_names_the_variable_when_a_value_is_bad(env, named):
    assert named in refused(**env)


def test_it_makes_the_unconfirmed_http_methods_settings():
    values = loaded(SIQ_HTTP_METHODS='{"v2.conversation_close": "put"}')
    assert values["methods"]["v2.conversation_close"] == "PUT"
    assert values["methods"]["v2.operator_status"] == "PUT"
