"""Views and CLI commands hold no ORM queries and no engine calls (issue 11).

They read through ``app/orders/queries.py`` and change things through the use cases
(``app/orders/service.py``, the catalog), reached through ``app/collaborators.py``. Checked on the
source with :mod:`ast`: an import of ``app.models`` (except for type hints under
``if TYPE_CHECKING:``), an attribute ``.engine`` (``.runtime`` before it), ``.runner`` or ``.deployer``, an attribute of
``.db`` (``live.db.atomic()``), or the app's component store (``.extensions``) is refused.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app.config import PROJECT_ROOT

ENTRY_POINTS = sorted((PROJECT_ROOT / "app" / "web").glob("*.py")) + [PROJECT_ROOT / "app" / "cli.py"]
ENGINE_ATTRIBUTES = {"engine", "runtime", "runner", "deployer"}


def _type_checking_blocks(tree: ast.Module) -> set[int]:
    """The ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.body:
                inside.update(id(n) for n in ast.walk(child))
    return inside


def violations(source: str) -> list[str]:
    """What the module at ``source`` does that an entry point must not, one line each (with its line number)."""
    tree = ast.parse(source)
    hints_only = _type_checking_blocks(tree)
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.ImportFrom) and id(node) not in hints_only:
            if node.module == "app.models" or (node.module == "app" and any(a.name == "models" for a in node.names)):
                found.append((line, "imports app.models"))
        elif isinstance(node, ast.Import) and id(node) not in hints_only:
            if any(alias.name == "app.models" for alias in node.names):
                found.append((line, "imports app.models"))
        elif isinstance(node, ast.Attribute):
            if node.attr in ENGINE_ATTRIBUTES:
                found.append((line, f"uses .{node.attr}"))
            elif isinstance(node.value, ast.Attribute) and node.value.attr == "db":
                found.append((line, f"uses .db.{node.attr}"))
            elif node.attr == "extensions":
                found.append((line, "reads .extensions (use app.collaborators)"))
    return [f"line {line}: {what}" for line, what in sorted(found)]


@pytest.mark.parametrize("path", ENTRY_POINTS, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_entry_points_hold_no_queries_and_no_engine_calls(path: Path):
    assert violations(path.read_text(encoding="utf-8")) == []


def test_the_check_sees_what_it_refuses():
    source = """
from typing import TYPE_CHECKING
from app.models import Order
import app.models
from app import models
if TYPE_CHECKING:
    from app.models import Operation
live.runtime.ping()
live.runner.preview(order)
live.deployer.plan(target)
live.db.atomic()
current_app.extensions["live"]
"""
    assert violations(source) == [
        "line 3: imports app.models", "line 4: imports app.models", "line 5: imports app.models",
        "line 8: uses .runtime", "line 9: uses .runner", "line 10: uses .deployer", "line 11: uses .db.atomic",
        "line 12: reads .extensions (use app.collaborators)",
    ]


def test_type_hints_and_the_database_handle_are_allowed():
    source = """
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from app.models import Order
upgrade(live.db)
"""
    assert violations(source) == []
