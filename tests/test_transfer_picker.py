"""The transfer picker: best choices first for the department picked, by one rank that the
browser re-applies from the server's places, and never the operator who has the chat."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from dashboard import selectors
from dashboard.actions import services
from dashboard.models import Action, Chat
from siq_integration.normalised import ChatStatus, OperatorStatus
from tests.factories import make_portal
from tests.support.live import chat, fill, staff

pytestmark = pytest.mark.django_db

STATUS = OperatorStatus


@pytest.fixture
def portal():
    portal = make_portal()
    fill(portal, [chat("c1", status=ChatStatus.CONNECTED, operator=("o1", "Asha Rao"))])
    staff(
        portal,
        ("o1", "Asha Rao", STATUS.AVAILABLE, ("d1",), 4),
        ("o2", "Ben Okafor", STATUS.AVAILABLE, ("d2",), 4),
        ("o3", "Chloé Karimi", STATUS.AVAILABLE, ("d1",), 4),
        ("o4", "Dev Iyer", STATUS.BUSY, ("d1", "d2"), 4),
        ("o5", "Eli Moss", STATUS.OFFLINE, ("d2",), 4),
    )
    return portal


def names(choices) -> list[str]:
    return [choice.view.operator.name for choice in choices]


def order_for(choices, covers) -> list[str]:
    """The order the browser makes for a department: each pick by its place inside or out."""
    placed = sorted(
        choices, key=lambda c: c.place_inside if covers(c.view.operator) else c.place_outside
    )
    return names(placed)


def test_it_ranks_the_chats_department_first_and_the_same_way_for_any_other(portal):
    item = Chat.objects.get(remote_id="c1")  # Sales (d1), with Asha
    choices = selectors.transfer_choices(item)["choices"]
    assert names(choices) == ["Chloé Karimi", "Ben Okafor", "Dev Iyer", "Eli Moss"]

    # Support (d2) picked: Ben, available there, goes above Chloé, who is not in it.
    in_support = order_for(choices, lambda op: "d2" in op.department_ids)
    assert in_support == ["Ben Okafor", "Chloé Karimi", "Dev Iyer", "Eli Moss"]
    # The places are the server's rank, whichever department is picked.
    for department in ("d1", "d2", "d9"):
        expected = sorted(
            choices, key=lambda c: c.rank_for(department in c.view.operator.department_ids)
        )
        assert order_for(choices, lambda op, d=department: d in op.department_ids) == names(
            expected
        )


@pytest.mark.parametrize(
    ("operator_id", "operator_name"),
    [
        ("o1", "Asha Rao"),  # as SalesIQ says it
        (" o1 ", ""),  # an id with stray spaces, no name
        ("60001234", "Asha Rao"),  # an id of another kind (a zuid): the name tells
        ("", "asha rao "),  # a name only, cased and spaced otherwise
    ],
)
def test_it_never_offers_the_operator_who_has_the_chat(portal, operator_id, operator_name):
    Chat.objects.filter(remote_id="c1").update(operator_id=operator_id, operator_name=operator_name)
    item = Chat.objects.get(remote_id="c1")
    assert "Asha Rao" not in names(selectors.transfer_choices(item)["choices"])


def test_it_never_offers_the_operator_on_the_reference_dialect_either(portal):
    portal.dialect = "reference"
    portal.save(update_fields=["dialect"])
    admin = get_user_model().objects.create_superuser("root", password="pw")
    browser = Client()
    browser.force_login(admin)
    item = Chat.objects.get(remote_id="c1")
    page = browser.get(f"/live/chats/{item.pk}/transfer/").content.decode()
    assert 'value="o1"' not in page
    assert 'value="o3" checked' in page  # the best one, picked for the supervisor


def test_it_keeps_a_waiting_chat_open_to_everyone(portal):
    fill(portal, [chat("w1")])
    staff(
        portal,
        ("o1", "Asha Rao", STATUS.AVAILABLE, ("d1",), 4),
        ("o3", "Chloé Karimi", STATUS.AVAILABLE, ("d1",), 4),
    )
    item = Chat.objects.get(remote_id="w1")
    assert sorted(names(selectors.transfer_choices(item)["choices"])) == [
        "Asha Rao",
        "Chloé Karimi",
    ]


def test_it_refuses_a_transfer_to_the_operator_who_has_the_chat(portal):
    admin = get_user_model().objects.create_superuser("root", password="pw")
    item = Chat.objects.select_related("portal").get(remote_id="c1")
    action = services.chat_transfer(
        key="k" * 20, user=admin, chat=item, department_id="d1", operator_id="o1"
    )
    assert action.outcome == "refused"
    assert action.message.startswith("Asha Rao already has this chat")
    assert Action.objects.get(pk=action.pk).error_code == "same_operator"
