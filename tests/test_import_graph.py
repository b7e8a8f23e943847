"""The house's imports go one way: no module of dashboard or siq_integration imports itself
back through others (a cycle hidden behind an import inside a function counts too), and
siq_integration never imports dashboard.

Read from the source with ``ast``, so the graph is the code's own, whatever imports run.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("dashboard", "siq_integration")


def module_names() -> dict[str, Path]:
    """Every module of the two packages, by its dotted name (a package by its own)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if "migrations" in parts:
                continue  # generated; they import models only
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` or the nearest package of it that is one of ours."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ours ``module`` imports, anywhere in its source."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # `from . import x` imports the module x when there is one.
            named = [f"{stem}.{alias.name}" for alias in node.names]
            names = [n for n in named if n in modules] or [stem]
        else:
            continue
        for name in names:
            target = _resolve(name, modules)
            if target is not None and target != module:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each as one
    cycle through it, for the message."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_a_cycle(graph, set(component)) for component in components]


def _a_cycle(graph: dict[str, set[str]], members: set[str]) -> list[str]:
    """One cycle through a component: from its first module back to itself."""
    start = min(members)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for other in sorted(graph[node] & members):
            if other == start:
                return paths[node] + [start]
            if other not in paths:
                paths[other] = paths[node] + [other]
                queue.append(other)
    return sorted(members)


def test_it_reads_the_imports_inside_functions_too(tmp_path):
    modules = {"pkg": tmp_path, "pkg.a": tmp_path / "a.py", "pkg.b": tmp_path / "b.py"}
    (tmp_path / "a.py").write_text("def f():\n    from . import b\n")
    assert imports_of("pkg.a", tmp_path / "a.py", modules) == {"pkg.b"}


def test_it_names_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]


def test_it_finds_no_import_cycle_in_the_house():
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in found)


def test_it_keeps_siq_integration_from_importing_dashboard():
    graph = import_graph()
    backwards = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module.startswith("siq_integration")
        for target in targets
        if target.startswith("dashboard")
    )
    assert not backwards, "siq_integration imports dashboard: " + ", ".join(backwards)


# Arrows the flow forbids (webhook/poll → state → publisher → pages; alerts after publication).
FORBIDDEN = (
    ("dashboard.state", "dashboard.realtime"),  # applying never renders or sends
    ("dashboard.state", "dashboard.alerts"),  # alerts run as a hook after publication
    ("dashboard.realtime", "dashboard.alerts"),
    # The figures are counted while applying and read by pages: they never send or apply.
    ("dashboard.figures", "dashboard.realtime"),
    ("dashboard.figures", "dashboard.state"),
)


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_it_keeps_state_and_the_publisher_from_importing_what_follows_them():
    graph = import_graph()
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        for source, forbidden in FORBIDDEN
        if _within(module, source) and _within(target, forbidden)
    )
    assert not wrong, "imports against the flow: " + ", ".join(wrong)
