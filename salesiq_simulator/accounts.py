"""A fake Zoho Accounts: clients, users per data centre, consent, codes and tokens.

Token lifetimes run on the wall clock (not the world clock), so a test can make a
token expire by waiting a second with a short TTL, and stepping life forward never
logs anyone out.
"""

from __future__ import annotations

import hashlib
import html
import json
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

CODE_TTL = 120.0
REFRESH_WINDOW = 600.0
REFRESH_PER_WINDOW = 10
REFRESH_TOKENS_PER_USER = 20
API_DOMAIN = "https://www.zohoapis.com"

TOO_MANY = {
    "error": "Access Denied",
    "error_description": "You have made too many requests continuously. "
    "Please try again after some time.",
}

# Plain, readable pages: an admin clicks through these in the demo.
_PAGE_STYLE = (
    "body{margin:0;font:15px system-ui,sans-serif;background:#f4f6f9;color:#1c2430}"
    "header{background:#e42527;color:#fff;padding:.7rem 1.2rem;font-weight:600}"
    "header span{font-weight:400;opacity:.85;margin-left:.4rem}"
    "main{max-width:560px;margin:8vh auto;background:#fff;border:1px solid #dde3ea;"
    "border-radius:8px;padding:1.4rem 1.6rem}"
    "h1{font-size:1.25rem;margin:0 0 .8rem}.muted{color:#5d6b7e}"
    "ul{padding-left:1.2rem}code{font-size:.9rem}"
    "label{display:block;font-weight:600;margin:.8rem 0 .3rem}"
    "select{width:100%;font:inherit;padding:.45rem;border:1px solid #c4cdd8;border-radius:6px}"
    ".buttons{margin-top:1.1rem;display:flex;gap:.6rem}"
    "button{font:inherit;font-weight:600;padding:.5rem 1.2rem;border-radius:6px;"
    "border:1px solid #c4cdd8;background:#fff;cursor:pointer}"
    "#accept{background:#1f6feb;border-color:#1f6feb;color:#fff}"
)


def fingerprint(token: str | None) -> str | None:
    """An 8-character stand-in for a token in logs: enough to tell tokens apart, useless to use."""
    if not token:
        return None
    return hashlib.sha256(token.encode()).hexdigest()[:8]


def parse_scopes(raw: str) -> list[str]:
    return [s for s in raw.replace(" ", ",").split(",") if s]


def has_scope(granted: frozenset[str], needed: str) -> bool:
    """``SalesIQ.conversations.READ`` is met by itself or by ``SalesIQ.conversations.ALL``."""
    needed = needed.lower()
    if needed in granted:
        return True
    service_resource = needed.rsplit(".", 1)[0]
    return f"{service_resource}.all" in granted


@dataclass
class Client:
    client_id: str
    client_secret: str
    # None: any redirect URI is accepted (the default client: the product's URL is not known here).
    redirect_uris: list[str] | None = None


@dataclass
class User:
    email: str
    dc: str
    name: str
    zuid: str
    # Screen names this user reaches in its DC; None means every portal of the DC.
    portals: list[str] | None = None
    drop_scopes: set[str] = field(default_factory=set)


@dataclass
class Code:
    code: str
    client_id: str
    email: str
    dc: str
    scopes: frozenset[str]
    redirect_uri: str
    issued: float
    with_refresh: bool


@dataclass
class RefreshToken:
    token: str
    client_id: str
    email: str
    dc: str
    scopes: frozenset[str]
    issued: float
    revoked: bool = False
    grants: deque[float] = field(default_factory=deque)


@dataclass
class AccessToken:
    token: str
    client_id: str
    email: str
    dc: str
    scopes: frozenset[str]
    expires_at: float
    refresh_token: str | None
    revoked: bool = False

    def valid(self, now: float) -> bool:
        return not self.revoked and now < self.expires_at


@dataclass
class AccountsAnswer:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    error_code: str | None = None
    token_fp: str | None = None


def _json(status: int, payload: dict[str, Any], *, token_fp: str | None = None) -> AccountsAnswer:
    error = payload.get("error") if isinstance(payload.get("error"), str) else None
    return AccountsAnswer(
        status=status,
        body=json.dumps(payload).encode(),
        error_code=error,
        token_fp=token_fp,
    )


def _redirect(location: str) -> AccountsAnswer:
    return AccountsAnswer(
        status=302, body=b"", content_type="text/plain", headers={"Location": location}
    )


def _with_params(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


class Accounts:
    """All of Zoho Accounts the product talks to, for every simulated data centre.

    Settings tests flip: ``auto_approve``, ``approve_as`` (an email), ``drop_scopes``
    (taken from every grant), ``legacy_expires_in``, ``token_ttl`` (seconds).
    """

    def __init__(
        self,
        *,
        accounts_url: Callable[[str], str],
        token_ttl: float = 3600,
        api_domain: Callable[[str], str] | None = None,
    ) -> None:
        self._accounts_url = accounts_url
        # The API host of a data centre (Zoho CRM answers there): the token's ``api_domain``.
        self._api_domain = api_domain or (lambda _dc: API_DOMAIN)
        self.auto_approve = False
        self.approve_as: str | None = None
        self.drop_scopes: set[str] = set()
        self.legacy_expires_in = False
        self.token_ttl = float(token_ttl)
        self.clients: dict[str, Client] = {}
        self.users: dict[str, User] = {}
        self.codes: dict[str, Code] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.consented: set[tuple[str, str]] = set()
        self._zuid = 70000000

    # ----- set-up --------------------------------------------------------------------------

    def add_client(
        self, client_id: str, client_secret: str, redirect_uris: list[str] | None = None
    ) -> Client:
        client = Client(client_id, client_secret, redirect_uris)
        self.clients[client_id] = client
        return client

    def add_user(
        self,
        email: str,
        dc: str,
        *,
        name: str | None = None,
        portals: list[str] | None = None,
        drop_scopes: list[str] | None = None,
    ) -> User:
        key = email.lower()
        user = self.users.get(key)
        if user is None:
            self._zuid += 1
            user = User(email=email, dc=dc, name=name or email.split("@")[0], zuid=str(self._zuid))
            self.users[key] = user
        user.dc = dc
        if name:
            user.name = name
        if portals is not None:
            user.portals = list(portals)
        if drop_scopes is not None:
            user.drop_scopes = {s.lower() for s in drop_scopes}
        return user

    def settings(self) -> dict[str, Any]:
        return {
            "auto_approve": self.auto_approve,
            "approve_as": self.approve_as,
            "drop_scopes": sorted(self.drop_scopes),
            "legacy_expires_in": self.legacy_expires_in,
            "token_ttl": self.token_ttl,
            "clients": [
                {"client_id": c.client_id, "redirect_uris": c.redirect_uris}
                for c in self.clients.values()
            ],
            "users": [
                {
                    "email": u.email,
                    "dc": u.dc,
                    "name": u.name,
                    "portals": u.portals,
                    "drop_scopes": sorted(u.drop_scopes),
                }
                for u in self.users.values()
            ],
        }

    # ----- used by the API -----------------------------------------------------------------

    def access_token(self, token: str) -> AccessToken | None:
        return self.access_tokens.get(token)

    def user(self, email: str) -> User | None:
        return self.users.get(email.lower())

    def invalidate(self, match: Callable[[AccessToken], bool] | None = None) -> int:
        count = 0
        for record in self.access_tokens.values():
            if not record.revoked and (match is None or match(record)):
                record.revoked = True
                count += 1
        return count

    def forget_expired(self, now: float) -> None:
        """Drop dead tokens and codes so a week-long demo does not grow without bound."""
        for key in [k for k, a in self.access_tokens.items() if now > a.expires_at + 3600]:
            del self.access_tokens[key]
        for key in [k for k, c in self.codes.items() if now > c.issued + CODE_TTL]:
            del self.codes[key]

    # ----- endpoints -----------------------------------------------------------------------

    def consent(self, dc: str, method: str, params: dict[str, str]) -> AccountsAnswer:
        """``GET|POST {accounts}/oauth/v2/auth``: the consent page, or its form posted back."""
        client = self.clients.get(params.get("client_id", ""))
        if client is None:
            return self._error_page(400, "Invalid client", "The client_id is not registered.")
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri or (
            client.redirect_uris is not None and redirect_uri not in client.redirect_uris
        ):
            return self._error_page(
                400, "Invalid redirect URI", "The redirect_uri does not match the client."
            )
        if params.get("response_type", "code") != "code":
            return _redirect(
                _with_params(
                    redirect_uri,
                    {"error": "unsupported_response_type", "state": params.get("state", "")},
                )
            )
        scopes = parse_scopes(params.get("scope", ""))
        if not scopes:
            return self._error_page(400, "Invalid scope", "No scope was requested.")
        decision = params.get("decision") if method == "POST" else None
        if decision is None and self.auto_approve:
            decision = "accept"
            account = self.approve_as or self._default_account(dc)
        else:
            account = params.get("account") or self._default_account(dc)
        if decision is None:
            return self._consent_page(dc, params, scopes)
        if decision != "accept":
            return _redirect(
                _with_params(
                    redirect_uri, {"error": "access_denied", "state": params.get("state", "")}
                )
            )
        user = self.users.get((account or "").lower())
        if user is None:
            return self._error_page(400, "Unknown account", "No such Zoho account.")
        dropped = {d.lower() for d in user.drop_scopes | self.drop_scopes}
        granted = frozenset(s.lower() for s in scopes if s.lower() not in dropped)
        first = (user.email.lower(), client.client_id) not in self.consented
        self.consented.add((user.email.lower(), client.client_id))
        offline = params.get("access_type", "online") == "offline"
        code = Code(
            code=f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}",
            client_id=client.client_id,
            email=user.email,
            dc=user.dc,
            scopes=granted,
            redirect_uri=redirect_uri,
            issued=time.time(),
            with_refresh=offline and (params.get("prompt") == "consent" or first),
        )
        self.codes[code.code] = code
        # Zoho's multi-DC behaviour: whichever DC's page was used, the callback names the
        # user's own DC, and the code only works there.
        return _redirect(
            _with_params(
                redirect_uri,
                {
                    "code": code.code,
                    "state": params.get("state", ""),
                    "location": user.dc,
                    "accounts-server": self._accounts_url(user.dc),
                },
            )
        )

    def token(self, dc: str, params: dict[str, str]) -> AccountsAnswer:
        """``POST {accounts}/oauth/v2/token``."""
        client = self.clients.get(params.get("client_id", ""))
        if client is None or not secrets.compare_digest(
            client.client_secret.encode(), params.get("client_secret", "").encode()
        ):
            return _json(200, {"error": "invalid_client"})
        grant = params.get("grant_type", "")
        now = time.time()
        if grant == "authorization_code":
            return self._grant_code(dc, client, params, now)
        if grant == "refresh_token":
            return self._grant_refresh(dc, client, params, now)
        return _json(200, {"error": "unsupported_grant_type"})

    def revoke(self, dc: str, params: dict[str, str]) -> AccountsAnswer:
        """``POST {accounts}/oauth/v2/token/revoke?token=…``."""
        token = params.get("token", "")
        refresh = self.refresh_tokens.get(token)
        if refresh is not None and refresh.dc == dc:
            refresh.revoked = True
            for access in self.access_tokens.values():
                if access.refresh_token == token:
                    access.revoked = True
        access = self.access_tokens.get(token)
        if access is not None and access.dc == dc:
            access.revoked = True
        return _json(200, {"status": "success"}, token_fp=fingerprint(token))

    def user_info(self, dc: str, token: str | None) -> AccountsAnswer:
        """``GET {accounts}/oauth/user/info``: who the access token acts for.

        Zoho's page (accounts/protocol/oauth/use-access-token.html) names the call and the
        scope (AaaServer.profile.READ) but shows no answer: the fields are those seen in
        practice (ZUID as a number). Zoho's answer to a bad token or a missing scope is not
        documented either; here it is HTTP 401 with an ``error`` key."""
        access = self.access_tokens.get(token or "")
        if access is None or access.dc != dc or not access.valid(time.time()):
            return _json(401, {"error": "invalid_token"}, token_fp=fingerprint(token))
        if not has_scope(access.scopes, "AaaServer.profile.READ"):
            return _json(401, {"error": "invalid_oauthscope"}, token_fp=fingerprint(token))
        user = self.users.get(access.email.lower())
        if user is None:
            return _json(401, {"error": "invalid_token"}, token_fp=fingerprint(token))
        first, _, last = user.name.partition(" ")
        return _json(
            200,
            {
                "First_Name": first,
                "Last_Name": last,
                "Display_Name": user.name,
                "Email": user.email,
                "ZUID": int(user.zuid),
            },
            token_fp=fingerprint(token),
        )

    # ----- internals -----------------------------------------------------------------------

    def _grant_code(
        self, dc: str, client: Client, params: dict[str, str], now: float
    ) -> AccountsAnswer:
        raw = params.get("code", "")
        code = self.codes.get(raw)
        if code is None or code.dc != dc or code.client_id != client.client_id:
            return _json(200, {"error": "invalid_code"}, token_fp=fingerprint(raw))
        if now - code.issued > CODE_TTL:
            del self.codes[raw]
            return _json(200, {"error": "invalid_code"}, token_fp=fingerprint(raw))
        if params.get("redirect_uri", "") != code.redirect_uri:
            return _json(200, {"error": "invalid_redirect_uri"}, token_fp=fingerprint(raw))
        del self.codes[raw]  # single use
        refresh: RefreshToken | None = None
        if code.with_refresh:
            refresh = RefreshToken(
                token=f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}",
                client_id=client.client_id,
                email=code.email,
                dc=code.dc,
                scopes=code.scopes,
                issued=now,
            )
            self.refresh_tokens[refresh.token] = refresh
            self._limit_refresh_tokens(code.email, client.client_id)
        access = self._issue(client.client_id, code.email, code.dc, code.scopes, refresh, now)
        body = self._token_body(access)
        if refresh is not None:
            body["refresh_token"] = refresh.token
        return _json(200, body, token_fp=fingerprint(raw))

    def _grant_refresh(
        self, dc: str, client: Client, params: dict[str, str], now: float
    ) -> AccountsAnswer:
        raw = params.get("refresh_token", "")
        fp = fingerprint(raw)
        refresh = self.refresh_tokens.get(raw)
        if (
            refresh is None
            or refresh.revoked
            or refresh.dc != dc
            or refresh.client_id != client.client_id
        ):
            return _json(200, {"error": "invalid_code"}, token_fp=fp)
        while refresh.grants and now - refresh.grants[0] > REFRESH_WINDOW:
            refresh.grants.popleft()
        if len(refresh.grants) >= REFRESH_PER_WINDOW:
            return _json(400, dict(TOO_MANY), token_fp=fp)
        refresh.grants.append(now)
        access = self._issue(
            refresh.client_id, refresh.email, refresh.dc, refresh.scopes, refresh, now
        )
        return _json(200, self._token_body(access), token_fp=fp)

    def _issue(
        self,
        client_id: str,
        email: str,
        dc: str,
        scopes: frozenset[str],
        refresh: RefreshToken | None,
        now: float,
    ) -> AccessToken:
        access = AccessToken(
            token=f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}",
            client_id=client_id,
            email=email,
            dc=dc,
            scopes=scopes,
            expires_at=now + self.token_ttl,
            refresh_token=refresh.token if refresh else None,
        )
        self.access_tokens[access.token] = access
        return access

    def _token_body(self, access: AccessToken) -> dict[str, Any]:
        ttl = round(self.token_ttl)
        body: dict[str, Any] = {
            "access_token": access.token,
            # Reference: https://www.zoho.com/crm/developer/docs/api/v8/access-refresh.html
            # (the account's data centre's API host: www.zohoapis.<dc> at Zoho)
            "api_domain": self._api_domain(access.dc),
            "token_type": "Bearer",
            "expires_in": ttl,
        }
        if self.legacy_expires_in:
            body["expires_in"] = ttl * 1000
            body["expires_in_sec"] = ttl
        return body

    def _limit_refresh_tokens(self, email: str, client_id: str) -> None:
        # Zoho keeps at most 20 refresh tokens per user; the 21st silently deletes the oldest.
        mine = [
            r
            for r in self.refresh_tokens.values()
            if r.email == email and r.client_id == client_id and not r.revoked
        ]
        mine.sort(key=lambda r: r.issued)
        for old in mine[: max(0, len(mine) - REFRESH_TOKENS_PER_USER)]:
            old.revoked = True
            for access in self.access_tokens.values():
                if access.refresh_token == old.token:
                    access.revoked = True

    def _default_account(self, dc: str) -> str | None:
        for user in self.users.values():
            if user.dc == dc:
                return user.email
        first = next(iter(self.users.values()), None)
        return first.email if first else None

    def _consent_page(self, dc: str, params: dict[str, str], scopes: list[str]) -> AccountsAnswer:
        e = html.escape
        client_id = params.get("client_id", "")
        hidden = "".join(
            f'<input type="hidden" name="{e(k)}" value="{e(v)}">'
            for k, v in params.items()
            if k not in {"decision", "account"}
        )
        default = self._default_account(dc)
        options = "".join(
            f'<option value="{e(u.email)}"{" selected" if u.email == default else ""}>'
            f"{e(u.name)} &lt;{e(u.email)}&gt; ({e(u.dc)})</option>"
            for u in self.users.values()
        )
        items = "".join(f"<li><code>{e(s)}</code></li>" for s in scopes)
        page = (
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width, initial-scale=1'>"
            "<title>Zoho Accounts (simulated) - consent</title>"
            f"<style>{_PAGE_STYLE}</style></head><body>"
            "<header>Zoho Accounts <span>simulator</span></header><main>"
            f"<h1>Allow {e(client_id)} to access your Zoho account?</h1>"
            f"<p class=muted>Data centre of this page: <strong>{e(dc)}</strong></p>"
            f"<p>The application asks for:</p><ul id=scopes>{items}</ul>"
            '<form method="post" id="consent">'
            f"{hidden}"
            f'<label for="account">Account</label><select name="account" id="account">'
            f"{options}</select>"
            '<div class=buttons><button type="submit" name="decision" value="accept" id="accept">'
            "Accept</button> "
            '<button type="submit" name="decision" value="deny" id="deny">Deny</button></div>'
            "</form></main></body></html>"
        )
        return AccountsAnswer(
            status=200, body=page.encode(), content_type="text/html; charset=utf-8"
        )

    def _error_page(self, status: int, title: str, detail: str) -> AccountsAnswer:
        page = (
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>{html.escape(title)}</title><style>{_PAGE_STYLE}</style></head><body>"
            "<header>Zoho Accounts <span>simulator</span></header><main>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(detail)}</p></main></body></html>"
        )
        return AccountsAnswer(
            status=status,
            body=page.encode(),
            content_type="text/html; charset=utf-8",
            error_code=title.lower().replace(" ", "_"),
        )
