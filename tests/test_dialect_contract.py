"""Both dialects fulfil the whole contract in ``siq_integration.dialects.base.Dialect``.

A member added to one dialect only, or to the contract but not to a dialect, fails here:
callers ask a dialect, never which one it is, so each must answer everything.
"""

from __future__ import annotations

import inspect

import pytest

from siq_integration import dialects
from siq_integration.dialects.base import CAPABILITIES, Dialect

DIALECT_CLASSES = [dialects.V2, dialects.Reference]


def _contract() -> set[str]:
    members = set(Dialect.__annotations__)
    members |= {
        name
        for name, value in vars(Dialect).items()
        if not name.startswith("_") and inspect.isfunction(value)
    }
    return members


def _public(cls: type) -> set[str]:
    return {name for name in vars(cls) if not name.startswith("_")}


def test_it_declares_every_capability_in_the_contract():
    assert set(CAPABILITIES) <= set(Dialect.__annotations__)


@pytest.mark.parametrize("cls", DIALECT_CLASSES, ids=lambda cls: cls.__name__)
def test_it_implements_every_member_of_the_contract(cls):
    missing = _contract() - _public(cls)
    assert not missing, f"{cls.__name__} lacks {sorted(missing)}"


@pytest.mark.parametrize("cls", DIALECT_CLASSES, ids=lambda cls: cls.__name__)
def test_it_has_no_public_member_outside_the_contract(cls):
    extra = _public(cls) - _contract()
    assert not extra, f"{cls.__name__} has {sorted(extra)}, which the contract does not declare"


@pytest.mark.parametrize("cls", DIALECT_CLASSES, ids=lambda cls: cls.__name__)
def test_it_declares_every_capability_flag_as_a_bool(cls):
    for flag in CAPABILITIES:
        assert isinstance(vars(cls).get(flag), bool), f"{cls.__name__}.{flag}"


@pytest.mark.parametrize("cls", DIALECT_CLASSES, ids=lambda cls: cls.__name__)
def test_it_matches_the_contract_signatures(cls):
    for name, value in vars(Dialect).items():
        if name.startswith("_") or not inspect.isfunction(value):
            continue
        declared = list(inspect.signature(value).parameters)
        implemented = list(inspect.signature(getattr(cls, name)).parameters)
        assert implemented == declared, f"{cls.__name__}.{name}{implemented} != {declared}"


def test_it_hands_out_dialects_that_satisfy_the_protocol():
    for name in ("v2", "reference"):
        dialect = dialects.get(name)
        assert isinstance(dialect, Dialect)
        assert dialect.name == name


@pytest.mark.parametrize("cls", DIALECT_CLASSES, ids=lambda cls: cls.__name__)
def test_it_says_what_a_transfer_needs(cls):
    # A transfer names somebody: a department, an operator, or both.
    assert cls.transfer_needs_department or cls.transfer_needs_operator
    # Waiting for acceptance presumes the transfer can go to a department's queue.
    assert not (cls.transfer_needs_acceptance and cls.transfer_needs_operator)


@pytest.mark.parametrize("cls", DIALECT_CLASSES, ids=lambda cls: cls.__name__)
def test_it_names_the_statuses_it_can_set(cls):
    from siq_integration.normalised import OperatorStatus

    statuses = cls.settable_statuses
    assert isinstance(statuses, tuple) and len(set(statuses)) == len(statuses)
    assert all(isinstance(status, OperatorStatus) for status in statuses)
    # A drain sets the drained operator Busy; a supervisor undoes it with Available.
    assert {OperatorStatus.AVAILABLE, OperatorStatus.BUSY} <= set(statuses)


@pytest.mark.parametrize("cls", DIALECT_CLASSES, ids=lambda cls: cls.__name__)
def test_it_names_its_signature_header_and_reach_checks(cls):
    assert isinstance(cls.signature_header, str) and cls.signature_header
    assert cls.reach_checks
    for scope, resource in cls.reach_checks:
        family = scope.rsplit(".", 1)[0] + "."  # SalesIQ.operators.READ is in .ALL
        assert any(asked.startswith(family) for asked in cls.scopes), f"{cls.__name__}: {scope}"
        assert resource in {"conversations", "operators", "departments", "webhooks"}


@pytest.mark.parametrize("cls", DIALECT_CLASSES, ids=lambda cls: cls.__name__)
def test_it_builds_every_path_the_client_calls(cls):
    dialect = cls()
    paths = [
        dialect.operators_path(),
        dialect.departments_path(),
        dialect.brands_path(),
        dialect.brand_departments_path("b-7"),
        dialect.webhooks_path(),
        dialect.webhook_path("w-7"),
        dialect.webhook_keys_path("w-7"),
        dialect.webhook_key_path("w-7", "k-9"),
    ]
    assert all(path.startswith("/") for path in paths)
    assert "b-7" in paths[3]
    assert all("w-7" in path for path in paths[5:]) and "k-9" in paths[7]


def test_it_builds_no_salesiq_path_in_the_client():
    from pathlib import Path

    import siq_integration.client as client

    source = Path(client.__file__).read_text()
    for literal in ('"/operators"', '"/departments"', '"/brands"', '"/webhooks"', 'f"/'):
        assert literal not in source, f"client.py builds {literal} itself"
