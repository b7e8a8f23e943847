"""The Simulator: one HTTP server for every simulated data centre, plus its Python API.

One RLock guards the world, the accounts, the faults and the call log. Requests are
served by ``ThreadingHTTPServer`` daemon threads; life ticks on its own thread;
webhook deliveries run on a small pool outside the lock.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .accounts import Accounts, AccountsAnswer
from .api_reference import ROOTS as REFERENCE_ROOTS
from .api_reference import ReferenceApi
from .api_v2 import V2Api
from .api_v2 import error_answer as v2_error
from .base import ApiAnswer, ApiRequest, RateWindow, html_answer, json_answer
from .crm import CRM_SCOPE, CrmApi
from .delivery import Deliverer, Job, Signer
from .faults import Faults, Verdict
from .life import DEFAULT_DEPARTMENTS, Life, new_world
from .payloads import event_name, reference_payload, v2_payload, wants
from .world import (
    PRESENCES,
    Clock,
    Conversation,
    Event,
    Operator,
    Portal,
    PortalSettings,
    WebhookKey,
    World,
    WorldError,
    ms,
    state_conversation,
    state_operator,
    state_portal,
)

DEFAULT_CLIENT_ID = "1000.SIMULATOR"
DEFAULT_CLIENT_SECRET = "sim-secret"
DIALECTS = ("v2", "reference")
SECRET_KEYS = frozenset(
    {"token", "refresh_token", "access_token", "code", "client_secret", "secret", "password"}
)
PRESENCE_ALIASES = {
    "available": "online",
    "online": "online",
    "busy": "busy",
    "away": "away",
    "offline": "offline",
}


class SimulatorError(ValueError):
    """A scene or set-up request that cannot be done; the message says why."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _redact(values: dict[str, Any]) -> dict[str, Any]:
    return {k: ("[redacted]" if k.lower() in SECRET_KEYS else v) for k, v in values.items()}


def _dc_name(code: str) -> str:
    return {"sim": "Simulator", "sim-eu": "Simulator (EU)"}.get(code, f"Simulator ({code})")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SalesIQSimulator/1.0"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle plus the
        # client's delayed ACK adds ~40 ms to some answers on a kept-alive connection.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _any(self) -> None:
        self.server.sim._serve(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

    def log_message(self, format: str, *args: Any) -> None:
        # The call log is the record; stderr noise would drown test output.
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sim: Simulator) -> None:
        self.sim = sim
        super().__init__(address, _Handler)


class Simulator:
    def __init__(
        self,
        seed: int = 0,
        life: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        data_centers: Sequence[str] = ("sim", "sim-eu"),
        token_ttl: float = 3600,
        tick_seconds: float = 1.0,
        *,
        start_time: float | None = None,
        retry_delays: Sequence[float] = (0.5, 2.0, 5.0),
        delivery_threads: int = 4,
        delivery_timeout: float = 10.0,
        ip_lock_seconds: float = 30.0,
        call_log_size: int = 50_000,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        auto_approve: bool = False,
    ) -> None:
        if not data_centers:
            raise SimulatorError("at least one data centre is needed")
        self.seed = seed
        self.life_enabled = life
        self.host = host
        self.port = port
        self.tick_seconds = tick_seconds
        self.start_time = start_time
        self.ip_lock_seconds = ip_lock_seconds
        self.lock = threading.RLock()
        self._dcs = [dc.strip().lower() for dc in data_centers]
        self.accounts = Accounts(
            accounts_url=self._accounts_url,
            token_ttl=token_ttl,
            api_domain=lambda dc: f"{self.base_url}/dc/{dc}",
        )
        self.crm = CrmApi(self.accounts)
        self.accounts.auto_approve = auto_approve
        self.accounts.add_client(client_id, client_secret)
        self.faults = Faults(seed)
        self._deliverer = Deliverer(
            resolve=self._signer_for,
            retry_delays=retry_delays,
            threads=delivery_threads,
            timeout=delivery_timeout,
        )
        self._calls: deque[dict[str, Any]] = deque(maxlen=call_log_size)
        self._call_seq = 0
        self._portal_specs: list[dict[str, Any]] = []
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._v2 = V2Api(self)
        self._reference = ReferenceApi(self)
        from .control import Control  # control imports this module's error type

        self._control = Control(self)
        self.world: World
        self.life: Life
        self.clock: Clock
        self._rates: dict[str, RateWindow] = {}
        self._new_world()

    # ----- lifecycle -----------------------------------------------------------------------

    def start(self) -> Simulator:
        if self._server is not None:
            return self
        self._stop.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        serve = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="sim-http",
            daemon=True,
        )
        serve.start()
        self._threads = [serve]
        self._deliverer.start()
        if self.life_enabled:
            ticker = threading.Thread(target=self._tick, name="sim-life", daemon=True)
            ticker.start()
            self._threads.append(ticker)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
        self._deliverer.stop()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _tick(self) -> None:
        last_cleanup = time.monotonic()
        while True:
            with self.lock:
                try:
                    self.life.step(self.clock.now())
                except Exception:  # a bug in one action must not stop life
                    traceback.print_exc(file=sys.stderr)
                if time.monotonic() - last_cleanup > 60:
                    self.accounts.forget_expired(time.time())
                    last_cleanup = time.monotonic()
            if self._stop.wait(self.tick_seconds):
                return

    # ----- addresses -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "") else "127.0.0.1"  # noqa: S104
        return f"http://{host}:{self.port}"

    def _accounts_url(self, dc: str) -> str:
        return f"{self.base_url}/dc/{dc}/accounts"

    @property
    def data_center_codes(self) -> list[str]:
        return list(self._dcs)

    def data_center(self, code: str) -> dict[str, str]:
        if code not in self._dcs:
            raise SimulatorError(f"unknown data centre {code!r}", status=404)
        return {
            "code": code,
            "name": _dc_name(code),
            "accounts_url": self._accounts_url(code),
            "api_url": f"{self.base_url}/dc/{code}",
        }

    def extra_data_centers_json(self) -> str:
        """The value for SIQ_EXTRA_DATA_CENTERS: every simulated DC, keyed by code."""
        table = {}
        for code in self._dcs:
            entry = self.data_center(code)
            table[code] = {k: entry[k] for k in ("name", "accounts_url", "api_url")}
        return json.dumps(table)

    # ----- world set-up --------------------------------------------------------------------

    def _new_world(self) -> None:
        self.world, self.life, self.clock = new_world(self.seed, self.start_time)
        self.world.on_event = self._on_event
        self._rates = {}
        for spec in self._portal_specs:
            self._build_portal(spec)

    def add_portal(
        self,
        screen_name: str,
        *,
        dialect: str = "v2",
        dc: str | None = None,
        name: str | None = None,
        operators: int = 8,
        departments: Sequence[str] | int = DEFAULT_DEPARTMENTS,
        open_chats: int | None = None,
        rate_limit_per_minute: int | None = None,
        operator_status_for_others: bool = False,
        close_method: str = "POST",
        operator_status_method: str = "PUT",
        pickup_method: str = "PUT",
        strict_webhook_urls: bool = False,
        visitor_interval: Sequence[float] = (20.0, 30.0),
        miss_after: float = 480.0,
    ) -> dict[str, Any]:
        """Add a portal (and its admin user ``admin@<screen>.example``); returns its state.

        ``open_chats=None`` gives the default starting scene (two chats running for
        more than 30 minutes, a visitor waiting for minutes, a few ordinary chats).
        """
        dc = dc or self._dcs[0]
        screen_name = str(screen_name).strip()
        reserved = REFERENCE_ROOTS | {"portals", CRM_SCOPE}
        if not screen_name or "/" in screen_name or screen_name in reserved:
            raise SimulatorError(f"screen name {screen_name!r} is not usable")
        if dialect not in DIALECTS:
            raise SimulatorError(f"dialect must be one of {', '.join(DIALECTS)}")
        if dc not in self._dcs:
            raise SimulatorError(f"unknown data centre {dc!r}")
        interval = tuple(float(x) for x in visitor_interval)
        if len(interval) != 2 or not 0 < interval[0] <= interval[1]:
            raise SimulatorError("visitor_interval must be [min, max] seconds, min > 0")
        spec = {
            "screen_name": screen_name,
            "dialect": dialect,
            "dc": dc,
            "name": name,
            "operators": int(operators),
            "departments": departments if isinstance(departments, int) else list(departments),
            "open_chats": None if open_chats is None else int(open_chats),
            "settings": PortalSettings(
                rate_limit_per_minute=(
                    None if rate_limit_per_minute is None else int(rate_limit_per_minute)
                ),
                operator_status_for_others=bool(operator_status_for_others),
                close_method=close_method.upper(),
                operator_status_method=operator_status_method.upper(),
                pickup_method=pickup_method.upper(),
                strict_webhook_urls=bool(strict_webhook_urls),
                visitor_interval=(interval[0], interval[1]),
                miss_after=float(miss_after),
            ),
        }
        with self.lock:
            if screen_name in self.world.portals:
                raise SimulatorError(f"portal {screen_name!r} exists already", status=409)
            self._portal_specs.append(spec)
            portal = self._build_portal(spec)
            return state_portal(portal)

    def _build_portal(self, spec: dict[str, Any]) -> Portal:
        settings = spec["settings"]
        portal = self.life.build_portal(
            screen_name=spec["screen_name"],
            dialect=spec["dialect"],
            dc=spec["dc"],
            name=spec["name"],
            operators=spec["operators"],
            departments=spec["departments"],
            open_chats=spec["open_chats"],
            settings=PortalSettings(**vars(settings)),
            now=self.clock.now(),
        )
        admin = portal.operator_by_email(portal.admin_email)
        user = self.accounts.user(portal.admin_email)
        if user is None:
            # The admin's Zoho account is operator #1 in SalesIQ: one person, one name, one
            # ZUID (Zoho Accounts' user info and the operators list agree, as at Zoho).
            name = f"{admin.first_name} {admin.last_name}" if admin else f"{portal.name} admin"
            user = self.accounts.add_user(portal.admin_email, portal.dc, name=name, portals=None)
        if admin is not None:
            admin.zuid = user.zuid
        return portal

    def add_user(
        self,
        email: str,
        dc: str | None = None,
        *,
        name: str | None = None,
        portals: list[str] | None = None,
        drop_scopes: list[str] | None = None,
    ) -> dict[str, Any]:
        dc = dc or self._dcs[0]
        if dc not in self._dcs:
            raise SimulatorError(f"unknown data centre {dc!r}")
        if "@" not in email:
            raise SimulatorError("email must be an email address")
        with self.lock:
            user = self.accounts.add_user(
                email, dc, name=name, portals=portals, drop_scopes=drop_scopes
            )
            return {
                "email": user.email,
                "dc": user.dc,
                "name": user.name,
                "portals": user.portals,
                "drop_scopes": sorted(user.drop_scopes),
            }

    def add_client(
        self, client_id: str, client_secret: str, redirect_uris: list[str] | None = None
    ) -> None:
        with self.lock:
            self.accounts.add_client(client_id, client_secret, redirect_uris)

    def configure_accounts(
        self,
        *,
        auto_approve: bool | None = None,
        approve_as: str | None = None,
        drop_scopes: list[str] | None = None,
        legacy_expires_in: bool | None = None,
        token_ttl: float | None = None,
    ) -> dict[str, Any]:
        with self.lock:
            acc = self.accounts
            if auto_approve is not None:
                acc.auto_approve = bool(auto_approve)
            if approve_as is not None:
                acc.approve_as = approve_as or None
            if drop_scopes is not None:
                acc.drop_scopes = {s.lower() for s in drop_scopes}
            if legacy_expires_in is not None:
                acc.legacy_expires_in = bool(legacy_expires_in)
            if token_ttl is not None:
                if float(token_ttl) <= 0:
                    raise SimulatorError("token_ttl must be positive")
                acc.token_ttl = float(token_ttl)
            return acc.settings()

    def reset(self) -> None:
        """Back to the seeded world: the same portals rebuilt from the seed, no webhooks,
        no faults, empty logs. Users, clients and issued tokens stay."""
        with self.lock:
            self._deliverer.clear()
            self._deliverer.paused = False
            self.faults.clear()
            self._calls.clear()
            self.crm.reset()
            self._new_world()

    # ----- access --------------------------------------------------------------------------

    def reaches(self, email: str, portal: Portal) -> bool:
        user = self.accounts.user(email)
        return (
            user is not None
            and user.dc == portal.dc
            and (user.portals is None or portal.screen_name in user.portals)
        )

    def reference_portal_for(self, email: str, dc: str) -> Portal | None:
        reachable = [
            p
            for p in self.world.portals_in_dc(dc)
            if p.dialect == "reference" and self.reaches(email, p)
        ]
        for portal in reachable:
            if portal.admin_email.lower() == email.lower():
                return portal
        return reachable[0] if reachable else None

    def rate_window(self, portal: Portal) -> RateWindow:
        return self._rates.setdefault(portal.screen_name, RateWindow())

    def invalidate_tokens(self, portal: str | None = None) -> int:
        """Every access token (or those that reach ``portal``) stops working at once."""
        with self.lock:
            if portal is None:
                return self.accounts.invalidate()
            target = self._portal(portal)
            return self.accounts.invalidate(
                lambda a: a.dc == target.dc and self.reaches(a.email, target)
            )

    # ----- webhook keys changed in SalesIQ's own settings ---------------------------------

    def user_id(self, email: str) -> str:
        """The Zoho user id (zuid) of ``email``, "" when the simulator has no such user."""
        user = self.accounts.users.get(email.lower())
        return user.zuid if user else ""

    def _hook(self, screen_name: str, webhook_id: str | None):
        portal = self._portal(screen_name)
        if webhook_id is None:
            if len(portal.webhooks) != 1:
                raise SimulatorError(
                    f"portal {screen_name!r} has {len(portal.webhooks)} webhooks: say which"
                )
            return next(iter(portal.webhooks.values()))
        hook = portal.webhooks.get(str(webhook_id))
        if hook is None:
            raise SimulatorError(f"no webhook {webhook_id!r} in {screen_name!r}", status=404)
        return hook

    def webhook_keys(self, screen_name: str, webhook_id: str | None = None) -> list[dict]:
        """The public keys of a webhook as SalesIQ lists them, oldest first."""
        with self.lock:
            hook = self._hook(screen_name, webhook_id)
            keys = sorted(hook.keys, key=lambda k: (k.created_time, int(k.id)))
            return [
                {
                    "id": k.id,
                    "key": k.public_b64,
                    "created_time": ms(k.created_time),
                    "creator_id": k.creator_id,
                }
                for k in keys
            ]

    def add_webhook_key(
        self, screen_name: str, webhook_id: str | None = None, *, creator_id: str = ""
    ) -> dict:
        """Add a public key as an admin would in SalesIQ's settings (not through the API):
        at most two per webhook, and the oldest keeps signing. Returns the new key."""
        private_key, public_b64 = self.new_rsa_key()  # slow: before the lock
        with self.lock:
            portal = self._portal(screen_name)
            hook = self._hook(screen_name, webhook_id)
            if len(hook.keys) >= 2:
                raise SimulatorError("SalesIQ keeps at most 2 public keys per webhook", status=409)
            now = self.clock.now()
            # Keys made within the same millisecond still have an order: the id's.
            key = WebhookKey(
                id=self.world.ids(),
                public_b64=public_b64,
                private_key=private_key,
                created_time=now,
                creator_id=creator_id or self.user_id(portal.admin_email),
            )
            hook.keys.append(key)
            return {
                "id": key.id,
                "key": public_b64,
                "created_time": ms(now),
                "creator_id": key.creator_id,
            }

    def remove_webhook_key(
        self, screen_name: str, key_id: str, webhook_id: str | None = None
    ) -> dict:
        """Remove a public key as an admin would in SalesIQ's settings; the last one stays."""
        with self.lock:
            hook = self._hook(screen_name, webhook_id)
            if not any(k.id == str(key_id) for k in hook.keys):
                raise SimulatorError(f"no key {key_id!r} on webhook {hook.id}", status=404)
            if len(hook.keys) <= 1:
                raise SimulatorError("the last available key cannot be deleted", status=409)
            hook.keys = [k for k in hook.keys if k.id != str(key_id)]
            return {"removed": str(key_id), "keys": [k.id for k in hook.keys]}

    @staticmethod
    def new_rsa_key() -> tuple[Any, str]:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        der = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return private_key, base64.b64encode(der).decode()

    # ----- inspection ----------------------------------------------------------------------

    def calls(self, since: int = 0) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(c) for c in self._calls if c["seq"] > since]

    def deliveries(self, since: int = 0) -> list[dict[str, Any]]:
        return self._deliverer.log(since)

    def deliveries_pending(self) -> int:
        return self._deliverer.pending()

    def state(self, portal: str | None = None) -> dict[str, Any]:
        with self.lock:
            portals = [self._portal(portal)] if portal else list(self.world.portals.values())
            return {
                "now": self.clock.now(),
                "life": self.life_enabled,
                "webhooks_paused": self._deliverer.paused,
                "data_centers": [self.data_center(c) for c in self._dcs],
                "portals": [state_portal(p) for p in portals],
            }

    def _portal(self, screen_name: str) -> Portal:
        portal = self.world.portals.get(screen_name)
        if portal is None:
            raise SimulatorError(f"no portal {screen_name!r}", status=404)
        return portal

    # ----- faults --------------------------------------------------------------------------

    def set_faults(
        self,
        *,
        latency_ms: float = 0,
        error_rate: float = 0,
        error_kind: str = "5xx",
        rate_limited: bool = False,
        outage_seconds: float = 0,
        outage_mode: str = "503",
        errors: list[dict[str, Any]] | None = None,
        dc: str | None = None,
        portal: str | None = None,
    ) -> list[dict[str, Any]]:
        """Set the faults of one scope (a DC, a portal, both or everything), replacing
        that scope's earlier faults."""
        with self.lock:
            try:
                self.faults.set(
                    dc=dc,
                    portal=portal,
                    latency_ms=latency_ms,
                    error_rate=error_rate,
                    error_kind=error_kind,
                    rate_limited=rate_limited,
                    outage_seconds=outage_seconds,
                    outage_mode=outage_mode,
                    errors=errors,
                )
            except ValueError as exc:
                raise SimulatorError(str(exc)) from None
            return self.faults.describe()

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()
            for window in self._rates.values():
                window.locked_until = 0.0

    # ----- life ----------------------------------------------------------------------------

    def step(self, seconds: float | None = None, *, now: float | None = None) -> dict[str, Any]:
        """Advance the world by ``seconds`` (or to ``now``) and play what falls due."""
        with self.lock:
            if now is None:
                self.clock.advance(self.tick_seconds if seconds is None else float(seconds))
            else:
                self.clock.set(float(now))
            target = self.clock.now()
            actions = self.life.step(target)
            return {"now": target, "actions": actions}

    # ----- scenes --------------------------------------------------------------------------

    def _conversation(self, conversation_id: str) -> tuple[Portal, Conversation]:
        conv = self.world.conversation(str(conversation_id))
        portal = self.world.portal_for_conversation(str(conversation_id))
        if conv is None or portal is None:
            raise SimulatorError(f"no conversation {conversation_id!r}", status=404)
        return portal, conv

    def _operator(self, operator_id: str) -> Operator:
        op = self.world.operator(str(operator_id))
        if op is None:
            raise SimulatorError(f"no operator {operator_id!r}", status=404)
        return op

    def _scene(self, portal: Portal, conv: Conversation) -> dict[str, Any]:
        return state_conversation(portal, conv)

    def create_conversation(
        self,
        portal: str,
        *,
        department_id: str | None = None,
        department: str | None = None,
        visitor_name: str | None = None,
        question: str | None = None,
        waiting_seconds: float = 0,
        visitor_email: str | None = None,
    ) -> dict[str, Any]:
        """A visitor starts a chat now (or ``waiting_seconds`` ago); it waits for pickup.
        ``visitor_email`` names the visitor's e-mail ("" none; None: a random one or none)."""
        with self.lock:
            target = self._portal(portal)
            if department is not None and department_id is None:
                found = [d for d in target.departments.values() if d.name == department]
                if not found:
                    raise SimulatorError(f"no department {department!r} in {portal!r}")
                department_id = found[0].id
            if department_id is not None and department_id not in target.departments:
                raise SimulatorError(f"no department {department_id!r} in {portal!r}")
            conv = self.life.scene_conversation(
                target,
                department_id=department_id,
                visitor_name=visitor_name,
                question=question,
                waiting_seconds=float(waiting_seconds),
                now=self.clock.now(),
                visitor_email=visitor_email,
            )
            return self._scene(target, conv)

    def pickup(self, conversation_id: str, operator_id: str | None = None) -> dict[str, Any]:
        with self.lock:
            portal, conv = self._conversation(conversation_id)
            if operator_id is not None:
                op = self._operator(operator_id)
            else:
                op = self.life.pick_operator(portal, conv.department_id) or next(
                    (
                        o
                        for o in portal.operators.values()
                        if conv.department_id in o.department_ids and o.presence != "offline"
                    ),
                    None,
                )
                if op is None:
                    raise SimulatorError("nobody in that department can pick it up")
            return self._act(portal, conv, lambda now: self.world.pickup(conv, op, now))

    def visitor_message(self, conversation_id: str, text: str | None = None) -> dict[str, Any]:
        with self.lock:
            portal, conv = self._conversation(conversation_id)
            line = text if text is not None else self.life.random_line("visitor")
            return self._act(
                portal, conv, lambda now: self.world.message(conv, "visitor", line, now)
            )

    def operator_message(self, conversation_id: str, text: str | None = None) -> dict[str, Any]:
        with self.lock:
            portal, conv = self._conversation(conversation_id)
            line = text if text is not None else self.life.random_line("operator")
            return self._act(
                portal, conv, lambda now: self.world.message(conv, "operator", line, now)
            )

    def transfer(
        self,
        conversation_id: str,
        *,
        department_id: str | None = None,
        operator_id: str | None = None,
        note: str | None = None,
        outcome: str | None = None,
    ) -> dict[str, Any]:
        """Start a transfer; with ``outcome`` ("accepted"/"rejected") settle it at once,
        without it life settles it after a while (or settle it later with outcome only)."""
        if outcome not in (None, "accepted", "rejected"):
            raise SimulatorError("outcome must be accepted or rejected")
        with self.lock:
            portal, conv = self._conversation(conversation_id)
            pending = conv.transfer is not None and conv.transfer["status"] == "initiated"
            now = self.clock.now()
            try:
                if not (pending and outcome and department_id is None and operator_id is None):
                    op = self._operator(operator_id) if operator_id else None
                    if department_id is None:
                        if op is not None and op.department_ids:
                            department_id = op.department_ids[0]
                        else:
                            others = [d for d in portal.departments if d != conv.department_id]
                            department_id = (others or [conv.department_id])[0]
                    dept = portal.departments.get(department_id)
                    if dept is None:
                        raise SimulatorError(f"no department {department_id!r}")
                    self.world.transfer_initiate(conv, dept, op, note, now)
                if outcome:
                    self.world.transfer_settle(conv, outcome == "accepted", now)
            except WorldError as exc:
                raise SimulatorError(f"cannot transfer: {exc.reason}", status=409) from None
            return self._scene(portal, conv)

    def end(self, conversation_id: str) -> dict[str, Any]:
        with self.lock:
            portal, conv = self._conversation(conversation_id)
            return self._act(portal, conv, lambda now: self.world.close(conv, now))

    def miss(self, conversation_id: str) -> dict[str, Any]:
        with self.lock:
            portal, conv = self._conversation(conversation_id)
            return self._act(portal, conv, lambda now: self.world.miss(conv, now))

    def rate(
        self, conversation_id: str, rating: int, feedback: str | None = None
    ) -> dict[str, Any]:
        if not isinstance(rating, int) or not 1 <= rating <= 5:
            raise SimulatorError("rating must be an integer from 1 to 5")
        with self.lock:
            portal, conv = self._conversation(conversation_id)
            return self._act(portal, conv, lambda now: self.world.rate(conv, rating, feedback, now))

    def add_participant(
        self, conversation_id: str, operator_id: str | None, *, role: str = "operator"
    ) -> dict[str, Any]:
        """An operator joins the chat as ``role`` ("operator": invited in; "supervisor":
        a supervisor joining it); without ``operator_id``, someone of the portal not in it."""
        with self.lock:
            portal, conv = self._conversation(conversation_id)
            if operator_id:
                op = self._operator(operator_id)
            else:
                present = {conv.attender_id, *conv.participants}
                op = next((o for o in portal.operators.values() if o.id not in present), None)
                if op is None:
                    raise SimulatorError("everyone of this portal is in that chat already")
            return self._act(
                portal, conv, lambda now: self.world.add_participant(conv, op, role, now)
            )

    def remove_participant(self, conversation_id: str, operator_id: str) -> dict[str, Any]:
        with self.lock:
            portal, conv = self._conversation(conversation_id)
            op = self._operator(operator_id)
            return self._act(portal, conv, lambda now: self.world.remove_participant(conv, op, now))

    def _message_of(self, conv: Conversation, message_id: str | None):
        """The line ``message_id`` (its id or sequence number) of ``conv``; the last one when
        none is named."""
        if not conv.messages:
            raise SimulatorError("that conversation has no messages yet", status=409)
        if not message_id:
            return conv.messages[-1]
        for msg in conv.messages:
            if str(message_id) in (msg.id, str(msg.sequence_id)):
                return msg
        raise SimulatorError(f"no message {message_id!r} in that conversation", status=404)

    def edit_message(
        self, conversation_id: str, message_id: str | None, text: str | None
    ) -> dict[str, Any]:
        if not isinstance(text, str) or not text:
            raise SimulatorError("text (the new text) is required")
        with self.lock:
            portal, conv = self._conversation(conversation_id)
            msg = self._message_of(conv, message_id)
            return self._act(
                portal, conv, lambda now: self.world.edit_message(conv, msg, text, now)
            )

    def delete_message(self, conversation_id: str, message_id: str | None) -> dict[str, Any]:
        with self.lock:
            portal, conv = self._conversation(conversation_id)
            msg = self._message_of(conv, message_id)
            return self._act(portal, conv, lambda now: self.world.delete_message(conv, msg, now))

    def _act(self, portal: Portal, conv: Conversation, change: Any) -> dict[str, Any]:
        try:
            change(self.clock.now())
        except WorldError as exc:
            raise SimulatorError(f"not possible now: {exc.reason}", status=409) from None
        return self._scene(portal, conv)

    def set_operator_status(self, operator_id: str, status: str) -> dict[str, Any]:
        """Change presence as the operator would (no API call involved)."""
        presence = PRESENCE_ALIASES.get(str(status).lower())
        if presence is None or presence not in PRESENCES:
            raise SimulatorError("status must be Available, Busy, Away, Offline (or online …)")
        with self.lock:
            op = self._operator(operator_id)
            self.world.set_presence(op, presence, self.clock.now())
            return state_operator(self.world.operator_portal[op.id], op)

    def update_operator(self, operator_id: str, **changes: Any) -> dict[str, Any]:
        """A profile change (name, role, max chats …): v2 ``operator.updated``."""
        with self.lock:
            op = self._operator(operator_id)
            try:
                self.world.update_profile(op, changes, self.clock.now())
            except (TypeError, ValueError) as exc:
                raise SimulatorError(f"bad change: {exc}") from None
            return state_operator(self.world.operator_portal[op.id], op)

    def send_raw_delivery(self, portal: str, body: bytes, *, event: str = "raw") -> int:
        """A fault: SalesIQ signs and sends ``body`` as it is (nested 100,000 deep, a lone
        surrogate, an event time past year 9999 …) to each of the portal's webhooks, with
        the same keys, headers and retries as any delivery; returns how many were queued."""
        with self.lock:
            target = self._portal(portal)
            hooks = [hook.id for hook in target.webhooks.values() if hook.enabled]
            dialect = target.dialect
        for hook_id in hooks:
            self._deliverer.enqueue(
                Job(
                    portal=portal,
                    webhook_id=hook_id,
                    dialect=dialect,
                    event=event,
                    entity_id=None,
                    payload={},
                    body=bytes(body),
                    extra={"raw": True},
                )
            )
        return len(hooks)

    def pause_webhooks(self) -> None:
        self._deliverer.paused = True

    def resume_webhooks(self) -> None:
        self._deliverer.paused = False

    # ----- webhooks ------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        portal = event.portal
        name = event_name(portal.dialect, event.kind)
        if name is None:
            return
        built: tuple[dict[str, Any], str | None] | None = None
        for hook in portal.webhooks.values():
            if not wants(hook, name):
                continue
            if built is None:
                build = v2_payload if portal.dialect == "v2" else reference_payload
                built = build(event, name)
            payload, entity_id = built
            self._deliverer.enqueue(
                Job(
                    portal=portal.screen_name,
                    webhook_id=hook.id,
                    dialect=portal.dialect,
                    event=name,
                    entity_id=entity_id,
                    payload=payload,
                )
            )

    def _signer_for(self, job: Job) -> Signer | None:
        with self.lock:
            portal = self.world.portals.get(job.portal)
            hook = portal.webhooks.get(job.webhook_id) if portal else None
            if hook is None or not hook.enabled:
                return None
            # SalesIQ signs with the oldest key while two are valid during a rotation.
            oldest = min(hook.keys, key=lambda k: (k.created_time, int(k.id)), default=None)
            return Signer(
                url=hook.url,
                private_key=oldest.private_key if oldest else None,
                secret=hook.secret or None,
            )

    # ----- HTTP ----------------------------------------------------------------------------

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        try:
            length = int(h.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        body = h.rfile.read(length) if length > 0 else b""
        split = urlsplit(h.path)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in h.headers.items()}
        method = h.command.upper()
        try:
            if path == "/_sim" or path.startswith("/_sim/"):
                answer = self._control.handle(method, path, query, body)
            elif path.startswith("/dc/"):
                answer = self._dc_request(method, path, query, headers, body)
            else:
                answer = json_answer(404, {"error": f"nothing at {path}; try /_sim/state"})
        except Exception as exc:
            # Answer 500 rather than leave the client hanging on a simulator bug.
            answer = json_answer(500, {"error": f"simulator bug: {exc!r}"})
        self._write(h, answer)

    @staticmethod
    def _write(h: BaseHTTPRequestHandler, answer: ApiAnswer) -> None:
        if answer.drop:
            # An outage in "drop" mode: close the connection without a word.
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
            return
        h.send_response(answer.status)
        h.send_header("Content-Type", answer.content_type)
        h.send_header("Content-Length", str(len(answer.body)))
        for key, value in answer.headers.items():
            h.send_header(key, value)
        h.end_headers()
        if answer.body:
            h.wfile.write(answer.body)

    def _dc_request(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> ApiAnswer:
        code, _, rest = path[len("/dc/") :].partition("/")
        sub = "/" + rest
        if code not in self._dcs:
            return json_answer(404, {"error": f"unknown data centre {code!r}"})
        is_accounts = sub.startswith("/accounts/")
        if sub.startswith("/crm/"):
            return self._crm_request(method, sub, query, headers, body, code)
        if not is_accounts and not (sub == "/api" or sub.startswith("/api/")):
            return json_answer(404, {"error": f"nothing at {path}"})
        with self.lock:
            req = ApiRequest(
                method=method,
                path=sub,
                query=query,
                headers=headers,
                body=body,
                dc=code,
                now=self.clock.now(),
            )
            guess = None if is_accounts else self._guess_portal(req)
            verdict = self.faults.judge(
                dc=code, portal=guess, method=method, path=sub, api=not is_accounts
            )
        if verdict.latency:
            time.sleep(verdict.latency)
        if verdict.outage == "drop":
            answer = ApiAnswer(status=0, drop=True, error_code="dropped", portal=guess)
        elif verdict.outage == "503":
            answer = html_answer(503, "Service Unavailable", error_code="outage", portal=guess)
        else:
            if not is_accounts and method == "POST" and sub.rstrip("/").endswith("/keys"):
                # RSA key generation is slow: do it before taking the lock.
                req.extra["rsa_key"] = self.new_rsa_key()
            with self.lock:
                req.now = self.clock.now()
                req.wall = time.time()
                if is_accounts:
                    answer = self._accounts_request(req, verdict)
                else:
                    answer = self._api_request(req, verdict)
        with self.lock:
            self._log_call(req, answer, is_accounts)
        return answer

    def _crm_request(
        self,
        method: str,
        sub: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        dc: str,
    ) -> ApiAnswer:
        """Zoho CRM on the data centre's API host. Its faults are scoped with
        ``portal="crm"`` (a CRM outage leaves SalesIQ alone); a data centre's faults
        without a portal reach it too."""
        with self.lock:
            req = ApiRequest(
                method=method, path=sub, query=query, headers=headers, body=body, dc=dc, now=0.0
            )
            verdict = self.faults.judge(dc=dc, portal=CRM_SCOPE, method=method, path=sub, api=False)
        if verdict.latency:
            time.sleep(verdict.latency)
        if verdict.outage == "drop":
            answer = ApiAnswer(status=0, drop=True, error_code="dropped", portal=CRM_SCOPE)
        elif verdict.outage == "503":
            answer = html_answer(503, "Service Unavailable", error_code="outage", portal=CRM_SCOPE)
        else:
            with self.lock:
                req.now = self.clock.now()
                req.wall = time.time()
                answer = self.crm.handle(req, targeted=verdict.targeted)
                answer.portal = CRM_SCOPE
        with self.lock:
            self._log_call(req, answer, False)
        return answer

    # ----- CRM set-up (scenes and the demo) -------------------------------------------------

    def _crm_org(self, who: str, dc: str | None = None):
        """The CRM of a Zoho user, named by e-mail or by a portal (its admin's CRM)."""
        if "@" not in who:
            portal = self._portal(who)
            return self.crm.org(portal.admin_email, dc or portal.dc)
        user = self.accounts.user(who)
        dc = dc or (user.dc if user else self._dcs[0])
        if dc not in self._dcs:
            raise SimulatorError(f"unknown data centre {dc!r}")
        return self.crm.org(who, dc)

    def crm_add_record(
        self, who: str, module: str, fields: dict[str, Any], *, dc: str | None = None
    ) -> dict[str, Any]:
        """Add a record to the CRM of ``who`` (an e-mail or a portal's screen name) as if
        made in CRM's own screens. ``owner`` (a name or e-mail) picks or adds its owner;
        a contact's ``Account_Name`` may be a plain name; a deal's ``Contact_Name`` is the
        id of a contact."""
        with self.lock:
            org = self._crm_org(who, dc)
            try:
                return dict(self.crm.add_record(org, module, fields, now=time.time()))
            except ValueError as exc:
                raise SimulatorError(str(exc)) from None

    def crm_configure(
        self, who: str, *, credits_per_day: int | None = None, dc: str | None = None
    ) -> dict[str, Any]:
        with self.lock:
            org = self._crm_org(who, dc)
            if credits_per_day is not None:
                if int(credits_per_day) < 0:
                    raise SimulatorError("credits_per_day must be 0 or more")
                org.credits_per_day = int(credits_per_day)
            return self.crm.state(org, time.time())

    def crm_state(self, who: str, *, dc: str | None = None) -> dict[str, Any]:
        with self.lock:
            return self.crm.state(self._crm_org(who, dc), time.time())

    def _guess_portal(self, req: ApiRequest) -> str | None:
        parts = [p for p in req.path.split("/")[3:] if p]
        if not parts or parts[0] == "portals":
            return None
        if parts[0] in REFERENCE_ROOTS:
            portal = self._reference.portal_for_token(req.bearer(), req.dc, time.time())
            return portal.screen_name if portal else None
        return parts[0]

    def _api_request(self, req: ApiRequest, verdict: Verdict) -> ApiAnswer:
        if not (req.path == "/api/v2" or req.path.startswith("/api/v2/")):
            return v2_error(1006)
        parts = [p for p in req.path.split("/")[3:] if p]
        if parts and parts[0] in REFERENCE_ROOTS:
            return self._reference.handle(req, verdict)
        return self._v2.handle(req, verdict)

    def _accounts_request(self, req: ApiRequest, verdict: Verdict) -> ApiAnswer:
        sub = req.path[len("/accounts") :].rstrip("/")
        params = dict(req.query)
        content_type = req.headers.get("content-type", "")
        if req.body and "application/x-www-form-urlencoded" in content_type:
            params.update(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
        req.extra["form"] = params
        if verdict.targeted is not None:
            t = verdict.targeted
            code = str(t.code) if t.code is not None else "server_error"
            return json_answer(t.http_status or 200, {"error": code}, error_code=code)
        acc: AccountsAnswer
        if sub == "/oauth/v2/auth" and req.method in ("GET", "POST"):
            acc = self.accounts.consent(req.dc, req.method, params)
        elif sub == "/oauth/v2/token" and req.method == "POST":
            acc = self.accounts.token(req.dc, params)
        elif sub == "/oauth/v2/token/revoke" and req.method == "POST":
            acc = self.accounts.revoke(req.dc, params)
        elif sub == "/oauth/user/info" and req.method == "GET":
            acc = self.accounts.user_info(req.dc, req.bearer() or req.bearer("Bearer"))
        else:
            return json_answer(404, {"error": "invalid_request"}, error_code="invalid_request")
        return ApiAnswer(
            status=acc.status,
            body=acc.body,
            content_type=acc.content_type,
            headers=acc.headers,
            error_code=acc.error_code,
            token_fp=acc.token_fp,
        )

    def _log_call(self, req: ApiRequest, answer: ApiAnswer, is_accounts: bool) -> None:
        if is_accounts:
            logged_body: Any = _redact(req.extra.get("form", {})) if req.method == "POST" else None
        else:
            try:
                logged_body = req.json()
            except ValueError:
                logged_body = "<not JSON>"
            if isinstance(logged_body, dict):
                logged_body = _redact(logged_body)
        self._call_seq += 1
        self._calls.append(
            {
                "seq": self._call_seq,
                "time": req.wall,
                "dc": req.dc,
                "method": req.method,
                "path": req.path,
                "query": _redact(req.query),
                "json": logged_body,
                "portal": answer.portal,
                "status": None if answer.drop else answer.status,
                "error_code": answer.error_code,
                "token": answer.token_fp,
                # Which process called: several dashboards' processes share one simulator.
                "user_agent": req.headers.get("user-agent", ""),
            }
        )


def demo_world(
    sim: Simulator,
    *,
    operators: int | None = None,
    chats: int | None = None,
    rate_limit_per_minute: int | None = None,
) -> None:
    """The demo world (``python -m salesiq_simulator``): a v2 and a reference portal in ``sim``."""
    dc = sim.data_center_codes[0]
    sim.add_portal(
        "zylker",
        dialect="v2",
        dc=dc,
        name="Zylker",
        operators=operators or 12,
        departments=("Sales", "Support", "Billing"),
        open_chats=chats,
        rate_limit_per_minute=rate_limit_per_minute,
        visitor_interval=(20, 30),
    )
    sim.add_portal(
        "acme-ref",
        dialect="reference",
        dc=dc,
        name="Acme (reference API)",
        operators=5,
        departments=("Support", "Sales"),
        rate_limit_per_minute=rate_limit_per_minute,
        visitor_interval=(40, 60),
    )
