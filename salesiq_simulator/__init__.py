"""A fake Zoho Accounts plus SalesIQ (v2 and reference dialects) for the demo and the tests.

No Django here: stdlib HTTP server, in-memory state behind one lock. See docs/simulator.md.
"""

from __future__ import annotations

from .server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Simulator, SimulatorError, demo_world

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "Simulator",
    "SimulatorError",
    "demo_world",
]
