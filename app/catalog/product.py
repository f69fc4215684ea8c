"""A product of the catalog: its manifest (product.yml) and compose file.

:func:`load_product` parses and validates both files and never raises: an
invalid product comes back with ``errors`` so the catalog can list it, and
the deployer refuses it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets as secrets_module
import string
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Sequence

import jsonschema
import yaml

from app.catalog.interpolate import interpolate, referenced_variables
from app.catalog.policy import FORBIDDEN_SERVICE_KEYS, check_policy
from app.catalog.yamlfile import NULL_HINT, KeptText, canonical_text, load_yaml, typed_field_hint
from app.errors import InterpolationError, InvalidRequest, LiveError, ProductError, YamlContentError
from app.stacks.docker_engine import ENGINE_API_VERSION
from app.stacks.engine_requests import dry_run
from app.stacks.spec import StackSpecError, dependency_cycle, depends_on_names, parse_service
from app.stacks.target import build_target

log = logging.getLogger(__name__)

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
VARIABLE_NAME_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"

BUILTIN_VARIABLES = (
    "LIVE_ORDER_ID", "LIVE_INSTANCE", "LIVE_HOSTNAME", "LIVE_BASE_URL",
    "LIVE_PLAN", "LIVE_PRODUCT", "LIVE_CUSTOMER_EMAIL",
)

SUPPORTED_SERVICE_KEYS = frozenset({
    "image", "command", "entrypoint", "environment", "volumes", "depends_on", "healthcheck",
    "labels", "restart", "init", "stop_grace_period", "stop_signal", "user", "working_dir",
    "mem_limit", "mem_reservation", "memswap_limit", "cpus", "deploy", "networks", "expose",
    "hostname", "domainname", "tmpfs", "ulimits", "shm_size", "read_only", "cap_add", "cap_drop",
    "sysctls", "extra_hosts", "logging", "tty", "stdin_open",
})
SUPPORTED_TOP_LEVEL_KEYS = frozenset({"version", "services", "volumes", "networks"})

MANIFEST_SCHEMA = {
    "type": "object",
    "required": ["name", "plans"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "description": {"type": "string"},
        "variables": {
            "type": "object",
            "propertyNames": {"pattern": VARIABLE_NAME_RE},
            "additionalProperties": {
                "oneOf": [
                    {"type": ["string", "number", "boolean"]},
                    {
                        "type": "object",
                        "required": ["generate"],
                        "additionalProperties": False,
                        "properties": {
                            "generate": {"enum": ["secret", "password", "hex"]},
                            "length": {"type": "integer", "minimum": 8, "maximum": 128},
                        },
                    },
                ]
            },
        },
        "plans": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"},
            "additionalProperties": {
                "type": ["object", "null"],
                "propertyNames": {"pattern": VARIABLE_NAME_RE},
                "additionalProperties": {"type": ["string", "number", "boolean"]},
            },
        },
        "endpoints": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["application", "service", "port"],
                "additionalProperties": False,
                "properties": {
                    "application": {"type": "string", "pattern": "^[a-z][a-z0-9-]*$"},
                    "service": {"type": "string"},
                    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                    "path": {"type": "string", "pattern": "^/[^\\s]*$"},
                },
            },
        },
    },
}


@dataclass(frozen=True)
class Endpoint:
    application: str
    service: str
    port: int
    path: str = "/"


@dataclass(frozen=True)
class GeneratedVariable:
    kind: str
    length: int = 32


@dataclass
class ProductDefinition:
    slug: str
    manifest_text: str
    compose_text: str
    name: str = ""
    description: str = ""
    defaults: dict[str, str] = field(default_factory=dict)
    generated: dict[str, GeneratedVariable] = field(default_factory=dict)
    plans: dict[str, dict[str, str]] = field(default_factory=dict)
    endpoints: list[Endpoint] = field(default_factory=list)
    compose: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    # Why the source could not read a file or the folder (each also in errors). Part of the
    # content hash: two different unreadable states are two revisions, each with its own errors.
    read_problems: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def content_hash(self) -> str:
        return content_hash(self.manifest_text, self.compose_text, *self.read_problems)

    def require_valid(self) -> None:
        if self.errors:
            raise ProductError(self.slug, self.errors)

    def generate_secrets(self, existing: Mapping[str, str] | None = None) -> dict[str, str]:
        """Values for every generated variable, keeping those already made for an order."""
        values = dict(existing or {})
        for name, spec in self.generated.items():
            if not values.get(name):
                values[name] = _generate(spec)
        return values

    def variables_for(self, plan: str, builtins: Mapping[str, str], secrets: Mapping[str, str]) -> dict[str, str]:
        """All interpolation values for one order: defaults < generated < plan; built-ins last."""
        if plan not in self.plans:
            raise InvalidRequest(f"product {self.slug} has no plan {plan!r} (plans: {', '.join(sorted(self.plans))})")
        values: dict[str, str] = dict(self.defaults)
        values.update({k: v for k, v in secrets.items() if k in self.generated})
        values.update(self.plans[plan])
        values.update(builtins)
        return values

    def render(self, plan: str, builtins: Mapping[str, str], secrets: Mapping[str, str]) -> dict[str, Any]:
        """The compose document with every variable substituted."""
        return interpolate(self.compose, self.variables_for(plan, builtins, secrets))


def content_hash(manifest_text: str, compose_text: str, *read_problems: str) -> str:
    """SHA-256 (hex) of both files' texts, each length-prefixed; plus the read problems when there are any."""
    digest = hashlib.sha256()
    for part in (manifest_text, compose_text, *read_problems):
        data = part.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def sample_builtins(slug: str, plan: str) -> dict[str, str]:
    """Plausible built-in values used to validate a product before any order exists."""
    return {
        "LIVE_ORDER_ID": "1",
        "LIVE_INSTANCE": "sample",
        "LIVE_HOSTNAME": "sample.example.org",
        "LIVE_BASE_URL": "https://sample.example.org",
        "LIVE_PLAN": plan,
        "LIVE_PRODUCT": slug,
        "LIVE_CUSTOMER_EMAIL": "customer@example.org",
    }


def load_product_folder(folder: Path) -> ProductDefinition:
    """Read and validate one product folder with the local source's rules (``app/catalog/files.py``).

    Never raises for the folder's content: files that cannot be read are errors
    of the product. A folder that is a link to a file is reported as such.
    """
    from app.catalog.source import LocalFolderSource  # the source builds on this module

    item = LocalFolderSource.read_folder(folder)
    if item is None:
        name = Path(folder).name
        return ProductDefinition(slug=name, manifest_text="", compose_text="", name=name,
                                 errors=[f"product {name}: {folder} is not a product folder (a link to a file)"])
    return item.load()


def load_product(slug: str, manifest_text: str, compose_text: str, *, problems: Sequence[str] = (),
                 unreadable: Collection[str] = ()) -> ProductDefinition:
    """Parse and validate a product; never raises: problems are in ``errors``.

    ``problems`` are complete messages from the source about files or the
    folder that could not be read; ``unreadable`` names the files
    (``product.yml``, ``docker-compose.yml``) whose text is not available, so
    they are not parsed. A readable file is still checked for YAML errors.
    """
    product = ProductDefinition(slug=slug, manifest_text=manifest_text, compose_text=compose_text,
                                name=slug[:200], read_problems=tuple(problems))
    errors = product.errors
    errors.extend(problems)
    slug_problem = _slug_problem(slug)
    if slug_problem:
        errors.append(f"product {slug}: the folder name must match [a-z][a-z0-9-]* (at most 63 characters): "
                      f"{slug_problem}")

    documents = {}
    for filename, text in (("product.yml", manifest_text), ("docker-compose.yml", compose_text)):
        documents[filename] = None if filename in unreadable else _parse_yaml(slug, filename, text, errors)
    manifest, compose = documents["product.yml"], documents["docker-compose.yml"]
    if manifest is None or compose is None:
        return product

    manifest_errors = [_schema_message(f"product {slug}: product.yml: ", e, manifest)
                       for e in _manifest_validator().iter_errors(manifest)]
    if manifest_errors:
        errors.extend(sorted(set(manifest_errors)))
        return product

    product.name = str(manifest["name"])  # plain str: the database driver needs no KeptText
    product.description = str(manifest.get("description", ""))
    for name, value in (manifest.get("variables") or {}).items():
        if isinstance(value, dict):
            product.generated[name] = GeneratedVariable(value["generate"], value.get("length", 32))
        else:
            product.defaults[name] = _as_text(value)
    product.plans = {plan: {k: _as_text(v) for k, v in (values or {}).items()} for plan, values in manifest["plans"].items()}
    product.endpoints = [Endpoint(e["application"], e["service"], e["port"], e.get("path", "/")) for e in manifest.get("endpoints") or []]
    product.compose = compose

    for name in list(product.defaults) + list(product.generated) + [n for p in product.plans.values() for n in p]:
        if name in BUILTIN_VARIABLES or name.startswith("LIVE_"):
            errors.append(f"product {slug}: product.yml: variable {name} is reserved for Live (LIVE_* are built-in)")
    if errors:
        return product

    errors.extend(_validate_compose(product))
    return product


def _validate_compose(product: ProductDefinition) -> list[str]:
    slug = product.slug
    errors: list[str] = []
    for key in product.compose:
        if key not in SUPPORTED_TOP_LEVEL_KEYS and not str(key).startswith("x-"):
            errors.append(f"product {slug}: docker-compose.yml: top-level key {key!r} is not supported")
    services = product.compose.get("services")
    if not isinstance(services, dict) or not services:
        return errors + [f"product {slug}: docker-compose.yml: services: at least one service is required"]

    # Render every plan with sample built-ins: catches undefined variables per plan,
    # and validates structure and policy after interpolation, as Compose does. A plan
    # can change what a value means (a volume source, a capability), so each is checked.
    known = set(product.defaults) | set(product.generated) | set(BUILTIN_VARIABLES)
    sample_secrets = {name: "x" * spec.length for name, spec in product.generated.items()}
    found: dict[str, list[str]] = {}  # error -> plans that have it
    rendered_plans = []
    for plan in sorted(product.plans):
        try:
            rendered = product.render(plan, sample_builtins(slug, plan), sample_secrets)
        except InterpolationError as exc:
            missing = sorted(referenced_variables(product.compose) - known - set(product.plans[plan]))
            hint = f" (not defined for plan {plan}: {', '.join(missing)})" if missing else f" (plan {plan})"
            errors.append(f"product {slug}: docker-compose.yml: {exc}{hint}")
            continue
        rendered_plans.append(plan)
        checks = (lambda doc: _schema_errors(slug, doc, product.compose), lambda doc: check_policy(slug, doc),
                  lambda doc: _null_value_errors(slug, doc), lambda doc: _support_errors(slug, doc))
        plan_errors = [error for check in checks for error in _guarded(slug, rendered, check)]
        # Nothing wrong so far: run the deploy path itself, up to the engine's JSON (without an engine).
        for error in plan_errors or _deploy_path_errors(product, plan, sample_secrets):
            plans_with_error = found.setdefault(error, [])
            if plan not in plans_with_error:  # the same problem found twice (a null value, by two checks)
                plans_with_error.append(plan)
    for error, plans in found.items():
        errors.append(error if len(plans) == len(rendered_plans) else f"{error} (plan {', '.join(plans)})")
    if not rendered_plans:
        return errors

    for endpoint in product.endpoints:
        if endpoint.service not in services:
            errors.append(f"product {slug}: product.yml: endpoint {endpoint.application} names unknown service {endpoint.service!r}")
    return errors


def _support_errors(slug: str, compose: dict) -> list[str]:
    errors = []
    for name, service in (compose.get("services") or {}).items():
        if not isinstance(service, dict):
            continue
        unsupported = sorted(set(service) - SUPPORTED_SERVICE_KEYS - {k for k in service if str(k).startswith("x-")})
        for key in unsupported:
            # Forbidden keys were already reported by the policy with a reason.
            if key not in FORBIDDEN_SERVICE_KEYS:
                errors.append(f"product {slug}: service {name}: {key}: not supported by Live")
        if "image" not in service:
            errors.append(f"product {slug}: service {name}: image: required (Live deploys prebuilt images)")
            continue
        for dependency in depends_on_names(service.get("depends_on")):
            if dependency not in compose["services"]:
                errors.append(f"product {slug}: service {name}: depends_on: unknown service {dependency!r}")
        try:
            parse_service(name, service, compose)
        except StackSpecError as exc:
            errors.append(f"product {slug}: service {name}: {exc}")
        except Exception as exc:  # last line of defence: a crash of the parser refuses the product, by name
            log.exception("product %s: service %s cannot be parsed", slug, name)
            errors.append(f"product {slug}: service {name}: cannot be read ({type(exc).__name__}: {exc})")
    cycle = dependency_cycle({n: depends_on_names(s.get("depends_on")) for n, s in compose["services"].items() if isinstance(s, dict)})
    if cycle:
        errors.append(f"product {slug}: docker-compose.yml: depends_on: cycle {' -> '.join(cycle)}")
    return errors


def _guarded(slug: str, document: dict, check: Callable[[dict], list[str]]) -> list[str]:
    """``check(document)``'s errors; if the check crashes, the product is refused naming the services that make it
    crash (each is checked alone to find them, after the top level alone), never let through and never a crash
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


def _deploy_path_errors(product: ProductDefinition, plan: str, secrets: Mapping[str, str]) -> list[str]:
    """Run, for one plan, what the worker runs to deploy an order, without an engine; return the problems.

    The target is built as ``OperationRunner.target`` builds it (:func:`app.stacks.target.build_target`,
    with sample built-ins and secrets), then every container, network and volume request and its engine
    JSON (:func:`app.stacks.engine_requests.dry_run`, for Docker Engine API
    :data:`~app.stacks.docker_engine.ENGINE_API_VERSION`). Each problem is ``product <slug>: service <name>:
    <key>: <what>`` (or names the network or volume). Any other exception is a problem too, never a pass.
    """
    slug = product.slug
    try:
        target = build_target(product, plan, sample_builtins(slug, plan), secrets, revision="validation")
        return [f"product {slug}: {problem}" for problem in dry_run(target, ENGINE_API_VERSION)]
    except ProductError as exc:
        return list(exc.errors)
    except LiveError as exc:
        return [f"product {slug}: {exc}"]
    except Exception as exc:  # last line of defence: a crash of the deploy path refuses the product
        log.exception("product %s: plan %s: the deploy path failed", slug, plan)
        return [f"product {slug}: docker-compose.yml: the deployment cannot be built ({type(exc).__name__}: {exc})"]


def _schema_errors(slug: str, compose: dict, raw: Any = None) -> list[str]:
    """Compose-spec errors of a rendered document; ``raw`` is the document as written (for the author's text)."""
    return sorted({_schema_message(f"product {slug}: docker-compose.yml: ", error, raw)
                   for error in _compose_validator().iter_errors(compose)})


def _error_path(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    return f"{path}: " if path else ""


_ABSENT = object()
_TYPED = {"boolean", "number", "integer"}


def _schema_message(prefix: str, error: jsonschema.ValidationError, raw: Any) -> str:
    """One schema error as a message naming file, path and key, with a hint for what YAML would bend.

    ``raw`` is the document as the author wrote it (the manifest, or the compose
    file before interpolation): a value that differs from the rendered one came
    from a variable and gets the validator's own message. A value that is
    ``None`` (``null``, ``~``, nothing) gets :data:`NULL_HINT`; text where a
    boolean or a number is needed (``read_only: yes``, ``retries: 03``) gets
    :func:`typed_field_hint`. For "one of" rules on a list or mapping, the
    most relevant alternative's error is reported (the deepest one).
    """
    if error.validator in ("oneOf", "anyOf") and isinstance(error.instance, (dict, list)) and error.context:
        return _schema_message(prefix, _most_relevant(error.context), raw)
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


# Service keys whose mapping values are text: None there would become "" (or the host's value in Compose).
_TEXT_MAPPINGS = ("environment", "labels", "sysctls", "extra_hosts")


def _null_value_errors(slug: str, compose: dict) -> list[str]:
    """Every mapping entry without a value where Live needs text (environment, labels, sysctls, extra_hosts,
    logging options, and labels of networks and volumes): Compose would take the host's value or an empty
    string; Live refuses it. The messages are those of ``app.stacks.spec`` for the same problem."""
    errors = []
    for name, service in (compose.get("services") or {}).items():
        if not isinstance(service, dict):
            continue
        logging_ = service.get("logging")
        logging_options = logging_.get("options") if isinstance(logging_, dict) else None
        for key, mapping in [(k, service.get(k)) for k in _TEXT_MAPPINGS] + [("logging.options", logging_options)]:
            for variable in _null_keys(mapping):
                why = " (values are never taken from the host)" if key == "environment" else ""
                errors.append(f"product {slug}: service {name}: {key}: {variable} has no value{why}; {NULL_HINT}")
    for section in ("networks", "volumes"):
        definitions = compose.get(section)
        for name, definition in (definitions.items() if isinstance(definitions, dict) else ()):
            if isinstance(definition, dict):
                for label in _null_keys(definition.get("labels")):
                    errors.append(f"product {slug}: {section}.{name}: labels: {label} has no value; {NULL_HINT}")
    return errors


def _null_keys(mapping: Any) -> list[str]:
    return [str(key) for key, value in mapping.items() if value is None] if isinstance(mapping, dict) else []


def _slug_problem(slug: str) -> str | None:
    """Why a folder name is not a slug, in words; ``None`` when it is one (names come escaped, see files.py)."""
    if SLUG_RE.match(slug):
        return None
    if not slug:
        return "it is empty"
    if re.search(r"(?<!\\)(?:\\\\)*\\x[0-9a-f]{2}", slug):
        return "it has bytes that are not UTF-8 (shown as \\xNN) or invisible characters"
    if len(slug) > 63:
        return f"it has {len(slug)} characters"
    reasons = []
    if any(c.isupper() for c in slug):
        reasons.append("capital letters")
    if any(c.isspace() for c in slug):
        reasons.append("spaces")
    others = sorted({c for c in slug if not (c in _SLUG_CHARACTERS or c.isspace() or c.isupper())})
    if others:
        reasons.append("the characters " + " ".join(others))
    if not "a" <= slug[0] <= "z" and not slug[0].isupper():
        reasons.append("a first character that is not a letter")
    return "it has " + ", ".join(reasons) if reasons else "it does not match"


_SLUG_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


@lru_cache(maxsize=1)
def _compose_validator() -> jsonschema.protocols.Validator:
    # The compose-spec schema declares draft 2019-09 (vendored from Debian's docker-compose 1.29.2).
    schema = json.loads((Path(__file__).parent / "schema" / "compose-spec.json").read_text())
    return jsonschema.Draft201909Validator(schema)


@lru_cache(maxsize=1)
def _manifest_validator() -> jsonschema.protocols.Validator:
    return jsonschema.Draft202012Validator(MANIFEST_SCHEMA)


def _parse_yaml(slug: str, filename: str, text: str, errors: list[str]) -> dict | None:
    """The document of one product file (``app/catalog/yamlfile.py``'s rules), or ``None`` with an error added."""
    if not text.strip():
        errors.append(f"product {slug}: {filename} is empty or missing")
        return None
    try:
        document = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        errors.append(f"product {slug}: {filename}: invalid YAML{where}: {getattr(exc, 'problem', exc)}")
        return None
    except YamlContentError as exc:
        errors.append(f"product {slug}: {filename}: {exc}")
        return None
    except RecursionError:  # a bound of yamlfile.py was not enough; the product is refused, never the catalog
        errors.append(f"product {slug}: {filename}: nested too deeply to be read")
        return None
    if not isinstance(document, dict):
        errors.append(f"product {slug}: {filename}: must be a mapping at the top level")
        return None
    return document


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_PASSWORD_ALPHABET = string.ascii_letters + string.digits


def _generate(spec: GeneratedVariable) -> str:
    # Letters and digits only: images paste these into XML, JDBC URLs and shell
    # commands without quoting (the GeoServer image does), so no symbols.
    if spec.kind == "hex":
        return secrets_module.token_hex(spec.length // 2 + 1)[: spec.length]
    return "".join(secrets_module.choice(_PASSWORD_ALPHABET) for _ in range(spec.length))
