"""The Zoho data-centre table, as data.

Each entry is keyed by the code Zoho sends back as ``location`` on the OAuth
callback. An entry names the Zoho Accounts server (OAuth) and the SalesIQ API
base (everything before ``/api/v2``). Deployments add or override entries with
``SIQ_EXTRA_DATA_CENTERS`` (JSON): an on-premise proxy, a staging portal, the
simulator.

This module is imported by the settings module, so it must not import Django
models or anything that needs configured settings.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import Url, parse_url

# Reference: https://www.zoho.com/salesiq/help/developer-section/rest-api-v2.html
DEFAULT_DATA_CENTERS: dict[str, dict[str, str]] = {
    "us": {
        "name": "United States",
        "accounts_url": "https://accounts.zoho.com",
        "api_url": "https://salesiq.zoho.com",
    },
    "eu": {
        "name": "Europe",
        "accounts_url": "https://accounts.zoho.eu",
        "api_url": "https://salesiq.zoho.eu",
    },
    "in": {
        "name": "India",
        "accounts_url": "https://accounts.zoho.in",
        "api_url": "https://salesiq.zoho.in",
    },
    "au": {
        "name": "Australia",
        "accounts_url": "https://accounts.zoho.com.au",
        "api_url": "https://salesiq.zoho.com.au",
    },
    "cn": {
        "name": "China",
        "accounts_url": "https://accounts.zoho.com.cn",
        "api_url": "https://salesiq.zoho.com.cn",
    },
    "jp": {
        "name": "Japan",
        "accounts_url": "https://accounts.zoho.jp",
        "api_url": "https://salesiq.zoho.jp",
    },
    # The Canadian accounts host is our best reading, not confirmed by Zoho's pages.
    "ca": {
        "name": "Canada",
        "accounts_url": "https://accounts.zohocloud.ca",
        "api_url": "https://salesiq.zoho.ca",
    },
}

_LOOPBACK_NAMES = {"localhost"}


class DataCenterConfigError(ValueError):
    """A data-centre entry is unusable; the message says which and why."""


@dataclass(frozen=True, slots=True)
class DataCenter:
    code: str
    name: str
    accounts_url: str
    api_url: str

    @property
    def is_loopback(self) -> bool:
        return _is_loopback(self.accounts_url) and _is_loopback(self.api_url)

    @property
    def api_address(self) -> str:
        """Where this entry's SalesIQ API answers, written one way: two codes with the same
        address (an alias in SIQ_EXTRA_DATA_CENTERS) reach the same portals."""
        parts = parse_url(self.api_url)
        scheme = (parts.scheme or "").lower()
        host = (parts.host or "").lower()
        default = {"https": 443, "http": 80}.get(scheme)
        port = f":{parts.port}" if parts.port and parts.port != default else ""
        return f"{scheme}://{host}{port}{(parts.path or '').rstrip('/')}"


def _host(url: str) -> str:
    """The host the HTTP client connects to: read by urllib3's parser, the one requests
    uses, so this module and the client cannot read a URL two ways."""
    try:
        return (parse_url(url).host or "").lower().strip("[]")
    except LocationParseError:
        return ""


def _is_loopback(url: str) -> bool:
    host = _host(url)
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse(code: str, field: str, value: str) -> Url:
    """``value`` parsed once, by urllib3 (what requests connects by), and refused when it
    could be read another way: a backslash, a space or control character, a user name or
    password before the host, or a host that Python's own parser reads differently."""
    where = f"entry {code!r}: {field} {value!r}"
    if "\\" in value:
        raise DataCenterConfigError(f"{where} contains a backslash; write the URL without one")
    if any(ord(c) < 33 or ord(c) == 127 for c in value):
        raise DataCenterConfigError(f"{where} contains a space or control character")
    try:
        parts = parse_url(value)
    except LocationParseError:
        raise DataCenterConfigError(f"{where} is not a URL") from None
    if parts.auth is not None or "@" in (parts.netloc or ""):
        raise DataCenterConfigError(
            f"{where} carries a user name or password before the host; remove the part "
            "before '@' (credentials never go in this URL)"
        )
    try:
        other = (urlsplit(value).hostname or "").lower()
    except ValueError:
        other = None
    if other != (parts.host or "").lower().strip("[]"):
        raise DataCenterConfigError(
            f"{where} names its host ambiguously ({parts.host!r} or {other!r}); "
            "write a plain scheme://host[:port]/path URL"
        )
    return parts


def _check_url(code: str, field: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise DataCenterConfigError(f"entry {code!r}: {field} must be a non-empty URL string")
    parts = _parse(code, field, value)
    if parts.scheme not in {"https", "http"} or not parts.host:
        raise DataCenterConfigError(
            f"entry {code!r}: {field} {value!r} is not an http(s) URL with a host"
        )
    if parts.query is not None or parts.fragment is not None:
        raise DataCenterConfigError(f"entry {code!r}: {field} must not carry a query or fragment")
    # Plain http would send client secrets and tokens in clear text; it is only
    # acceptable when the other end is on this machine (the simulator, a local proxy).
    if parts.scheme == "http" and not _is_loopback(value):
        raise DataCenterConfigError(
            f"entry {code!r}: {field} uses plain http to {parts.host}; "
            "only loopback hosts may use http, everything else needs https"
        )
    return value.rstrip("/")


def _entry(code: object, raw: object) -> DataCenter:
    if not isinstance(code, str) or not code.strip():
        raise DataCenterConfigError("every entry needs a non-empty code (the Zoho 'location')")
    code = code.strip().lower()
    if not isinstance(raw, dict):
        raise DataCenterConfigError(f"entry {code!r} must be an object")
    unknown = set(raw) - {"name", "accounts_url", "api_url", "code"}
    if unknown:
        raise DataCenterConfigError(
            f"entry {code!r} has unknown keys: {', '.join(sorted(unknown))}"
        )
    name = raw.get("name") or code.upper()
    if not isinstance(name, str):
        raise DataCenterConfigError(f"entry {code!r}: name must be a string")
    return DataCenter(
        code=code,
        name=name,
        accounts_url=_check_url(code, "accounts_url", raw.get("accounts_url")),
        api_url=_check_url(code, "api_url", raw.get("api_url")),
    )


def build_table(extra_json: str | None) -> dict[str, DataCenter]:
    """The default table with ``extra_json`` (SIQ_EXTRA_DATA_CENTERS) applied.

    ``extra_json`` is an object keyed by code, or a list of objects each with a
    ``code``. Raises DataCenterConfigError with a message fit for an operator.
    """
    table = {code: _entry(code, raw) for code, raw in DEFAULT_DATA_CENTERS.items()}
    if not extra_json or not extra_json.strip():
        return table
    try:
        extra = json.loads(extra_json)
    except json.JSONDecodeError as exc:
        raise DataCenterConfigError(f"is not valid JSON ({exc.msg} at char {exc.pos})") from None
    if isinstance(extra, list):
        items = []
        for raw in extra:
            if not isinstance(raw, dict):
                raise DataCenterConfigError("a list must hold objects")
            items.append((raw.get("code"), raw))
    elif isinstance(extra, dict):
        items = list(extra.items())
    else:
        raise DataCenterConfigError("must be a JSON object keyed by code, or a list of objects")
    for code, raw in items:
        entry = _entry(code, raw)
        table[entry.code] = entry
    return table
