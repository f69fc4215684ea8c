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

_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_BRACED = re.compile(r"([_a-zA-Z][_a-zA-Z0-9]*)(?:(:?[-?])(.*))?", re.DOTALL)
_REFERENCE = re.compile(r"\$\{?([_a-zA-Z][_a-zA-Z0-9]*)")


def interpolate_string(text: str, variables: Mapping[str, str], where: str = "") -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] != "$":
            j = text.find("$", i)
            j = n if j < 0 else j
            out.append(text[i:j])
            i = j
            continue
        following = text[i + 1: i + 2]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "{":
            end = _closing_brace(text, i + 1)
            if end is None:
                raise _invalid(text, i, where)
            out.append(_evaluate(text[i + 2: end], variables, where, text, i))
            i = end + 1
        else:
            match = _NAME.match(text, i + 1)
            if not match:
                raise _invalid(text, i, where)
            out.append(_lookup(match.group(), None, "", variables, where))
            i = match.end()
    return "".join(out)


def _closing_brace(text: str, open_at: int) -> int | None:
    """Index of the ``}`` closing the ``{`` at ``open_at``; defaults may nest ``${...}``."""
    depth, j = 1, open_at + 1
    while j < len(text):
        if text.startswith("$$", j):
            j += 2
            continue
        if text.startswith("${", j):
            depth += 1
            j += 2
            continue
        if text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
        j += 1
    return None


def _evaluate(expression: str, variables: Mapping[str, str], where: str, text: str, position: int) -> str:
    match = _BRACED.fullmatch(expression)
    if not match:
        raise _invalid(text, position, where)
    return _lookup(match.group(1), match.group(2), match.group(3) or "", variables, where)


def _lookup(name: str, op: str | None, arg: str, variables: Mapping[str, str], where: str) -> str:
    value = variables.get(name)
    missing = value is None or (value == "" and op in (":-", ":?"))
    if not missing:
        return str(value)
    if op in (":-", "-"):
        # Evaluated only when used, so a default may reference variables of its own.
        return interpolate_string(arg, variables, where)
    if op in (":?", "?"):
        raise InterpolationError(f"required variable {name} is missing{_at(where)}: {arg}")
    raise InterpolationError(f"undefined variable {name}{_at(where)}")


def _invalid(text: str, position: int, where: str) -> InterpolationError:
    snippet = text[position: position + 20]
    return InterpolationError(f"invalid interpolation {snippet!r}{_at(where)}: use ${{NAME}} or $$ for a literal $")


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
    """Names of every variable a document refers to, including those used in defaults."""
    found: set[str] = set()
    if isinstance(document, str):
        found.update(_REFERENCE.findall(document.replace("$$", "")))
    elif isinstance(document, dict):
        for value in document.values():
            found |= referenced_variables(value)
    elif isinstance(document, list):
        for item in document:
            found |= referenced_variables(item)
    return found


def _at(where: str) -> str:
    return f" at {where}" if where else ""
