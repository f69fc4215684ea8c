"""The parse step of the compose pipeline: a rendered compose document as the typed stack.

Input is a compose document whose variables are already substituted. The
output (:mod:`app.compose.model`) is what the deployer needs and nothing
else: durations in nanoseconds, sizes in bytes, commands as lists, volumes
resolved to the order's named volumes.

Every conversion either succeeds with a value the engine accepts or raises
:class:`StackSpecError` whose message starts with the compose key and shows
the bad value (``healthcheck.interval: invalid duration 'often' ...``): the
catalog runs this code when it validates a product, so whatever it accepts
deploys. The engine's own rules are in :mod:`app.compose.engine_rules`.

The service keys Live reads are those of :data:`_SERVICE_READERS`, the
parser's table (:data:`SERVICE_KEYS`); the top-level keys those of
:data:`TOP_LEVEL_KEYS`. Every other key is refused by the pipeline.
"""
from __future__ import annotations

import math
import posixpath
import re
import shlex
from typing import Any, Callable, Mapping

from app.compose import engine_rules as rules
from app.compose.model import ServiceSpec, StackSpec, VolumeMount
from app.compose.policy import volume_problem
from app.errors import StackSpecError
from app.yamlfile import NULL_HINT

DEPENDENCY_CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")
#: The prefix of Live's own labels (their keys are :mod:`app.stacks.project`'s, all with this prefix; the
#: compose layer imports nothing of it): a product's labels may not start with it, so a product can
#: neither forge nor override one.
RESERVED_LABEL_PREFIX = "live."

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|ms|h|m|s)")
_DURATION_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([bkmgt]?)b?$", re.IGNORECASE)
# A decimal number as Go's strconv.ParseFloat reads it (no '_', 'inf' or 'nan').
_DECIMAL = re.compile(r"^\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*$")
_SIZE_FACTOR = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SERVICE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
# Names of top-level volumes and networks (compose specification schema).
_OBJECT_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")
_EXPOSE = re.compile(r"^([0-9]+)(?:-([0-9]+))?(?:/([A-Za-z]+))?$")
# Short-syntax volume modes Live accepts; nocopy is accepted and has no effect (see docs/PRODUCTS.md).
_VOLUME_MODES = frozenset({"ro", "rw", "nocopy"})
# Restart conditions of deploy.restart_policy (compose specification), as engine restart policies.
_RESTART_CONDITIONS = {"none": "no", "on-failure": "on-failure", "any": "always",
                       "always": "always", "unless-stopped": "unless-stopped"}
# Swarm-only deploy keys: a single engine has nothing to do with them (Compose ignores them as well).
_DEPLOY_IGNORED = frozenset({"mode", "placement", "update_config", "rollback_config", "endpoint_mode", "labels"})


def parse_stack(compose: dict[str, Any]) -> StackSpec:
    """The typed stack of a rendered compose document.

    Raises :class:`StackSpecError` whose message names the service (``service web: mem_limit: ...``) or
    the top-level entry (``networks.backend: ipam: ...``), then the key and the bad value.
    """
    declared_services, declared_networks, declared_volumes = (_section(compose, key) for key in _SECTIONS)
    services: dict[str, ServiceSpec] = {}
    for name, raw in declared_services.items():
        try:
            services[name] = parse_service(name, raw, compose)
        except StackSpecError as exc:
            raise StackSpecError(f"service {name}: {exc}", service=str(name)) from exc
    _check_dependencies(services)
    networks = {name: _network(name, options) for name, options in declared_networks.items()}
    if any("default" in svc.networks for svc in services.values()) and "default" not in networks:
        networks["default"] = {"internal": False, "labels": {}}
    volume_labels = {name: _volume_labels(name, options) for name, options in declared_volumes.items()}
    return StackSpec(services=services, volumes=sorted(declared_volumes), networks=networks,
                     volume_labels=volume_labels)


def _check_dependencies(services: dict[str, ServiceSpec]) -> None:
    """Conditions the deployer can wait for: known services, health only where there is a healthcheck, and
    completion only of a service nothing waits to be healthy (the deployer waits for every service with a
    healthcheck to be healthy at the end, and the engine reports an exited container as unhealthy)."""
    waited_healthy = {dep for svc in services.values() for dep, cond in svc.depends_on.items()
                      if cond == "service_healthy"}
    for name, service in services.items():
        for dependency, condition in service.depends_on.items():
            where = f"service {name}: depends_on: {dependency}"
            if dependency not in services:
                raise StackSpecError(_unknown_service(name, dependency), service=name)
            healthcheck = services[dependency].healthcheck
            if condition == "service_healthy" and healthcheck == {"Test": ["NONE"]}:
                raise StackSpecError(f"{where}: condition service_healthy, but the healthcheck of {dependency} is "
                                     "disabled", service=name)
            if condition == "service_completed_successfully":
                if healthcheck and healthcheck.get("Test") != ["NONE"]:
                    raise StackSpecError(f"{where}: condition service_completed_successfully, but {dependency} has a "
                                         "healthcheck: Live waits for every service with a healthcheck to be "
                                         "healthy, and a container that has exited is not", service=name)
                if dependency in waited_healthy:
                    raise StackSpecError(f"{where}: condition service_completed_successfully, but another service "
                                         f"waits for {dependency} to be healthy", service=name)


def parse_service(name: str, raw: dict[str, Any], compose: dict[str, Any]) -> ServiceSpec:
    """One service of a rendered compose document as a :class:`ServiceSpec`.

    ``compose`` is the whole document (for its declared volumes and networks). The keys are read in the
    order of :data:`_SERVICE_READERS`; keys not in it are not read (the pipeline refuses them). Raises
    :class:`StackSpecError` whose message starts with the compose key (``ulimits.nofile: ...``).
    """
    if not isinstance(name, str) or not _SERVICE_NAME.fullmatch(name):
        raise StackSpecError(f"service name {name!r} may only use letters, digits, '_', '.' and '-'")
    if not isinstance(raw, dict):
        raise StackSpecError(f"expected a mapping of service keys, got {rules.shown(raw)}")
    fields: dict[str, Any] = {}
    for _keys, read in _SERVICE_READERS:
        fields.update(read(raw, compose))
    return ServiceSpec(name=name, **fields)


def _optional(raw: dict[str, Any], key: str, convert: Callable[[Any, str], Any]) -> Any:
    """``convert(value, key)`` of a service key; ``None`` when the key is absent or null."""
    return None if raw.get(key) is None else convert(raw[key], key)


def _read_mounts(raw: dict[str, Any], compose: dict[str, Any]) -> dict[str, Any]:
    volumes, tmpfs = _mounts(raw.get("volumes"), raw.get("tmpfs"), _declared(compose, "volumes"))
    return {"volumes": volumes, "tmpfs": tmpfs}


def _read_restart(raw: dict[str, Any], compose: dict[str, Any]) -> dict[str, Any]:
    """``restart``, else ``deploy.restart_policy``; checks the whole ``deploy`` section."""
    return {"restart": _restart(raw.get("restart"), _deploy(raw.get("deploy")).get("restart_policy"))}


def _read_stop_grace(raw: dict[str, Any], compose: dict[str, Any]) -> dict[str, Any]:
    if "stop_grace_period" not in raw:
        return {}  # the engine's default, 10 seconds
    return {"stop_grace_seconds": round(parse_duration_ns(raw["stop_grace_period"], "stop_grace_period") / 1e9)}


def _read_resources(raw: dict[str, Any], compose: dict[str, Any]) -> dict[str, Any]:
    """Memory and CPU limits: the service keys, else their ``deploy.resources`` equivalents (which
    :func:`_read_restart` has checked before)."""
    resources = (raw.get("deploy") or {}).get("resources") or {}
    limits, reservations = resources.get("limits") or {}, resources.get("reservations") or {}
    cpus = raw.get("cpus", limits.get("cpus"))
    return {
        "mem_limit": _memory(raw.get("mem_limit", limits.get("memory")), "mem_limit"),
        "mem_reservation": _memory(raw.get("mem_reservation", reservations.get("memory")), "mem_reservation"),
        "memswap_limit": (None if raw.get("memswap_limit") in (None, "")
                          else parse_size(raw["memswap_limit"], "memswap_limit")),
        "nano_cpus": None if cpus in (None, "") else _nano_cpus(cpus),
    }


def _read_shm_size(raw: dict[str, Any], compose: dict[str, Any]) -> dict[str, Any]:
    value = raw.get("shm_size")
    return {"shm_size": None if value in (None, "") else _non_negative(parse_size(value, "shm_size"), "shm_size")}


def _read_sysctls(raw: dict[str, Any], compose: dict[str, Any]) -> dict[str, Any]:
    sysctls = _mapping(raw.get("sysctls"), "sysctls")
    for sysctl in sysctls:
        rules.sysctl_name(sysctl)
    return {"sysctls": sysctls}


_Reader = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]

#: The parser's table: the service keys Live reads, each group with the reader that turns them into
#: :class:`ServiceSpec` fields (``reader(service, document) -> {field: value}``), in the order they are
#: read (the first problem found is the one reported).
_SERVICE_READERS: tuple[tuple[tuple[str, ...], _Reader], ...] = (
    (("image",), lambda raw, doc: {"image": rules.image_reference(raw.get("image"))}),
    (("command",), lambda raw, doc: {"command": _command(raw.get("command"), "command")}),
    (("entrypoint",), lambda raw, doc: {"entrypoint": _command(raw.get("entrypoint"), "entrypoint")}),
    (("environment",), lambda raw, doc: {"environment": _environment(_shaped(raw.get("environment"),
                                                                               "environment"))}),
    (("labels",), lambda raw, doc: {"labels": _labels(raw.get("labels"), "labels")}),
    (("volumes", "tmpfs"), _read_mounts),
    (("depends_on",), lambda raw, doc: {"depends_on": _depends_on(raw.get("depends_on"))}),
    (("healthcheck",), lambda raw, doc: {"healthcheck": _healthcheck(raw.get("healthcheck"))}),
    (("deploy", "restart"), _read_restart),
    (("init",), lambda raw, doc: {"init": _optional(raw, "init", rules.boolean)}),
    (("stop_grace_period",), _read_stop_grace),
    (("stop_signal",), lambda raw, doc: {"stop_signal": _optional(raw, "stop_signal", rules.signal_name)}),
    (("user",), lambda raw, doc: {"user": _optional(raw, "user", rules.user_spec)}),
    (("working_dir",), lambda raw, doc: {"working_dir": _optional(raw, "working_dir", rules.absolute_path)}),
    (("hostname",), lambda raw, doc: {"hostname": _optional(raw, "hostname", rules.hostname)}),
    (("domainname",), lambda raw, doc: {"domainname": _optional(raw, "domainname", rules.hostname)}),
    (("mem_limit", "mem_reservation", "memswap_limit", "cpus"), _read_resources),
    (("networks",), lambda raw, doc: {"networks": _networks(raw.get("networks"), _declared(doc, "networks"))}),
    (("expose",), lambda raw, doc: {"expose": _expose(raw.get("expose"))}),
    (("ulimits",), lambda raw, doc: {"ulimits": _ulimits(raw.get("ulimits"))}),
    (("shm_size",), _read_shm_size),
    (("read_only",), lambda raw, doc: {"read_only": _flag(raw, "read_only")}),
    (("cap_add",), lambda raw, doc: {"cap_add": [rules.capability(c, "cap_add")
                                                 for c in _list(raw.get("cap_add"), "cap_add")]}),
    (("cap_drop",), lambda raw, doc: {"cap_drop": [rules.capability(c, "cap_drop")
                                                   for c in _list(raw.get("cap_drop"), "cap_drop")]}),
    (("sysctls",), _read_sysctls),
    (("extra_hosts",), lambda raw, doc: {"extra_hosts": _extra_hosts(raw.get("extra_hosts"))}),
    (("logging",), lambda raw, doc: {"log_config": _log_config(raw.get("logging"))}),
    (("tty",), lambda raw, doc: {"tty": _flag(raw, "tty")}),
    (("stdin_open",), lambda raw, doc: {"stdin_open": _flag(raw, "stdin_open")}),
)

#: Every service key Live reads (from the parser's table); other keys, but ``x-*`` extensions, are refused.
SERVICE_KEYS = frozenset(key for keys, _ in _SERVICE_READERS for key in keys)

#: The top-level sections the parser reads.
_SECTIONS = ("services", "networks", "volumes")
#: Every top-level key Live accepts: the sections, and ``version`` (obsolete in the compose specification,
#: ignored as Compose ignores it). Other keys, but ``x-*`` extensions, are refused.
TOP_LEVEL_KEYS = frozenset({*_SECTIONS, "version"})


def is_extension(key: Any) -> bool:
    """Whether a key is an extension (``x-*``), which Compose and Live ignore wherever a mapping may have one
    (compose specification, "Extension")."""
    return str(key).startswith("x-")


def parse_duration_ns(value: Any, key: str) -> int:
    """'1m30s', '500ms', '10s' (or a number of seconds) -> nanoseconds, at most what the engine's int64 holds.

    Units are those of Go's ``time.ParseDuration`` that the compose specification uses (ns, us, ms, s, m, h).
    Negative durations are refused.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value) or value < 0 or value * 1e9 > rules.MAX_INT64:
            raise StackSpecError(f"{key}: invalid duration {value!r} (a number of seconds from 0 up)")
        return int(value * 1e9)
    text = str(value).strip() if isinstance(value, str) else ""
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_NS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise StackSpecError(f"{key}: invalid duration {value!r} (use e.g. 30s, 1m30s, 500ms)")
    if not math.isfinite(total) or total > rules.MAX_INT64:
        raise StackSpecError(f"{key}: duration {value!r} is too long")
    return int(total)


def parse_size(value: Any, key: str) -> int:
    """'512m', '1g', '1.5g', '1024k' (or a whole number of bytes) -> bytes (binary units, as Docker's)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > rules.MAX_INT64:
            raise StackSpecError(f"{key}: size {value!r} is too large")
        return value
    match = _SIZE.fullmatch(value.strip()) if isinstance(value, str) else None
    if not match:
        raise StackSpecError(f"{key}: invalid size {value!r} (use e.g. 512m or 2g)")
    size = float(match.group(1)) * _SIZE_FACTOR[match.group(2).lower()]
    if not math.isfinite(size) or size > rules.MAX_INT64:
        raise StackSpecError(f"{key}: size {value!r} is too large")
    return int(size)


def unknown_dependencies(name: str, service: dict[str, Any], services: Mapping[str, Any]) -> list[str]:
    """``service <name>: depends_on: unknown service '<dependency>'`` for every service that ``service`` (as
    written, either form of ``depends_on``) depends on and ``services`` does not have; all at once."""
    return [_unknown_service(name, dependency) for dependency in depends_on_names(service.get("depends_on"))
            if dependency not in services]


def _unknown_service(name: str, dependency: str) -> str:
    return f"service {name}: depends_on: unknown service {dependency!r}"


def depends_on_names(value: Any) -> list[str]:
    """The service names a ``depends_on`` value lists (either form); [] for anything else."""
    if isinstance(value, dict):
        return [str(name) for name in value]
    if isinstance(value, list):
        return [str(name) for name in value]
    return []


#: Service keys whose mapping form has text values; see :func:`null_value_problems`.
_TEXT_MAPPINGS = ("environment", "labels", "sysctls", "extra_hosts")


def no_value(key: str, name: Any) -> str:
    """The message for the entry ``name`` of the mapping ``key`` that has no value (``null``, ``~`` or nothing).

    Compose would take an environment variable's value from the host, and turn any other such entry into an
    empty string; Live refuses both.
    """
    why = " (values are never taken from the host)" if key == "environment" else ""
    return f"{key}: {name} has no value{why}; {NULL_HINT}"


def null_value_problems(compose: dict[str, Any]) -> list[str]:
    """Every mapping entry without a value where Live needs text, all at once (parsing stops at the first).

    Looks at the mapping form of ``environment``, ``labels``, ``sysctls``, ``extra_hosts`` and
    ``logging.options`` of each service (``service web: environment: TOKEN has no value ...``) and at the
    labels of top-level networks and volumes (``networks.back: labels: team has no value ...``); the
    messages are those the parser raises for the same entries. Never raises, whatever the shape.
    """
    problems = []
    services = compose.get("services")
    for name, service in (services.items() if isinstance(services, dict) else ()):
        if not isinstance(service, dict):
            continue
        logging_ = service.get("logging")
        logging_options = logging_.get("options") if isinstance(logging_, dict) else None
        for key, mapping in [(k, service.get(k)) for k in _TEXT_MAPPINGS] + [("logging.options", logging_options)]:
            problems.extend(f"service {name}: {no_value(key, entry)}" for entry in _null_keys(mapping))
    for section in ("networks", "volumes"):
        definitions = compose.get(section)
        for name, definition in (definitions.items() if isinstance(definitions, dict) else ()):
            problems.extend(_null_labels(section, name, definition))
    return problems


def _null_labels(section: str, name: str, definition: Any) -> list[str]:
    """``<section>.<name>: labels: <label> has no value ...`` for each label of a top-level entry without a value."""
    labels = definition.get("labels") if isinstance(definition, dict) else None
    return [f"{section}.{name}: {no_value('labels', label)}" for label in _null_keys(labels)]


def _refuse_null_labels(section: str, name: str, definition: Any) -> None:
    problems = _null_labels(section, name, definition)
    if problems:
        raise StackSpecError(problems[0])


def _null_keys(mapping: Any) -> list[str]:
    return [str(key) for key, value in mapping.items() if value is None] if isinstance(mapping, dict) else []


def _command(value: Any, key: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        if "\x00" in value:
            raise StackSpecError(f"{key}: contains a NUL character")
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise StackSpecError(f"{key}: cannot split {value!r}: {exc}") from None
    if isinstance(value, list):
        return [rules.scalar_text(part, key) for part in value]
    raise StackSpecError(f"{key}: expected a string or a list, got {type(value).__name__}")


def _environment(value: Any) -> dict[str, str]:
    """``environment`` (mapping, or list of ``NAME=value``) -> ``{name: text}``.

    Values are the author's text (numbers and booleans as written, see
    ``app/yamlfile.py``). An entry without a value (``X:``, ``X: ~``,
    ``- X``) is refused: Compose would take it from the host.
    """
    result: dict[str, str] = {}
    if value is None:
        return result
    items = value.items() if isinstance(value, dict) else (_split_env(entry) for entry in value)
    for name, item in items:
        if item is None:
            raise StackSpecError(no_value("environment", name))
        result[str(name)] = _text(item, f"environment: {name}")
    return result


def _split_env(entry: Any) -> tuple[str, str | None]:
    """``NAME=value`` -> ``(NAME, value)``; ``NAME`` alone -> ``(NAME, None)``. Entries must be text."""
    if not isinstance(entry, str):
        raise StackSpecError(f"environment: list entry {entry!r} is not text; write NAME=value")
    name, sep, value = entry.partition("=")
    return name, value if sep else None


def _mapping(value: Any, key: str) -> dict[str, str]:
    """A Compose ``list_or_dict`` of text (labels, sysctls, logging options) -> ``{name: text}``.

    In mapping form an entry without a value is refused (it would silently be
    an empty string); in list form ``name`` alone is the empty value, as in
    Compose (``name=`` says the same explicitly).
    """
    if value is None:
        return {}
    if isinstance(value, dict):
        result = {}
        for name, item in value.items():
            if item is None:
                raise StackSpecError(no_value(key, name))
            result[str(name)] = _text(item, f"{key}: {name}")
        return result
    if isinstance(value, list):
        result = {}
        for entry in value:
            if not isinstance(entry, str):
                raise StackSpecError(f"{key}: list entry {entry!r} is not text; write name=value")
            name, sep, item = entry.partition("=")
            result[name] = item if sep else ""
        return result
    raise StackSpecError(f"{key}: expected a mapping or a list of NAME=value")


def _section(compose: dict[str, Any], key: str) -> dict[str, Any]:
    """A top-level mapping of the document (services, networks, volumes); {} when absent."""
    value = compose.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StackSpecError(f"{key}: expected a mapping of names, got {rules.shown(value)}")
    for name in value:
        if not isinstance(name, str) or (key != "services" and not _OBJECT_NAME.fullmatch(name)):
            raise StackSpecError(f"{key}: {name!r} is not a valid name (letters, digits, '.', '_', '-')")
        if len(name) > rules.MAX_NAME_LENGTH:
            raise StackSpecError(f"{key}: {name[:20]!r}... is {len(name)} characters long; names are at most "
                                 f"{rules.MAX_NAME_LENGTH} (a DNS label: the order's prefix is added to it)")
    return value


def _declared(compose: dict[str, Any], key: str) -> dict[str, Any]:
    """The top-level volumes or networks a service may name ({} if the section is not a mapping)."""
    value = compose.get(key)
    return value if isinstance(value, dict) else {}


def _network(name: str, options: Any) -> dict[str, Any]:
    """A top-level network: whether it is internal and its labels (driver and names are the policy's)."""
    where = f"networks.{name}"
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise StackSpecError(f"{where}: expected a mapping, got {rules.shown(options)}")
    for key in ("ipam", "enable_ipv6"):
        if key in options:
            raise StackSpecError(f"{where}: {key}: not supported by Live (the engine gives each order's networks "
                                 "their addresses)")
    _refuse_null_labels("networks", name, options)
    internal = options.get("internal")
    return {"internal": False if internal is None else rules.boolean(internal, f"{where}.internal"),
            "labels": _labels(options.get("labels"), f"{where}.labels")}


def _volume_labels(name: str, options: Any) -> dict[str, str]:
    """The labels a top-level volume declares (driver and names are the policy's)."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise StackSpecError(f"volumes.{name}: expected a mapping, got {rules.shown(options)}")
    _refuse_null_labels("volumes", name, options)
    return _labels(options.get("labels"), f"volumes.{name}.labels")


def _labels(value: Any, key: str) -> dict[str, str]:
    labels = _mapping(value, key)
    for label in labels:
        if not label:
            raise StackSpecError(f"{key}: a label needs a name")
        if label.startswith(RESERVED_LABEL_PREFIX):
            raise StackSpecError(f"{key}: the {RESERVED_LABEL_PREFIX}* prefix is reserved for Live")
    return labels


def _shaped(value: Any, key: str) -> Any:
    """``value`` if it is null, a mapping or a list (the two forms of environment, labels, ...)."""
    if value is not None and not isinstance(value, (dict, list)):
        raise StackSpecError(f"{key}: expected a mapping or a list of NAME=value, got {rules.shown(value)}")
    return value


def _mounts(volumes: Any, tmpfs_key: Any, declared: Any) -> tuple[list[VolumeMount], dict[str, str]]:
    """Named volume mounts and tmpfs mounts (path -> options) from ``volumes`` and ``tmpfs``.

    Two mounts at the same path are refused, as the engine refuses them ("Duplicate mount point").
    """
    if volumes is None:
        volumes = []
    if not isinstance(volumes, list):
        raise StackSpecError(f"volumes: expected a list, got {rules.shown(volumes)}")
    mounts: list[VolumeMount] = []
    tmpfs: dict[str, str] = {}
    taken: dict[str, str] = {}  # normalised path -> the entry that mounts it
    for index, entry in enumerate(volumes):
        key = f"volumes[{index}]"
        if isinstance(entry, str):
            if "\x00" in entry:
                raise StackSpecError(f"{key}: contains a NUL character")
            parts = entry.split(":")
            if len(parts) == 1:
                raise StackSpecError(f"{key}: anonymous volume at {entry}: declare a named volume so the data "
                                     "survives redeploys")
            if len(parts) > 3:
                raise StackSpecError(f"{key}: {entry!r}: expected VOLUME:TARGET or VOLUME:TARGET:MODE")
            source, target = parts[0], parts[1]
            modes = parts[2].split(",") if len(parts) == 3 else []
            for mode in modes:
                if mode not in _VOLUME_MODES:
                    raise StackSpecError(f"{key}: unknown mode {mode!r} in {entry!r} (ro, rw, nocopy)")
            if "ro" in modes and "rw" in modes:
                raise StackSpecError(f"{key}: {entry!r} is both ro and rw")
            read_only = "ro" in modes
        elif isinstance(entry, dict):
            kind = entry.get("type", "volume")
            if kind == "tmpfs":
                target = _mount_target(entry.get("target"), f"{key}.target")
                tmpfs[target] = _tmpfs_long(entry.get("tmpfs"), f"{key}.tmpfs")
                _claim(taken, target, key)
                continue
            source, target = entry.get("source"), entry.get("target")
            read_only = _flag(entry, "read_only", f"{key}.read_only")
            if kind == "volume" and not source:
                raise StackSpecError(f"{key}: anonymous volume at {target}: declare a named volume so the data "
                                     "survives redeploys")
        else:
            raise StackSpecError(f"{key}: {volume_problem(entry, declared)}")
        # What may be mounted (a declared named volume; never a host path or the Docker socket) is the
        # policy's rule, with its message.
        problem = volume_problem(entry, declared)
        if problem:
            raise StackSpecError(f"{key}: {problem}")
        target = _mount_target(target, key)
        _claim(taken, target, key)
        mounts.append(VolumeMount(source, target, read_only))
    entries = _as_list(tmpfs_key)
    for index, entry in enumerate(entries):
        key = f"tmpfs[{index}]" if isinstance(tmpfs_key, list) else "tmpfs"
        path, _, options = rules.scalar_text(entry, key).partition(":")
        path = _mount_target(path, key)
        tmpfs[path] = rules.tmpfs_options(options, key)
        _claim(taken, path, key)
    return mounts, tmpfs


def _mount_target(target: Any, key: str) -> str:
    if target is None or target == "":
        raise StackSpecError(f"{key}: target {target!r} must be an absolute path in the container")
    return rules.absolute_path(target, key, mount=True)


def _claim(taken: dict[str, str], path: str, key: str) -> None:
    normalised = posixpath.normpath(path)
    if normalised in taken:
        raise StackSpecError(f"{key}: {path} is already mounted by {taken[normalised]} (the engine refuses "
                             "two mounts at one path)")
    taken[normalised] = key


def _tmpfs_long(options: Any, key: str) -> str:
    """The engine's tmpfs options of a long-syntax ``type: tmpfs`` entry (its ``tmpfs.size``)."""
    if options is None:
        return ""
    if not isinstance(options, dict):
        raise StackSpecError(f"{key}: expected a mapping with size, got {rules.shown(options)}")
    for name in options:
        if name != "size" and not is_extension(name):
            raise StackSpecError(f"{key}.{name}: not supported by Live (size only)")
    size = options.get("size")
    if size in (None, ""):
        return ""
    return f"size={_non_negative(parse_size(size, f'{key}.size'), f'{key}.size')}" if size else ""


def _depends_on(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, list):
        return {rules.scalar_text(name, "depends_on"): "service_started" for name in value}
    if not isinstance(value, dict):
        raise StackSpecError(f"depends_on: expected a list or a mapping of services, got {rules.shown(value)}")
    result = {}
    for name, options in value.items():
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise StackSpecError(f"depends_on: {name}: expected a mapping with a condition, "
                                 f"got {rules.shown(options)}")
        for option in options:
            if option != "condition" and not is_extension(option):
                raise StackSpecError(f"depends_on: {name}: {option}: not supported by Live")
        condition = options.get("condition", "service_started")
        if condition not in DEPENDENCY_CONDITIONS:
            raise StackSpecError(f"depends_on: {name}: unknown condition {condition!r}")
        result[str(name)] = condition
    return result


def _healthcheck(value: Any) -> dict[str, Any] | None:
    """The engine's Healthcheck (durations in ns); ``{"Test": ["NONE"]}`` when disabled."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise StackSpecError(f"healthcheck: expected a mapping, got {rules.shown(value)}")
    if not value:
        return None
    if value.get("disable") is not None and rules.boolean(value["disable"], "healthcheck.disable"):
        return {"Test": ["NONE"]}
    test = value.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", rules.scalar_text(test, "healthcheck.test")]
    elif isinstance(test, list):
        test = [rules.scalar_text(part, "healthcheck.test") for part in test]
        if test and test[0] not in ("CMD", "CMD-SHELL", "NONE"):
            raise StackSpecError("healthcheck: test list must start with CMD, CMD-SHELL or NONE")
        if test and test[0] == "NONE":
            return {"Test": ["NONE"]}  # the engine ignores what follows NONE: the check is disabled
        if test and len(test) == 1:
            raise StackSpecError(f"healthcheck.test: {test[0]} needs a command after it")
    elif test is not None:
        raise StackSpecError("healthcheck: test must be a string or a list")
    result: dict[str, Any] = {}
    if test:
        result["Test"] = test
    for key, api_key in (("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod")):
        if value.get(key) is not None:
            duration = parse_duration_ns(value[key], f"healthcheck.{key}")
            if 0 < duration < rules.MIN_HEALTHCHECK_NS:
                raise StackSpecError(f"healthcheck.{key}: {value[key]!r} is under 1ms (the engine needs 0 or at "
                                     "least 1ms)")
            result[api_key] = duration
    if value.get("retries") is not None:
        result["Retries"] = rules.integer(value["retries"], "healthcheck.retries", minimum=0)
    return result or None


def _deploy(value: Any) -> dict[str, Any]:
    """The ``deploy`` section, checked: what Live applies (resources, restart_policy) and what it may ignore."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StackSpecError(f"deploy: expected a mapping, got {rules.shown(value)}")
    for key, item in value.items():
        if key in ("resources", "restart_policy") or key in _DEPLOY_IGNORED or is_extension(key):
            continue
        if key == "replicas":
            if rules.integer(item, "deploy.replicas") != 1:
                raise StackSpecError(f"deploy.replicas: {item!r}: Live runs exactly one container per service")
            continue
        raise StackSpecError(f"deploy.{key}: not supported by Live")
    if value.get("mode") not in (None, "replicated", "global"):
        raise StackSpecError(f"deploy.mode: {value['mode']!r} is not replicated or global")
    resources = value.get("resources")
    if resources is not None:
        if not isinstance(resources, dict):
            raise StackSpecError(f"deploy.resources: expected a mapping, got {rules.shown(resources)}")
        # What Live applies; reservations.cpus is a scheduling hint of swarm that an engine has no use for.
        allowed = {"limits": ("cpus", "memory"), "reservations": ("memory", "cpus")}
        for section, section_value in resources.items():
            where = f"deploy.resources.{section}"
            if is_extension(section):
                continue
            if section not in allowed:
                raise StackSpecError(f"{where}: not supported by Live")
            if section_value is None:
                continue
            if not isinstance(section_value, dict):
                raise StackSpecError(f"{where}: expected a mapping, got {rules.shown(section_value)}")
            for key in section_value:
                if key not in allowed[section] and not is_extension(key):
                    reason = "host devices are not available" if key in ("devices", "generic_resources") \
                        else "not supported by Live"
                    raise StackSpecError(f"{where}.{key}: {reason}")
    policy = value.get("restart_policy")
    if policy is not None and not isinstance(policy, dict):
        raise StackSpecError(f"deploy.restart_policy: expected a mapping, got {rules.shown(policy)}")
    return value


def _restart(value: Any, policy: dict | None) -> dict[str, Any] | None:
    """The engine's RestartPolicy from ``restart``, or else from ``deploy.restart_policy`` (condition, max_attempts).

    ``delay`` and ``window`` of the policy have no engine equivalent and are ignored, as Compose does.
    """
    if value is None and policy is not None:
        condition = policy.get("condition", "any")
        if not isinstance(condition, str) or condition not in _RESTART_CONDITIONS:
            raise StackSpecError(f"deploy.restart_policy.condition: {condition!r} is not one of none, on-failure, any")
        value = _RESTART_CONDITIONS[condition]
        attempts = policy.get("max_attempts")
        if attempts is not None:
            count = rules.integer(attempts, "deploy.restart_policy.max_attempts", minimum=0)
            if value != "on-failure":
                raise StackSpecError(f"deploy.restart_policy.max_attempts: only applies with condition on-failure "
                                     f"(the engine refuses a retry count with {condition})")
            value = f"on-failure:{count}"
    if value is None or value is False or value == "no":
        return None
    if not isinstance(value, str):
        raise StackSpecError(f"restart: {value!r} is not one of no, always, unless-stopped, on-failure[:N]")
    name, _, retries = value.partition(":")
    if name not in ("always", "unless-stopped", "on-failure"):
        raise StackSpecError(f"restart: {value!r} is not one of no, always, unless-stopped, on-failure[:N]")
    result: dict[str, Any] = {"Name": name}
    if retries:
        if name != "on-failure":
            raise StackSpecError(f"restart: {value!r}: a retry count is only valid with on-failure")
        if not re.fullmatch(r"[0-9]+", retries):
            raise StackSpecError(f"restart: {value!r} has an invalid retry count")
        result["MaximumRetryCount"] = rules.integer(retries, "restart")
    return result


def _networks(value: Any, declared: Any) -> dict[str, list[str]]:
    """Network name -> aliases of one service; ``default`` when it names none."""
    if not value:
        return {"default": []}
    if isinstance(value, list):
        names = [(rules.scalar_text(name, "networks"), None) for name in value]
    elif isinstance(value, dict):
        names = list(value.items())
    else:
        raise StackSpecError(f"networks: expected a list or a mapping of networks, got {rules.shown(value)}")
    result = {}
    for name, options in names:
        if name != "default" and (not isinstance(name, str) or name not in declared):
            raise StackSpecError(f"networks: {name!r} is not declared under the top-level networks")
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise StackSpecError(f"networks: {name}: expected a mapping with aliases, got {rules.shown(options)}")
        for option in options:
            if option != "aliases" and not is_extension(option):
                raise StackSpecError(f"networks: {name}: {option}: not supported by Live (aliases only)")
        aliases = options.get("aliases") or []
        if not isinstance(aliases, list):
            raise StackSpecError(f"networks: {name}: aliases: expected a list, got {rules.shown(aliases)}")
        result[name] = [rules.hostname(alias, f"networks: {name}: aliases") for alias in aliases]
    return result


def _expose(value: Any) -> list[str]:
    """Ports to expose, one entry per port: ``"9090"``, ``9090``, ``"9090/udp"``, ``"9090-9092"`` (each port of
    the range), ``"9090-9092/tcp"`` (compose specification, "expose"). The protocol is kept only when given."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise StackSpecError(f"expose: expected a list of ports, got {rules.shown(value)}")
    result: list[str] = []
    for entry in value:
        if isinstance(entry, bool) or not isinstance(entry, (int, str)):
            raise StackSpecError(f"expose: {entry!r} is not a port (e.g. 8080, \"9090/udp\", \"9090-9092\")")
        match = _EXPOSE.fullmatch(str(entry).strip())
        if not match:
            raise StackSpecError(f"expose: {entry!r} is not a port (e.g. 8080, \"9090/udp\", \"9090-9092\")")
        if any(part and len(part) > 1 and part.startswith("0") for part in match.group(1, 2)):
            # 0755 is 493 to YAML 1.1 and docker-compose 1.29, 755 to a decimal reading: never guess.
            raise StackSpecError(f"expose: {entry!r}: a port is written without leading zeros")
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        protocol = (match.group(3) or "").lower()
        if protocol and protocol not in rules.EXPOSE_PROTOCOLS:
            raise StackSpecError(f"expose: {entry!r}: unknown protocol {match.group(3)!r} (tcp, udp or sctp)")
        for port in (first, last):
            if not 1 <= port <= 65535:
                raise StackSpecError(f"expose: {entry!r}: port {port} is not between 1 and 65535")
        if last < first:
            raise StackSpecError(f"expose: {entry!r}: the range ends before it starts")
        suffix = f"/{protocol}" if protocol else ""
        result.extend(f"{port}{suffix}" for port in range(first, last + 1))
    return result


def _ulimits(value: Any) -> list[dict[str, Any]]:
    """The engine's Ulimits; -1 means unlimited, and the soft limit may not exceed the hard one."""
    if value is None:
        return []
    if not isinstance(value, dict):
        raise StackSpecError(f"ulimits: expected a mapping of limits, got {rules.shown(value)}")
    result = []
    for name, limit in value.items():
        where = f"ulimits.{name}"
        if name not in rules.ULIMIT_NAMES:
            raise StackSpecError(f"ulimits: unknown limit {name!r} ({', '.join(sorted(rules.ULIMIT_NAMES))})")
        if isinstance(limit, dict):
            for key in ("soft", "hard"):
                if key not in limit:
                    raise StackSpecError(f"{where}: {key} is required with the soft/hard form")
            for key in limit:
                if key not in ("soft", "hard") and not is_extension(key):
                    raise StackSpecError(f"{where}.{key}: not supported (soft and hard only)")
            soft = rules.integer(limit["soft"], f"{where}.soft", minimum=-1)
            hard = rules.integer(limit["hard"], f"{where}.hard", minimum=-1)
        else:
            soft = hard = rules.integer(limit, where, minimum=-1)
        if hard != -1 and (soft == -1 or soft > hard):
            raise StackSpecError(f"{where}: the soft limit {soft} is above the hard limit {hard}")
        if name == "nofile" and (hard == -1 or hard > rules.MAX_NOFILE):
            raise StackSpecError(f"{where}: {'unlimited' if hard == -1 else hard} open files is above what Linux "
                                 f"allows ({rules.MAX_NOFILE})")
        minimum = rules.ULIMIT_MINIMUMS.get(name)
        if minimum is not None and soft != -1 and soft < minimum:
            raise StackSpecError(f"{where}: {soft} is below {minimum}, too low for the container runtime to start "
                                 "the container")
        result.append({"Name": name, "Soft": soft, "Hard": hard})
    return result


def _extra_hosts(value: Any) -> list[str]:
    """``host:address`` entries from the list (host=address or host:address) or mapping form."""
    if value is None:
        return []
    if isinstance(value, dict):
        for host, address in value.items():
            if address is None:
                raise StackSpecError(no_value("extra_hosts", host))
        return [rules.extra_host(str(host), address) for host, address in value.items()]
    if not isinstance(value, list):
        raise StackSpecError(f"extra_hosts: expected a list or a mapping, got {rules.shown(value)}")
    result = []
    for entry in value:
        text = rules.scalar_text(entry, "extra_hosts")
        host, found, address = text.partition("=" if "=" in text else ":")
        if not found:
            raise StackSpecError(f"extra_hosts: {entry!r}: expected host=address or host:address")
        result.append(rules.extra_host(host, address))
    return result


def _log_config(value: Any) -> dict[str, Any] | None:
    """The engine's LogConfig from ``logging`` (driver json-file unless given)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise StackSpecError(f"logging: expected a mapping with driver and options, got {rules.shown(value)}")
    if not value:
        return None
    for key in value:
        if key not in ("driver", "options") and not is_extension(key):
            raise StackSpecError(f"logging.{key}: not supported (driver and options only)")
    driver = value.get("driver", "json-file")
    if driver not in rules.LOG_DRIVER_OPTIONS:
        raise StackSpecError(f"logging.driver: {driver!r} is not available (json-file, local or none: other drivers "
                             "depend on the host)")
    options = _mapping(_shaped(value.get("options"), "logging.options"), "logging.options")
    rules.log_options(driver, options)
    return {"Type": driver, "Config": options}


def _memory(value: Any, key: str) -> int | None:
    """A memory limit or reservation in bytes: 0 (none) or at least the engine's 6 MiB."""
    if value in (None, ""):
        return None
    size = _non_negative(parse_size(value, key), key)
    if 0 < size < rules.MIN_MEMORY_BYTES:
        raise StackSpecError(f"{key}: {value!r} is under the engine's minimum of 6m")
    return size


def _nano_cpus(cpus: Any) -> int:
    """CPUs (1.5, "0.5") as the engine's NanoCpus: at least 0.01 CPU."""
    try:
        if isinstance(cpus, str):
            number = float(cpus) if _DECIMAL.fullmatch(cpus) else None
        else:
            number = float(cpus) if isinstance(cpus, (int, float)) and not isinstance(cpus, bool) else None
    except (ValueError, OverflowError):
        number = None
    if number is None or math.isnan(number):
        raise StackSpecError(f"cpus: expected a number like 1.5, got {cpus!r}")
    if number <= 0:
        raise StackSpecError(f"cpus: must be positive, got {cpus!r}")
    if not math.isfinite(number) or number * 1e9 > rules.MAX_INT64:
        raise StackSpecError(f"cpus: {cpus!r} is too large")
    nano_cpus = int(number * 1e9)
    if nano_cpus < rules.MIN_NANO_CPUS:
        raise StackSpecError(f"cpus: {cpus!r} is under the smallest limit the engine can apply (0.01)")
    return nano_cpus


def _non_negative(value: int, key: str) -> int:
    if value < 0:
        raise StackSpecError(f"{key}: must not be negative, got {value}")
    return value


def _flag(raw: dict[str, Any], key: str, where: str | None = None) -> bool:
    """A boolean service option; absent or null is false."""
    value = raw.get(key)
    return False if value is None else rules.boolean(value, where or key)


def _list(value: Any, key: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise StackSpecError(f"{key}: expected a list, got {rules.shown(value)}")
    return value


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _text(value: Any, where: str = "value") -> str:
    """A scalar as the text the author wrote: ``true``/``false`` for booleans, numbers in their canonical form.

    Plain scalars whose canonical form differs from what was typed already are
    text (``app/yamlfile.py``), so this never changes a value. ``None``
    is refused (it would become an empty string) and so is a list or a mapping.
    """
    if value is None:
        raise StackSpecError(f"{where} has no value; {NULL_HINT}")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        raise StackSpecError(f"{where}: expected text, got a {'mapping' if isinstance(value, dict) else 'list'}")
    return str(value)
