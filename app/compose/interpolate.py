"""Compose-style variable interpolation.

The rules are those of the Compose specification ("Interpolation",
https://github.com/compose-spec/compose-spec/blob/main/spec.md#interpolation), parsed the way its
reference implementation parses them (compose-go, package ``template``):

- ``$NAME`` and ``${NAME}``: the value of NAME. A name is ``[_a-zA-Z][_a-zA-Z0-9]*``; an unbraced
  name takes every name character that follows (``$NAME_suffix`` is the variable ``NAME_suffix``).
- ``${NAME:-default}`` / ``${NAME-default}``: the default when NAME is unset or empty / unset.
- ``${NAME:+alternative}`` / ``${NAME+alternative}``: the alternative when NAME is set and not
  empty / set; otherwise NAME's value, that is an empty string.
- ``${NAME:?message}`` / ``${NAME?message}``: an error with the message when NAME is unset or
  empty / unset.
- ``$$``: a literal ``$``.

The operator is the one right after the name; the rest up to the closing brace is the argument, so
``${V:-a:-b}`` has the default ``a:-b``. A default, alternative or message is a template of its own,
interpolated only when it is used. The closing brace is found as compose-go finds it: counting from
the ``${``, every ``{`` opens a level and every ``}`` closes one, so ``${JSON:-{"json":1}}`` has the
default ``{"json":1}`` and ``${CMD:-echo $${HOME}}`` the default ``echo $${HOME}``; if the count never
returns to zero, the last ``}`` on the line closes the expression. An expression with an argument ends
on the line it starts on.

Live differs from the reference on purpose (docs/PRODUCTS.md, "Variables and interpolation", lists the
same; the test vectors in tests/unit/data/compose_interpolation_vectors.json mark each case):

- An undefined variable without a default or alternative is an error naming the variable and where it
  is used, also inside a default that is used; the reference substitutes an empty string and logs a
  warning.
- A ``$`` that starts nothing (``$ 5``, ``$1``, ``$}``, a ``$`` at the end) is refused with a hint to
  write ``$$``; the reference leaves it as it is.
- In a ``:?``/``?`` message, a variable that is undefined is shown as written (``${NAME}``), so the
  error tells what is missing; the reference leaves it empty and logs a warning.
- Every brace counts: compose-go lets a ``{`` skip the character after it, so ``{{`` or ``{}`` in a
  default miscounts: with V set to ``v``, ``${V:-{{a}}}`` gives ``v}`` and ``${V:-{}} ${W}`` gives
  ``v`` (with V unset, the latter is refused as invalid).
- Interpolation yields text (see :func:`interpolate`); docker-compose 1.29 also converted some fields
  to numbers and booleans in the same step.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from app.errors import InterpolationError

_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_OPERATOR = re.compile(r":?[-+?]")


@dataclass(frozen=True)
class _Reference:
    """One ``$NAME`` or ``${NAME<operator><argument>}`` as written (``source``); no operator is ``""``."""

    source: str
    name: str
    operator: str = ""
    argument: str = ""


def interpolate_string(text: str, variables: Mapping[str, Any], where: str = "") -> str:
    """Return ``text`` with every variable reference replaced (compose spec, "Interpolation").

    ``variables`` maps a name to its value; a name missing from it is *unset*, a name mapped to ``""``
    is *empty*; other values are converted with ``str``. A substituted value is used verbatim: a ``$``
    in it is not interpolated again. ``where`` names the place of ``text`` in its document (for
    instance ``services.web.environment.X``) and ends up in error messages as ``at <where>``.

    Raises :class:`~app.errors.InterpolationError` for an undefined variable without a default or
    alternative (``undefined variable NAME at <where>``), for a ``:?``/``?`` whose variable is missing
    (``required variable NAME is missing a value at <where>: <message>``) and for invalid syntax
    (``invalid interpolation '<text>' at <where>: <hint>``), including defaults nested hundreds deep.
    The module docstring gives the syntax.
    """
    try:
        return _render(text, variables, where, keep_undefined=False)
    except RecursionError:
        raise InterpolationError(f"invalid interpolation: expressions nested too deeply{_at(where)}") from None


def interpolate(document: Any, variables: Mapping[str, Any], path: str = "") -> Any:
    """Return a copy of ``document`` with every string value interpolated by :func:`interpolate_string`.

    ``document`` is what a YAML loader returns: dicts, lists, strings and scalars. Dict keys are not
    interpolated (as in Compose); numbers, booleans and ``None`` are returned unchanged: interpolation
    yields text, and reading a type from it is left to what validates the document afterwards. The
    location of a string is ``path`` extended with ``.key`` and ``[index]``, so an error names, for
    instance, ``at services.web.command[1]``. Raises :class:`~app.errors.InterpolationError` as
    :func:`interpolate_string` does, for the first string that fails.
    """
    if isinstance(document, str):
        return interpolate_string(document, variables, path)
    if isinstance(document, dict):
        return {
            key: interpolate(value, variables, f"{path}.{key}" if path else str(key))
            for key, value in document.items()
        }
    if isinstance(document, list):
        return [interpolate(item, variables, f"{path}[{i}]") for i, item in enumerate(document)]
    return document


def referenced_variables(document: Any) -> set[str]:
    """Names of every variable the string values of ``document`` may use.

    ``document`` is shaped as for :func:`interpolate`. A name counts wherever it appears: as a
    reference of its own, or inside a default, an alternative or a ``:?``/``?`` message (at any depth),
    whether or not interpolation would use it. Escaped ``$$NAME`` and dict keys do not count. Never
    raises: invalid syntax is skipped (interpolation reports it), and the references after it still
    count.
    """
    found: set[str] = set()
    if isinstance(document, str):
        try:
            _collect_names(document, found)
        except RecursionError:
            pass  # nested hundreds deep: interpolation refuses it; the names found so far are returned
    elif isinstance(document, dict):
        for value in document.values():
            found |= referenced_variables(value)
    elif isinstance(document, list):
        for item in document:
            found |= referenced_variables(item)
    return found


def _render(text: str, variables: Mapping[str, Any], where: str, *, keep_undefined: bool) -> str:
    """:func:`interpolate_string`; with ``keep_undefined``, an undefined variable stays as written."""
    return "".join(
        piece if isinstance(piece, str) else _substitute(piece, variables, where, keep_undefined)
        for piece in _pieces(text, strict=True, where=where)
    )


def _collect_names(text: str, found: set[str]) -> None:
    for piece in _pieces(text, strict=False):
        if isinstance(piece, _Reference):
            found.add(piece.name)
            _collect_names(piece.argument, found)


def _pieces(text: str, *, strict: bool, where: str = "") -> Iterator[str | _Reference]:
    """Split ``text`` into literal text and references, left to right.

    ``$$`` becomes the literal ``$``. Invalid syntax raises when ``strict``; otherwise its ``$`` is
    taken literally and scanning goes on after it.
    """
    position = 0
    while True:
        dollar = text.find("$", position)
        if dollar < 0:
            if position < len(text):
                yield text[position:]
            return
        if dollar > position:
            yield text[position:dollar]
        piece, position = _token(text, dollar)
        if piece is None:
            if strict:
                raise _invalid(text, dollar, where)
            piece, position = "$", dollar + 1
        yield piece


def _token(text: str, dollar: int) -> tuple[str | _Reference | None, int]:
    """The piece starting with the ``$`` at ``dollar`` and the index after it; ``None`` if invalid."""
    following = text[dollar + 1: dollar + 2]
    if following == "$":
        return "$", dollar + 2
    if following != "{":
        name = _NAME.match(text, dollar + 1)
        return (_Reference(text[dollar: name.end()], name.group()), name.end()) if name else (None, dollar)
    name = _NAME.match(text, dollar + 2)
    if not name:
        return None, dollar
    if text.startswith("}", name.end()):
        return _Reference(text[dollar: name.end() + 1], name.group()), name.end() + 1
    operator = _OPERATOR.match(text, name.end())
    if not operator:
        return None, dollar
    # compose-go matches up to the last "}" of the line, then looks for the first brace that closes.
    line_end = text.find("\n", dollar)
    last = text.rfind("}", operator.end(), len(text) if line_end < 0 else line_end)
    if last < 0:
        return None, dollar
    close = _closing_brace(text, dollar, last)
    argument = text[operator.end(): close]
    return _Reference(text[dollar: close + 1], name.group(), operator.group(), argument), close + 1


def _closing_brace(text: str, start: int, last: int) -> int:
    """Index of the ``}`` that brings the brace count from ``text[start]`` on back to zero, else ``last``.

    As compose-go's ``getFirstBraceClosingIndex``, except that every brace counts: compose-go lets a ``{``
    skip the character after it (a leftover from counting only ``${``), which miscounts ``{{`` and ``{}``.
    """
    depth = 0
    for index in range(start, last + 1):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    return last


def _substitute(reference: _Reference, variables: Mapping[str, Any], where: str, keep_undefined: bool) -> str:
    raw = variables.get(reference.name)
    value = None if raw is None else str(raw)
    operator = reference.operator
    if not operator:
        if value is not None:
            return value
        if keep_undefined:
            return reference.source
        raise InterpolationError(f"undefined variable {reference.name}{_at(where)}")
    # ":-", ":+" and ":?" treat an empty value as missing; "-", "+" and "?" only an unset one.
    present = value is not None and (value != "" or not operator.startswith(":"))
    if operator.endswith("-"):
        return value if present else _render(reference.argument, variables, where, keep_undefined=keep_undefined)
    if operator.endswith("+"):
        if present:
            return _render(reference.argument, variables, where, keep_undefined=keep_undefined)
        return value or ""
    if present:
        return value
    # The message is interpolated too; a variable it uses that is undefined is shown as written.
    message = _render(reference.argument, variables, where, keep_undefined=True)
    reason = f": {message}" if message else ""
    raise InterpolationError(f"required variable {reference.name} is missing a value{_at(where)}{reason}")


def _invalid(text: str, dollar: int, where: str) -> InterpolationError:
    snippet = text[dollar: dollar + 24]
    if text.startswith("${", dollar):
        hint = (
            "expected ${NAME} or ${NAME<op>text} with <op> one of :- - :+ + :? ? and the closing } "
            "on the same line; write $$ for a literal $"
        )
    else:
        hint = "a $ starts $NAME or ${NAME}; write $$ for a literal $"
    return InterpolationError(f"invalid interpolation {snippet!r}{_at(where)}: {hint}")


def _at(where: str) -> str:
    return f" at {where}" if where else ""
