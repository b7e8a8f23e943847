"""`POST /webhooks/salesiq/<portal uuid>/`: SalesIQ's deliveries.

Verified over the raw bytes with the portal's dialect, stored in the inbox with a
de-duplication key, answered at once; applied after commit (dashboard.ingest).
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from siq_integration.models import Portal

from .. import ingest


@csrf_exempt  # SalesIQ signs its deliveries; there is no browser session here
@require_POST
def receive(request: HttpRequest, portal_id) -> JsonResponse:
    portal = Portal.objects.filter(pk=portal_id).first()
    if portal is None:
        return JsonResponse({"error": "unknown webhook address"}, status=404)
    receipt = ingest.too_large(portal, int(request.headers.get("Content-Length") or 0))
    if receipt is None:
        receipt = ingest.receive(portal, request.body, request.headers)
    return JsonResponse(receipt.body, status=receipt.status)
