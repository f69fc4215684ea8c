"""Which part of the application may import which, read from the source with ``ast`` (issue 11).

- ``app/compose`` (the compose pipeline and its stack model) depends on nothing of the application but
  itself, ``app/errors.py`` and the YAML reader ``app/yamlfile.py`` (which depends on ``app/errors.py``
  only).
- ``app/stacks`` takes the stack model (``app/compose/model.py``) and nothing else of ``app/compose``,
  and never imports ``app/catalog`` or ``app/orders``: products and orders are not its business.
- ``app/catalog`` reads compose files through ``app/compose`` and never imports ``app/orders``.

Every import counts: at module level, inside functions and under ``if TYPE_CHECKING:``.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app.config import PROJECT_ROOT

APP = PROJECT_ROOT / "app"


def module_name(path: Path, root: Path = PROJECT_ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = PROJECT_ROOT) -> set[str]:
    """Every module ``path`` (under ``root``) imports, absolute: ``from a.b import c`` counts as ``a.b.c``
    (``c`` may be a module)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package of this module, up level - 1
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def app_imports(folder: str) -> dict[str, set[str]]:
    """``app.*`` modules imported by each module under ``app/<folder>`` (or by ``app/<folder>.py``)."""
    paths = sorted((APP / folder).rglob("*.py")) if (APP / folder).is_dir() else [APP / f"{folder}.py"]
    assert paths and all(path.exists() for path in paths), folder
    return {module_name(path): {name for name in imported_modules(path) if name.startswith("app.")}
            for path in paths}


def within(name: str, *packages: str) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


def violations(folder: str, allowed) -> list[str]:
    return [f"{module} imports {name}" for module, names in app_imports(folder).items()
            for name in sorted(names) if not allowed(name)]


def test_compose_depends_only_on_itself_the_errors_and_the_yaml_reader():
    assert violations("compose", lambda name: within(name, "app.compose", "app.errors", "app.yamlfile")) == []


def test_the_yaml_reader_depends_only_on_the_errors():
    assert violations("yamlfile", lambda name: within(name, "app.errors")) == []


def test_stacks_take_the_stack_model_and_never_the_catalog_or_orders():
    def allowed(name: str) -> bool:
        if within(name, "app.catalog", "app.orders", "app.web"):
            return False
        return not within(name, "app.compose") or within(name, "app.compose.model")

    assert violations("stacks", allowed) == []


def test_the_catalog_never_imports_orders():
    assert violations("catalog", lambda name: not within(name, "app.orders", "app.web")) == []


@pytest.mark.parametrize("source, expected", [
    ("import app.catalog.product\n", {"app.catalog.product"}),
    ("from app.catalog import product\n", {"app.catalog.product"}),
    ("from app import catalog\n", {"app.catalog"}),
    ("def f():\n    from app.orders.service import X\n", {"app.orders.service.X"}),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from app.catalog.product import P\n",
     {"typing.TYPE_CHECKING", "app.catalog.product.P"}),
    ("from ..catalog.product import P\n", {"app.catalog.product.P"}),
    ("from . import model\n", {"app.compose.model"}),
])
def test_every_kind_of_import_is_seen(tmp_path, source, expected):
    path = tmp_path / "app" / "compose" / "probe.py"
    path.parent.mkdir(parents=True)
    path.write_text(source)
    assert imported_modules(path, tmp_path) == expected


# -- each external system is touched in one place (docs/ARCHITECTURE.md) ------------------------------------------
#: Library -> the only modules of app/ that may import it. requests is docker-py's and python-gitlab's transport:
#: its exceptions are translated in both adapters; the Caddy adapter and the webhook sender (app/alerts.py: an
#: attempt's error is recorded, never raised) use it directly.
EXTERNAL_LIBRARIES = {
    "docker": {"app.stacks.docker_engine"},
    "gitlab": {"app.catalog.gitlab_source"},
    "requests": {"app.stacks.docker_engine", "app.catalog.gitlab_source", "app.ingress.caddy", "app.alerts"},
    "apscheduler": {"app.orders.worker", "app.backups.policy"},  # the worker's scheduler; the policy's cron reader
    "prometheus_client": {"app.web.observability"},
    "boto3": {"app.backups.s3_store"},
    "botocore": {"app.backups.s3_store"},
}


def test_each_external_library_is_imported_in_one_place():
    found: dict[str, set[str]] = {library: set() for library in EXTERNAL_LIBRARIES}
    for path in sorted(APP.rglob("*.py")):
        for name in imported_modules(path):
            library = name.split(".")[0]
            if library in found:
                found[library].add(module_name(path))
    assert found == EXTERNAL_LIBRARIES


def test_the_library_rule_sees_imports_inside_functions(tmp_path):
    sample = tmp_path / "app" / "sample.py"
    sample.parent.mkdir()
    sample.write_text("def f():\n    import docker.errors\n    from gitlab import Gitlab\n")
    assert {name.split(".")[0] for name in imported_modules(sample, tmp_path)} == {"docker", "gitlab"}
