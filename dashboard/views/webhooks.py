"""`POST /webhooks/salesiq/<portal uuid>/`: SalesIQ's deliveries.

Verified over the raw bytes with the portal's dialect (v2 RSA keys, reference HMAC)
and recorded on the portal's health. A bad signature is 401 and never used; a body
that is not an event is 400. Storing and applying the events to the live state
arrives with live supervision; until then a verified delivery is acknowledged.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from siq_integration import webhooks
from siq_integration.exceptions import MalformedPayload, SignatureInvalid, TokenDecryptionError
from siq_integration.models import Portal

logger = logging.getLogger(__name__)


def _record(portal: Portal, *, ok: bool, problem: str = "") -> None:
    Portal.objects.filter(pk=portal.pk).update(
        last_webhook_at=timezone.now(), last_webhook_ok=ok, last_webhook_problem=problem[:500]
    )


@csrf_exempt  # SalesIQ signs its deliveries; there is no browser session here
@require_POST
def receive(request: HttpRequest, portal_id) -> JsonResponse:
    portal = Portal.objects.filter(pk=portal_id).first()
    if portal is None:
        return JsonResponse({"error": "unknown webhook address"}, status=404)
    length = int(request.headers.get("Content-Length") or 0)
    if length > webhooks.MAX_BODY_BYTES:
        _record(portal, ok=False, problem=f"A delivery of {length} bytes was refused as too large.")
        return JsonResponse({"error": "body too large"}, status=413)
    body = request.body
    try:
        webhooks.verify(
            dialect=portal.dialect,
            body=body,
            headers=request.headers,
            public_keys=list(portal.webhook_keys.values_list("public_key_pem", flat=True)),
            secret=portal.get_webhook_secret() if portal.webhook_secret_encrypted else "",
        )
    except (SignatureInvalid, TokenDecryptionError) as failure:
        logger.warning("Webhook for portal %s refused: %s", portal.pk, failure.technical())
        _record(portal, ok=False, problem=failure.user_message)
        return JsonResponse({"error": "signature not valid"}, status=401)
    try:
        event = webhooks.parse(portal.dialect, body)
    except MalformedPayload as failure:
        _record(portal, ok=False, problem=failure.user_message)
        return JsonResponse({"error": "malformed body"}, status=400)
    _record(portal, ok=True)
    return JsonResponse({"ok": True, "event": event.name})
