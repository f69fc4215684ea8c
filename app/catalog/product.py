"""A product of the catalog: its manifest (product.yml) and compose file.

:func:`load_product` parses and validates both files and never raises: an
invalid product comes back with ``errors`` so the catalog can list it, and
the deployer refuses it.
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets as secrets_module
import string
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml

from app.catalog.interpolate import interpolate, referenced_variables
from app.catalog.policy import FORBIDDEN_SERVICE_KEYS, check_policy
from app.errors import InterpolationError, InvalidRequest, ProductError
from app.stacks.spec import StackSpecError, dependency_cycle, depends_on_names, parse_service

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

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def content_hash(self) -> str:
        return content_hash(self.manifest_text, self.compose_text)

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


def content_hash(manifest_text: str, compose_text: str) -> str:
    digest = hashlib.sha256()
    for part in (manifest_text, compose_text):
        data = part.encode()
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
    manifest = folder / "product.yml"
    compose = folder / "docker-compose.yml"
    manifest_text = manifest.read_text(encoding="utf-8") if manifest.is_file() else ""
    compose_text = compose.read_text(encoding="utf-8") if compose.is_file() else ""
    product = load_product(folder.name, manifest_text, compose_text)
    if not manifest.is_file():
        product.errors.insert(0, f"product {folder.name}: product.yml is missing")
    if not compose.is_file():
        product.errors.insert(0, f"product {folder.name}: docker-compose.yml is missing")
    return product


def load_product(slug: str, manifest_text: str, compose_text: str) -> ProductDefinition:
    product = ProductDefinition(slug=slug, manifest_text=manifest_text, compose_text=compose_text, name=slug)
    errors = product.errors
    if not SLUG_RE.match(slug):
        errors.append(f"product {slug}: the folder name must match [a-z][a-z0-9-]* (at most 63 characters)")

    manifest = _parse_yaml(slug, "product.yml", manifest_text, errors)
    compose = _parse_yaml(slug, "docker-compose.yml", compose_text, errors)
    if manifest is None or compose is None:
        return product

    manifest_errors = [f"product {slug}: product.yml: {_error_path(e)}{e.message}" for e in _manifest_validator().iter_errors(manifest)]
    if manifest_errors:
        errors.extend(sorted(manifest_errors))
        return product

    product.name = manifest["name"]
    product.description = manifest.get("description", "")
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
        for error in _schema_errors(slug, rendered) + check_policy(slug, rendered) + _support_errors(slug, rendered):
            found.setdefault(error, []).append(plan)
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
    cycle = dependency_cycle({n: depends_on_names(s.get("depends_on")) for n, s in compose["services"].items() if isinstance(s, dict)})
    if cycle:
        errors.append(f"product {slug}: docker-compose.yml: depends_on: cycle {' -> '.join(cycle)}")
    return errors


def _schema_errors(slug: str, compose: dict) -> list[str]:
    return sorted(
        f"product {slug}: docker-compose.yml: {_error_path(error)}{error.message}"
        for error in _compose_validator().iter_errors(compose)
    )


def _error_path(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    return f"{path}: " if path else ""


@lru_cache(maxsize=1)
def _compose_validator() -> jsonschema.protocols.Validator:
    # The compose-spec schema declares draft 2019-09 (vendored from Debian's docker-compose 1.29.2).
    schema = json.loads((Path(__file__).parent / "schema" / "compose-spec.json").read_text())
    return jsonschema.Draft201909Validator(schema)


@lru_cache(maxsize=1)
def _manifest_validator() -> jsonschema.protocols.Validator:
    return jsonschema.Draft202012Validator(MANIFEST_SCHEMA)


def _parse_yaml(slug: str, filename: str, text: str, errors: list[str]) -> dict | None:
    if not text.strip():
        errors.append(f"product {slug}: {filename} is empty or missing")
        return None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        errors.append(f"product {slug}: {filename}: invalid YAML{where}: {getattr(exc, 'problem', exc)}")
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
