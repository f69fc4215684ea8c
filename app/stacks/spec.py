"""A rendered compose document turned into typed, engine-ready service specs.

Input is a compose document whose variables are already substituted. The
output is what the deployer needs and nothing else: durations in
nanoseconds, sizes in bytes, commands as lists, volumes resolved to the
order's named volumes.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import asdict, dataclass, field
from typing import Any

from app.errors import LiveError


class StackSpecError(LiveError):
    """A service entry cannot be turned into a container definition."""


DEPENDENCY_CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|h|m|s)")
_DURATION_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmgt]?)b?$", re.IGNORECASE)
_SIZE_FACTOR = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


@dataclass(frozen=True)
class VolumeMount:
    volume: str  # the compose volume name (not yet prefixed with the order's)
    target: str
    read_only: bool = False


@dataclass
class ServiceSpec:
    name: str
    image: str
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    volumes: list[VolumeMount] = field(default_factory=list)
    tmpfs: dict[str, str] = field(default_factory=dict)
    depends_on: dict[str, str] = field(default_factory=dict)
    healthcheck: dict[str, Any] | None = None
    restart: dict[str, Any] | None = None
    init: bool | None = None
    stop_grace_seconds: int = 10
    stop_signal: str | None = None
    user: str | None = None
    working_dir: str | None = None
    hostname: str | None = None
    domainname: str | None = None
    mem_limit: int | None = None
    mem_reservation: int | None = None
    memswap_limit: int | None = None
    nano_cpus: int | None = None
    networks: dict[str, list[str]] = field(default_factory=dict)
    expose: list[str] = field(default_factory=list)
    ulimits: list[dict[str, Any]] = field(default_factory=list)
    shm_size: int | None = None
    read_only: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    extra_hosts: list[str] = field(default_factory=list)
    log_config: dict[str, Any] | None = None
    tty: bool = False
    stdin_open: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StackSpec:
    services: dict[str, ServiceSpec]
    volumes: list[str]
    networks: dict[str, dict[str, Any]]

    def start_order(self) -> list[str]:
        """Services sorted so that every dependency comes before its dependents."""
        return topological_order({name: list(svc.depends_on) for name, svc in self.services.items()})


def parse_stack(compose: dict[str, Any]) -> StackSpec:
    services = {name: parse_service(name, svc, compose) for name, svc in (compose.get("services") or {}).items()}
    networks: dict[str, dict[str, Any]] = {}
    for name, net in (compose.get("networks") or {}).items():
        net = net or {}
        networks[name] = {"internal": bool(net.get("internal")), "labels": _mapping(net.get("labels"), "networks.labels")}
    if any("default" in svc.networks for svc in services.values()) and "default" not in networks:
        networks["default"] = {"internal": False, "labels": {}}
    return StackSpec(services=services, volumes=sorted((compose.get("volumes") or {}).keys()), networks=networks)


def parse_service(name: str, raw: dict[str, Any], compose: dict[str, Any]) -> ServiceSpec:
    if not re.match(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$", name):
        raise StackSpecError(f"service name {name!r} may only use letters, digits, '_', '.' and '-'")
    image = raw.get("image")
    if not isinstance(image, str) or not image.strip():
        raise StackSpecError("image: required (Live deploys prebuilt images)")
    spec = ServiceSpec(name=name, image=image.strip())
    spec.command = _command(raw.get("command"), "command")
    spec.entrypoint = _command(raw.get("entrypoint"), "entrypoint")
    spec.environment = _environment(raw.get("environment"))
    spec.labels = _mapping(raw.get("labels"), "labels")
    if any(key.startswith("live.") for key in spec.labels):
        raise StackSpecError("labels: the live.* prefix is reserved for Live")
    declared_volumes = compose.get("volumes") or {}
    spec.volumes, spec.tmpfs = _volumes(raw.get("volumes") or [], declared_volumes)
    for mount in _as_list(raw.get("tmpfs")):
        path, _, options = str(mount).partition(":")
        spec.tmpfs[path] = options
    spec.depends_on = _depends_on(raw.get("depends_on"))
    spec.healthcheck = _healthcheck(raw.get("healthcheck"))
    spec.restart = _restart(raw.get("restart"), (raw.get("deploy") or {}).get("restart_policy"))
    spec.init = raw.get("init")
    if "stop_grace_period" in raw:
        spec.stop_grace_seconds = max(0, round(parse_duration_ns(raw["stop_grace_period"], "stop_grace_period") / 1e9))
    spec.stop_signal = raw.get("stop_signal")
    spec.user = _opt_str(raw.get("user"))
    spec.working_dir = raw.get("working_dir")
    spec.hostname = raw.get("hostname")
    spec.domainname = raw.get("domainname")

    resources = ((raw.get("deploy") or {}).get("resources") or {})
    limits, reservations = resources.get("limits") or {}, resources.get("reservations") or {}
    memory = raw.get("mem_limit", limits.get("memory"))
    spec.mem_limit = parse_size(memory, "mem_limit") if memory not in (None, "") else None
    reservation = raw.get("mem_reservation", reservations.get("memory"))
    spec.mem_reservation = parse_size(reservation, "mem_reservation") if reservation not in (None, "") else None
    if raw.get("memswap_limit") not in (None, ""):
        spec.memswap_limit = parse_size(raw["memswap_limit"], "memswap_limit")
    cpus = raw.get("cpus", limits.get("cpus"))
    if cpus not in (None, ""):
        try:
            spec.nano_cpus = int(float(cpus) * 1e9)
        except (TypeError, ValueError):
            raise StackSpecError(f"cpus: expected a number like 1.5, got {cpus!r}") from None
        if spec.nano_cpus <= 0:
            raise StackSpecError(f"cpus: must be positive, got {cpus!r}")

    spec.networks = _networks(raw.get("networks"), compose.get("networks") or {})
    spec.expose = [str(port) for port in raw.get("expose") or []]
    spec.ulimits = _ulimits(raw.get("ulimits"))
    if raw.get("shm_size") not in (None, ""):
        spec.shm_size = parse_size(raw["shm_size"], "shm_size")
    spec.read_only = bool(raw.get("read_only", False))
    spec.cap_add = [str(c) for c in raw.get("cap_add") or []]
    spec.cap_drop = [str(c) for c in raw.get("cap_drop") or []]
    spec.sysctls = _mapping(raw.get("sysctls"), "sysctls")
    spec.extra_hosts = _extra_hosts(raw.get("extra_hosts"))
    if raw.get("logging"):
        logging_ = raw["logging"]
        spec.log_config = {"Type": logging_.get("driver", "json-file"), "Config": _mapping(logging_.get("options"), "logging.options")}
    spec.tty = bool(raw.get("tty", False))
    spec.stdin_open = bool(raw.get("stdin_open", False))
    return spec


def parse_duration_ns(value: Any, key: str) -> int:
    """'1m30s', '500ms', '10s' (or a number of seconds) -> nanoseconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value * 1e9)
    text = str(value).strip()
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_NS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise StackSpecError(f"{key}: invalid duration {value!r} (use e.g. 30s, 1m30s, 500ms)")
    return int(total)


def parse_size(value: Any, key: str) -> int:
    """'512m', '1g', '1.5g', '1024k' (or a number of bytes) -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(str(value).strip())
    if not match:
        raise StackSpecError(f"{key}: invalid size {value!r} (use e.g. 512m or 2g)")
    return int(float(match.group(1)) * _SIZE_FACTOR[match.group(2).lower()])


def depends_on_names(value: Any) -> list[str]:
    if isinstance(value, dict):
        return list(value)
    return [str(v) for v in value or []]


def topological_order(graph: dict[str, list[str]]) -> list[str]:
    order: list[str] = []
    done: set[str] = set()

    def visit(node: str, trail: tuple[str, ...]) -> None:
        if node in done:
            return
        if node in trail:
            raise StackSpecError("depends_on: cycle " + " -> ".join(trail[trail.index(node):] + (node,)))
        for dep in sorted(graph.get(node, [])):
            visit(dep, trail + (node,))
        done.add(node)
        order.append(node)

    for node in sorted(graph):
        visit(node, ())
    return order


def dependency_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    try:
        topological_order(graph)
    except StackSpecError as exc:
        return str(exc).removeprefix("depends_on: cycle ").split(" -> ")
    return None


def _command(value: Any, key: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise StackSpecError(f"{key}: cannot split {value!r}: {exc}") from None
    if isinstance(value, list):
        return [str(part) for part in value]
    raise StackSpecError(f"{key}: expected a string or a list, got {type(value).__name__}")


def _environment(value: Any) -> dict[str, str]:
    result: dict[str, str] = {}
    if value is None:
        return result
    items = value.items() if isinstance(value, dict) else (_split_env(entry) for entry in value)
    for name, item in items:
        if item is None:
            raise StackSpecError(f"environment: {name} has no value (values are never taken from the host)")
        result[str(name)] = _text(item)
    return result


def _split_env(entry: Any) -> tuple[str, str | None]:
    name, sep, value = str(entry).partition("=")
    return name, value if sep else None


def _mapping(value: Any, key: str) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): _text(v) for k, v in value.items()}
    if isinstance(value, list):
        result = {}
        for entry in value:
            name, sep, item = str(entry).partition("=")
            result[name] = item if sep else ""
        return result
    raise StackSpecError(f"{key}: expected a mapping or a list of NAME=value")


def _volumes(entries: list, declared: dict) -> tuple[list[VolumeMount], dict[str, str]]:
    mounts: list[VolumeMount] = []
    tmpfs: dict[str, str] = {}
    for entry in entries:
        if isinstance(entry, str):
            parts = entry.split(":")
            if len(parts) == 1:
                raise StackSpecError(f"volumes: anonymous volume at {entry}: declare a named volume so the data survives redeploys")
            source, target = parts[0], parts[1]
            read_only = len(parts) > 2 and "ro" in parts[2].split(",")
        else:
            if entry.get("type") == "tmpfs":
                size = (entry.get("tmpfs") or {}).get("size")
                tmpfs[entry["target"]] = f"size={parse_size(size, 'tmpfs.size')}" if size else ""
                continue
            source, target = entry.get("source"), entry.get("target")
            read_only = bool(entry.get("read_only", False))
            if not source:
                raise StackSpecError(f"volumes: anonymous volume at {target}: declare a named volume so the data survives redeploys")
        if source not in declared:
            raise StackSpecError(f"volumes: named volume {source!r} is not declared under the top-level volumes")
        if not target or not str(target).startswith("/"):
            raise StackSpecError(f"volumes: target {target!r} must be an absolute path in the container")
        mounts.append(VolumeMount(source, str(target), read_only))
    return mounts, tmpfs


def _depends_on(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, list):
        return {str(name): "service_started" for name in value}
    result = {}
    for name, options in value.items():
        condition = (options or {}).get("condition", "service_started")
        if condition not in DEPENDENCY_CONDITIONS:
            raise StackSpecError(f"depends_on: {name}: unknown condition {condition!r}")
        result[str(name)] = condition
    return result


def _healthcheck(value: Any) -> dict[str, Any] | None:
    if not value:
        return None
    if value.get("disable"):
        return {"Test": ["NONE"]}
    test = value.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    elif isinstance(test, list):
        test = [str(part) for part in test]
        if test and test[0] not in ("CMD", "CMD-SHELL", "NONE"):
            raise StackSpecError("healthcheck: test list must start with CMD, CMD-SHELL or NONE")
    elif test is not None:
        raise StackSpecError("healthcheck: test must be a string or a list")
    result: dict[str, Any] = {}
    if test:
        result["Test"] = test
    for key, api_key in (("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod")):
        if value.get(key) is not None:
            result[api_key] = parse_duration_ns(value[key], f"healthcheck.{key}")
    if value.get("retries") is not None:
        try:
            result["Retries"] = int(value["retries"])
        except (TypeError, ValueError):
            raise StackSpecError(f"healthcheck.retries: expected an integer, got {value['retries']!r}") from None
    return result or None


def _restart(value: Any, policy: dict | None) -> dict[str, Any] | None:
    if value is None and policy is not None:
        condition = policy.get("condition", "any")
        value = {"any": "always", "on-failure": "on-failure", "none": "no"}.get(condition, condition)
    if value in (None, "no", False):
        return None
    text = str(value)
    name, _, retries = text.partition(":")
    if name not in ("always", "unless-stopped", "on-failure"):
        raise StackSpecError(f"restart: {value!r} is not one of no, always, unless-stopped, on-failure[:N]")
    result: dict[str, Any] = {"Name": name}
    if retries:
        if name != "on-failure":
            raise StackSpecError(f"restart: {value!r}: a retry count is only valid with on-failure")
        if not retries.isdigit():
            raise StackSpecError(f"restart: {value!r} has an invalid retry count")
        result["MaximumRetryCount"] = int(retries)
    return result


def _networks(value: Any, declared: dict) -> dict[str, list[str]]:
    if not value:
        return {"default": []}
    names = value.items() if isinstance(value, dict) else ((n, None) for n in value)
    result = {}
    for name, options in names:
        if name != "default" and name not in declared:
            raise StackSpecError(f"networks: {name!r} is not declared under the top-level networks")
        result[str(name)] = [str(alias) for alias in ((options or {}).get("aliases") or [])]
    return result


def _ulimits(value: Any) -> list[dict[str, Any]]:
    result = []
    for name, limit in (value or {}).items():
        if isinstance(limit, dict):
            result.append({"Name": name, "Soft": int(limit["soft"]), "Hard": int(limit["hard"])})
        else:
            result.append({"Name": name, "Soft": int(limit), "Hard": int(limit)})
    return result


def _extra_hosts(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [f"{host}:{ip}" for host, ip in value.items()]
    return [str(entry).replace("=", ":", 1) for entry in value or []]


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
