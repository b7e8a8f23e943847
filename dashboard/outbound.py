"""Outbound HTTP to addresses an admin types (an alert rule's escalation webhook).

Every such call goes through ``session()``: one ``requests`` session built on
requests-hardened, whose adapter resolves the host name, refuses loopback, private,
link-local and metadata addresses (169.254.169.254, fd00:ec2::254) and then connects to
the very address it checked, so a name cannot resolve once to a public address for the
check and again to 127.0.0.1 for the connection. The check runs again on every redirect
hop (at most ``MAX_REDIRECTS``), and only https is spoken, unless the host is listed in
``SIQ_OUTBOUND_ALLOW_HOSTS`` ("name" or "name:port"): those may use http and reach
internal addresses (a chat server inside the company network, a test receiver).

What comes back is kept to a status and a short reason (``Reply``): never the body, which
for an internal service could be anything.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from requests_hardened import Config, HTTPSession
from requests_hardened.ip_filter import InvalidIPAddress
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 3
REASON_LIMIT = 200
USER_AGENT = "SalesIQ-Supervisor (alert escalation)"
ALLOW_SETTING = "SIQ_OUTBOUND_ALLOW_HOSTS"

# Cloud metadata services, named so the refusal says what they are.
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


class Refused(requests.RequestException):
    """The address may not be called; ``str()`` says why, for a supervisor."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # lower case; an IPv6 address without brackets
    port: int

    @property
    def allowed(self) -> bool:
        """Listed in SIQ_OUTBOUND_ALLOW_HOSTS, by name or by name:port."""
        listed = {entry.strip().lower() for entry in settings.SIQ_OUTBOUND_ALLOW_HOSTS}
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return bool(listed & {self.host, shown, f"{shown}:{self.port}"})


def parse(url: str) -> Target:
    """The URL as the HTTP client will read it (urllib3's parser, which requests uses), or
    ``Refused``: no user name or password, no backslash, http or https, a host."""
    if not isinstance(url, str) or not url.strip():
        raise Refused("No address is given.")
    if "\\" in url or any(ord(c) < 33 for c in url):
        raise Refused("The address contains a backslash, a space or a control character.")
    try:
        parts = parse_url(url)
    except LocationParseError:
        raise Refused("The address is not a valid URL.") from None
    if parts.scheme not in ("http", "https"):
        raise Refused("The address must start with https://")
    if parts.auth is not None:
        raise Refused("The address may not contain a user name or password before the host.")
    if not parts.host:
        raise Refused("The address has no host name.")
    host = parts.host.lower().strip("[]")
    return Target(parts.scheme, host, parts.port or (443 if parts.scheme == "https" else 80))


def _forbidden_sentence(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        what = "a cloud metadata service"
    elif address.is_loopback:
        what = "this server itself (a loopback address)"
    elif address.is_link_local:
        what = "a link-local address"
    elif address.is_global and not address.is_multicast:
        return None
    else:
        what = "a private or reserved network address"
    return (
        f"The address leads to {what}; escalations only go to public addresses "
        f"(an administrator can allow a host with {ALLOW_SETTING})."
    )


def _literal_refusal(target: Target) -> str | None:
    """Why an address written as an IP (``https://127.0.0.1/``) may not be called."""
    try:
        address = ipaddress.ip_address(target.host)
    except ValueError:
        return None
    return _forbidden_sentence(address)


def refusal(url: str, *, resolve: bool = True) -> str | None:
    """Why ``url`` may not be called, in words, or None. Resolves the host name (all its
    addresses) when ``resolve``; a name that does not resolve now is let through (the
    session checks again, on the address it connects to, when it calls)."""
    try:
        target = parse(url)
    except Refused as refused:
        return str(refused)
    if target.allowed:
        return None
    if literal := _literal_refusal(target):
        return literal
    if target.scheme != "https":
        return "The address must start with https://"
    if not resolve:
        return None
    try:
        found = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        found = []
    for _family, _type, _proto, _name, sockaddr in found:
        try:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        except ValueError:
            continue
        if sentence := _forbidden_sentence(address):
            return sentence
    return None


def masked(url: str) -> str:
    """``https://hooks.slack.com/…``: the scheme and host only (a Slack path is a secret)."""
    try:
        target = parse(url)
    except Refused:
        return "…"
    default = 443 if target.scheme == "https" else 80
    host = f"[{target.host}]" if ":" in target.host else target.host
    port = f":{target.port}" if target.port != default else ""
    return f"{target.scheme}://{host}{port}/…"


class _Session(HTTPSession):
    """requests-hardened's session, choosing per request (``post_json`` makes one per
    redirect hop) between its address filter and a plain adapter for the allowed hosts."""

    def __init__(self) -> None:
        super().__init__(
            Config(
                ip_filter_enable=True,
                ip_filter_allow_loopback_ips=False,
                never_redirect=False,
                default_timeout=(5, 5),  # each call passes SIQ_OUTBOUND_TIMEOUT
                user_agent_override=USER_AGENT,
            )
        )
        self.trust_env = False  # no .netrc credentials or environment proxies for these
        self._allowed_adapter = HTTPAdapter()

    def resolve_redirects(self, *args: Any, **kwargs: Any) -> Any:
        """None here: ``requests`` reads each redirect's whole body first (even with
        ``allow_redirects=False``, to prepare ``Response.next``). ``post_json`` follows
        them itself, unread."""
        return iter(())

    def get_adapter(self, url: str) -> Any:
        target = parse(url)
        if target.allowed:
            return self._allowed_adapter
        if literal := _literal_refusal(target):
            raise Refused(literal)
        if target.scheme != "https":
            raise Refused("The address must start with https://")
        # Names are resolved, checked and pinned by requests-hardened's adapter.
        return super().get_adapter(url)


_session: _Session | None = None
_lock = threading.Lock()


def session() -> requests.Session:
    """The one session for outbound calls to admin-typed addresses."""
    global _session
    with _lock:
        if _session is None:
            _session = _Session()
        return _session


@dataclass(frozen=True)
class Reply:
    ok: bool
    status: int | None  # the HTTP status, None when nothing was answered
    reason: str  # at most REASON_LIMIT characters; never the body


def _phrase(text: str) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def post_json(url: str, body: bytes) -> Reply:
    """POST ``body`` (JSON) to ``url`` through ``session()``; the status and why, only.

    Redirects are followed here, hop by hop, rather than by ``requests``, which reads each
    redirect's whole body: no body is ever read, each hop's address is checked again by
    the session, and a fourth redirect is refused. 307 and 308 repeat the POST; 301, 302
    and 303 turn it into a GET without a body, as ``requests`` and browsers do."""
    timeout = settings.SIQ_OUTBOUND_TIMEOUT
    method, data = "POST", body
    try:
        for _hop in range(MAX_REDIRECTS + 1):
            response = session().request(
                method,
                url,
                data=data,
                headers={"Content-Type": "application/json"} if data else {},
                timeout=timeout,
                stream=True,
                allow_redirects=False,
            )
            with response:  # closed unread
                status, words = response.status_code, _phrase(response.reason or "")
                location = session().get_redirect_target(response)
            if not location:
                break
            url = urljoin(url, location)
            if status not in (307, 308):
                method, data = "GET", None
        else:
            return Reply(False, None, f"The address redirected more than {MAX_REDIRECTS} times.")
    except Refused as refused:
        return Reply(False, None, str(refused)[:REASON_LIMIT])
    except InvalidIPAddress as refused:
        try:
            sentence = _forbidden_sentence(ipaddress.ip_address(str(refused)))
        except ValueError:
            sentence = None
        sentence = sentence or "The address leads to an address that is not a public one."
        return Reply(False, None, sentence[:REASON_LIMIT])
    except requests.Timeout:
        return Reply(False, None, f"The address did not answer within {timeout:g} seconds.")
    except requests.RequestException as error:
        logger.info("escalation webhook not reached: %s", type(error).__name__)
        return Reply(False, None, "The address could not be reached.")
    ok = 200 <= status < 300
    reason = f"HTTP {status}" + (f" {words}" if words else "")
    if 300 <= status < 400:
        reason += " (a redirect without a Location)"
    return Reply(ok, status, reason[:REASON_LIMIT])
