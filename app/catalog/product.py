"""A product of the catalog: its manifest (product.yml) and compose file.

:func:`load_product` parses and validates both files and never raises: an
invalid product comes back with ``errors`` so the catalog can list it, and
the deployer refuses it. The compose file goes through the compose pipeline
(:mod:`app.compose.pipeline`); :func:`build_project` turns one plan of a
product into the project the deployer takes, for validation and for orders.
"""
from __future__ import annotations

import hashlib
import logging
import re
import secrets as secrets_module
import string
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

import jsonschema
import yaml

from app.backups.policy import (
    RETENTION_KEYS,
    VERIFY_VALUES,
    BackupPolicy,
    check_schedule,
    policy_from_manifest,
)
from app.compose.interpolate import interpolate, referenced_variables
from app.compose.model import Endpoint, StackSpec
from app.compose.pipeline import has_services, load_stack, outline_problems
from app.compose.schema import schema_message
from app.errors import InterpolationError, InvalidRequest, LiveError, ProductError, YamlContentError
from app.stacks.docker_engine import ENGINE_API_VERSION
from app.stacks.engine_requests import dry_run
from app.stacks.project import Project
from app.yamlfile import load_yaml

log = logging.getLogger(__name__)

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
VARIABLE_NAME_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"
#: An endpoint's path: "/" then RFC 3986 path characters (section 3.3), without "*", "{" and "}".
ENDPOINT_PATH_RE = r"^/[A-Za-z0-9._~!$&'()+,;=:@%/-]*$"

BUILTIN_VARIABLES = (
    "LIVE_ORDER_ID", "LIVE_INSTANCE", "LIVE_HOSTNAME", "LIVE_BASE_URL",
    "LIVE_PLAN", "LIVE_PRODUCT", "LIVE_CUSTOMER_EMAIL",
)

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
                    # RFC 3986 path characters, without "*" (a wildcard in Caddy's path matcher) and "{}"
                    # (Caddy placeholders): the path is written into the proxy's route as it is.
                    "path": {"type": "string", "pattern": ENDPOINT_PATH_RE},
                },
            },
        },
        "backup": {"$ref": "#/$defs/backup"},
        "credential": {"$ref": "#/$defs/credential"},
    },
    # The ``backup`` section (issue 13; docs/BACKUPS.md, "What is backed up"): its shape. What it names (services,
    # volumes, plans) and its cron expressions are checked by _backup_problems and _backup_compose_problems.
    "$defs": {
        # Text (run by sh -c) or an argv; each keyword applies to its own type only.
        "command": {
            "type": ["string", "array"],
            "minLength": 1,  # a blank text is _backup_problems's
            "minItems": 1,
            "prefixItems": [{"type": "string", "minLength": 1}],
            "items": {"type": "string"},
        },
        "volume_names": {"type": "array", "uniqueItems": True, "items": {"type": "string", "minLength": 1}},
        "keep": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": {period: {"type": "integer", "minimum": 0, "maximum": 100000} for period in RETENTION_KEYS},
        },
        "verify": {"enum": list(VERIFY_VALUES)},
        "schedule": {"type": "string", "minLength": 1},
        # The customer's own credential (WHMCS's password; docs/PRODUCTS.md, "The customer's password"). What it
        # names (a generated variable, services) and its length rules are checked by _credential_problems.
        "credential": {
            "type": "object",
            "required": ["variable", "apply"],
            "additionalProperties": False,
            "properties": {
                "variable": {"type": "string", "pattern": VARIABLE_NAME_RE},
                "min_length": {"type": "integer", "minimum": 8, "maximum": 128},
                "max_length": {"type": "integer", "minimum": 8, "maximum": 128},
                "symbols": {"type": "string"},
                "apply": {  # exactly one of command and recreate: _credential_problems says so in words
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "command": {
                            "type": "object",
                            "required": ["service", "run"],
                            "additionalProperties": False,
                            "properties": {"service": {"type": "string", "minLength": 1},
                                           "run": {"$ref": "#/$defs/command"}},
                        },
                        "recreate": {"type": "array", "minItems": 1, "uniqueItems": True,
                                     "items": {"type": "string", "minLength": 1}},
                    },
                },
            },
        },
        "backup": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "schedule": {"$ref": "#/$defs/schedule"},
                "keep": {"$ref": "#/$defs/keep"},
                "verify": {"$ref": "#/$defs/verify"},
                "services": {
                    "type": "object",
                    "additionalProperties": {
                        "type": ["object", "null"],
                        "additionalProperties": False,
                        "properties": {
                            "dump": {"$ref": "#/$defs/command"},
                            "restore": {"$ref": "#/$defs/command"},
                            "volumes": {"$ref": "#/$defs/volume_names"},
                            "exclude": {"$ref": "#/$defs/volume_names"},
                            "after_restore": {"$ref": "#/$defs/command"},
                        },
                    },
                },
                "plans": {
                    "type": "object",
                    "additionalProperties": {
                        "type": ["object", "null"],
                        "additionalProperties": False,
                        "properties": {
                            "schedule": {"$ref": "#/$defs/schedule"},
                            "keep": {"$ref": "#/$defs/keep"},
                            "verify": {"$ref": "#/$defs/verify"},
                        },
                    },
                },
            },
        },
    },
}


@dataclass(frozen=True)
class GeneratedVariable:
    kind: str
    length: int = 32


#: The symbols a customer's password may hold by default (besides ASCII letters and digits): every printable ASCII one.
DEFAULT_SYMBOLS = "".join(c for c in string.punctuation)
CREDENTIAL_MIN_LENGTH = 8
CREDENTIAL_MAX_LENGTH = 128
#: How many values the customer's password had before are kept (masked in service logs written with them).
PREVIOUS_PASSWORDS_KEPT = 10


@dataclass(frozen=True)
class Credential:
    """product.yml's ``credential``: the generated ``variable`` that holds the customer's own password (WHMCS's
    ``password``) and how a new value reaches a running stack: ``run`` (argv; a text is run by ``sh -c``) in the
    running ``service``, with the new value in the exec's environment as ``variable`` (never in argv), or a
    deploy that recreates ``recreate`` (the services whose definition uses the variable). A value has
    ``min_length``..``max_length`` characters, each an ASCII letter, digit or one of ``symbols``."""

    variable: str
    service: str | None = None
    run: tuple[str, ...] = ()
    recreate: tuple[str, ...] = ()
    min_length: int = CREDENTIAL_MIN_LENGTH
    max_length: int = CREDENTIAL_MAX_LENGTH
    symbols: str = DEFAULT_SYMBOLS

    @classmethod
    def from_manifest(cls, section: Mapping[str, Any]) -> Credential:
        apply = section["apply"]
        command = apply.get("command") or {}
        run = command.get("run") or ()
        return cls(variable=section["variable"], service=command.get("service"),
                   run=("sh", "-c", run) if isinstance(run, str) else tuple(run),
                   recreate=tuple(apply.get("recreate") or ()),
                   min_length=section.get("min_length", CREDENTIAL_MIN_LENGTH),
                   max_length=section.get("max_length", CREDENTIAL_MAX_LENGTH),
                   symbols=section.get("symbols", DEFAULT_SYMBOLS))

    @property
    def previous_keys(self) -> tuple[str, ...]:
        """The ``Order.secrets`` keys of the values earlier changes replaced, newest first (``<variable>.previous``,
        ``<variable>.previous.2`` .. ``.previous.<PREVIOUS_KEPT>``): kept to be masked in service logs written
        before (a container that was not recreated keeps its lines); never variables, never answered."""
        return (f"{self.variable}.previous",
                *(f"{self.variable}.previous.{n}" for n in range(2, PREVIOUS_PASSWORDS_KEPT + 1)))

    def owns(self, key: str) -> bool:
        """Whether ``key`` of ``Order.secrets`` holds the customer's password or a value it replaced (never answered,
        never taken from another order)."""
        return key == self.variable or key.startswith(f"{self.variable}.previous")

    def with_value(self, secrets: Mapping[str, str] | None, value: str) -> dict[str, str]:
        """``secrets`` with ``value`` as the customer's password and the values it replaced under
        :attr:`previous_keys` (newest first, each once, the oldest dropped past :data:`PREVIOUS_PASSWORDS_KEPT`)."""
        secrets = dict(secrets or {})
        earlier: list[str] = []
        for old in (secrets.get(self.variable), *(secrets.get(key) for key in self.previous_keys)):
            if old and old != value and old not in earlier:
                earlier.append(old)
        kept = {key: old for key, old in secrets.items() if not self.owns(key)}
        return {**kept, self.variable: value, **dict(zip(self.previous_keys, earlier))}

    def problem(self, value: str) -> str | None:
        """Why ``value`` may not be the password (words that never repeat the value); None when it may."""
        if not isinstance(value, str) or not self.min_length <= len(value) <= self.max_length:
            return f"the password must have {self.min_length} to {self.max_length} characters"
        bad = sorted({c for c in value if not (c.isascii() and c.isalnum()) and c not in self.symbols})
        if bad:
            kinds = "spaces, " if any(c.isspace() for c in bad) else ""
            return (f"the password may hold ASCII letters, digits and these symbols only: {self.symbols or '(none)'} "
                    f"(it has {kinds}{len(bad)} other character(s) that are not allowed)")
        return None


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
    # product.yml's backup section (docs/BACKUPS.md, "What is backed up"); BackupPolicy(): no declarations.
    backup: BackupPolicy = field(default_factory=BackupPolicy)
    # product.yml's credential section (the customer's own password); None: the product declares none.
    credential: Credential | None = None
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


def load_product_folder(folder: Path, orchestrator: str = "docker") -> ProductDefinition:
    """Read and validate one product folder with the local source's rules (``app/catalog/files.py``), for
    ``orchestrator`` (LIVE_ORCHESTRATOR).

    Never raises for the folder's content: files that cannot be read are errors
    of the product. A folder that is a link to a file is reported as such.
    """
    from app.catalog.source import LocalFolderSource  # the source builds on this module

    item = LocalFolderSource.read_folder(folder)
    if item is None:
        name = Path(folder).name
        return ProductDefinition(slug=name, manifest_text="", compose_text="", name=name,
                                 errors=[f"product {name}: {folder} is not a product folder (a link to a file)"])
    return item.load(orchestrator)


def load_product(slug: str, manifest_text: str, compose_text: str, *, problems: Sequence[str] = (),
                 unreadable: Collection[str] = (), orchestrator: str = "docker") -> ProductDefinition:
    """Parse and validate a product; never raises: problems are in ``errors``.

    ``problems`` are complete messages from the source about files or the
    folder that could not be read; ``unreadable`` names the files
    (``product.yml``, ``docker-compose.yml``) whose text is not available, so
    they are not parsed. A readable file is still checked for YAML errors.
    ``orchestrator`` is LIVE_ORCHESTRATOR: with ``swarm`` what a swarm service cannot express is an error too
    (:func:`app.stacks.swarm_spec.swarm_problems`).
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

    manifest_errors = [schema_message(f"product {slug}: product.yml: ", e, manifest)
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

    product.backup = policy_from_manifest(manifest.get("backup"))
    errors.extend(_backup_problems(slug, manifest.get("backup"), product.plans))
    if manifest.get("credential"):
        product.credential = Credential.from_manifest(manifest["credential"])
        errors.extend(_credential_problems(product, compose))
    errors.extend(_validate_compose(product, orchestrator))
    return product


def _backup_problems(slug: str, section: Mapping[str, Any] | None, plans: Collection[str]) -> list[str]:
    """What is wrong in product.yml's ``backup`` section on its own (its shape passed the schema): cron
    expressions, retentions that keep nothing, ``dump`` without ``restore`` (and the reverse), a volume both
    archived and excluded, plans the product does not have. What it names in the compose file is
    :func:`_backup_compose_problems`'s. Each problem is ``product <slug>: product.yml: backup.<key>: <what>``."""
    if not section:
        return []
    where = f"product {slug}: product.yml: backup"
    problems: list[str] = []

    def timing(prefix: str, values: Mapping[str, Any]) -> None:
        if values.get("schedule") is not None:
            try:
                check_schedule(values["schedule"])
            except ValueError as exc:
                problems.append(f"{prefix}.schedule: {exc}")
        if values.get("keep") and not any(values["keep"].values()):
            problems.append(f"{prefix}.keep: at least one count must be more than 0 "
                            f"(periods: {', '.join(RETENTION_KEYS)})")

    timing(where, section)
    excluded_by: dict[str, str] = {}  # volume -> the first service that excludes it
    services = section.get("services") or {}
    for name in sorted(services):
        for volume in (services[name] or {}).get("exclude") or ():
            excluded_by.setdefault(volume, name)
    for name in sorted(services):
        entry = services[name] or {}
        key = f"{where}.services.{name}"
        for command_key in ("dump", "restore", "after_restore"):
            if isinstance(entry.get(command_key), str) and entry[command_key] and not entry[command_key].strip():
                problems.append(f"{key}.{command_key}: blank: give the command to run")
        if "dump" in entry and "restore" not in entry:
            problems.append(f"{key}.restore: required with dump (the command that reads the dump on stdin)")
        if "restore" in entry and "dump" not in entry:
            problems.append(f"{key}.dump: required with restore (the command whose output restore reads)")
        listed = entry.get("volumes") or ()
        for volume in entry.get("exclude") or ():
            if volume in listed:
                problems.append(f"{key}.exclude: {volume!r} is also in volumes")
        for volume in listed:
            other = excluded_by.get(volume)
            if other is not None and other != name:
                problems.append(f"{key}.volumes: {volume!r} is excluded by service {other}")
    for plan in sorted(section.get("plans") or {}):
        if plan not in plans:
            problems.append(f"{where}.plans.{plan}: no such plan (plans: {', '.join(sorted(plans))})")
        else:
            timing(f"{where}.plans.{plan}", section["plans"][plan] or {})
    return problems


def _credential_problems(product: ProductDefinition, compose: Mapping[str, Any]) -> list[str]:
    """What is wrong in product.yml's ``credential`` section (its shape passed the schema): a variable that is not a
    generated one, length rules the generated value breaks, symbols that are not printable ASCII punctuation, services
    the compose file does not have, a recreated service that does not use the variable. Each problem is
    ``product <slug>: product.yml: credential.<key>: <what>``."""
    credential = product.credential
    where = f"product {product.slug}: product.yml: credential"
    problems = []
    spec = product.generated.get(credential.variable)
    if spec is None:
        problems.append(f"{where}.variable: {credential.variable} is not a generated variable of product.yml "
                        f"(declare it as {{generate: password}}: its value when WHMCS sends no password)")
    if credential.min_length > credential.max_length:
        problems.append(f"{where}.min_length: {credential.min_length} is more than max_length {credential.max_length}")
    elif spec is not None and not credential.min_length <= spec.length <= credential.max_length:
        problems.append(f"{where}.variable: {credential.variable} is generated with {spec.length} characters, outside "
                        f"min_length..max_length ({credential.min_length}..{credential.max_length})")
    odd = sorted({c for c in credential.symbols if c not in string.punctuation})
    if odd:
        problems.append(f"{where}.symbols: only printable ASCII symbols may be listed, not {' '.join(map(repr, odd))}")
    if (credential.service is not None) == bool(credential.recreate):
        problems.append(f"{where}.apply: give exactly one of command (a command run in a service) and recreate (the "
                        f"services to recreate); it has {'both' if credential.recreate else 'neither'}")
    services = compose.get("services") if isinstance(compose.get("services"), dict) else {}
    known = ", ".join(sorted(services))
    if credential.service is not None and credential.service not in services:
        problems.append(f"{where}.apply.command.service: no such service {credential.service!r} (services: {known})")
    if credential.run and not "".join(credential.run[2:] if credential.run[:2] == ("sh", "-c") else credential.run).strip():
        problems.append(f"{where}.apply.command.run: blank: give the command to run")
    for name in credential.recreate:
        if name not in services:
            problems.append(f"{where}.apply.recreate: no such service {name!r} (services: {known})")
        elif credential.variable not in referenced_variables(services[name] or {}):
            problems.append(f"{where}.apply.recreate: service {name} does not use ${{{credential.variable}}}: "
                            "recreating it would not apply a new value")
    return problems


def _backup_compose_problems(product: ProductDefinition, stack: StackSpec | None) -> list[str]:
    """What product.yml's ``backup.services`` names that the compose file does not have: services (read from the
    compose document) and, with ``stack`` (one plan's, rendered), volumes a service does not mount. Each problem
    is ``product <slug>: product.yml: backup.services.<service>.<key>: <what>``."""
    slug = product.slug
    known = product.compose.get("services") or {}
    problems = []
    for name, entry in sorted(product.backup.services.items()):
        key = f"product {slug}: product.yml: backup.services.{name}"
        if name not in known:
            problems.append(f"{key}: no such service (services: {', '.join(sorted(known))})")
            continue
        if stack is None or name not in stack.services:
            continue
        mounted = {mount.volume for mount in stack.services[name].volumes}
        for list_key, volumes in (("volumes", entry.volumes or ()), ("exclude", entry.exclude)):
            for volume in volumes:
                if volume not in mounted:
                    problems.append(f"{key}.{list_key}: {name} does not mount volume {volume!r}")
    return problems


def _validate_compose(product: ProductDefinition, orchestrator: str = "docker") -> list[str]:
    slug = product.slug
    errors = outline_problems(slug, product.compose)
    if not has_services(product.compose):
        return errors
    errors.extend(_backup_compose_problems(product, None))

    # Build every plan's project with sample built-ins: catches undefined variables per plan,
    # and validates structure and policy after interpolation, as Compose does. A plan
    # can change what a value means (a volume source, a capability), so each is checked.
    known = set(product.defaults) | set(product.generated) | set(BUILTIN_VARIABLES)
    sample_secrets = {name: "x" * spec.length for name, spec in product.generated.items()}
    found: dict[str, list[str]] = {}  # error -> plans that have it
    rendered_plans = []
    for plan in sorted(product.plans):
        try:
            plan_errors, project = _deploy_path_errors(product, plan, sample_secrets, orchestrator)
        except InterpolationError as exc:
            missing = sorted(referenced_variables(product.compose) - known - set(product.plans[plan]))
            hint = f" (not defined for plan {plan}: {', '.join(missing)})" if missing else f" (plan {plan})"
            errors.append(f"product {slug}: docker-compose.yml: {exc}{hint}")
            continue
        rendered_plans.append(plan)
        if project is not None:  # the names backup.services uses, in this plan's rendered stack
            plan_errors = plan_errors + [problem for problem in _backup_compose_problems(product, project.stack)
                                         if problem not in errors]
        for error in plan_errors:
            plans_with_error = found.setdefault(error, [])
            if plan not in plans_with_error:  # the same problem found twice (a null value, by two checks)
                plans_with_error.append(plan)
    for error, plans in found.items():
        errors.append(error if len(plans) == len(rendered_plans) else f"{error} (plan {', '.join(plans)})")
    if not rendered_plans:
        return errors

    services = product.compose["services"]
    seen_paths: dict[str, str] = {}
    for endpoint in product.endpoints:
        if endpoint.service not in services:
            errors.append(f"product {slug}: product.yml: endpoint {endpoint.application} names unknown service {endpoint.service!r}")
        path = endpoint.path.rstrip("/") or "/"
        if path in seen_paths:
            errors.append(f"product {slug}: product.yml: endpoint {endpoint.application} has the path {endpoint.path!r} "
                          f"of endpoint {seen_paths[path]}: one hostname routes each path to one service")
        seen_paths.setdefault(path, endpoint.application)
    return errors


def _deploy_path_errors(product: ProductDefinition, plan: str, secrets: Mapping[str, str],
                        orchestrator: str = "docker") -> tuple[list[str], Project | None]:
    """Run, for one plan, what the worker runs to deploy an order, without an engine; return the problems and the
    project (``None`` when it could not be built).

    The project is built as ``OperationRunner.project`` builds it (:func:`build_project`, with sample
    built-ins and secrets, and every problem of the compose file reported: ``validate``), then every
    container, network and volume request and its engine JSON (:func:`app.stacks.engine_requests.dry_run`,
    for Docker Engine API :data:`~app.stacks.docker_engine.ENGINE_API_VERSION`; with ``orchestrator`` ``swarm``
    also what a swarm service cannot express). Each problem is ``product
    <slug>: service <name>: <key>: <what>`` (or names the network or volume). Raises
    :class:`~app.errors.InterpolationError` when the plan does not render; any other exception is a
    problem too, never a pass.
    """
    slug = product.slug
    try:
        project = build_project(product, plan, sample_builtins(slug, plan), secrets, revision="validation",
                                validate=True)
        problems = dry_run(project, ENGINE_API_VERSION, orchestrator=orchestrator)
        return [f"product {slug}: {problem}" for problem in problems], project
    except InterpolationError:
        raise
    except ProductError as exc:
        return list(exc.errors), None
    except LiveError as exc:
        return [f"product {slug}: {exc}"], None
    except Exception as exc:  # last line of defence: a crash of the deploy path refuses the product
        log.exception("product %s: plan %s: the deploy path failed", slug, plan)
        return [f"product {slug}: docker-compose.yml: the project cannot be built ({type(exc).__name__}: {exc})"], None


def build_project(definition: ProductDefinition, plan: str, builtins: Mapping[str, str], secrets: Mapping[str, str],
                  *, revision: str, pinned_ports: Mapping[str, int] | None = None,
                  deployment: str = "live", validate: bool = False) -> Project:
    """The stack ``definition`` renders for ``plan``, as the deployer takes it. No engine is called.

    The one way from a product to a :class:`~app.stacks.project.Project`: the worker builds every
    order's project with it (``OperationRunner.project``) and the catalog builds a sample project of every
    plan with it when it validates a product (``validate``: every problem of the compose file at once),
    so the two never disagree about what a product means.

    ``builtins`` are the ``LIVE_*`` values of the order (:data:`BUILTIN_VARIABLES`); the project's order id,
    instance, hostname and product are read from ``LIVE_ORDER_ID``, ``LIVE_INSTANCE``, ``LIVE_HOSTNAME``
    and ``LIVE_PRODUCT``, so the names of the objects always match what the compose file saw. ``secrets``
    are the order's generated values, ``revision`` the label of the product revision, ``pinned_ports`` the
    host port recorded per ``"service:port"`` endpoint, ``deployment`` the Live installation
    (``LIVE_DEPLOYMENT``) whose namespace the project's objects are named and labelled in.

    Raises as :func:`app.compose.pipeline.load_stack` does: :class:`~app.errors.InterpolationError` when
    the plan does not render, :class:`~app.errors.ProductError` when the rendered document breaks the
    policy (checked again here on the real values: the catalog only saw sample ones) and
    :class:`~app.errors.StackSpecError` when it cannot be turned into a stack. The definition's own
    validity is the caller's to check.
    """
    stack = load_stack(definition.slug, definition.compose, definition.variables_for(plan, builtins, secrets),
                       validate=validate)
    return Project(
        order_id=int(builtins["LIVE_ORDER_ID"]), instance=builtins["LIVE_INSTANCE"], product=builtins["LIVE_PRODUCT"],
        revision=revision, hostname=builtins["LIVE_HOSTNAME"], stack=stack,
        endpoints=list(definition.endpoints), pinned_ports=dict(pinned_ports or {}), deployment=deployment,
    )


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
def _manifest_validator() -> jsonschema.protocols.Validator:
    return jsonschema.Draft202012Validator(MANIFEST_SCHEMA)


def _parse_yaml(slug: str, filename: str, text: str, errors: list[str]) -> dict | None:
    """The document of one product file (``app/yamlfile.py``'s rules), or ``None`` with an error added."""
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
