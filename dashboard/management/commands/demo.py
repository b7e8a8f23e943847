"""`python manage.py demo`: the simulator, a login, a connected portal, the dashboard.

`make demo` runs this after migrating. It starts the SalesIQ simulator as a child
process, connects the simulator's `zylker` portal through the real OAuth flow (the
simulator approves the consent itself for this one connection), prints the URL and
the login, and serves the dashboard with daphne in this process.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from dashboard.models import (
    CannedLine,
    Chat,
    CrmPerson,
    Department,
    InboxEvent,
    Operator,
    PortalSync,
)
from siq_integration import connecting, dialects, oauth
from siq_integration.client import SalesIQClient
from siq_integration.exceptions import SalesIQError
from siq_integration.models import Portal

DEMO_USER = "admin"
DEMO_PORTAL = {"name": "Zylker (simulator)", "data_center": "sim", "screen_name": "zylker"}


DEMO_CANNED_LINES = (
    "Hello, I'm a supervisor here: sorry for the wait, I'm looking at this now.",
    "Thanks for your patience: a colleague will be with you in a moment.",
    "Could you share your order number so we can check it for you?",
)


class Command(BaseCommand):
    help = "Start the SalesIQ simulator and the dashboard with a connected demo portal."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--sim-port", type=int, default=8765)
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args, **options):
        sim_url = f"http://127.0.0.1:{options['sim_port']}"
        if "sim" not in settings.SIQ_DATA_CENTERS:
            raise CommandError(
                "SIQ_EXTRA_DATA_CENTERS has no 'sim' data centre; run the demo with `make demo`."
            )
        self._check_port_free(options["host"], options["port"])
        self._start_simulator(sim_url, options)
        password = os.environ.get("DEMO_ADMIN_PASSWORD", "")
        if not password:
            raise CommandError("DEMO_ADMIN_PASSWORD is not set; run the demo with `make demo`.")
        self._ensure_admin(password)
        url = f"http://{options['host']}:{options['port']}/"
        self._forget_old_world(sim_url)
        portal = self._ensure_portal(sim_url, url)
        summary = self._check_portal(portal)
        others = self._reconnect_others(sim_url, url, keep=portal)

        from dashboard.server import run

        # The password stays where `make demo` wrote it; the log repeats where to find it.
        kept = Path(settings.BASE_DIR) / "var" / "demo.env"
        where = (
            f"{kept} (DEMO_ADMIN_PASSWORD)"
            if kept.is_file()
            else "the environment (DEMO_ADMIN_PASSWORD)"
        )
        line = "─" * 64
        self.stdout.write(
            "\n".join(
                [
                    "",
                    line,
                    f"  SalesIQ Supervisor      {url}",
                    f"  Sign in as              {DEMO_USER} / {password}",
                    f"  Password kept in        {where}",
                    f"  SalesIQ simulator       {sim_url}/_sim/state",
                    f"  Demo portal             {portal.name}: {summary}",
                    *others,
                    "  The address and login are repeated in the log every "
                    f"{round(run.SUMMARY_EVERY / 60)} minutes.",
                    "  Stop with Ctrl-C.",
                    line,
                    "",
                ]
            )
        )
        sys.stdout.flush()
        # The same code path as `manage.py serve`: daphne and the worker in this process.
        run.serve(
            host=options["host"],
            port=options["port"],
            reminder=f"Demo: {url} · sign in as {DEMO_USER}, password kept in {where}",
        )

    def _check_port_free(self, host: str, port: int) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                raise CommandError(
                    f"Port {port} on {host} is taken. Stop what uses it, or run "
                    "`make demo DEMO_PORT=<another port>`."
                ) from None

    # --- simulator ---------------------------------------------------------------------

    def _start_simulator(self, sim_url: str, options) -> None:
        try:
            requests.get(f"{sim_url}/_sim/state", timeout=1)
        except requests.RequestException:
            pass
        else:
            raise CommandError(
                f"Something already answers on {sim_url}. Stop it, or run "
                "`make demo SIM_PORT=<another port>`."
            )
        log_path = Path(settings.VAR_DIR) / "simulator.log"
        log = log_path.open("ab")
        # The simulator is no part of the installed app: a top-level package of the source
        # tree, run from there.
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and package)
            [
                sys.executable,
                "-m",
                "salesiq_simulator",
                "--host",
                "127.0.0.1",
                "--port",
                str(options["sim_port"]),
                "--seed",
                str(options["seed"]),
            ],
            cwd=settings.BASE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

        def stop_simulator() -> None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()

        atexit.register(stop_simulator)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise CommandError(
                    f"The SalesIQ simulator stopped at start-up; see {log_path} for why."
                )
            try:
                requests.get(f"{sim_url}/_sim/state", timeout=1).raise_for_status()
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise CommandError(f"The SalesIQ simulator did not start within 30 s; see {log_path}.")

    # --- the login and the portal -------------------------------------------------------

    def _ensure_admin(self, password: str) -> None:
        user, _ = get_user_model().objects.get_or_create(username=DEMO_USER)
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()

    def _ensure_portal(self, sim_url: str, dashboard_url: str) -> Portal:
        # As with Add portal, a new one is saved only once it is connected.
        portal = Portal.objects.filter(name=DEMO_PORTAL["name"]).first() or Portal(
            name=DEMO_PORTAL["name"],
            data_center=DEMO_PORTAL["data_center"],
            screen_name=DEMO_PORTAL["screen_name"],
            dialect="v2",
            plan="professional",
            calls_per_minute=50,
            calls_per_day=20_000,
        )
        # A fresh simulator knows none of the old tokens: connect again every time, with
        # Zoho CRM added (the simulator's CRM, seeded with a few known visitors).
        self._connect(portal, sim_url, dashboard_url, crm=True)
        portal.refresh_from_db()
        self._seed_crm(sim_url, portal)
        self._seed_canned_lines(portal)
        return portal

    def _seed_canned_lines(self, portal: Portal) -> None:
        """A few lines an admin would set (Portal → Canned lines), so the drawer's message
        form shows them; an admin's own are kept."""
        if CannedLine.objects.filter(portal=portal).exists():
            return
        CannedLine.objects.bulk_create(
            CannedLine(portal=portal, text=text, position=n)
            for n, text in enumerate(DEMO_CANNED_LINES)
        )

    def _seed_crm(self, sim_url: str, portal: Portal) -> None:
        """The demo's CRM: the visitors of a few open chats are known (one with a big open
        deal, one a customer, one a lead), and so are some of the visitors life brings later
        (the simulator's visitors are visitor<n>@example.org)."""

        def add(module: str, fields: dict) -> dict:
            answer = requests.post(
                f"{sim_url}/_sim/crm/records",
                json={"who": portal.screen_name, "module": module, "fields": fields},
                timeout=5,
            )
            answer.raise_for_status()
            return answer.json()

        state = requests.get(
            f"{sim_url}/_sim/state", params={"portal": portal.screen_name}, timeout=5
        ).json()
        names = {
            c["visitor"]["email"]: c["visitor"]["name"]
            for c in state["portals"][0]["conversations"]
            if c["status"] in ("waiting", "connected") and c["visitor"].get("email")
        }
        later = [f"visitor{n}@example.org" for n in range(0, 10_000, 50)]
        known = list(dict.fromkeys([*list(names)[:3], *later]))
        owners = ("Kate Boyle", "Ravi Menon", "Lena Fischer")
        for n, email in enumerate(known):
            first, _, last = names.get(email, "").rpartition(" ")
            if not last:
                first, last = email.split("@")[0].title(), "Example"
            if n % 3 == 2:
                add("Leads", {"First_Name": first, "Last_Name": last, "Email": email,
                              "Company": "Prospect Ltd", "Lead_Status": "Contacted",
                              "owner": owners[n % 3]})  # fmt: skip
                continue
            contact = add(
                "Contacts",
                {"First_Name": first, "Last_Name": last, "Email": email,
                 "Account_Name": f"Account {n}", "owner": owners[n % 3]},
            )  # fmt: skip
            big = n == 0
            add(
                "Deals",
                {
                    "Deal_Name": "Enterprise renewal" if big else "Add-on seats",
                    "Stage": "Negotiation/Review" if big or n % 3 == 0 else "Closed Won",
                    "Amount": 250_000 if big else 4_000,
                    "Contact_Name": contact["id"],
                },
            )

    def _forget_old_world(self, sim_url: str) -> None:
        """A restarted simulator is a new world that reuses the old one's ids: what the
        dashboard remembers of the last demo's chats and operators would mix with it."""
        sim_codes = [
            code for code, dc in settings.SIQ_DATA_CENTERS.items() if dc.api_url.startswith(sim_url)
        ]
        portals = Portal.objects.filter(data_center__in=sim_codes)
        for model in (Chat, Operator, Department, InboxEvent, PortalSync, CrmPerson):
            model.objects.filter(portal__in=portals).delete()

    def _reconnect_others(self, sim_url: str, dashboard_url: str, keep: Portal) -> list[str]:
        """Portals added by hand in an earlier demo hold tokens the restarted simulator has
        forgotten: connect them again as their simulator admin, or say why not."""
        sim_codes = [
            code for code, dc in settings.SIQ_DATA_CENTERS.items() if dc.api_url.startswith(sim_url)
        ]
        state = requests.get(f"{sim_url}/_sim/state", timeout=5).json()
        lines = []
        for portal in Portal.objects.filter(data_center__in=sim_codes).exclude(pk=keep.pk):
            if not (portal.is_connected or portal.webhook_id):
                continue
            # The simulator's portals of the same shape; where the address names the portal
            # (v2) it must be the same one, else (reference) the token decides: the first.
            screens = [p["screen_name"] for p in state["portals"] if p["dialect"] == portal.dialect]
            if dialects.get(portal.dialect).addresses_name_portal:
                screen = portal.screen_name if portal.screen_name in screens else ""
            else:
                screen = screens[0] if screens else ""
            try:
                if not screen:
                    raise CommandError("the simulator has no such portal any more")
                self._connect(portal, sim_url, dashboard_url, approve_as=f"admin@{screen}.example")
                lines.append(f"  Also reconnected        {portal.name}")
            except CommandError as error:
                connecting.disconnect(portal)
                lines.append(f"  Disconnected            {portal.name} ({error})")
        return lines

    def _connect(
        self,
        portal: Portal,
        sim_url: str,
        dashboard_url: str,
        *,
        approve_as: str = "",
        crm: bool = False,
    ) -> None:
        """The same OAuth flow as the Connect button (with CRM: as Add Zoho CRM), with the
        simulator approving."""
        redirect_uri = f"{dashboard_url}oauth/callback/"  # never followed: we read the redirect
        session: dict = {}
        consent_url = oauth.start_authorization(
            session=session, portal=portal, redirect_uri=redirect_uri, crm=crm
        )
        approve = {
            "auto_approve": True,
            "approve_as": approve_as or f"admin@{portal.screen_name}.example",
        }
        requests.post(f"{sim_url}/_sim/accounts", json=approve, timeout=5)
        try:
            answer = requests.get(consent_url, allow_redirects=False, timeout=10)
        finally:
            # People adding a portal by hand should see the consent page.
            requests.post(
                f"{sim_url}/_sim/accounts",
                json={"auto_approve": False, "approve_as": ""},
                timeout=5,
            )
        location = answer.headers.get("Location", "")
        if answer.status_code != 302 or not location.startswith(redirect_uri):
            raise CommandError(
                f"The simulator did not approve the demo connection ({answer.status_code})."
            )
        params = {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}
        webhook = f"{dashboard_url}webhooks/salesiq/{portal.pk}/"
        try:
            authorization = oauth.complete_authorization(
                session=session, params=params, redirect_uri=redirect_uri
            )
            outcome = connecting.complete_connection(portal, authorization, webhook_url=webhook)
        except SalesIQError as error:
            raise CommandError(f"Connecting the demo portal failed: {error.user_message}") from None
        if isinstance(outcome, connecting.NeedsScreenName):
            raise CommandError("The demo portal's screen name is not reachable in the simulator.")

    def _check_portal(self, portal: Portal) -> str:
        client = SalesIQClient(portal)
        try:
            operators = client.list_operators().operators
            chats = client.list_open_conversations()
        except SalesIQError as error:
            return f"connected, but the first calls failed: {error.user_message}"
        waiting = sum(1 for chat in chats if chat.status == "waiting")
        return f"connected, {len(operators)} operators, {len(chats)} open chats ({waiting} waiting)"
