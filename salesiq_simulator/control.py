"""``/_sim/…``: the control and inspection API, JSON in and out.

Everything the Python API of ``Simulator`` does is reachable here, because the demo
and other processes drive the simulator over HTTP.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .base import ApiAnswer, json_answer
from .server import SimulatorError

if TYPE_CHECKING:
    from .server import Simulator

SCENES = (
    "pickup",
    "visitor-message",
    "operator-message",
    "transfer",
    "end",
    "miss",
    "rate",
    "supervisor-join",
    "participant-add",
    "participant-remove",
    "message-edit",
    "message-delete",
)
_CONVERSATION_SCENE = re.compile(r"^/_sim/conversations/([^/]+)/([a-z-]+)$")
_OPERATOR = re.compile(r"^/_sim/operators/([^/]+)/(status|profile)$")
_WEBHOOK_KEYS = re.compile(r"^/_sim/portals/([^/]+)/webhook-keys(?:/([^/]+))?$")


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        raise SimulatorError(f"{value!r} is not an integer") from None


def _pick(body: dict[str, Any], *names: str) -> dict[str, Any]:
    return {n: body[n] for n in names if n in body}


class Control:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def handle(self, method: str, path: str, query: dict[str, str], raw: bytes) -> ApiAnswer:
        path = path.rstrip("/") or "/_sim"
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return json_answer(400, {"error": "the body must be JSON"})
        if not isinstance(body, dict):
            return json_answer(400, {"error": "the body must be a JSON object"})
        try:
            result = self._route(method, path, query, body)
        except SimulatorError as exc:
            return json_answer(exc.status, {"error": str(exc)})
        except (TypeError, ValueError) as exc:
            return json_answer(400, {"error": str(exc)})
        if isinstance(result, ApiAnswer):
            return result
        return json_answer(200, result)

    def _route(self, method: str, path: str, query: dict[str, str], body: dict[str, Any]) -> Any:
        sim = self.sim
        simple: dict[tuple[str, str], Callable[[], Any]] = {
            ("GET", "/_sim"): lambda: {
                "base_url": sim.base_url,
                "data_centers": [sim.data_center(c) for c in sim.data_center_codes],
                "extra_data_centers_json": sim.extra_data_centers_json(),
                "portals": sorted(sim.world.portals),
                "deliveries_pending": sim.deliveries_pending(),
                "webhooks_paused": sim.state()["webhooks_paused"],
            },
            ("GET", "/_sim/state"): lambda: sim.state(query.get("portal") or None),
            ("GET", "/_sim/calls"): lambda: sim.calls(_int(query.get("since"))),
            ("GET", "/_sim/deliveries"): lambda: sim.deliveries(_int(query.get("since"))),
            ("GET", "/_sim/datacenters"): lambda: json.loads(sim.extra_data_centers_json()),
            ("POST", "/_sim/portals"): lambda: self._add_portal(body),
            ("GET", "/_sim/accounts"): lambda: sim.configure_accounts(),
            ("POST", "/_sim/accounts"): lambda: self._accounts(body),
            ("GET", "/_sim/faults"): lambda: sim.faults.describe(),
            ("POST", "/_sim/faults"): lambda: sim.set_faults(
                **_pick(
                    body,
                    "latency_ms",
                    "error_rate",
                    "error_kind",
                    "rate_limited",
                    "outage_seconds",
                    "outage_mode",
                    "errors",
                    "dc",
                    "portal",
                )
            ),
            ("DELETE", "/_sim/faults"): lambda: sim.clear_faults() or {"faults": []},
            ("POST", "/_sim/tokens/invalidate"): lambda: {
                "invalidated": sim.invalidate_tokens(body.get("portal"))
            },
            ("POST", "/_sim/step"): lambda: sim.step(body.get("seconds"), now=body.get("now")),
            ("POST", "/_sim/conversations"): lambda: self._create_conversation(body),
            ("POST", "/_sim/webhooks/pause"): lambda: sim.pause_webhooks() or {"paused": True},
            ("POST", "/_sim/webhooks/resume"): lambda: sim.resume_webhooks() or {"paused": False},
            ("POST", "/_sim/reset"): lambda: sim.reset() or {"reset": True},
            # Zoho CRM: ``who`` is a Zoho user's e-mail or a portal's screen name.
            ("GET", "/_sim/crm"): lambda: sim.crm_state(
                self._who(query), dc=query.get("dc") or None
            ),
            ("POST", "/_sim/crm"): lambda: sim.crm_configure(
                self._who(body), **_pick(body, "credits_per_day", "dc")
            ),
            ("POST", "/_sim/crm/records"): lambda: sim.crm_add_record(
                self._who(body),
                str(body.get("module", "")),
                dict(body.get("fields") or {}),
                dc=body.get("dc") or None,
            ),
        }
        handler = simple.get((method, path))
        if handler is not None:
            return handler()
        if any(path == p for _m, p in simple):
            raise SimulatorError(f"{method} is not allowed on {path}", status=405)
        match = _CONVERSATION_SCENE.match(path)
        if match and method == "POST":
            return self._scene(match.group(1), match.group(2), body)
        match = _WEBHOOK_KEYS.match(path)
        if match:
            # Keys added or removed in SalesIQ's own settings, not through its API.
            screen, key_id = match.group(1), match.group(2)
            hook_id = query.get("webhook_id") or body.get("webhook_id") or None
            if method == "GET" and key_id is None:
                return {"keys": sim.webhook_keys(screen, hook_id)}
            if method == "POST" and key_id is None:
                return sim.add_webhook_key(
                    screen, hook_id, creator_id=str(body.get("creator_id") or "")
                )
            if method == "DELETE" and key_id is not None:
                return sim.remove_webhook_key(screen, key_id, hook_id)
            raise SimulatorError(f"{method} is not allowed on {path}", status=405)
        match = _OPERATOR.match(path)
        if match and method == "POST":
            if match.group(2) == "status":
                return sim.set_operator_status(match.group(1), str(body.get("status", "")))
            return sim.update_operator(
                match.group(1),
                **_pick(
                    body, "first_name", "last_name", "nick_name", "role", "max_chats", "is_enabled"
                ),
            )
        raise SimulatorError(f"nothing at {method} {path}", status=404)

    @staticmethod
    def _who(values: dict[str, Any]) -> str:
        who = str(values.get("who") or "").strip()
        if not who:
            raise SimulatorError("who (a Zoho user's e-mail or a portal's screen name) is required")
        return who

    def _add_portal(self, body: dict[str, Any]) -> Any:
        if not body.get("screen_name"):
            raise SimulatorError("screen_name is required")
        options = _pick(
            body,
            "dialect",
            "dc",
            "name",
            "operators",
            "departments",
            "open_chats",
            "rate_limit_per_minute",
            "operator_status_for_others",
            "close_method",
            "operator_status_method",
            "pickup_method",
            "strict_webhook_urls",
            "visitor_interval",
            "miss_after",
        )
        return self.sim.add_portal(str(body["screen_name"]), **options)

    def _accounts(self, body: dict[str, Any]) -> Any:
        sim = self.sim
        if body.get("client_id"):
            sim.add_client(
                str(body["client_id"]),
                str(body.get("client_secret", "")),
                body.get("redirect_uris"),
            )
        if body.get("email"):
            sim.add_user(
                str(body["email"]),
                body.get("dc"),
                name=body.get("name"),
                portals=body.get("portals"),
                drop_scopes=body.get("drop_scopes"),
            )
            settings = _pick(body, "auto_approve", "approve_as", "legacy_expires_in", "token_ttl")
        else:
            settings = _pick(
                body, "auto_approve", "approve_as", "drop_scopes", "legacy_expires_in", "token_ttl"
            )
        return sim.configure_accounts(**settings)

    def _create_conversation(self, body: dict[str, Any]) -> Any:
        if not body.get("portal"):
            raise SimulatorError("portal (a screen name) is required")
        return self.sim.create_conversation(
            str(body["portal"]),
            **_pick(
                body,
                "department_id",
                "department",
                "visitor_name",
                "visitor_email",
                "question",
                "waiting_seconds",
            ),
        )

    def _scene(self, conversation_id: str, scene: str, body: dict[str, Any]) -> Any:
        sim = self.sim
        if scene == "pickup":
            return sim.pickup(conversation_id, body.get("operator_id"))
        if scene == "visitor-message":
            return sim.visitor_message(conversation_id, body.get("text"))
        if scene == "operator-message":
            return sim.operator_message(conversation_id, body.get("text"))
        if scene == "transfer":
            return sim.transfer(
                conversation_id, **_pick(body, "department_id", "operator_id", "note", "outcome")
            )
        if scene == "end":
            return sim.end(conversation_id)
        if scene == "miss":
            return sim.miss(conversation_id)
        if scene == "rate":
            return sim.rate(conversation_id, body.get("rating"), body.get("feedback"))
        if scene == "supervisor-join":
            return sim.add_participant(conversation_id, body.get("operator_id"), role="supervisor")
        if scene == "participant-add":
            return sim.add_participant(conversation_id, body.get("operator_id"), role="operator")
        if scene == "participant-remove":
            if not body.get("operator_id"):
                raise SimulatorError("operator_id (who leaves) is required")
            return sim.remove_participant(conversation_id, str(body["operator_id"]))
        if scene == "message-edit":
            return sim.edit_message(conversation_id, body.get("message_id"), body.get("text"))
        if scene == "message-delete":
            return sim.delete_message(conversation_id, body.get("message_id"))
        raise SimulatorError(f"unknown scene {scene!r}; one of {', '.join(SCENES)}", status=404)
