"""The two shapes of SalesIQ: paths, envelopes, errors and fields → one normalised form.

``V2`` (v2.py) is the real, documented SalesIQ REST API v2; ``Reference`` (reference.py)
is the older reference shape. ``Dialect`` (base.py) is the contract both fulfil, with the
capability flags that say where they differ. Callers take a dialect from ``get`` and ask it,
never which one it is.
"""

from __future__ import annotations

from .. import exceptions as exc
from .base import (
    CAPABILITIES,
    Call,
    Dialect,
    Payload,
    Purpose,
    as_str,
    backoff_until,
    delivery_key,
    epoch_ms,
    iso8601,
)
from .reference import Reference
from .v2 import V2

__all__ = [
    "CAPABILITIES",
    "DIALECTS",
    "V2",
    "Call",
    "Dialect",
    "Payload",
    "Purpose",
    "Reference",
    "as_str",
    "backoff_until",
    "delivery_key",
    "epoch_ms",
    "get",
    "iso8601",
]

DIALECTS: dict[str, Dialect] = {"v2": V2(), "reference": Reference()}


def get(name: str) -> Dialect:
    try:
        return DIALECTS[name]
    except KeyError:
        raise exc.Misconfigured(f"Unknown SalesIQ dialect “{name}”.") from None
