"""The history pages (audit trail, alert history) share one module for their filters and
CSV export: neither view reaches into the other."""

from __future__ import annotations

import ast
from pathlib import Path

import dashboard.views.alert_history as alert_history
import dashboard.views.audit as audit
from dashboard import history


def _imports(module) -> set[str]:
    tree = ast.parse(Path(module.__file__).read_text())
    return {
        f"{'.' * node.level}{node.module or ''}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }


def test_it_keeps_the_history_views_apart():
    assert ".audit" not in _imports(alert_history)
    assert ".alert_history" not in _imports(audit)
    assert "..history" in _imports(alert_history) and "..history" in _imports(audit)


def test_it_quotes_a_cell_a_spreadsheet_would_run():
    assert history.csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert history.csv_cell("Ada") == "Ada"
