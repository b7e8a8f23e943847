"""Zoho CRM on the simulator: scopes, addresses and a portal connected with CRM."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests as http

from siq_integration import oauth
from tests.support.simulator import SIM_REDIRECT, V2_SCOPES

CRM_SCOPES = (
    "ZohoCRM.modules.contacts.READ,ZohoCRM.modules.leads.READ,ZohoCRM.modules.leads.CREATE,"
    "ZohoCRM.modules.deals.READ,ZohoCRM.users.READ,ZohoSearch.securesearch.READ"
)
V2_AND_CRM_SCOPES = f"{V2_SCOPES},{CRM_SCOPES}"


def crm_url(simulator, path: str, *, dc: str = "sim") -> str:
    """The simulator's CRM address for ``path`` (``/Contacts/search``)."""
    return f"{simulator.data_center(dc)['api_url']}/crm/v8{path}"


def crm_connect(simulator, portal, *, approve_as: str | None = None):
    """Add Zoho CRM to ``portal`` through the real consent round trip (auto-approved)."""
    session: dict = {}
    url = oauth.start_authorization(
        session=session, portal=portal, redirect_uri=SIM_REDIRECT, crm=True
    )
    simulator.configure_accounts(
        auto_approve=True, approve_as=approve_as or f"admin@{portal.screen_name}.example"
    )
    try:
        answer = http.get(url, allow_redirects=False, timeout=10)
    finally:
        simulator.configure_accounts(auto_approve=False, approve_as="")
    assert answer.status_code == 302, answer.text
    params = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}
    authorization = oauth.complete_authorization(
        session=session, params=params, redirect_uri=SIM_REDIRECT
    )
    oauth.store_authorization(portal, authorization)
    portal.refresh_from_db()
    return portal
