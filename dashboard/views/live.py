"""The live dashboard page, the chat drawer and the JSON snapshot."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from siq_integration.budget import Priority
from siq_integration.client import SalesIQClient
from siq_integration.exceptions import SalesIQError

from .. import access, selectors
from ..figures import queues
from ..models import Chat, Profile
from ..participants import others_in_chat
from ..state import apply
from .actions import step_in_context


def signals_of(user) -> dict[str, bool]:
    """How new alerts reach this user beyond the page: a desktop notification, a sound."""
    profile = Profile.objects.filter(user=user).only("notify_desktop", "notify_sound").first()
    return {
        "desktop": bool(profile and profile.notify_desktop),
        "sound": bool(profile and profile.notify_sound),
    }


def _selected_portals(request: HttpRequest):
    visible = list(access.visible_portals(request.user))
    wanted = request.GET.get("portal", "")
    if wanted:
        chosen = [portal for portal in visible if str(portal.pk) == wanted]
        if not chosen:
            raise Http404("No such portal")
        return visible, chosen
    return visible, visible


@login_required
@never_cache
def dashboard(request: HttpRequest) -> HttpResponse:
    visible, portals = _selected_portals(request)
    # Taken before reading: the websocket then knows whether this page is still current.
    rendered_at = timezone.now()
    context = selectors.live_context(portals)
    return render(
        request,
        "live/page.html",
        {
            **context,
            **(wall_context(portals) if request.GET.get("wallboard") == "1" else {}),
            "visible_portals": visible,
            "selected": portals[0] if len(portals) == 1 and len(visible) > 1 else None,
            "ws_portals": ",".join(str(portal.pk) for portal in portals),
            "ws_since": int(rendered_at.timestamp() * 1000),
            "wallboard": request.GET.get("wallboard") == "1",
            "can_manage": access.is_admin(request.user),
            # Whose alerts this user may acknowledge (the page hides the buttons elsewhere).
            "act_portals": ",".join(
                str(portal.pk) for portal in portals if access.can_act(request.user, portal)
            ),
            "signals": signals_of(request.user),
            "queues": queues.queue_rows(portals),
            "queue_notes": queues.notes(portals),
        },
    )


def wall_context(portals) -> dict:
    """What only a wallboard shows: the day panel's portal, the first of the live portals shown
    (the panel says so when there are several; none when no portal is live)."""
    live = selectors.live_only(list(portals))
    if not live:
        return {"wall_day": None}
    return {"wall_day": {"portal": live[0], "portal_count": len(live)}}


@login_required
@never_cache
def chat_drawer(request: HttpRequest, chat_id: int) -> HttpResponse:
    chat = Chat.objects.select_related("portal").filter(pk=chat_id).first()
    if chat is None or not access.can_view(request.user, chat.portal):
        raise Http404("No such chat")
    problem = ""
    if chat.transcript_loaded_at is None:
        # The first look at a chat loads its whole transcript from SalesIQ; live
        # messages keep it current from then on.
        try:
            messages = SalesIQClient(chat.portal, priority=Priority.ACTION).list_messages(
                chat.remote_id
            )
            apply.apply_transcript(chat, messages, fetched_at=timezone.now())
        except SalesIQError as failure:
            problem = f"The full transcript could not be loaded: {failure.user_message}"
    can_act = access.can_act(request.user, chat.portal)
    return render(
        request,
        "live/parts.html#drawer",
        {
            "chat": chat,
            "messages": list(chat.messages.all()),
            "people": others_in_chat(chat),
            "problem": problem,
            "open_alerts": selectors.alert_rows(
                selectors.open_alerts([chat.portal]).filter(chat=chat)
            ),
            # Transfer and End show only to those who may act; the action views check again.
            "can_act": can_act,
            # Message, pick up and assign (templates/actions/parts.html#step_in).
            **step_in_context(chat, can_act=can_act),
        },
    )


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None


def _figures_json(figures) -> dict:
    def r(value):
        return None if value is None else round(value, 1)

    return {
        "offered": figures.offered,
        "answered": figures.answered,
        "missed": figures.missed,
        "abandoned": figures.abandoned,
        "within_target": figures.within_target,
        "judged": figures.judged,
        "service_level_percent": r(figures.service_level),
        "answer_seconds_average": r(figures.answer_average),
        "answer_seconds_p90": figures.answer_p90,
        "handle_seconds_average": r(figures.handle_average),
        "first_response_seconds_average": r(figures.response_average),
        "rating_average": r(figures.rating_average),
        "rated_good_percent": r(figures.rated_good_share),
        "rated": figures.rated,
    }


def queue_json(queue) -> dict:
    """A department's queue figures as the JSON snapshot gives them (every figure as
    dashboard/figures/definitions.py defines it)."""
    advice = queue.advice
    return {
        "department": {"id": queue.department_id, "name": queue.name},
        "target": {"seconds": queue.target.seconds, "share_percent": queue.target.share},
        "open_now": queue.open_now,
        "waiting": queue.waiting,
        "waiting_past_target": queue.waiting_past_target,
        "longest_wait_seconds": round(queue.longest_wait)
        if queue.longest_wait is not None
        else None,
        "operators_available": queue.available,
        "free_seats": queue.free_seats,
        "tone": queue.tone or "ok",
        "today": _figures_json(queue.today),
        "last_60_minutes": _figures_json(queue.last_hour),
        "staffing": {
            "needed": advice.needed,
            "available": advice.available,
            "short": advice.short,
            "sentence": queue.advice_sentence,
        }
        if advice
        else None,
    }


@login_required
@never_cache
def snapshot_json(request: HttpRequest, portal_id) -> JsonResponse:
    portal = access.portal_for(request.user, portal_id)
    now = timezone.now()
    fresh = selectors.freshness(portal, now)

    def age(moment):
        return round((now - moment).total_seconds(), 1) if moment else None

    # A portal that is not live (disconnected, never connected) shows nothing, as on the page.
    shown = selectors.live_only([portal])
    names = selectors.department_names(shown)
    chats = [
        {
            "id": chat.remote_id,
            "status": chat.status,
            "visitor": {
                "id": chat.visitor_id,
                "name": chat.visitor_name,
                "email": chat.visitor_email,
            },
            "operator": {"id": chat.operator_id, "name": chat.operator_name}
            if chat.operator_id
            else None,
            "department": {"id": chat.department_id, "name": chat.department_name}
            if chat.department_id
            else None,
            "started_at": _iso(chat.started_at),
            "waiting_since": _iso(chat.waiting_since),
            "attended_at": _iso(chat.attended_at),
            "last_message": {
                "text": chat.last_message_text,
                "at": _iso(chat.last_message_at),
                "sender": chat.last_message_sender,
            }
            if chat.last_message_at or chat.last_message_text
            else None,
            "awaiting_reply": chat.awaiting_reply,
            "source": chat.source,
            "fact_at": _iso(chat.fact_at),
        }
        for chat in selectors.open_chats(shown)
    ]
    operators = [
        {
            "id": view.operator.remote_id,
            # The name every screen shows (namesakes told apart), then SalesIQ's own fields.
            "name": view.operator.shown_name,
            "full_name": view.operator.name,
            "first_name": view.operator.first_name,
            "last_name": view.operator.last_name,
            "nick_name": view.operator.nick_name,
            "email": view.operator.email,
            "status": view.operator.status,
            "status_since": _iso(view.operator.status_since),
            "open_chats": view.load,
            "capacity": view.capacity,
            "departments": [
                {"id": d, "name": names.get((portal.pk, d), "")}
                for d in view.operator.department_ids
            ],
            "seconds_in_current_status": age(view.operator.status_since),
            # Today's figures (dashboard/figures/operators.py defines each).
            "today": view.figures.as_json(now) if view.figures else None,
        }
        for view in selectors.operator_views(shown)
    ]
    departments = [
        {"id": remote_id, "name": name}
        for (portal_pk, remote_id), name in sorted(names.items(), key=lambda item: item[1])
    ]

    (note,) = queues.notes([portal], now) or (None,)

    return JsonResponse(
        {
            "portal": {"id": str(portal.pk), "name": portal.name, "live": fresh.live},
            "generated_at": now.isoformat(),
            "health": {
                "state": fresh.health.state,
                "label": fresh.health.label,
                "sentence": fresh.health.sentence,
            },
            "webhooks": fresh.webhooks,
            "stale": fresh.stale,
            "data_age_seconds": {
                "chats": age(fresh.chats_as_of),
                "operators": age(fresh.operators_as_of),
            },
            "kpis": selectors.kpis([portal], now),
            "chats": chats,
            "operators": operators,
            "departments": departments,
            # How each department's service is doing (dashboard/figures/; README "Figures").
            "queues": [queue_json(queue) for queue in queues.queue_rows(shown, now)],
            "figures_incomplete": note.text if note and note.text else None,
        },
        json_dumps_params={"ensure_ascii": False},
    )
