"""The schema step of the compose pipeline: the Compose specification's JSON schema.

The schema is vendored (``compose-spec.json``, from Debian's docker-compose
1.29.2). :func:`schema_message` turns a JSON-schema error into a message for
the author, with a hint where YAML bent what was typed (a null, ``yes`` where
a boolean is needed, a number where text is); the catalog uses it for
product.yml too.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from app.yamlfile import NULL_HINT, KeptText, canonical_text, typed_field_hint


def check_schema(slug: str, compose: dict[str, Any], written: Any = None) -> list[str]:
    """Every Compose specification error of a rendered document, sorted, each once.

    ``written`` is the document as the author wrote it (before interpolation), for the hints of
    :func:`schema_message`. Messages are ``product <slug>: docker-compose.yml: <path>: <what>``.
    """
    return sorted({schema_message(f"product {slug}: docker-compose.yml: ", error, written)
                   for error in _compose_validator().iter_errors(compose)})


def _error_path(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    return f"{path}: " if path else ""


_ABSENT = object()
_TYPED = {"boolean", "number", "integer"}


def schema_message(prefix: str, error: jsonschema.ValidationError, raw: Any) -> str:
    """One JSON-schema error as ``<prefix><path>: <what>``, with a hint for what YAML would bend.

    Used for both product files (the catalog validates product.yml with it).

    ``raw`` is the document as the author wrote it (the manifest, or the compose
    file before interpolation): a value that differs from the rendered one came
    from a variable and gets the validator's own message. A value that is
    ``None`` (``null``, ``~``, nothing) gets :data:`NULL_HINT`; text where a
    boolean or a number is needed (``read_only: yes``, ``retries: 03``) gets
    :func:`typed_field_hint`. For "one of" rules on a list or mapping, the
    most relevant alternative's error is reported (the deepest one).
    """
    if error.validator in ("oneOf", "anyOf") and isinstance(error.instance, (dict, list)) and error.context:
        return schema_message(prefix, _most_relevant(error.context), raw)
    path = _error_path(error)
    if error.instance is None and error.validator in ("type", "oneOf", "anyOf"):
        return f"{prefix}{path}no value (null, ~ or nothing after the colon); {NULL_HINT}"
    expected = _expected_types(error)
    written = _value_at(raw, error.absolute_path)
    instance = error.instance
    if (isinstance(instance, str) and expected & _TYPED and "string" not in expected
            and isinstance(written, str) and written == instance):
        line = f" (line {written.line})" if isinstance(written, KeptText) else ""
        kind = "boolean" if "boolean" in expected else "number"
        return f"{prefix}{path}{typed_field_hint(written, kind)}{line}"
    if isinstance(instance, (bool, int, float)) and "string" in expected and not _matches(instance, expected):
        text = canonical_text(instance)
        kind = "a boolean" if isinstance(instance, bool) else "a number"
        return f"{prefix}{path}{text} is {kind} here, where text is needed: quote it ('{text}')"
    return f"{prefix}{path}{error.message}"


def _most_relevant(alternatives) -> jsonschema.ValidationError:
    """Among the errors of a ``oneOf``'s alternatives, the one of the alternative meant for this kind of value.

    An alternative for another JSON type fails with a ``type`` error on the
    value itself (a list where a mapping was written): those are the least
    relevant. Of the others the deepest wins, as it points at the key to fix.
    """
    errors = list(alternatives)
    meant = [e for e in errors if not (e.validator == "type" and not e.relative_path)] or errors
    return max(meant, key=lambda e: len(e.relative_path))


def _matches(instance: Any, expected: set[str]) -> bool:
    if isinstance(instance, bool):
        return "boolean" in expected
    if isinstance(instance, int):
        return bool(expected & {"integer", "number"})
    return "number" in expected


def _expected_types(error: jsonschema.ValidationError) -> set[str]:
    """JSON types the rule wanted at the error's own path (from ``type``, or the alternatives of ``oneOf``)."""
    if error.validator == "type":
        wanted = error.validator_value
        return {wanted} if isinstance(wanted, str) else set(wanted)
    types: set[str] = set()
    for sub in error.context or ():
        if not sub.relative_path:
            types |= _expected_types(sub)
    return types


def _value_at(document: Any, path) -> Any:
    for part in path:
        if isinstance(document, dict) and part in document:
            document = document[part]
        elif isinstance(document, list) and isinstance(part, int) and 0 <= part < len(document):
            document = document[part]
        else:
            return _ABSENT
    return document


@lru_cache(maxsize=1)
def _compose_validator() -> jsonschema.protocols.Validator:
    # The compose-spec schema declares draft 2019-09 (vendored from Debian's docker-compose 1.29.2).
    schema = json.loads((Path(__file__).parent / "compose-spec.json").read_text())
    return jsonschema.Draft201909Validator(schema)
