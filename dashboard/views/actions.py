"""Supervisor actions over HTTP (htmx): the forms, the action itself, the outcome.

Thin: access, the idempotency key and the outcome live in dashboard.actions. Each action
request names its page (``X-Live-Page``): the outcome published while answering skips it, as
its HTTP answer already shows the outcome there.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from siq_integration import dialects, oauth

from .. import access, selectors
from ..actions import drain, locks, refusals, services, status_rules, stuck, wording
from ..actions.assign import best_assignee
from ..models import Action, CannedLine, Chat, ChatStatus, Operator

PARTS = "actions/parts.html"


def viewable_chat(request: HttpRequest, chat_id: int) -> Chat:
    """The chat, if the user may see its portal (else 404, as if it did not exist)."""
    chat = Chat.objects.select_related("portal").filter(pk=chat_id).first()
    if chat is None or not access.can_view(request.user, chat.portal):
        raise Http404("No such chat")
    return chat


def _operator(request: HttpRequest, operator_id: int) -> Operator:
    operator = Operator.objects.select_related("portal").filter(pk=operator_id).first()
    if operator is None or not access.can_view(request.user, operator.portal):
        raise Http404("No such operator")
    return operator


def new_key() -> str:
    """A fresh idempotency key for a form: every submit of that form carries it."""
    return secrets.token_urlsafe(24)


def _key(request: HttpRequest) -> str:
    key = request.POST.get("idempotency_key", "").strip()
    if not 16 <= len(key) <= 64:
        raise ValueError("missing idempotency key")
    return key


_PAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def page_id(request: HttpRequest) -> str | None:
    """The id the acting page sent in ``X-Live-Page``, or None when absent or malformed."""
    sent = request.headers.get("X-Live-Page", "")
    return sent if _PAGE_ID.fullmatch(sent) else None


_OUT_OF_DATE = "This form is out of date. Close it and open it again."
_USED = (
    "This form was already used for another chat, operator or action, so nothing was sent "
    "to SalesIQ. Close it and open it again."
)

_TOO_MANY = (
    "Your role may not act on this portal, and this account was refused many times this "
    "minute. Wait a minute; nothing was sent to SalesIQ."
)


@dataclass(frozen=True)
class Unsent:
    """What a form's answer says when its action could not even start, in the words of the
    system it would have called."""

    out_of_date: str
    used: str
    too_many: str


SALESIQ = Unsent(_OUT_OF_DATE, _USED, _TOO_MANY)


def attempt(request: HttpRequest, perform, unsent: Unsent = SALESIQ) -> Action | HttpResponse:
    """``perform(key)`` with the form's idempotency key: its action, or the answer in words
    when it could not start (no key, a key used for something else, a role refused again
    and again)."""
    try:
        key = _key(request)
    except ValueError:
        return HttpResponseBadRequest(unsent.out_of_date)
    try:
        return perform(key)
    except refusals.TooManyRefusals as refused:
        answer = HttpResponse(unsent.too_many, status=429, content_type="text/plain; charset=utf-8")
        answer["Retry-After"] = str(refused.retry_after)
        return answer
    except locks.KeyReused:
        # The key is bound to its first action and target: a conflict, said in words.
        return HttpResponse(unsent.used, status=409, content_type="text/plain; charset=utf-8")
    except Exception:
        # Whatever it left pending says "No clear answer" now and lets go of its chat.
        stuck.abandon_after_error(key)
        raise


def _run(request: HttpRequest, perform, partial: str = "outcome", **extra: object) -> HttpResponse:
    action = attempt(request, perform)
    if isinstance(action, HttpResponse):
        return action
    context = {"action": action, "steps": list(action.steps.order_by("pk")), **extra}
    return render(request, f"{PARTS}#{partial}", context)


@login_required
@require_http_methods(["GET", "POST"])
def chat_transfer(request: HttpRequest, chat_id: int) -> HttpResponse:
    chat = viewable_chat(request, chat_id)
    if request.method == "GET":
        context = {
            "chat": chat,
            "key": new_key(),
            "can_act": access.can_act(request.user, chat.portal),
            **selectors.transfer_choices(chat),
        }
        return render(request, f"{PARTS}#transfer_form", context)
    return _run(
        request,
        lambda key: services.chat_transfer(
            key=key,
            user=request.user,
            page=page_id(request),
            chat=chat,
            department_id=request.POST.get("department_id", ""),
            operator_id=request.POST.get("operator_id", ""),
            note=request.POST.get("note", "")[:500],
        ),
    )


@login_required
@require_http_methods(["GET", "POST"])
def chat_end(request: HttpRequest, chat_id: int) -> HttpResponse:
    chat = viewable_chat(request, chat_id)
    if request.method == "GET":
        context = {
            "chat": chat,
            "key": new_key(),
            "can_act": access.can_act(request.user, chat.portal),
        }
        return render(request, f"{PARTS}#end_form", context)
    return _run(
        request,
        lambda key: services.chat_end(
            key=key,
            user=request.user,
            chat=chat,
            message=request.POST.get("message", "")[:1000],
            page=page_id(request),
        ),
    )


@login_required
@require_http_methods(["GET"])
def operator_panel(request: HttpRequest, operator_id: int) -> HttpResponse:
    operator = _operator(request, operator_id)
    view = selectors.operator_views([operator.portal], only=[operator.pk])[0]
    chats = list(selectors.open_chats([operator.portal]).filter(operator_id=operator.remote_id))
    context = {
        "view": view,
        "operator": operator,
        "key": new_key(),
        "can_act": access.can_act(request.user, operator.portal),
        "statuses": status_rules.settable_statuses(operator.portal),
        # v2 lets the connected user set only their own status: said before the click.
        "status_rule": status_rules.status_rule(operator, open_chats=len(chats)),
        "chats": chats,
        "open_alerts": selectors.alert_rows(
            selectors.open_alerts([operator.portal]).filter(operator=operator)
        ),
    }
    return render(request, f"{PARTS}#operator_panel", context)


@login_required
@require_http_methods(["POST"])
def operator_status(request: HttpRequest, operator_id: int) -> HttpResponse:
    operator = _operator(request, operator_id)
    # The buttons stay for the next change: its outcome goes beside them, with a fresh key
    # for the form (the one just used stays tied to this attempt).
    return _run(
        request,
        lambda key: services.operator_set_status(
            key=key,
            user=request.user,
            operator=operator,
            status=request.POST.get("status", ""),
            page=page_id(request),
        ),
        partial="status_outcome",
        operator=operator,
        key=new_key(),
    )


@login_required
@require_http_methods(["GET", "POST"])
def operator_drain(request: HttpRequest, operator_id: int) -> HttpResponse:
    operator = _operator(request, operator_id)
    if request.method == "GET":
        plan = drain.operator_drain_plan(operator=operator)
        context = {
            "plan": plan,
            "operator": operator,
            "key": new_key(),
            "can_act": access.can_act(request.user, operator.portal),
        }
        return render(request, f"{PARTS}#drain_preview", context)

    def perform(key: str):
        moves = []
        for pair in request.POST.getlist("move"):
            chat_pk, _, target_pk = pair.partition(":")
            if chat_pk.isdigit() and target_pk.isdigit():
                moves.append((int(chat_pk), int(target_pk)))
        return drain.operator_drain(
            key=key, user=request.user, operator=operator, moves=moves, page=page_id(request)
        )

    return _run(request, perform, partial="drain_outcome")


# --- step in: message, pick up, assign ---------------------------------------------------


def step_in_context(chat: Chat, *, can_act: bool) -> dict[str, object]:
    """What the chat drawer needs for stepping in (templates/actions/parts.html#step_in): who
    SalesIQ acts as, whether messaging is allowed, the canned lines, and for a waiting chat
    the best operator to assign it to. Nothing for a user who may not act."""
    if not can_act or not chat.is_open:
        return {}
    portal = chat.portal
    waiting = chat.status == ChatStatus.WAITING
    return {
        "step_in": {
            "acts_as": wording.acts_as(portal),
            "may_message": oauth.may_message(portal),
            "reconnect": wording.RECONNECT_TO_MESSAGE,
            "canned": list(CannedLine.objects.filter(portal=portal)),
            "can_pick_up": waiting and dialects.get(portal.dialect).can_pick_up,
            "assignee": best_assignee(chat) if waiting else None,
            "message_key": new_key(),
            "pickup_key": new_key(),
            "assign_key": new_key(),
        }
    }


@login_required
@require_http_methods(["POST"])
def chat_message(request: HttpRequest, chat_id: int) -> HttpResponse:
    chat = viewable_chat(request, chat_id)
    # The form stays for the next line: the outcome goes below it, with a fresh key.
    return _run(
        request,
        lambda key: services.chat_message(
            key=key,
            user=request.user,
            chat=chat,
            text=request.POST.get("text", "")[: CannedLine.MAX_LENGTH],
            page=page_id(request),
        ),
        partial="message_outcome",
        chat=chat,
        key=new_key(),
    )


@login_required
@require_http_methods(["POST"])
def chat_pickup(request: HttpRequest, chat_id: int) -> HttpResponse:
    chat = viewable_chat(request, chat_id)
    return _run(
        request,
        lambda key: services.chat_pickup(
            key=key, user=request.user, chat=chat, page=page_id(request)
        ),
    )


@login_required
@require_http_methods(["POST"])
def chat_assign(request: HttpRequest, chat_id: int) -> HttpResponse:
    """A waiting chat to the operator its drawer suggested (assign.best_assignee), through
    the transfer path; refused if someone picked it up meanwhile."""
    chat = viewable_chat(request, chat_id)
    operator_id = request.POST.get("operator_id", "")
    department_id = chat.department_id
    if not department_id and operator_id:
        # SalesIQ v2 transfers need a department: the operator's own, when the chat has none.
        target = Operator.objects.filter(portal=chat.portal, remote_id=operator_id).first()
        department_id = target.department_ids[0] if target and target.department_ids else ""
    return _run(
        request,
        lambda key: services.chat_transfer(
            key=key,
            user=request.user,
            page=page_id(request),
            chat=chat,
            department_id=department_id,
            operator_id=operator_id,
            assign=True,
        ),
    )
