"""Compose-style variable interpolation.

Supports ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
``${VAR:?message}``, ``${VAR?message}`` and ``$$`` (a literal ``$``), in
every string value of a document (keys are left alone, as in Compose). An
undefined variable without a default is an error naming the variable and
where it was used: it never becomes an empty string.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from app.errors import InterpolationError

_PATTERN = re.compile(
    r"""
    \$(?:
        (?P<escaped>\$) |
        (?P<named>[_a-zA-Z][_a-zA-Z0-9]*) |
        \{(?P<braced>[_a-zA-Z][_a-zA-Z0-9]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\} |
        (?P<invalid>)
    )
    """,
    re.VERBOSE,
)


def interpolate_string(text: str, variables: Mapping[str, str], where: str = "") -> str:
    def replace(match: re.Match) -> str:
        if match.group("escaped") is not None:
            return "$"
        name = match.group("named") or match.group("braced")
        if name is None:
            snippet = text[match.start(): match.start() + 20]
            raise InterpolationError(f"invalid interpolation {snippet!r}{_at(where)}: use ${{NAME}} or $$ for a literal $")
        op, arg = match.group("op"), match.group("arg")
        value = variables.get(name)
        if op in (":-", ":?"):
            missing = value is None or value == ""
        else:
            missing = value is None
        if not missing:
            return str(value)
        if op in (":-", "-"):
            # Defaults may themselves reference variables.
            return interpolate_string(arg or "", variables, where)
        if op in (":?", "?"):
            raise InterpolationError(f"required variable {name} is missing{_at(where)}: {arg}")
        raise InterpolationError(f"undefined variable {name}{_at(where)}")

    return _PATTERN.sub(replace, text)


def interpolate(document: Any, variables: Mapping[str, str], path: str = "") -> Any:
    """Return a copy of ``document`` with every string value interpolated."""
    if isinstance(document, str):
        return interpolate_string(document, variables, path)
    if isinstance(document, dict):
        return {key: interpolate(value, variables, f"{path}.{key}" if path else str(key)) for key, value in document.items()}
    if isinstance(document, list):
        return [interpolate(item, variables, f"{path}[{i}]") for i, item in enumerate(document)]
    return document


def referenced_variables(document: Any) -> set[str]:
    """Names of every variable a document refers to (with or without default)."""
    found: set[str] = set()
    if isinstance(document, str):
        for match in _PATTERN.finditer(document):
            name = match.group("named") or match.group("braced")
            if name:
                found.add(name)
    elif isinstance(document, dict):
        for value in document.values():
            found |= referenced_variables(value)
    elif isinstance(document, list):
        for item in document:
            found |= referenced_variables(item)
    return found


def _at(where: str) -> str:
    return f" at {where}" if where else ""
