"""A fake Zoho CRM (API v8): the few operations the dashboard uses, Zoho's envelopes and errors.

Each Zoho user of a data centre has a CRM organisation of its own here (a test portal's
admin, ``admin@<screen>.example``, finds an empty CRM that no other test touches). The
CRM answers on the data centre's API host, the ``api_domain`` of the token answer:
``{api_domain}/crm/v8/…``.

What is modelled, each after Zoho's page (see ``docs/simulator.md``):

- search by e-mail, ``GET /crm/v8/{Contacts|Leads}/search?email=…``: 200 with ``data`` and
  ``info``, or **204 and no body** when nothing matches;
  Reference: https://www.zoho.com/crm/developer/docs/api/v8/search-records.html
- a contact's deals, ``GET /crm/v8/Contacts/{id}/Deals?fields=…`` (``fields`` is mandatory);
  Reference: https://www.zoho.com/crm/developer/docs/api/v8/get-related-records.html
- one record, ``GET /crm/v8/{Module}/{id}``;
  Reference: https://www.zoho.com/crm/developer/docs/api/v8/get-records.html
- insert, ``POST /crm/v8/Leads`` ``{"data": [{…}]}``: 201 when every record went in, 207
  when some did, 400 when none did; a lead whose e-mail a lead already has is refused with
  ``DUPLICATE_DATA`` naming the record;
  Reference: https://www.zoho.com/crm/developer/docs/api/v8/insert-records.html
- users, ``GET /crm/v8/users?type=ActiveUsers``;
  Reference: https://www.zoho.com/crm/developer/docs/api/v8/get-users.html
- errors as Zoho's status codes page lists them (seed 002): 400 INVALID_DATA, 401
  INVALID_TOKEN / OAUTH_SCOPE_MISMATCH, 403 NO_PERMISSION, 404 INVALID_URL_PATTERN, 405,
  413, 415, 429 (the 24-hour credit limit, the concurrency limit), 500, each with Zoho's
  ``{"code", "details", "message", "status": "error"}`` body;
  Reference: https://www.zoho.com/crm/developer/docs/api/v8/status-codes.html
- API credits per 24 hours (a rolling window), one credit a call.
  Reference: https://www.zoho.com/crm/developer/docs/api/v8/api-limits.html

Record ids are 19-digit numbers beyond 2^53, written as JSON strings as Zoho writes them.
"""

from __future__ import annotations

import html
import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from .accounts import Accounts, fingerprint, has_scope
from .base import ApiAnswer, ApiRequest, html_answer, json_answer

VERSION = "v8"
# The fault scope of the CRM (``set_faults(portal="crm", …)``): not a SalesIQ screen name.
CRM_SCOPE = "crm"
# Scope per (module, operation); search also needs ZohoSearch.securesearch.READ (Zoho's
# search page names both).
SEARCH_SCOPE = "ZohoSearch.securesearch.READ"
MODULES = ("Leads", "Contacts", "Deals", "Accounts")
DEFAULT_CREDITS_PER_DAY = 5_000
CLOSED_STAGES = ("Closed Won", "Closed Lost", "Closed-Won", "Closed-Lost")

# Zoho's wording for each error the dashboard must turn into a sentence (seed 002).
ERRORS: dict[str, tuple[int, str]] = {
    "INVALID_DATA": (400, "the id given seems to be invalid"),
    "MANDATORY_NOT_FOUND": (400, "required field not found"),
    "DUPLICATE_DATA": (400, "duplicate data"),
    "INVALID_TOKEN": (401, "invalid oauth token"),
    "OAUTH_SCOPE_MISMATCH": (401, "invalid oauth scope to access this URL"),
    "NO_PERMISSION": (403, "permission denied"),
    "INVALID_URL_PATTERN": (404, "Please check if the URL trying to access is a correct one"),
    "INVALID_REQUEST_METHOD": (405, "The http request method type is not a valid one"),
    "REQUEST_ENTITY_TOO_LARGE": (413, "The request entity is too large"),
    "UNSUPPORTED_MEDIA_TYPE": (415, "The media type of the request is not supported"),
    "TOO_MANY_REQUESTS": (429, "The number of API requests for the 24 hour period is exceeded"),
    "INTERNAL_ERROR": (500, "Internal Server Error"),
}
# Seed 002 gives one 429 for two limits; Zoho tells them apart only in the message.
CONCURRENCY_MESSAGE = "The concurrency limit of the user for the app is exceeded"
# The code an injected fault with only an HTTP status gets.
CODE_FOR_STATUS = {
    207: "MULTI_STATUS",  # an injected partial success with no per-record rows
    400: "INVALID_DATA",
    401: "INVALID_TOKEN",
    403: "NO_PERMISSION",
    404: "INVALID_URL_PATTERN",
    405: "INVALID_REQUEST_METHOD",
    413: "REQUEST_ENTITY_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_ERROR",
}


def crm_error(code: str, *, status: int | None = None, message: str | None = None, **details):
    known_status, known_message = ERRORS.get(code, (status or 400, code.lower()))
    body = {
        "code": code,
        "details": details,
        "message": message or known_message,
        "status": "error",
    }
    return json_answer(status or known_status, body, error_code=code)


@dataclass
class CrmOrg:
    """One Zoho user's CRM: users, records by module, and the credits of the last 24 h."""

    email: str
    dc: str
    ids: Any  # an itertools.count of record ids
    users: list[dict[str, Any]] = field(default_factory=list)
    records: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {m: {} for m in MODULES}
    )
    credits_per_day: int = DEFAULT_CREDITS_PER_DAY
    spent: deque[float] = field(default_factory=deque)  # wall times of calls, last 24 h

    def new_id(self) -> str:
        return str(next(self.ids))

    def credits_left(self, now: float) -> int:
        while self.spent and now - self.spent[0] >= 86_400:
            self.spent.popleft()
        return max(0, self.credits_per_day - len(self.spent))


def _org_id_base(email: str) -> int:
    # Distinct, stable, > 2^53 (9007199254740992) and < 2^63: like 5725767000000412001.
    digits = int(fingerprint(email) or "0", 16) % 9_000
    return 5_725_767_000_000_000_000 + digits * 100_000_000_000


def _timestamp(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now))


class CrmApi:
    """The CRM's HTTP handling and its Python API (records for scenes and the demo)."""

    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts
        self.orgs: dict[tuple[str, str], CrmOrg] = {}

    # ----- organisations and records ----------------------------------------------------

    def org(self, email: str, dc: str) -> CrmOrg:
        key = (dc, email.lower())
        org = self.orgs.get(key)
        if org is None:
            base = _org_id_base(email.lower())
            org = CrmOrg(email=email.lower(), dc=dc, ids=itertools.count(base + 412_001))
            user = self.accounts.user(email)
            name = user.name if user else email.split("@")[0].title()
            first, _, last = name.partition(" ")
            org.users.append(
                {
                    "id": org.new_id(),
                    "full_name": name,
                    "first_name": first,
                    "last_name": last or first,
                    "email": email.lower(),
                    "status": "active",
                    "role": {"name": "CEO", "id": org.new_id()},
                    "profile": {"name": "Administrator", "id": org.new_id()},
                    "zuid": user.zuid if user else "",
                    "confirm": True,
                }
            )
            self.orgs[key] = org
        return org

    def reset(self) -> None:
        self.orgs.clear()

    def add_user(self, org: CrmOrg, name: str, email: str) -> dict[str, Any]:
        first, _, last = name.partition(" ")
        user = {
            "id": org.new_id(),
            "full_name": name,
            "first_name": first,
            "last_name": last or first,
            "email": email,
            "status": "active",
            "role": {"name": "Sales", "id": org.new_id()},
            "profile": {"name": "Standard", "id": org.new_id()},
            "confirm": True,
        }
        org.users.append(user)
        return user

    def _owner(self, org: CrmOrg, owner: str | None) -> dict[str, str]:
        chosen = org.users[0]
        if owner:
            for user in org.users:
                if owner.lower() in (user["email"].lower(), user["full_name"].lower()):
                    chosen = user
                    break
            else:
                chosen = self.add_user(org, owner, f"{owner.split()[0].lower()}@crm.example")
        return {"name": chosen["full_name"], "id": chosen["id"], "email": chosen["email"]}

    def _stamp(self, org: CrmOrg, record: dict[str, Any], now: float) -> dict[str, Any]:
        creator = {"name": org.users[0]["full_name"], "id": org.users[0]["id"]}
        record.setdefault("Created_Time", _timestamp(now))
        record.setdefault("Modified_Time", _timestamp(now))
        record.setdefault("Created_By", creator)
        record.setdefault("Modified_By", creator)
        return record

    def add_record(
        self, org: CrmOrg, module: str, fields: dict[str, Any], *, now: float
    ) -> dict[str, Any]:
        """A record as someone made it in CRM's own screens (a scene, the demo)."""
        if module not in MODULES:
            raise ValueError(f"module must be one of {', '.join(MODULES)}")
        record = dict(fields)
        record["id"] = org.new_id()
        record["Owner"] = self._owner(org, record.pop("owner", None) or None)
        if module in ("Contacts", "Leads"):
            first = record.get("First_Name") or ""
            last = record.get("Last_Name") or ""
            if not last:
                raise ValueError("a contact or lead needs Last_Name")
            record["Full_Name"] = f"{first} {last}".strip()
        if module == "Contacts" and isinstance(record.get("Account_Name"), str):
            account = self.account_named(org, record["Account_Name"], now=now)
            record["Account_Name"] = {"name": account["Account_Name"], "id": account["id"]}
        if module == "Deals":
            contact_id = record.get("Contact_Name")
            contact = org.records["Contacts"].get(str(contact_id)) if contact_id else None
            if contact is None:
                raise ValueError("a deal needs Contact_Name: the id of a contact")
            record["Contact_Name"] = {"name": contact["Full_Name"], "id": contact["id"]}
            if contact.get("Account_Name"):
                record.setdefault("Account_Name", dict(contact["Account_Name"]))
        org.records[module][record["id"]] = self._stamp(org, record, now)
        return record

    def account_named(self, org: CrmOrg, name: str, *, now: float) -> dict[str, Any]:
        for account in org.records["Accounts"].values():
            if account["Account_Name"] == name:
                return account
        return self.add_record(org, "Accounts", {"Account_Name": name}, now=now)

    def state(self, org: CrmOrg, now: float) -> dict[str, Any]:
        return {
            "email": org.email,
            "dc": org.dc,
            "credits_per_day": org.credits_per_day,
            "credits_left": org.credits_left(now),
            "users": org.users,
            "records": {module: list(records.values()) for module, records in org.records.items()},
        }

    # ----- HTTP ------------------------------------------------------------------------

    def handle(self, req: ApiRequest, *, targeted: Any = None) -> ApiAnswer:
        """``req.path`` is below the data centre: ``/crm/v8/Contacts/search``."""
        parts = [unquote(p) for p in req.path.split("/") if p]
        if len(parts) >= 3 and parts[1] == "tab" and req.method == "GET":
            return self._record_page(req, parts)
        if len(parts) < 3 or parts[1] != VERSION:
            return crm_error("INVALID_URL_PATTERN")
        token = req.bearer()
        access = self.accounts.access_token(token) if token else None
        if access is None or not access.valid(req.wall) or access.dc != req.dc:
            return crm_error("INVALID_TOKEN")
        org = self.org(access.email, access.dc)
        # Every call that reaches CRM with a good token spends a credit, errors included.
        if org.credits_left(req.wall) <= 0:
            return crm_error("TOO_MANY_REQUESTS")
        org.spent.append(req.wall)
        if targeted is not None:
            status = targeted.http_status
            code = str(targeted.code) if targeted.code is not None else None
            code = code or CODE_FOR_STATUS.get(status or 500, "INTERNAL_ERROR")
            return crm_error(code, status=status, message=targeted.extra.get("message"))
        rest = parts[2:]
        answer = self._route(req, org, access.scopes, rest)
        answer.headers.setdefault("X-Simulator-Credits-Left", str(org.credits_left(req.wall)))
        return answer

    def _route(self, req: ApiRequest, org: CrmOrg, scopes, rest: list[str]) -> ApiAnswer:
        if rest == ["users"]:
            if req.method != "GET":
                return crm_error("INVALID_REQUEST_METHOD")
            if not has_scope(scopes, "ZohoCRM.users.READ"):
                return crm_error("OAUTH_SCOPE_MISMATCH")
            return self._users(req, org)
        module = rest[0]
        if module not in MODULES:
            return crm_error(
                "INVALID_MODULE", status=400, message="the module name given is invalid"
            )
        scope_name = f"ZohoCRM.modules.{module.lower()}"
        if len(rest) == 2 and rest[1] == "search":
            if req.method != "GET":
                return crm_error("INVALID_REQUEST_METHOD")
            if not (has_scope(scopes, f"{scope_name}.READ") and has_scope(scopes, SEARCH_SCOPE)):
                return crm_error("OAUTH_SCOPE_MISMATCH")
            return self._search(req, org, module)
        if len(rest) == 1:
            if req.method == "POST":
                if not has_scope(scopes, f"{scope_name}.CREATE"):
                    return crm_error("OAUTH_SCOPE_MISMATCH")
                return self._insert(req, org, module)
            return crm_error("INVALID_REQUEST_METHOD")
        if len(rest) in (2, 3) and req.method == "GET":
            if not has_scope(scopes, f"{scope_name}.READ"):
                return crm_error("OAUTH_SCOPE_MISMATCH")
            record = org.records[module].get(rest[1])
            if record is None:
                return crm_error("INVALID_DATA", id=rest[1])
            if len(rest) == 2:
                return json_answer(200, {"data": [record]})
            return self._related(req, org, module, record, rest[2], scopes)
        if len(rest) in (2, 3):
            return crm_error("INVALID_REQUEST_METHOD")
        return crm_error("INVALID_URL_PATTERN")

    @staticmethod
    def _listing(records: list[dict[str, Any]], req: ApiRequest, fields: str = "") -> ApiAnswer:
        try:
            page = max(1, int(req.query.get("page") or 1))
            per_page = min(200, max(1, int(req.query.get("per_page") or 200)))
        except ValueError:
            return crm_error("INVALID_DATA", param_name="page")
        if not records:
            # Zoho: "204 No Content: there is no content available for the request".
            return ApiAnswer(status=204, body=b"", content_type="text/plain")
        chunk = records[(page - 1) * per_page : page * per_page]
        if fields:
            wanted = {f.strip() for f in fields.split(",") if f.strip()} | {"id"}
            chunk = [{k: v for k, v in r.items() if k in wanted} for r in chunk]
        return json_answer(
            200,
            {
                "data": chunk,
                "info": {
                    "per_page": per_page,
                    "count": len(chunk),
                    "page": page,
                    "more_records": page * per_page < len(records),
                },
            },
        )

    def _search(self, req: ApiRequest, org: CrmOrg, module: str) -> ApiAnswer:
        email = (req.query.get("email") or "").strip().lower()
        if not email:
            if any(req.query.get(k) for k in ("criteria", "phone", "word")):
                return crm_error(
                    "NOT_SUPPORTED",
                    status=400,
                    message="the simulator searches by email only",
                )
            return crm_error(
                "REQUIRED_PARAM_MISSING",
                status=400,
                message="One of the expected parameter is missing",
                param="email",
            )
        found = [
            r
            for r in org.records[module].values()
            if str(r.get("Email") or "").lower() == email and not r.get("$converted", False)
        ]
        return self._listing(found, req)

    def _related(
        self, req: ApiRequest, org: CrmOrg, module: str, record: dict, related: str, scopes
    ) -> ApiAnswer:
        if module != "Contacts" or related != "Deals":
            return crm_error("INVALID_DATA", message="the relation name given seems to be invalid")
        if not has_scope(scopes, "ZohoCRM.modules.deals.READ"):
            return crm_error("OAUTH_SCOPE_MISMATCH")
        fields = req.query.get("fields") or ""
        if not fields:
            return crm_error(
                "REQUIRED_PARAM_MISSING",
                status=400,
                message="One of the expected parameter is missing",
                param="fields",
            )
        deals = [
            d
            for d in org.records["Deals"].values()
            if (d.get("Contact_Name") or {}).get("id") == record["id"]
        ]
        return self._listing(deals, req, fields)

    def _users(self, req: ApiRequest, org: CrmOrg) -> ApiAnswer:
        users = org.users
        if req.query.get("type") == "ActiveUsers":
            users = [u for u in users if u["status"] == "active"]
        elif req.query.get("type") == "CurrentUser":
            users = [u for u in users if u["email"] == org.email]
        return json_answer(
            200,
            {
                "users": users,
                "info": {
                    "per_page": 200,
                    "count": len(users),
                    "page": 1,
                    "more_records": False,
                },
            },
        )

    def _insert(self, req: ApiRequest, org: CrmOrg, module: str) -> ApiAnswer:
        content_type = req.headers.get("content-type", "")
        if req.body and "json" not in content_type:
            return crm_error("UNSUPPORTED_MEDIA_TYPE")
        if len(req.body) > 100_000:
            return crm_error("REQUEST_ENTITY_TOO_LARGE")
        try:
            body = req.json()
        except ValueError:
            return crm_error("INVALID_DATA", message="body is not a valid JSON")
        rows = body.get("data") if isinstance(body, dict) else None
        if not isinstance(rows, list) or not rows:
            return crm_error("INVALID_DATA", message="the data key is missing or empty")
        if len(rows) > 100:
            return crm_error("LIMIT_EXCEEDED", status=400, message="a maximum of 100 records")
        results = [self._insert_one(org, module, row, i, req.wall) for i, row in enumerate(rows)]
        good = sum(1 for r in results if r["status"] == "success")
        status = 201 if good == len(results) else (207 if good else 400)
        return json_answer(status, {"data": results})

    def _insert_one(
        self, org: CrmOrg, module: str, row: Any, index: int, now: float
    ) -> dict[str, Any]:
        if not isinstance(row, dict):
            return {
                "code": "INVALID_DATA",
                "details": {"json_path": f"$.data[{index}]"},
                "message": "invalid data",
                "status": "error",
            }
        if not str(row.get("Last_Name") or "").strip():
            return {
                "code": "MANDATORY_NOT_FOUND",
                "details": {"api_name": "Last_Name", "json_path": f"$.data[{index}].Last_Name"},
                "message": "required field not found",
                "status": "error",
            }
        email = str(row.get("Email") or "").strip().lower()
        if module == "Leads" and email:
            for existing in org.records["Leads"].values():
                if str(existing.get("Email") or "").lower() == email:
                    return {
                        "code": "DUPLICATE_DATA",
                        "details": {
                            "api_name": "Email",
                            "json_path": f"$.data[{index}].Email",
                            "duplicate_record": {
                                "Owner": dict(existing["Owner"]),
                                "id": existing["id"],
                                "module": {"api_name": "Leads", "id": "leads"},
                            },
                        },
                        "message": "duplicate data",
                        "status": "error",
                    }
        fields = {k: v for k, v in row.items() if k not in ("id", "Owner")}
        owner = row.get("Owner")
        if isinstance(owner, dict) and owner.get("id"):
            fields["owner"] = next(
                (u["email"] for u in org.users if u["id"] == str(owner["id"])), None
            )
        record = self.add_record(org, module, fields, now=now)
        return {
            "code": "SUCCESS",
            "details": {
                "Modified_Time": record["Modified_Time"],
                "Modified_By": record["Modified_By"],
                "Created_Time": record["Created_Time"],
                "id": record["id"],
                "Created_By": record["Created_By"],
            },
            "message": "record added",
            "status": "success",
        }

    def _record_page(self, req: ApiRequest, parts: list[str]) -> ApiAnswer:
        """``/crm/tab/{Module}/{id}``: what a supervisor sees after following the link."""
        module, record_id = parts[2], parts[3] if len(parts) > 3 else ""
        for org in self.orgs.values():
            if org.dc != req.dc:
                continue
            record = org.records.get(module, {}).get(record_id)
            if record is not None:
                name = record.get("Full_Name") or record.get("Deal_Name") or record_id
                page = (
                    f"<html><head><title>{html.escape(str(name))} · Zoho CRM (simulated)"
                    f"</title></head><body><h1>{html.escape(str(name))}</h1>"
                    f"<p>{html.escape(module)} record {html.escape(record_id)}</p></body></html>"
                )
                return ApiAnswer(
                    status=200, body=page.encode(), content_type="text/html; charset=utf-8"
                )
        return html_answer(404, "No such record")
