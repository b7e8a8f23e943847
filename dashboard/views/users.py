"""Users and their portal access (Admins only)."""

from __future__ import annotations

import ipaddress

from django.contrib import messages
from django.contrib.auth import get_user_model, update_session_auth_hash
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from ..access import admin_required
from ..forms.users import UserAddForm, UserEditForm
from ..signin import locked_out_addresses, unlock, unlock_address
from ..users import user_access_list, user_create, user_update


@admin_required
def user_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "users/list.html",
        {"rows": user_access_list(), "locked_addresses": locked_out_addresses()},
    )


@admin_required
def user_add(request: HttpRequest) -> HttpResponse:
    form = UserAddForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = user_create(
                username=data["username"],
                first_name=data["first_name"],
                last_name=data["last_name"],
                email=data["email"],
                role=data["role"],
                portals=data["portals"],
                password=data["password"],
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"Added {user.username} as {data['role'].label}.")
            return redirect("users")
    return render(request, "users/form.html", {"form": form, "adding": True})


@admin_required
def user_edit(request: HttpRequest, user_id: int) -> HttpResponse:
    user = get_object_or_404(get_user_model(), pk=user_id)
    form = UserEditForm(request.POST if request.method == "POST" else None, user=user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user_update(
                user=user,
                by=request.user,
                first_name=data["first_name"],
                last_name=data["last_name"],
                email=data["email"],
                role=data["role"],
                portals=data["portals"],
                is_active=data["is_active"],
                new_password=data["new_password"],
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            if data["new_password"] and user.pk == request.user.pk:
                update_session_auth_hash(request, user)  # stay signed in after a new password
            messages.success(request, f"Saved the changes to {user.username}.")
            return redirect("users")
    return render(request, "users/form.html", {"form": form, "adding": False, "edited": user})


@admin_required
@require_POST
def user_unlock(request: HttpRequest, user_id: int) -> HttpResponse:
    """Clear the failed sign-ins that lock this account out (the Users page's Unlock)."""
    user = get_object_or_404(get_user_model(), pk=user_id)
    unlock(user.get_username(), by=request.user.get_username())
    messages.success(request, f"Unlocked {user.username}: they can sign in again now.")
    return redirect("users")


@admin_required
@require_POST
def address_unlock(request: HttpRequest) -> HttpResponse:
    """Clear the failed sign-ins that lock an address out (the Users page's list of them)."""
    try:
        address = str(ipaddress.ip_address(request.POST.get("address", "").strip()))
    except ValueError:
        messages.error(request, "That is not an address: nothing was unlocked.")
        return redirect("users")
    if unlock_address(address, by=request.user.get_username()):
        messages.success(request, f"Unlocked {address}: sign-in from there works again now.")
    else:
        messages.info(request, f"{address} was not locked out.")
    return redirect("users")
