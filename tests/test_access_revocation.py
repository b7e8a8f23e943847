"""A live page's socket when its user's access ends while it is open.

Every test speaks to the real ASGI application (dashboard.asgi) through a websocket: the page
connects with the user's session cookie, access ends (as an admin's page, Django's sign-out or
a change to the user would end it), and the socket closes with 4430 (no longer signed in) or
4431 (a portal of the page no longer visible), and hears nothing more of the portal after it.
Without dashboard/revocation.py the socket stays open and keeps receiving new chats.
"""

from __future__ import annotations

import time

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import OperationalError
from django.test import Client

from dashboard.asgi import application
from dashboard.models import Profile, Role
from dashboard.realtime import consumers, fanout
from dashboard.realtime.groups import group_name
from siq_integration.models import Portal
from tests.factories import make_user
from tests.support.asgi import run_async
from tests.support.users import NEW_PASSWORD, edit_form

pytestmark = pytest.mark.django_db(transaction=True)

NEW_CHAT = '<tr id="chat-new" hx-swap-oob="true"></tr>'


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def headers_of(client: Client) -> list[tuple[bytes, bytes]]:
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    return [(b"cookie", cookie.encode()), (b"origin", b"http://localhost"), (b"host", b"localhost")]


@pytest.fixture
def portal() -> Portal:
    return Portal.objects.create(name="Zylker", data_center="us", screen_name="zylker")


@pytest.fixture
def sam(portal):
    """A Supervisor of the one portal."""
    return make_user("sam", Role.SUPERVISOR, portal)


@pytest.fixture
def olivia():
    """An Admin, who changes other users through the Users page."""
    return make_user("olivia", Role.ADMIN)


def watch(
    client: Client, path: str, change, *, through_layer: bool = False
) -> tuple[dict | None, bool]:
    """Open ``path`` as ``client``'s page, make ``change`` (in a thread, as a view would), and
    answer (how the socket closed or None, whether a new chat still reached it afterwards).
    The chat is sent as the publisher sends it (dashboard.realtime.fanout), or through the
    channel layer as another process's publisher would (``through_layer``)."""
    headers = headers_of(client)

    async def scenario():
        ws = WebsocketCommunicator(application, path, headers=headers)
        connected, _ = await ws.connect(timeout=10)
        assert connected
        await ws.receive_from(timeout=10)  # the snapshot
        await database_sync_to_async(change)()
        closed = None
        if not await ws.receive_nothing(timeout=3):  # (a timed-out receive stops the app)
            output = await ws.receive_output(timeout=1)
            if output["type"] == "websocket.close":
                closed = output
        # A new chat on the portal: does it still reach this page?
        send = channel_layers["default"].group_send if through_layer else fanout.group_send
        for portal in await database_sync_to_async(list)(Portal.objects.all()):
            await send(group_name(portal.pk), {"type": "live.html", "html": NEW_CHAT})
        heard = not await ws.receive_nothing(timeout=0.5)
        await ws.disconnect()
        return closed, heard

    return run_async(scenario)


def page_of(portal) -> str:
    return f"/ws/live/?portals={portal.pk}"


def test_removed_from_the_portal_closes_the_page_of_that_portal(portal, sam):
    closed, heard = watch(
        signed_in(sam), page_of(portal), lambda: sam.profile.portals.remove(portal)
    )
    assert closed == {
        "type": "websocket.close",
        "code": consumers.PORTAL_ACCESS_ENDED,
        "reason": consumers.PORTAL_ACCESS_ENDED_REASON,
    }
    assert not heard


def test_removed_from_the_portal_from_the_portals_side_closes_too(portal, sam):
    closed, heard = watch(
        signed_in(sam), page_of(portal), lambda: portal.members.remove(sam.profile)
    )
    assert closed["code"] == consumers.PORTAL_ACCESS_ENDED
    assert not heard


def test_removed_from_the_portal_on_the_users_page_closes_the_page(portal, sam, olivia):
    admin = signed_in(olivia)

    def untick():
        answer = admin.post(f"/users/{sam.pk}/edit/", edit_form(sam, portals=[]))
        assert answer.status_code == 302

    closed, heard = watch(signed_in(sam), page_of(portal), untick)
    assert closed["code"] == consumers.PORTAL_ACCESS_ENDED
    assert not heard


def test_a_role_that_loses_the_portals_closes_a_page_of_all_portals(portal):
    # An Admin sees every portal; made a Viewer of none, they see none.
    ada = make_user("ada", Role.ADMIN)

    def demote():
        profile = Profile.objects.get(user=ada)
        profile.role = Role.VIEWER
        profile.save()

    closed, heard = watch(signed_in(ada), "/ws/live/", demote)
    assert closed["code"] == consumers.PORTAL_ACCESS_ENDED
    assert not heard


def test_deactivated_closes_every_page(portal, sam, olivia):
    admin = signed_in(olivia)

    def deactivate():
        answer = admin.post(f"/users/{sam.pk}/edit/", edit_form(sam, is_active=None))
        assert answer.status_code == 302

    closed, heard = watch(signed_in(sam), page_of(portal), deactivate)
    assert closed == {
        "type": "websocket.close",
        "code": consumers.ACCESS_ENDED,
        "reason": consumers.ACCESS_ENDED_REASON,
    }
    assert not heard


def test_a_new_password_closes_the_pages_of_other_sessions(portal, sam, olivia):
    admin = signed_in(olivia)

    def new_password():
        form = edit_form(sam, new_password1=NEW_PASSWORD, new_password2=NEW_PASSWORD)
        answer = admin.post(f"/users/{sam.pk}/edit/", form)
        assert answer.status_code == 302

    closed, heard = watch(signed_in(sam), page_of(portal), new_password)
    assert closed["code"] == consumers.ACCESS_ENDED
    assert not heard


def test_a_new_own_password_closes_the_page_but_keeps_the_user_signed_in(portal, olivia):
    # Olivia changes her own password: Django gives her session a new key with the new hash
    # (update_session_auth_hash), so the page still on the old key closes; loading it again
    # works without signing in.
    admin = signed_in(olivia)

    def own_password():
        form = edit_form(olivia, new_password1=NEW_PASSWORD, new_password2=NEW_PASSWORD)
        answer = admin.post(f"/users/{olivia.pk}/edit/", form)
        assert answer.status_code == 302

    closed, heard = watch(admin, page_of(portal), own_password)
    assert closed["code"] == consumers.ACCESS_ENDED
    assert not heard
    assert admin.get("/").status_code == 200


def test_signing_out_closes_the_pages_of_that_session_only(portal, sam):
    desk, phone = signed_in(sam), signed_in(sam)

    def sign_out():
        assert desk.post("/logout/").status_code == 302

    closed, heard = watch(desk, page_of(portal), sign_out)
    assert closed["code"] == consumers.ACCESS_ENDED
    assert not heard
    # The phone's session was not signed out: its page stays.
    closed, heard = watch(phone, page_of(portal), lambda: None)
    assert closed is None
    assert heard


def test_a_change_that_keeps_access_keeps_the_page(portal, sam):
    def rename():
        sam.first_name = "Samuel"
        sam.save()

    closed, heard = watch(signed_in(sam), page_of(portal), rename)
    assert closed is None
    assert heard


def test_every_rejoin_checks_again_what_no_signal_tells(portal, sam, monkeypatch):
    # The session is deleted behind Django's back (expired and cleared, or flushed with SQL):
    # no signal says so; the next periodic re-join finds out and closes the page.
    monkeypatch.setattr(consumers, "REJOIN_EVERY", 0.3)
    closed, heard = watch(signed_in(sam), page_of(portal), lambda: Session.objects.all().delete())
    assert closed["code"] == consumers.ACCESS_ENDED
    assert not heard


def test_every_rejoin_checks_the_account_too(portal, sam, monkeypatch):
    monkeypatch.setattr(consumers, "REJOIN_EVERY", 0.3)
    closed, heard = watch(
        signed_in(sam),
        page_of(portal),
        lambda: get_user_model().objects.filter(pk=sam.pk).update(is_active=False),
    )
    assert closed["code"] == consumers.ACCESS_ENDED
    assert not heard


def test_a_failed_check_keeps_the_page_and_its_memberships(portal, sam, monkeypatch, settings):
    # The database is away when the re-join checks: the page is neither closed nor deafened
    # (the layer forgets memberships after a second here; only the re-join renews them).
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 100, "expiry": 30, "group_expiry": 1},
        }
    }
    channel_layers.backends.clear()
    monkeypatch.setattr(consumers, "REJOIN_EVERY", 0.3)

    def database_away(user_id, session_key):
        raise OperationalError("database is locked")

    def go_away():
        monkeypatch.setattr(consumers.revocation, "still_signed_in", database_away)
        time.sleep(2.5)  # well past the layer's memory of the membership

    try:
        closed, heard = watch(signed_in(sam), page_of(portal), go_away, through_layer=True)
    finally:
        channel_layers.backends.clear()
    assert closed is None
    assert heard


def test_the_sign_out_signal_alone_closes_that_sessions_page(portal, sam):
    # Django sends user_logged_out before it flushes the session: the message names the
    # session, so its pages close even if they check before the flush (here: no flush).
    from django.contrib.auth import user_logged_out
    from django.contrib.sessions.backends.db import SessionStore
    from django.test import RequestFactory

    desk = signed_in(sam)

    def signal_only():
        # A real request: django-axes also listens to user_logged_out and reads its META.
        request = RequestFactory().get("/logout/")
        request.session = SessionStore(desk.cookies["sessionid"].value)
        user_logged_out.send(sender=type(sam), request=request, user=sam)

    closed, heard = watch(desk, page_of(portal), signal_only)
    assert closed["code"] == consumers.ACCESS_ENDED
    assert not heard
    assert desk.get("/").status_code == 200  # the session itself was never flushed


def test_a_change_made_while_the_page_connects_is_heard(portal, sam, monkeypatch):
    # Sam is deactivated after the handshake signed him in but before the page joined its
    # groups: the page joins his own group first, so the news waits for it there.
    seen = consumers._visible

    async def deactivated_meanwhile(user, wanted):
        def deactivate():
            sam.is_active = False
            sam.save()

        await database_sync_to_async(deactivate)()
        return await seen(user, wanted)

    monkeypatch.setattr(consumers, "_visible", deactivated_meanwhile)
    closed, heard = watch(signed_in(sam), page_of(portal), lambda: None)
    assert closed["code"] == consumers.ACCESS_ENDED
    assert not heard


def test_a_change_saved_on_an_event_loops_thread_is_told_too(portal, sam, monkeypatch):
    # Code running on the event loop's own thread (where async_to_sync refuses to run) saves
    # a change: the news goes out from that loop instead of being dropped. Django allows that
    # only with DJANGO_ALLOW_ASYNC_UNSAFE, as the browser tests set it (Playwright's loop runs
    # in their main thread).
    from dashboard import revocation

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    headers = headers_of(signed_in(sam))

    async def scenario():
        ws = WebsocketCommunicator(application, page_of(portal), headers=headers)
        assert (await ws.connect(timeout=10))[0]
        await ws.receive_from(timeout=10)
        await database_sync_to_async(get_user_model().objects.filter(pk=sam.pk).update)(
            is_active=False
        )
        revocation.tell(sam.pk)  # here, on the loop's thread: what a signal handler would do
        output = await ws.receive_output(timeout=5)
        await ws.disconnect()
        return output

    assert run_async(scenario)["code"] == consumers.ACCESS_ENDED
