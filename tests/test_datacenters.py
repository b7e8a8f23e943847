"""SIQ_EXTRA_DATA_CENTERS reads each URL once, with the parser the HTTP client uses
(urllib3's, inside requests), so "http only for loopback" cannot be fooled by a URL that
one parser reads as localhost and the client connects elsewhere by (issue 13)."""

from __future__ import annotations

import json

import pytest
from urllib3.util import parse_url

from siq_integration.datacenters import DataCenterConfigError, build_table
from tests.support.env import loaded, refused


def table(url: str, *, api_url: str = "http://127.0.0.1:9"):
    return build_table(json.dumps({"x": {"accounts_url": url, "api_url": api_url}}))


@pytest.mark.parametrize(
    ("url", "words"),
    [
        # Python's urlsplit reads the host as localhost; requests connects to evil.com.
        ("http://evil.com\\@localhost", "backslash"),
        ("http://evil.com\\@localhost:9/oauth", "backslash"),
        ("http://evil.com\\@127.0.0.1:9", "backslash"),
        ("http://localhost\\.evil.com/", "backslash"),
        # A user name or password, however written.
        ("http://evil.com%5C@localhost", "user name or password"),
        ("http://user:pw@127.0.0.1:9", "user name or password"),
        ("http://127.0.0.1:9@evil.com/", "user name or password"),
        ("https://user@accounts.zoho.eu", "user name or password"),
        # Characters the parsers strip or split on differently.
        ("http://evil.com\t@localhost", "control character"),
        ("http://evil.com @localhost", "space"),
        ("http://localhost#@evil.com", "query or fragment"),
    ],
)
def test_an_ambiguous_url_is_refused_in_words(url, words):
    with pytest.raises(DataCenterConfigError) as refusal:
        table(url)
    assert words in str(refusal.value) and "accounts_url" in str(refusal.value)


def test_the_attack_url_really_is_read_two_ways():
    """Why the backslash is refused: the client's parser sends it to evil.com."""
    assert parse_url("http://evil.com\\@localhost").host == "evil.com"


def test_loopback_and_https_entries_still_work():
    entry = table("http://127.0.0.1:9/accounts", api_url="http://[::1]:9")["x"]
    assert entry.is_loopback and entry.api_address == "http://[::1]:9"
    entry = table("https://proxy.example/a", api_url="https://proxy.example")["x"]
    assert not entry.is_loopback and entry.accounts_url == "https://proxy.example/a"


def test_the_settings_refuse_it_with_a_clear_message():
    bad = {"x": {"accounts_url": "http://evil.com\\@localhost", "api_url": "http://127.0.0.1:9"}}
    said = refused(SIQ_EXTRA_DATA_CENTERS=json.dumps(bad))
    assert "ImproperlyConfigured: SIQ_EXTRA_DATA_CENTERS entry 'x': accounts_url" in said
    assert "contains a backslash" in said
    good = {"x": {"accounts_url": "http://localhost:9/a", "api_url": "http://127.0.0.1:9"}}
    assert loaded(SIQ_EXTRA_DATA_CENTERS=json.dumps(good))["dcs"]["x"][0] == "http://localhost:9/a"
