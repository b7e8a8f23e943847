"""No module outside dashboard/server/ reads a private attribute of daphne, Twisted, autobahn,
Channels, asgiref or Django: an upgrade may change what they mean without a word. Only
dashboard/server/ may, behind pinned versions and a contract test under the real daphne
(tests/test_frame_once_contract.py, tests/test_bodycap.py).

Read with ``ast``, two ways: ``._name`` (one underscore, not a dunder) or ``getattr(x,
"_name")`` on a name imported from those packages; and any use of the internals the code
once leaned on, whatever object it is reached through.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("dashboard", "siq_integration")
ALLOWED = ROOT / "dashboard" / "server"
PACKAGES = {"daphne", "twisted", "autobahn", "channels", "asgiref", "django"}

# What the code used before (issue 14): never outside dashboard/server/.
KNOWN_INTERNALS = {
    "_perMessageCompress",  # autobahn
    "payloadHybi",
    "prepareMessage",
    "sendPreparedMessage",
    "_tempDataBuffer",  # Twisted
    "dataBuffer",
    "handle_reply",  # daphne
    "threadlocal",  # asgiref's SyncToAsync
    "_clean_expired",  # channels' in-memory layer
    "nodelist",  # Django's template engine
    "extra_data",
    "DeferredSubDict",
}
# Documented despite the underscore.
DOCUMENTED = {"_meta"}  # Django's Model._meta API

# Left for another part of issue 14 to remove ("publisher" takes it out of ingest.py). An
# allowance that is no longer needed fails the test below: delete it then.
NOT_YET: set[tuple[str, str]] = set()


def _sources():
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            if ALLOWED not in path.parents and "migrations" not in path.parts:
                yield path


def _imported_names(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    names.add((alias.asname or alias.name).split(".")[0])
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and node.module.split(".")[0] in PACKAGES
        ):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _root(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        node = node.value if not isinstance(node, ast.Call) else node.func
    return node.id if isinstance(node, ast.Name) else None


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name not in DOCUMENTED


def uses_of_internals(source: str) -> list[tuple[int, str]]:
    """(line, name) of each private or known-internal attribute ``source`` reads."""
    tree = ast.parse(source)
    imported = _imported_names(tree)
    found = []
    for node in ast.walk(tree):
        name, target = None, None
        if isinstance(node, ast.Attribute):
            name, target = node.attr, node.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"getattr", "hasattr", "setattr"}
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            name, target = node.args[1].value, node.args[0]
        elif isinstance(node, ast.Name | ast.alias):
            name = node.id if isinstance(node, ast.Name) else node.name.split(".")[-1]
        if name is None:
            continue
        if name in KNOWN_INTERNALS or (
            target is not None and _private(name) and _root(target) in imported
        ):
            found.append((getattr(node, "lineno", 0), name))
    return found


def test_no_module_outside_the_server_seam_reads_their_internals():
    found, allowed_seen = [], set()
    for path in _sources():
        relative = path.relative_to(ROOT).as_posix()
        for line, name in uses_of_internals(path.read_text()):
            if (relative, name) in NOT_YET:
                allowed_seen.add((relative, name))
            else:
                found.append(f"{relative}:{line}: {name}")
    assert found == []
    assert allowed_seen == NOT_YET, (
        "not needed any more, take out of NOT_YET:",
        NOT_YET - allowed_seen,
    )


def test_it_sees_what_it_looks_for():
    # The scanner itself: each way in is caught, the documented and our own are not.
    source = """
from asgiref.sync import SyncToAsync
from channels import layers
import twisted.internet
from dashboard.models import Chat

SyncToAsync.threadlocal
layers.InMemoryChannelLayer._clean_expired
getattr(layers, "_private_thing")
twisted.internet._x
protocol._perMessageCompress
row.template.nodelist
Chat._meta
Chat._private_of_ours
layers.__name__
"""
    names = [name for _, name in uses_of_internals(source)]
    assert names.count("threadlocal") == 1
    assert "_clean_expired" in names and "_private_thing" in names and "_x" in names
    assert "_perMessageCompress" in names and "nodelist" in names
    assert "_meta" not in names and "_private_of_ours" not in names and "__name__" not in names
