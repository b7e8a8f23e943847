from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from siq_integration.models import Portal


@login_required
def home(request: HttpRequest) -> HttpResponse:
    portals = Portal.objects.all()
    return render(request, "dashboard/home.html", {"portals": portals})
