"""Zoho CRM on the simulator: scopes, addresses and a portal connected with CRM."""

from __future__ import annotations

from tests.support.simulator import V2_SCOPES

CRM_SCOPES = (
    "ZohoCRM.modules.contacts.READ,ZohoCRM.modules.leads.READ,ZohoCRM.modules.leads.CREATE,"
    "ZohoCRM.modules.deals.READ,ZohoCRM.users.READ,ZohoSearch.securesearch.READ"
)
V2_AND_CRM_SCOPES = f"{V2_SCOPES},{CRM_SCOPES}"


def crm_url(simulator, path: str, *, dc: str = "sim") -> str:
    """The simulator's CRM address for ``path`` (``/Contacts/search``)."""
    return f"{simulator.data_center(dc)['api_url']}/crm/v8{path}"
