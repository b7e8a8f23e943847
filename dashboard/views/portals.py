"""Portals: list and health for everyone who may see them; add, connect, pick the
screen name, re-register webhooks, edit and disconnect for Admins."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from siq_integration import connecting, health, oauth, webhook_events
from siq_integration.exceptions import OAuthError, SalesIQError, StateMismatch
from siq_integration.models import Portal

from .. import crm, selectors
from ..access import admin_required, is_admin, portal_for, visible_portals
from ..actions.wording import acts_as
from ..alerts.rules import RULES, ensure_rules
from ..forms.alerts import AlertRuleForm
from ..forms.portals import PortalForm, ScreenNameForm
from ..models import Department, InboxEvent, PortalSync
from ..portals import portal_delete, portal_history
from ..realtime import publish

logger = logging.getLogger(__name__)


# --- addresses ---------------------------------------------------------------------------


def _absolute(request: HttpRequest, path: str) -> str:
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL + path
    return request.build_absolute_uri(path)


def redirect_uri(request: HttpRequest) -> str:
    """The callback Zoho sends the admin back to; register it in Zoho's API console."""
    return _absolute(request, reverse("oauth_callback"))


def webhook_url(request: HttpRequest, portal: Portal) -> str:
    return _absolute(request, reverse("webhook", args=[portal.pk]))


def _has_port(url: str) -> bool:
    return urlsplit(url).port is not None


# --- pages ---------------------------------------------------------------------------------


def _row(portal: Portal) -> dict:
    return {
        "portal": portal,
        "health": health.portal_health(portal),
        "webhook": health.webhook_health(portal),
        "usage": health.budget_usage(portal),
    }


@login_required
def portal_list(request: HttpRequest) -> HttpResponse:
    rows = [_row(portal) for portal in visible_portals(request.user)]
    return render(
        request,
        "portals/list.html",
        {"rows": rows, "can_manage": is_admin(request.user)},
    )


@login_required
def portal_detail(request: HttpRequest, portal_id) -> HttpResponse:
    portal = portal_for(request.user, portal_id)
    url = webhook_url(request, portal)
    return render(
        request,
        "portals/detail.html",
        {
            **_row(portal),
            "can_manage": is_admin(request.user),
            "webhook_url": url,
            "webhook_url_has_port": _has_port(url),
            "webhook_keys": portal.webhook_keys.count(),
            "signing_keys": list(portal.webhook_keys.order_by("created_time", "key_id")),
            # Events the webhook lacks (webhook_events.py): the page offers "Register again".
            "webhook_events_missing": webhook_events.missing_from(portal),
            "sync": PortalSync.objects.filter(portal=portal).first(),
            **_rejected(portal),
            # Stepping in: whether the grant lets the dashboard message visitors, and as whom.
            "may_message": oauth.may_message(portal),
            "acts_as": acts_as(portal),
            **crm.portal_context(portal),
        },
    )


def _rejected(portal: Portal) -> dict:
    """Signed deliveries kept as rejected (they can never be stored): how many, the last few."""
    rows = InboxEvent.objects.filter(portal=portal, state=InboxEvent.State.REJECTED)
    return {
        "rejected_count": rows.count(),
        "rejected_last": list(rows.order_by("-received_at", "-pk")[:5]),
    }


# --- add, edit -----------------------------------------------------------------------------


def _apply(form: PortalForm, portal: Portal) -> None:
    data = form.cleaned_data
    portal.name = data["name"]
    if not form.fields["data_center"].disabled:
        portal.data_center = data["data_center"]
        portal.dialect = data["dialect"]
    portal.plan = data["plan"]
    portal.calls_per_minute, portal.calls_per_day = form.budget()
    portal.screen_name = data["screen_name"]
    portal.client_id = data["client_id"]
    if not data["client_id"]:
        portal.set_client_secret("")
    elif data.get("client_secret"):
        portal.set_client_secret(data["client_secret"])


@admin_required
@require_http_methods(["GET", "POST"])
def portal_add(request: HttpRequest) -> HttpResponse:
    """Saves nothing: the settings wait in the session (oauth.remember_draft) and the
    portal is saved only once it is connected. ``?draft=`` reopens settings not yet
    connected (after a refused consent) to change them."""
    draft = oauth.draft_portal(request.session, request.GET.get("draft", ""))
    form = PortalForm(
        request.POST or None,
        portal=draft,
        initial=PortalForm.initial_for(draft) if draft else None,
    )
    if request.method == "POST" and form.is_valid():
        portal = draft or Portal()
        _apply(form, portal)
        return _send_to_consent(request, portal)
    return render(
        request,
        "portals/form.html",
        {"form": form, "adding": True, "redirect_uri": redirect_uri(request)},
    )


@admin_required
@require_http_methods(["GET", "POST"])
def portal_edit(request: HttpRequest, portal_id) -> HttpResponse:
    portal = portal_for(request.user, portal_id)
    form = PortalForm(request.POST or None, portal=portal, initial=PortalForm.initial_for(portal))
    if request.method == "POST" and form.is_valid():
        _apply(form, portal)
        portal.save()
        messages.success(request, f"Saved the settings of {portal.name}.")
        return redirect("portal_detail", portal_id=portal.pk)
    return render(
        request,
        "portals/form.html",
        {"form": form, "portal": portal, "adding": False, "redirect_uri": redirect_uri(request)},
    )


# --- connecting ---------------------------------------------------------------------------


def _portal_or_draft(request: HttpRequest, portal_id) -> Portal:
    """The saved portal (404 unless the user may see it) or, for an Admin, the portal this
    session is adding (not saved until it is connected)."""
    portal = visible_portals(request.user).filter(pk=portal_id).first()
    if portal is None and is_admin(request.user):
        portal = oauth.draft_portal(request.session, portal_id)
    if portal is None:
        raise Http404("No such portal")
    return portal


def _send_to_consent(request: HttpRequest, portal: Portal) -> HttpResponse:
    try:
        url = oauth.start_authorization(
            session=request.session, portal=portal, redirect_uri=redirect_uri(request)
        )
    except SalesIQError as failure:
        return connect_failed(request, failure, portal)
    return redirect(url)


@admin_required
@require_POST
def portal_connect(request: HttpRequest, portal_id) -> HttpResponse:
    return _send_to_consent(request, _portal_or_draft(request, portal_id))


def connect_failed(
    request: HttpRequest, failure: SalesIQError, portal: Portal | None
) -> HttpResponse:
    logger.info(
        "Connecting portal %s failed: %s", portal.pk if portal else "?", failure.technical()
    )
    saved = portal is not None and oauth.is_saved(portal)
    existing = None
    if isinstance(failure, connecting.SamePortalTwice):
        existing = Portal.objects.filter(pk=failure.existing_id).first()
        if portal is not None and not saved:
            # Trying again would find the same portal again: nothing of this one to keep.
            oauth.forget_draft(request.session, portal.pk)
    return render(
        request,
        "portals/connect_failed.html",
        {
            "failure": failure,
            "portal": portal,
            "saved": saved,
            "existing": existing,
            "oauth_problem": isinstance(failure, OAuthError),
        },
        status=400,
    )


def _tell_pages(portal: Portal) -> None:
    """Pages watching ``portal`` start again from the truth: what is live just changed."""
    portal_id = portal.pk
    publish.portal_changed(portal_id)


def _finish(request: HttpRequest, portal: Portal, outcome) -> HttpResponse:
    if isinstance(outcome, connecting.NeedsScreenName):
        return redirect("portal_screen_name", portal_id=portal.pk)
    connecting.forget_pending(request.session, portal, revoke=False)
    oauth.forget_draft(request.session, portal.pk)
    _tell_pages(portal)
    if portal.webhook_error:
        messages.warning(
            request,
            f"{portal.name} is connected, but its webhook could not be registered: "
            f"{portal.webhook_error}",
        )
    else:
        messages.success(request, f"{portal.name} is connected.")
    return redirect("portal_detail", portal_id=portal.pk)


@admin_required
@require_http_methods(["GET"])
def oauth_callback(request: HttpRequest) -> HttpResponse:
    """Zoho sends the admin back here after consent (or refusal). A portal being added is
    saved here, once its grant works (or never, when it does not)."""
    portal = oauth.pending_portal(request.session, request.GET.get("state", ""))
    try:
        authorization = oauth.complete_authorization(
            session=request.session, params=request.GET, redirect_uri=redirect_uri(request)
        )
        if portal is None:  # deleted meanwhile, or not this admin's
            raise StateMismatch()
        outcome = connecting.complete_connection(
            portal, authorization, webhook_url=webhook_url(request, portal)
        )
    except SalesIQError as failure:
        return connect_failed(request, failure, portal)
    if isinstance(outcome, connecting.NeedsScreenName):
        connecting.remember_pending(request.session, authorization, outcome.choices)
        if outcome.problem:
            messages.error(request, outcome.problem)
    elif authorization.crm:
        crm.check_after_adding(request, portal)
    return _finish(request, portal, outcome)


@admin_required
@require_http_methods(["GET", "POST"])
def portal_screen_name(request: HttpRequest, portal_id) -> HttpResponse:
    portal = _portal_or_draft(request, portal_id)
    try:
        authorization, choices = connecting.pending_for(request.session, portal)
    except SalesIQError as failure:
        return connect_failed(request, failure, portal)
    if request.method == "POST" and "cancel" in request.POST:
        connecting.forget_pending(request.session, portal, revoke=True)
        messages.info(request, f"Connecting {portal.name} was cancelled; nothing was saved.")
        if oauth.is_saved(portal):
            return redirect("portal_detail", portal_id=portal.pk)
        oauth.forget_draft(request.session, portal.pk)
        return redirect("portals")
    options = [(c.screen_name, f"{c.name} ({c.screen_name})") for c in choices]
    form = ScreenNameForm(request.POST or None, choices=options)
    if request.method == "POST" and form.is_valid():
        try:
            outcome = connecting.complete_connection(
                portal,
                authorization,
                screen_name=form.cleaned_data["screen_name"],
                webhook_url=webhook_url(request, portal),
            )
        except SalesIQError as failure:
            connecting.forget_pending(request.session, portal, revoke=False)
            return connect_failed(request, failure, portal)
        if isinstance(outcome, connecting.NeedsScreenName) and outcome.problem:
            form.add_error("typed", outcome.problem)
        else:
            return _finish(request, portal, outcome)
    return render(request, "portals/screen_name.html", {"portal": portal, "form": form})


@admin_required
@require_POST
def portal_webhook(request: HttpRequest, portal_id) -> HttpResponse:
    portal = portal_for(request.user, portal_id)
    if not portal.is_connected:
        messages.error(request, f"Connect {portal.name} first; webhooks need a connection.")
    elif connecting.register_webhooks(portal, url=webhook_url(request, portal)):
        messages.success(request, f"The webhook of {portal.name} is registered again.")
    else:
        messages.error(request, f"Registering the webhook failed: {portal.webhook_error}")
    return redirect("portal_detail", portal_id=portal.pk)


@admin_required
@require_http_methods(["GET", "POST"])
def portal_disconnect(request: HttpRequest, portal_id) -> HttpResponse:
    portal = portal_for(request.user, portal_id)
    if request.method == "POST":
        warnings = connecting.disconnect(portal)
        _tell_pages(portal)
        for warning in warnings:
            messages.warning(request, warning)
        messages.success(
            request,
            f"{portal.name} is disconnected: its sign-in is revoked and deleted. "
            "Its history stays; connect it again at any time.",
        )
        return redirect("portal_detail", portal_id=portal.pk)
    return render(request, "portals/disconnect.html", {"portal": portal})


@admin_required
@require_http_methods(["GET", "POST"])
def portal_delete_view(request: HttpRequest, portal_id) -> HttpResponse:
    """Delete a portal and its history, after a page that says exactly what goes.

    A connected portal lets go of SalesIQ first (its webhook registration deleted, its
    grant revoked); when SalesIQ or Zoho cannot say yes, the page says what is left
    behind there and the admin may delete anyway."""
    portal = portal_for(request.user, portal_id)
    problems: list[str] = []
    if request.method == "POST":
        if "anyway" not in request.POST:
            problems = connecting.release(portal)
        if not problems:
            name = portal.name
            gone = portal_delete(portal=portal, by_user=request.user)
            messages.success(
                request,
                f"Deleted {name} with its {gone.chats:,} chat{'s' if gone.chats != 1 else ''}, "
                f"{gone.alerts:,} alert{'s' if gone.alerts != 1 else ''} and "
                f"{gone.actions:,} audit entr{'ies' if gone.actions != 1 else 'y'}.",
            )
            return redirect("portals")
    return render(
        request,
        "portals/delete.html",
        {"portal": portal, "history": portal_history(portal), "problems": problems},
    )


@admin_required
@require_http_methods(["GET", "POST"])
def portal_alert_rules(request: HttpRequest, portal_id) -> HttpResponse:
    """The portal's alert rules: thresholds, severity, departments, escalation."""
    portal = portal_for(request.user, portal_id)
    rules = ensure_rules(portal)
    departments = list(Department.objects.filter(portal=portal).order_by("name"))
    forms_by_rule = [
        AlertRuleForm(
            request.POST or None,
            instance=rule,
            prefix=rule.kind,
            departments=departments,
        )
        for kind, rule in sorted(rules.items(), key=lambda item: list(RULES).index(item[0]))
    ]
    if request.method == "POST":
        if all(form.is_valid() for form in forms_by_rule):
            for form in forms_by_rule:
                form.save()
            selectors.forget_rules(portal)
            messages.success(request, f"Saved the alert rules of {portal.name}.")
            return redirect("portal_alert_rules", portal_id=portal.pk)
        messages.error(request, "Some rules need fixing; see the messages below.")
    return render(request, "portals/alert_rules.html", {"portal": portal, "forms": forms_by_rule})
