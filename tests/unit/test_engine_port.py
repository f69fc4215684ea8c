"""The Engine port (app/stacks/engine.py): every implementation has every method, with the port's signature."""
from __future__ import annotations

import ast
import inspect

import pytest

from app.stacks import engine as engine_module
from app.stacks import project as project_module
from app.stacks.docker_engine import DockerEngine
from app.stacks.engine import Engine
from tests.fakes import FakeEngine

PORT_METHODS = sorted(Engine.__abstractmethods__)


def test_the_port_has_the_operations_the_deployer_and_the_handlers_use():
    assert PORT_METHODS == sorted([
        "ping", "image_id", "image_present",
        "list_containers", "inspect_container", "create_container", "start_container", "unpause_container",
        "stop_container", "rename_container", "remove_container", "container_usage", "container_logs", "stream_logs",
        "list_networks", "create_network", "remove_network",
        "list_volumes", "volume_exists", "create_volume", "remove_volume", "volume_usage",
        "export_volume", "import_volume", "exec_output", "exec_input", "events",
    ])


@pytest.mark.parametrize("implementation", [DockerEngine, FakeEngine], ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("name", PORT_METHODS)
def test_each_implementation_has_the_method_with_a_compatible_signature(implementation, name):
    assert issubclass(implementation, Engine) and not inspect.isabstract(implementation)
    port, implemented = inspect.signature(getattr(Engine, name)), inspect.signature(getattr(implementation, name))
    assert getattr(implementation, name) is not getattr(Engine, name), f"{implementation.__name__} lacks {name}"
    wanted = list(port.parameters.values())
    given = list(implemented.parameters.values())
    assert [(p.name, p.kind) for p in given[:len(wanted)]] == [(p.name, p.kind) for p in wanted], (
        f"{implementation.__name__}.{name}{implemented} does not take the port's arguments {port}")
    for parameter in given[len(wanted):]:
        assert parameter.default is not inspect.Parameter.empty, f"{name}: extra {parameter.name} has no default"
    for mine, theirs in zip(given, wanted):
        assert mine.default == theirs.default, f"{name}: default of {mine.name}"
        if mine.annotation is not inspect.Parameter.empty:
            assert mine.annotation == theirs.annotation, f"{name}: type of {mine.name}"
    if implemented.return_annotation is not inspect.Signature.empty:
        assert implemented.return_annotation == port.return_annotation, f"{name}: return type"


def imported_by(module) -> set[str]:
    tree = ast.parse(inspect.getsource(module))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return imported | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}


def test_the_port_knows_no_orchestrator_library():
    # The port reads container labels through Live's label contract, which is plain Python over the stack model.
    imported = imported_by(engine_module)
    assert imported <= {"__future__", "abc", "codecs", "dataclasses", "datetime", "pathlib", "typing",
                        "app.stacks.project"}, imported
    contract = imported_by(project_module)
    assert contract <= {"__future__", "dataclasses", "typing", "app.compose.model"}, contract
