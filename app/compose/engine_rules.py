"""What the Docker Engine accepts in a container definition, checked without an engine.

The compose specification leaves many values as free text (a signal, a
capability, a tmpfs option, a log option); the engine checks some of them when
the container is created and others only when it starts, where a mistake
becomes a failed order instead of a refused product. Each check here raises
:class:`~app.errors.StackSpecError` naming the compose key and the bad value,
so validation refuses the product instead.

The rules are those of Docker Engine 20.10 (API 1.41), the engine Live runs
on; each table names its source. They were confirmed against that engine:
every value refused here is one it refuses at create or start.

The parse step of the compose pipeline (:mod:`app.compose.parse`) applies
them as it turns each compose value into the engine-ready value of the
stack model, so validation and deployment apply them alike. What the engine
checks between the settings of a whole request stays with the requests
(:mod:`app.stacks.engine_requests`).
"""
from __future__ import annotations

import ipaddress
import math
import re
from decimal import Decimal
from typing import Any

from app.errors import StackSpecError

#: Largest value of the engine's integer fields (Go ``int64``): beyond it the engine cannot decode the request.
MAX_INT64 = 2**63 - 1

#: Smallest memory limit and reservation (daemon/daemon_unix.go ``linuxMinMemory``:
#: "Minimum memory limit allowed is 6MB").
MIN_MEMORY_BYTES = 6 * 1024 * 1024

#: Smallest CPU limit in nano-CPUs (0.01 CPU): below it the CFS quota is under 1 ms and runc refuses to start
#: the container ("cpu.cfs_quota_us: invalid argument").
MIN_NANO_CPUS = 10_000_000

#: Healthcheck durations are 0 (the default) or at least 1 ms
#: (daemon: "Interval in Healthcheck cannot be less than 1ms").
MIN_HEALTHCHECK_NS = 1_000_000

#: Linux limits the hostname to 64 bytes (``HOST_NAME_MAX``; runc: "sethostname: invalid argument").
MAX_HOSTNAME_LENGTH = 64
#: Service, volume and network names of a compose file: a DNS label (RFC 1035), since service names are
#: network aliases, and short enough that ``<deployment>-<instance>_<name>`` stays a valid file name.
MAX_NAME_LENGTH = 63
#: The engine's range of uids and gids ("uids and gids must be in range 0-2147483647").
MAX_ID = 2**31 - 1

#: Protocols of an exposed port (compose specification "expose"; Docker's nat package).
EXPOSE_PROTOCOLS = ("tcp", "udp", "sctp")

#: Resource limits the engine knows (github.com/docker/go-units ``ulimitNameMapping``; "as" is disabled there).
ULIMIT_NAMES = frozenset({
    "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss",
    "rtprio", "rttime", "sigpending", "stack",
})

#: Smallest soft limits runc can start a container under (measured on Docker Engine 20.10 with runc 1.1, with a
#: margin): with fewer open files it cannot load the seccomp filter, with less data segment its Go runtime cannot
#: allocate, and with no CPU time the process is killed at once. -1 (unlimited) is always accepted.
ULIMIT_MINIMUMS = {"nofile": 16, "data": 256 * 1024 * 1024, "cpu": 1}

#: Open files can never be unlimited: Linux caps them at ``fs.nr_open`` (1048576 unless the host raised it).
MAX_NOFILE = 1048576

#: Linux capabilities (capabilities(7), as of Linux 5.9), without the CAP_ prefix.
CAPABILITIES = frozenset({
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
})

#: Signal names of Linux (github.com/moby/sys/signal ``SignalMap``), without the SIG prefix.
SIGNALS = frozenset({
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL", "PIPE",
    "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP", "TTIN", "TTOU",
    "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX",
} | {f"RTMIN+{n}" for n in range(1, 16)} | {f"RTMAX-{n}" for n in range(1, 15)})
#: Linux numbers its signals 1 to 64.
MAX_SIGNAL_NUMBER = 64

#: Log drivers Live accepts and the options each takes. The others (syslog, journald, gelf, fluentd, ...) depend
#: on the host and ship logs off it, so they are not offered. Options from daemon/logger/jsonfilelog and
#: daemon/logger/local ``ValidateLogOpt``, plus ``mode`` and ``max-buffer-size`` that every driver takes.
LOG_DRIVER_OPTIONS = {
    "json-file": frozenset({"max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag",
                            "mode", "max-buffer-size"}),
    "local": frozenset({"max-size", "max-file", "compress", "mode", "max-buffer-size"}),
    "none": frozenset(),
}

#: Mount flags the engine accepts in a tmpfs option list (github.com/moby/sys/mount ``flags``, and ``tmpcopyup``).
TMPFS_FLAGS = frozenset({
    "ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "atime", "noatime", "diratime", "nodiratime",
    "relatime", "norelatime", "strictatime", "nostrictatime", "sync", "async", "dirsync", "mand", "nomand",
    "tmpcopyup",
})
# tmpfs(5) sizes: a number with an optional k, m or g suffix, or a percentage of RAM (no decimals).
_TMPFS_SIZE = re.compile(r"^[0-9]+[kmgKMG]?$|^[0-9]+%$")
_TMPFS_OPTIONS = {
    "size": _TMPFS_SIZE, "nr_blocks": _TMPFS_SIZE, "nr_inodes": _TMPFS_SIZE,
    "mode": re.compile(r"^[0-7]{1,4}$"), "uid": re.compile(r"^[0-9]+$"), "gid": re.compile(r"^[0-9]+$"),
}

# go-units RAMInBytes, which the log drivers use for max-size and max-buffer-size.
_LOG_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?) ?[kKmMgGtTpP]?[iI]?[bB]?$")
# Go's strconv.ParseBool.
_GO_BOOL = frozenset({"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"})

# distribution/reference grammar (github.com/distribution/reference regexp.go).
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_REFERENCE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)
_MAX_IMAGE_NAME = 255

# RFC 1123 host names, plus '_' which container host names commonly use and Linux accepts.
_HOSTNAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?$")
_USER = re.compile(r"^[^:\s]+(?::[^:\s]+)?$")
_EXTRA_HOST_NAME = re.compile(r"^[^\s:=#]+$")
_SYSCTL_NAME = re.compile(r"^[A-Za-z0-9_-]+(?:[./][A-Za-z0-9_-]+)+$")


def image_reference(value: Any, key: str = "image") -> str:
    """An image reference as the engine parses it (``[registry[:port]/]path[:tag][@digest]``, lowercase path)."""
    if not isinstance(value, str) or not value.strip():
        raise StackSpecError(f"{key}: required (Live deploys prebuilt images)")
    text = value.strip()
    name = text.partition("@")[0]
    if ":" in name.rpartition("/")[2]:
        name = name.rpartition(":")[0]
    if not _IMAGE_REFERENCE.fullmatch(text) or len(name) > _MAX_IMAGE_NAME:
        raise StackSpecError(
            f"{key}: {value!r} is not a valid image reference "
            "(e.g. postgis/postgis:17-3.5; lowercase repository, optional :tag and @sha256:digest)"
        )
    return text


def signal_name(value: Any, key: str = "stop_signal") -> str:
    """A signal as the engine accepts it: a name (SIGTERM, TERM, sigterm, SIGRTMIN+3) or a number 1-64."""
    text = scalar_text(value, key).strip()
    if re.fullmatch("[0-9]+", text):
        if not 1 <= int(text) <= MAX_SIGNAL_NUMBER:
            raise StackSpecError(f"{key}: signal number {text} is not between 1 and {MAX_SIGNAL_NUMBER}")
        return text
    if text.upper().removeprefix("SIG") not in SIGNALS:
        raise StackSpecError(f"{key}: unknown signal {value!r} (e.g. SIGTERM, SIGINT, SIGQUIT)")
    return text


def capability(value: Any, key: str) -> str:
    """A Linux capability name (CHOWN, CAP_CHOWN, chown); ``ALL`` too (the policy decides where it may be used)."""
    text = scalar_text(value, key)
    if text.upper() != "ALL" and text.upper().removeprefix("CAP_") not in CAPABILITIES:
        raise StackSpecError(f"{key}: unknown capability {value!r}")
    return text


def hostname(value: Any, key: str) -> str:
    """A host name the kernel accepts: letters, digits, '.', '-', '_', at most 64 characters."""
    text = scalar_text(value, key)
    limit = MAX_HOSTNAME_LENGTH if key == "hostname" else 253
    if not _HOSTNAME.fullmatch(text) or len(text) > limit:
        raise StackSpecError(f"{key}: {value!r} is not a valid host name (letters, digits, '.', '-'; "
                             f"at most {limit} characters)")
    return text


def user_spec(value: Any, key: str = "user") -> str:
    """``user``, ``uid``, ``user:group`` or ``uid:gid`` (an empty string keeps the image's user)."""
    text = scalar_text(value, key)
    if text and not _USER.fullmatch(text):
        raise StackSpecError(f"{key}: {value!r} is not a user (use name, uid, name:group or uid:gid)")
    for part in text.split(":"):
        if part.isdigit() and int(part) > MAX_ID:
            raise StackSpecError(f"{key}: {value!r}: uids and gids are at most {MAX_ID}")
    return text


def absolute_path(value: Any, key: str, mount: bool = False) -> str:
    """An absolute path in the container; a mount target may be neither '/' nor contain ':'."""
    text = scalar_text(value, key)
    if not text.startswith("/"):
        raise StackSpecError(f"{key}: {value!r} must be an absolute path in the container")
    if mount and text.rstrip("/") == "":
        raise StackSpecError(f"{key}: cannot mount over the container's root '/'")
    if mount and ":" in text:
        raise StackSpecError(f"{key}: {value!r}: a mount path cannot contain ':'")
    return text


def tmpfs_options(options: str, key: str) -> str:
    """Check a tmpfs option list (``size=64m,mode=1777,noexec``) against what the engine and tmpfs(5) accept."""
    for option in filter(None, options.split(",")):
        name, sep, value = option.partition("=")
        if not sep:
            if option not in TMPFS_FLAGS:
                raise StackSpecError(f"{key}: unknown tmpfs option {option!r}")
            continue
        pattern = _TMPFS_OPTIONS.get(name)
        if pattern is None:
            raise StackSpecError(f"{key}: unknown tmpfs option {name!r} (size, mode, uid, gid, nr_inodes, nr_blocks)")
        if not pattern.fullmatch(value):
            raise StackSpecError(f"{key}: invalid tmpfs {name} {value!r}"
                                 + (" (a whole number with k, m or g, or a percentage)" if name == "size" else ""))
    return options


def log_options(driver: str, options: dict[str, str], key: str = "logging") -> None:
    """Check the options of a log driver as the engine does when it creates or starts the container."""
    allowed = LOG_DRIVER_OPTIONS[driver]
    for name, value in options.items():
        where = f"{key}.options.{name}"
        if name not in allowed:
            raise StackSpecError(f"{where}: not an option of the {driver} log driver"
                                 + (f" ({', '.join(sorted(allowed))})" if allowed else " (it takes none)"))
        if name in ("max-size", "max-buffer-size"):
            match = _LOG_SIZE.fullmatch(value)
            if not match or float(match.group(1)) <= 0:
                raise StackSpecError(f"{where}: {value!r} is not a positive size (e.g. 10m)")
            unit = re.sub("[ iIbB]", "", value[match.end(1):]).lower()  # k, m, g, t, p or nothing
            # The engine reads it with go-units' FromHumanSize (powers of 1000) into an int64.
            if Decimal(match.group(1)) * 1000 ** ("kmgtp".index(unit) + 1 if unit else 0) > MAX_INT64:
                raise StackSpecError(f"{where}: {value!r} is more bytes than the engine can count")
        elif name == "max-file":
            if not re.fullmatch("[0-9]+", value) or int(value) < 1:
                raise StackSpecError(f"{where}: {value!r} is not a whole number of at least 1")
        elif name == "compress":
            if value not in _GO_BOOL:
                raise StackSpecError(f"{where}: {value!r} is not true or false")
        elif name == "mode":
            if value not in ("blocking", "non-blocking"):
                raise StackSpecError(f"{where}: {value!r} is not blocking or non-blocking")


def extra_host(host: Any, address: Any, key: str = "extra_hosts") -> str:
    """``host:address`` for the engine's ExtraHosts; the address is an IP address or ``host-gateway``."""
    if not isinstance(host, str) or not _EXTRA_HOST_NAME.fullmatch(host):
        raise StackSpecError(f"{key}: {host!r} is not a host name")
    if isinstance(address, bool) or not isinstance(address, str):
        raise StackSpecError(f"{key}: {host}: expected an IP address, got {address!r}")
    text = address.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if text != "host-gateway":
        try:
            ipaddress.ip_address(text)
        except ValueError:
            raise StackSpecError(f"{key}: {host}: {address!r} is not an IP address (or host-gateway)") from None
    return f"{host}:{text}"


def sysctl_name(value: str, key: str = "sysctls") -> str:
    """A sysctl name: dotted (or slashed) words, as under /proc/sys."""
    if not _SYSCTL_NAME.fullmatch(value):
        raise StackSpecError(f"{key}: {value!r} is not a sysctl name (e.g. net.core.somaxconn)")
    return value


def integer(value: Any, key: str, minimum: int | None = None, maximum: int = MAX_INT64) -> int:
    """A whole number from an int, an integral float or a decimal string; never a boolean."""
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
        number = int(value)
    if number is None:
        raise StackSpecError(f"{key}: expected a whole number, got {value!r}")
    if minimum is not None and number < minimum:
        raise StackSpecError(f"{key}: must be at least {minimum}, got {value!r}")
    if number > maximum:
        raise StackSpecError(f"{key}: must be at most {maximum}, got {value!r}")
    return number


def boolean(value: Any, key: str) -> bool:
    """A boolean; after interpolation also the text true/false (yes/no, on/off, y/n), as compose-go casts it."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "yes", "y", "on"):
            return True
        if text in ("false", "no", "n", "off"):
            return False
    raise StackSpecError(f"{key}: expected true or false, got {value!r}")


def scalar_text(value: Any, key: str) -> str:
    """A string, or a number written as text; lists, mappings, booleans and null are refused."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        text = str(value)
    else:
        raise StackSpecError(f"{key}: expected a string, got {shown(value)}")
    if "\x00" in text:
        raise StackSpecError(f"{key}: contains a NUL character")
    return text


def shown(value: Any) -> str:
    """A value as an error message shows it: null, "a list [...]", "a mapping {...}" or its repr (200 characters
    at most)."""
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'} {value!r}"[:200]
    return repr(value)[:200]
