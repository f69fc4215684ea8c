"""The compose pipeline: a product's compose document and a plan's variables -> the typed stack.

One way from a compose document to the :class:`~app.compose.model.StackSpec`
the deployer consumes, in four steps, each in its own module:

1. interpolate (:mod:`app.compose.interpolate`): substitute the variables;
2. schema (:mod:`app.compose.schema`): the Compose specification's JSON schema;
3. policy (:mod:`app.compose.policy`): nothing that reaches the host;
4. parse (:mod:`app.compose.parse`): typed, engine-ready values.

:func:`load_stack` runs them. The catalog validates every plan of a product
with it (``validate=True``: every problem of steps 2 and 3, and of each
service, is reported at once), and the worker builds every order's stack
with it, so both read a product the same way. Messages are complete
(``product <slug>: service <name>: <key>: <what>``).
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Mapping

from app.compose.interpolate import interpolate
from app.compose.model import StackSpec, dependency_cycle
from app.compose.parse import (
    SERVICE_KEYS,
    TOP_LEVEL_KEYS,
    depends_on_names,
    is_extension,
    null_value_problems,
    parse_service,
    parse_stack,
    unknown_dependencies,
)
from app.compose.policy import FORBIDDEN_SERVICE_KEYS, check_policy
from app.compose.schema import check_schema
from app.errors import ProductError, StackSpecError

log = logging.getLogger(__name__)


def load_stack(slug: str, document: dict[str, Any], variables: Mapping[str, Any], *,
               validate: bool = False) -> StackSpec:
    """The typed stack of the compose ``document`` of product ``slug`` with ``variables`` substituted.

    ``document`` is the compose file as read (``app/yamlfile.py``), ``variables`` every value of one order
    or plan (name -> text). With ``validate``, steps 2 and 3 are :func:`check` (schema, policy, values
    without value, service keys, each service parsed: every problem at once); without, the policy alone,
    on the order's real values (validation saw sample ones; nothing else depends on them).

    Raises :class:`~app.errors.InterpolationError` when a variable cannot be substituted,
    :class:`~app.errors.ProductError` listing the problems of steps 2 and 3, and
    :class:`~app.errors.StackSpecError` when the document cannot be parsed (``service web: mem_limit: ...``).
    """
    rendered = interpolate(document, variables)
    problems = check(slug, rendered, document) if validate else check_policy(slug, rendered)
    if problems:
        raise ProductError(slug, problems)
    return parse_stack(rendered)


def check(slug: str, rendered: dict[str, Any], written: Any = None) -> list[str]:
    """Every problem of a rendered compose document, each a complete message, in the order found.

    Schema (:func:`~app.compose.schema.check_schema`, with ``written``, the document before interpolation,
    for the author's text), policy (:func:`~app.compose.policy.check_policy`), entries without a value
    (:func:`~app.compose.parse.null_value_problems`), then for each service its keys that Live does not read,
    its dependencies on unknown services and the first problem of its parse; last a dependency cycle. The
    same problem found by two checks may be listed twice. A check that crashes is itself a problem naming
    the services that make it crash, never a pass.
    """
    checks: list[Callable[[dict], list[str]]] = [
        lambda doc: check_schema(slug, doc, written),
        lambda doc: check_policy(slug, doc),
        lambda doc: [f"product {slug}: {problem}" for problem in null_value_problems(doc)],
        lambda doc: _service_problems(slug, doc),
    ]
    return [problem for each in checks for problem in _guarded(slug, rendered, each)]


def outline_problems(slug: str, document: dict[str, Any]) -> list[str]:
    """What is wrong with the document before any variable matters: top-level keys Live does not read
    (:data:`~app.compose.parse.TOP_LEVEL_KEYS`; ``x-*`` extensions are fine), and no services."""
    problems = [f"product {slug}: docker-compose.yml: top-level key {key!r} is not supported"
                for key in document if key not in TOP_LEVEL_KEYS and not is_extension(key)]
    if not has_services(document):
        problems.append(f"product {slug}: docker-compose.yml: services: at least one service is required")
    return problems


def has_services(document: dict[str, Any]) -> bool:
    """Whether ``services`` is a mapping with at least one service (else there is nothing to render)."""
    services = document.get("services")
    return isinstance(services, dict) and bool(services)


def _service_problems(slug: str, compose: dict) -> list[str]:
    problems = []
    services = compose.get("services") or {}
    for name, service in services.items():
        if not isinstance(service, dict):
            continue
        where = f"product {slug}: service {name}"
        for key in sorted(set(service) - SERVICE_KEYS):
            # Forbidden keys were already reported by the policy with a reason.
            if not is_extension(key) and key not in FORBIDDEN_SERVICE_KEYS:
                problems.append(f"{where}: {key}: not supported by Live")
        problems.extend(f"product {slug}: {problem}" for problem in unknown_dependencies(name, service, services))
        try:
            parse_service(name, service, compose)
        except StackSpecError as exc:
            problems.append(f"{where}: {exc}")
        except Exception as exc:  # last line of defence: a crash of the parser refuses the product, by name
            log.exception("product %s: service %s cannot be parsed", slug, name)
            problems.append(f"{where}: cannot be read ({type(exc).__name__}: {exc})")
    cycle = dependency_cycle({n: depends_on_names(s.get("depends_on")) for n, s in services.items()
                              if isinstance(s, dict)})
    if cycle:
        problems.append(f"product {slug}: docker-compose.yml: depends_on: cycle {' -> '.join(cycle)}")
    return problems


def _guarded(slug: str, document: dict, check: Callable[[dict], list[str]]) -> list[str]:
    """``check(document)``'s problems; if the check crashes, the product is refused naming the services that make
    it crash (each is checked alone to find them, after the top level alone), never let through and never a crash
    of the catalog."""
    try:
        return check(document)
    except Exception as exc:
        log.exception("product %s: a check of the compose file failed", slug)
        what = f"{type(exc).__name__}: {exc}"
        everything = [f"product {slug}: docker-compose.yml: cannot be checked ({what})"]
        if not _runs(check, {**document, "services": {}}):
            return everything  # the top level alone makes it crash
        services = document.get("services")
        culprits = [name for name, service in (services.items() if isinstance(services, dict) else ())
                    if not _runs(check, {**document, "services": {name: service}})]
        return [f"product {slug}: service {name}: cannot be checked ({what})" for name in culprits] or everything


def _runs(check: Callable[[dict], list[str]], document: dict) -> bool:
    try:
        check(document)
    except Exception:
        return False
    return True
