"""The simulator over HTTP (OAuth round trips, API calls) and the live state it leads to."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from django.utils import timezone

from dashboard.models import Chat, Operator
from dashboard.state import apply
from salesiq_simulator import Simulator
from siq_integration import oauth
from siq_integration.client import SalesIQClient

CLIENT_ID = "1000.SIMULATOR"


CLIENT_SECRET = "sim-secret"


REDIRECT = "http://127.0.0.1:9/callback"


V2_SCOPES = (
    "SalesIQ.portals.READ,SalesIQ.conversations.READ,SalesIQ.conversations.UPDATE,"
    "SalesIQ.operators.READ,SalesIQ.operators.UPDATE,SalesIQ.departments.READ,"
    "SalesIQ.webhooks.READ,SalesIQ.webhooks.CREATE,SalesIQ.webhooks.DELETE"
)


REFERENCE_SCOPES = "SalesIQ.chats.ALL,SalesIQ.operators.ALL,SalesIQ.settings.READ"


def authorize(
    sim: Simulator,
    *,
    dc: str = "sim",
    scopes: str = V2_SCOPES,
    prompt: bool = True,
    state: str = "st-1",
) -> dict[str, str]:
    """Hit the consent page of ``dc`` (auto-approve must be on); the callback's parameters."""
    params = {
        "scope": scopes,
        "client_id": CLIENT_ID,
        "response_type": "code",
        "access_type": "offline",
        "redirect_uri": REDIRECT,
        "state": state,
    }
    if prompt:
        params["prompt"] = "consent"
    answer = requests.get(
        sim.data_center(dc)["accounts_url"] + "/oauth/v2/auth",
        params=params,
        allow_redirects=False,
        timeout=5,
    )
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def exchange(accounts_url: str, code: str, **overrides: str) -> requests.Response:
    form = {
        "grant_type": "authorization_code",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": REDIRECT,
        "code": code,
        **overrides,
    }
    return requests.post(accounts_url + "/oauth/v2/token", data=form, timeout=5)


def refresh(accounts_url: str, refresh_token: str) -> requests.Response:
    form = {
        "grant_type": "refresh_token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": refresh_token,
    }
    return requests.post(accounts_url + "/oauth/v2/token", data=form, timeout=5)


def connect(
    sim: Simulator, *, as_user: str | None = None, dc: str = "sim", scopes: str = V2_SCOPES
) -> dict[str, Any]:
    """The whole OAuth round trip over HTTP; the token answer."""
    sim.configure_accounts(auto_approve=True, approve_as=as_user or "")
    callback = authorize(sim, dc=dc, scopes=scopes)
    answer = exchange(callback["accounts-server"], callback["code"])
    body = answer.json()
    assert "access_token" in body, body
    return body


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Zoho-oauthtoken {token}"}


def v2(sim: Simulator, token: str, method: str, path: str, *, dc: str = "sim", **kw: Any) -> Any:
    """Call the v2 API; assert the documented HTTP 200 and return the JSON body."""
    headers = {**auth(token), **kw.pop("headers", {})}
    answer = requests.request(
        method,
        f"{sim.data_center(dc)['api_url']}/api/v2{path}",
        headers=headers,
        timeout=10,
        **kw,
    )
    assert answer.status_code == 200, (answer.status_code, answer.text[:300])
    return answer.json()


def v2_error(body: dict[str, Any]) -> int:
    assert "error" in body, body
    return body["error"]["code"]


def synced(portal):
    """The portal's live state as a poll would bring it."""
    client = SalesIQClient(portal)
    now = timezone.now()
    apply.apply_departments(portal, client.list_departments(), taken_at=now)
    apply.apply_operators(portal, client.list_operators(), taken_at=now)
    apply.apply_chats(portal, client.list_open_conversations(), taken_at=now, complete=True)
    return portal


def a_connected_chat(simulator, portal):
    state = simulator.state(portal.screen_name)["portals"][0]
    conversation = next(c for c in state["conversations"] if c["status"] == "connected")
    return Chat.objects.get(portal=portal, remote_id=conversation["id"]), state


def a_department_with_room(simulator, portal, me, *, need: int, sync=synced) -> str:
    """One of ``me``'s departments where at least ``need`` colleagues are available (the
    simulator's world is random: some are made available when too few are). ``sync`` stores
    the portal's state (browser tests poll in a thread of their own)."""
    sync(portal)
    others = list(Operator.objects.filter(portal=portal).exclude(pk=me.pk))

    def available_in(department: str) -> list[Operator]:
        return [o for o in others if o.status == "available" and department in o.department_ids]

    department = max(me.department_ids, key=lambda d: len(available_in(d)))
    if len(available_in(department)) < need:
        department = max(
            me.department_ids, key=lambda d: len([o for o in others if d in o.department_ids])
        )
        for colleague in [o for o in others if department in o.department_ids][:need]:
            simulator.set_operator_status(colleague.remote_id, "online")
        sync(portal)
    return department


def token_calls(simulator, since: int, grant: str | None = None) -> list[dict]:
    return [
        call
        for call in simulator.calls(since)
        if call["path"].endswith("/oauth/v2/token")
        and (grant is None or (call["json"] or {}).get("grant_type") == grant)
    ]


SIM_REDIRECT = "http://127.0.0.1/oauth-callback"


def consent(simulator, portal, *, session=None, approve_as=None, drop_prompt=False):
    """Start the OAuth flow and let the simulator approve it: (session, callback params)."""
    session = {} if session is None else session
    url = oauth.start_authorization(session=session, portal=portal, redirect_uri=SIM_REDIRECT)
    if drop_prompt:
        url = url.replace("&prompt=consent", "")
    simulator.configure_accounts(
        auto_approve=True, approve_as=approve_as or f"admin@{portal.screen_name}.example"
    )
    try:
        answer = requests.get(url, allow_redirects=False, timeout=10)
    finally:
        simulator.configure_accounts(auto_approve=False, approve_as="")
    assert answer.status_code == 302, answer.text
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    return session, {key: values[0] for key, values in query.items()}


def oauth_connect(simulator, portal, *, approve_as: str | None = None):
    """The real OAuth round trip against the simulator, approved automatically."""
    session, params = consent(simulator, portal, approve_as=approve_as)
    authorization = oauth.complete_authorization(
        session=session, params=params, redirect_uri=SIM_REDIRECT
    )
    oauth.store_authorization(portal, authorization)
    portal.refresh_from_db()
    return portal


def last_seq(simulator) -> int:
    """The sequence number of the simulator's latest logged call (0 when none)."""
    calls = simulator.calls()
    return calls[-1]["seq"] if calls else 0


# The v2 webhook events a portal registered before issue 16 has (without the participant and
# changed-line events).
OLD_V2_EVENTS = [
    "conversation.created",
    "conversation.attender.updated",
    "conversation.visitor.replied",
    "conversation.operator.replied",
    "conversation.transfer.initiated",
    "conversation.transfer.accepted",
    "conversation.transfer.rejected",
    "conversation.completed",
    "conversation.missed",
    "conversation.rated",
    "operator.updated",
]
