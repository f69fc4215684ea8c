"""The Compose reference implementations' interpolation tests, run as data against app/compose/interpolate.py.

tests/unit/data/compose_interpolation_vectors.json holds the vectors (its "about" explains the format) with
their sources: the template tests of compose-spec/compose-go and the interpolation tests of docker/compose
1.29.2 (Apache-2.0). Each vector must give the reference's result, or, where it carries "live", Live's own
result for one of the deliberate differences the file and docs/PRODUCTS.md list.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.compose.interpolate import interpolate, interpolate_string, referenced_variables
from app.errors import InterpolationError

DATA = json.loads((Path(__file__).parent / "data" / "compose_interpolation_vectors.json").read_text(encoding="utf-8"))
VECTORS = DATA["vectors"]


def _vector_id(vector: dict[str, Any]) -> str:
    subject = vector.get("template", "<document>")
    return f"{vector['source']}:{vector['test']}:{subject!r}"


def _run(vector: dict[str, Any]) -> dict[str, Any]:
    """Live's result for a vector, shaped as the vectors' expectations."""
    variables = DATA["variables"][vector["variables"]]
    try:
        if "template" in vector:
            return {"value": interpolate_string(vector["template"], variables)}
        return {"value": interpolate(vector["document"], variables)}
    except InterpolationError as exc:
        return {"error": str(exc)}


def _check(result: dict[str, Any], expected: dict[str, Any]) -> None:
    if "value" in expected:
        assert result == {"value": expected["value"]}
        return
    assert "error" in result, f"expected an error, got {result}"
    message, kind = result["error"], expected["error"]
    if kind == "invalid":
        assert message.startswith("invalid interpolation")
    elif kind == "undefined":
        assert message == f"undefined variable {expected['variable']}"
    elif kind == "required":
        reason = f": {expected['reason']}" if expected["reason"] else ""
        assert message == f"required variable {expected['variable']} is missing a value{reason}"
    else:
        pytest.fail(f"unknown expectation {expected}")


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS if "names" not in v["expect"]], ids=_vector_id
)
def test_interpolation_agrees_with_the_reference_or_differs_on_purpose(vector):
    live = vector.get("live")
    _check(_run(vector), live["expect"] if live else vector["expect"])


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS if "names" in v["expect"]], ids=lambda v: f"{v['source']}:{v['test']}"
)
def test_referenced_variables_agree_with_the_reference(vector):
    assert referenced_variables(vector["document"]) == set(vector["expect"]["names"])


def test_every_difference_is_declared_and_differs_from_the_reference():
    for vector in VECTORS:
        live = vector.get("live")
        if live:
            assert live["difference"] in DATA["differences"], vector
            assert live["expect"] != vector["expect"], f"not a difference: {vector}"


def test_vectors_cover_both_reference_implementations():
    # A broken data file (a lost section) should fail loudly, not run fewer vectors.
    counts = {source: sum(v["source"] == source for v in VECTORS) for source in DATA["sources"]}
    assert counts == {"compose-go": 82, "compose-go-variables": 18, "docker-compose-1.29": 44}
    assert all(set(source["licence"].split()) & {"Apache-2.0"} for source in DATA["sources"].values())
