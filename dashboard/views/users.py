"""Users and their portal access (Admins only). Being built; see the users pages issue work."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from ..access import admin_required


@admin_required
def user_list(request: HttpRequest) -> HttpResponse:
    raise NotImplementedError


@admin_required
def user_add(request: HttpRequest) -> HttpResponse:
    raise NotImplementedError


@admin_required
def user_edit(request: HttpRequest, user_id: int) -> HttpResponse:
    raise NotImplementedError
