"""Zoho CRM in the pages: the drawer's CRM panel, "Create lead from this chat", and on the
portal page adding CRM, removing it and its settings (Admins).

Thin: the cache, the job and the action live in dashboard/crm.py; the client in
siq_integration/crm.py. The panel is loaded by the drawer after it opens (and polls while
the worker looks the visitor up), so opening a chat never waits for CRM.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from siq_integration import oauth
from siq_integration.exceptions import SalesIQError

from .. import access
from .. import crm as crm_cache
from ..access import admin_required, portal_for
from ..forms.crm import CrmSettingsForm
from ..models import Chat, CrmPerson
from .actions import Unsent, attempt, new_key, page_id, viewable_chat
from .portals import connect_failed, redirect_uri

PANEL = "live/crm.html"


def _panel_context(request: HttpRequest, chat: Chat, **extra) -> dict:
    person = crm_cache.ask(chat) if chat.portal.has_crm else None
    return {
        "chat": chat,
        "person": person,
        "pending": person is not None and person.state == CrmPerson.State.PENDING,
        "can_act": access.can_act(request.user, chat.portal),
        "key": new_key(),
        **extra,
    }


@login_required
@never_cache
@require_http_methods(["GET"])
def chat_crm(request: HttpRequest, chat_id: int) -> HttpResponse:
    chat = viewable_chat(request, chat_id)
    return render(request, f"{PANEL}#panel", _panel_context(request, chat))


# The same refusals as SalesIQ's actions, in CRM's words.
UNSENT = Unsent(
    out_of_date="This form is out of date. Close the chat and open it again.",
    used="This form was already used for another action, so nothing was sent to Zoho CRM.",
    too_many=(
        "Your role may not act on this portal, and this account was refused many times "
        "this minute. Wait a minute; nothing was sent to Zoho CRM."
    ),
)


@login_required
@require_POST
def chat_crm_lead(request: HttpRequest, chat_id: int) -> HttpResponse:
    chat = viewable_chat(request, chat_id)
    action = attempt(
        request,
        lambda key: crm_cache.crm_create_lead(
            key=key, user=request.user, chat=chat, page=page_id(request)
        ),
        UNSENT,
    )
    if isinstance(action, HttpResponse):
        return action
    chat.refresh_from_db()
    return render(request, f"{PANEL}#panel", _panel_context(request, chat, action=action))


# --- the portal page (Admins) ----------------------------------------------------------------


@admin_required
@require_POST
def portal_crm_add(request: HttpRequest, portal_id) -> HttpResponse:
    """The same Zoho sign-in as connecting, with CRM's scopes added; back on the callback."""
    portal = portal_for(request.user, portal_id)
    if not portal.is_connected:
        messages.error(request, f"Connect {portal.name} first; CRM uses the same sign-in.")
        return redirect("portal_detail", portal_id=portal.pk)
    try:
        url = oauth.start_authorization(
            session=request.session, portal=portal, redirect_uri=redirect_uri(request), crm=True
        )
    except SalesIQError as failure:
        return connect_failed(request, failure, portal)
    return redirect(url)


@admin_required
@require_POST
def portal_crm_remove(request: HttpRequest, portal_id) -> HttpResponse:
    """Stop using CRM for this portal (the grant stays for SalesIQ); markers go."""
    portal = portal_for(request.user, portal_id)
    type(portal).objects.filter(pk=portal.pk).update(crm_connected_at=None, crm_api_domain="")
    CrmPerson.objects.filter(portal=portal).delete()
    Chat.objects.filter(portal=portal).exclude(crm_marker="").update(crm_marker="")
    messages.success(
        request,
        f"Zoho CRM is removed from {portal.name}: no more lookups; SalesIQ works as before.",
    )
    return redirect("portal_detail", portal_id=portal.pk)


@admin_required
@require_POST
def portal_crm_settings(request: HttpRequest, portal_id) -> HttpResponse:
    portal = portal_for(request.user, portal_id)
    form = CrmSettingsForm(request.POST)
    if form.is_valid():
        portal.crm_big_deal_amount = form.cleaned_data["big_deal_amount"]
        portal.crm_credits_per_day = form.cleaned_data["credits_per_day"]
        portal.save(update_fields=["crm_big_deal_amount", "crm_credits_per_day", "updated_at"])
        messages.success(request, f"Saved the Zoho CRM settings of {portal.name}.")
    else:
        problems = "; ".join(
            f"{form[name].label}: {', '.join(errors)}" for name, errors in form.errors.items()
        )
        messages.error(request, f"Nothing was saved. {problems}")
    return redirect("portal_detail", portal_id=portal.pk)
