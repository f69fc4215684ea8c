"""Service settings, read once from the environment.

Every setting has an embedded default so the service runs on a fresh machine
with no configuration at all; a bad value stops start-up with one message
that names the variable.
"""
from __future__ import annotations

import ipaddress
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from app.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# A Docker image reference: [registry[:port]/]path[:tag][@sha256:digest], the path in lowercase.
_IMAGE_REF_RE = re.compile(r"^(?:[a-zA-Z0-9.-]+(?::\d+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
                           r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
                           r"(?::\w[\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$")
_HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


@dataclass(frozen=True)
class Settings:
    database_url: str
    config_repo: Path
    base_domain: str
    backup_dir: Path
    docker_host: str | None
    deployment: str = "live"
    worker_concurrency: int = 4
    worker_poll_seconds: float = 1.0
    operation_max_attempts: int = 5
    retry_base_seconds: float = 2.0
    health_timeout_seconds: float = 300.0
    lease_seconds: float = 60.0
    # The engine mirror (app/stacks/mirror.py): a view trusts it while its beat is younger than this (seconds); a
    # swarm's tasks are polled this often (seconds).
    mirror_stale_seconds: float = 10.0
    mirror_poll_seconds: float = 2.0
    log_level: str = "INFO"
    catalog_sync_seconds: float = 300.0
    # GitLab catalog source; when gitlab_url is None the local LIVE_CONFIG_REPO is used.
    gitlab_url: str | None = None
    gitlab_token: str = ""
    gitlab_project: str = ""
    gitlab_ref: str = "main"
    gitlab_timeout: float = 10.0
    gitlab_webhook_secret: str = ""
    # Lifecycle calls that may wait for their operation at the same time, per web process; the others answer at once.
    wait_slots: int = 4
    # The image of the archive helper (scripts/build-helper-image.sh): the only image terminate and the clean-up
    # of a failed create use, so neither depends on the product's images.
    helper_image: str = "live/archive-helper:2"
    # `live doctor` warns when the backup destination has less free space than this (GB; terminates archive there).
    backup_min_free_gb: float = 5.0
    # Ingress (docs/OPERATIONS.md, "Ingress"): Caddy's admin API; None = no ingress, orders get 127.0.0.1 ports only.
    caddy_admin_url: str | None = None
    # "acme" (public certificates), "internal" (Caddy's local CA) or "off" (plain http): decides the public scheme.
    tls: str = "acme"
    acme_email: str = ""
    ingress_bind: str = ""  # the address Caddy listens on for customers; "" = every interface
    ingress_http_port: int = 80
    ingress_https_port: int = 443
    billing_url: str = ""  # shown on the suspended page: the WHMCS client area
    ingress_resync_seconds: float = 30.0
    ingress_ask_url: str = "http://127.0.0.1:8000/ingress/v1/ask"
    # Backups (issue 13): file:///<absolute path> or s3://<bucket>[/<prefix>] (app/backups/); "" = the default
    # file://<repo>/var/backups, which load_settings fills in.
    backup_store: str = ""
    s3_endpoint_url: str | None = None  # an S3-compatible service's URL; None = AWS
    backup_schedule: str = "0 3 * * *"  # cron (UTC) of products that declare no schedule: daily at 03:00
    backup_keep: str = "daily=7,weekly=4"  # retention of products that declare none (app/backups/policy.py)
    backup_keep_terminated_days: int = 30  # how long a terminated order's final backup is kept
    backup_keep_unscheduled_days: int = 14  # how long on-demand, pre-change and safety backups are kept
    # Docker Swarm (issue 14, docs/SCALING.md): "docker" (one engine) or "swarm" (DOCKER_HOST is a manager).
    orchestrator: str = "docker"
    swarm_encrypt_networks: bool = False  # overlay networks encrypted between nodes (IPsec)
    swarm_pool: str = ""  # only nodes labelled live.pool=<this> take new orders; "" = every ready, active node
    # The ingress proxy's container on the swarm manager: it joins the order networks it reaches endpoints on.
    swarm_proxy_container: str = ""
    # The worker's usage sampler (app/orders/usage.py): memory/CPU every this many seconds, disk (one `docker system
    # df`) at most this often, and at most this many stats calls a second (containers whose cgroup files it cannot read).
    usage_sample_seconds: float = 30.0
    usage_disk_seconds: float = 300.0
    usage_stats_per_second: float = 10.0
    # Drift (issue 15, app/orders/drift.py): "repair" (queue a redeploy) or "report" (events only), how often the
    # worker compares what runs with what should, and the bounds of repairs and crash loops.
    drift: str = "repair"
    drift_seconds: float = 2.0
    drift_max_repairs: int = 3  # redeploys the checker queues per order within drift_window_seconds
    drift_window_seconds: float = 600.0
    drift_crash_deaths: int = 3  # deaths of a container (counted by the mirror) that make a crash loop
    drift_unhealthy_seconds: float = 60.0  # how long a container may stay unhealthy before it is drift
    drift_log_lines: int = 20  # last log lines quoted when an order is failing
    logs_timeout_seconds: float = 30.0  # total deadline of a service log read that is not followed
    # Outbound webhooks (issue 16, app/alerts.py): http(s) URLs alerts are POSTed to (none: no webhooks), the
    # HMAC-SHA256 key that signs them, the attempts per delivery and the first retry's delay (doubled each time,
    # seconds), one attempt's total timeout (seconds), and how long an operation may run before it counts as stuck.
    webhook_urls: tuple[str, ...] = ()
    webhook_secret: str = ""
    webhook_max_attempts: int = 8
    webhook_retry_seconds: float = 10.0
    webhook_timeout_seconds: float = 5.0
    operation_stuck_seconds: float = 1800.0

    @property
    def public_scheme(self) -> str:
        """``http`` with ``LIVE_TLS=off``, else ``https``: the scheme of every URL the bridge hands out."""
        return "http" if self.tls == "off" else "https"

    @property
    def public_address(self) -> PublicAddress:
        """How customers reach an order's hostname: scheme, and the ingress port when it is not the scheme's default."""
        port = self.ingress_http_port if self.tls == "off" else self.ingress_https_port
        return PublicAddress(self.public_scheme, port)


@dataclass(frozen=True)
class PublicAddress:
    """The public origin of every order: ``scheme`` and ``port`` (the port is written in URLs only when it
    is not the scheme's default, 80 for http and 443 for https, RFC 9110 section 4.2)."""

    scheme: str = "https"
    port: int = 443

    def origin(self, hostname: str) -> str:
        """``<scheme>://<hostname>[:<port>]``, e.g. ``https://shop.geocat.live`` or ``http://shop.localhost:8080``."""
        default = 80 if self.scheme == "http" else 443
        return f"{self.scheme}://{hostname}" + ("" if self.port == default else f":{self.port}")

    def url(self, hostname: str, path: str = "") -> str:
        """The origin of ``hostname`` followed by ``path`` with its trailing ``/`` dropped (``/geoserver``)."""
        return self.origin(hostname) + path.rstrip("/")


# gunicorn's threads per worker when GUNICORN_THREADS is unset: keep in step with config/gunicorn.conf.py.
DEFAULT_GUNICORN_THREADS = 16


#: The longest interval or duration (seconds) a LIVE_*_SECONDS setting of the worker's loops (drift, mirror, usage)
#: may have: 7 days. Larger values would overflow ``time.sleep`` or ``datetime.timedelta`` (OverflowError) when
#: the worker starts, instead of a setting refused by name.
MAX_INTERVAL_SECONDS = 7 * 24 * 3600.0


def _number(env: dict, name: str, default, minimum, cast=int, maximum=None):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    kind = "an integer" if cast is int else "a number"
    try:
        value = cast(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {kind}, got {raw!r}") from None
    if not math.isfinite(value):  # float("nan") and float("inf") parse, and every comparison with NaN is false
        raise ConfigError(f"{name} must be {kind}, got {raw!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum:g}, got {value:g}")
    return value


def _int(env: dict, name: str, default: int, minimum: int = 1) -> int:
    return _number(env, name, default, minimum, int)


def _float(env: dict, name: str, default: float, minimum: float = 0.0, maximum: float | None = None) -> float:
    return _number(env, name, default, minimum, float, maximum)


def _interval(env: dict, name: str, default: float, minimum: float = 0.0) -> float:
    """A worker loop's interval or duration in seconds, at most :data:`MAX_INTERVAL_SECONDS`."""
    return _float(env, name, default, minimum, MAX_INTERVAL_SECONDS)


def _path(env: dict, name: str, default: Path) -> Path:
    raw = env.get(name) or str(default)
    path = Path(raw)
    return path if path.is_absolute() else PROJECT_ROOT / path


def load_settings(environ: dict | None = None) -> Settings:
    """Build :class:`Settings` from ``environ`` (default ``os.environ``)."""
    env = dict(os.environ if environ is None else environ)

    database_url = env.get("LIVE_DATABASE_URL") or f"sqlite:///{PROJECT_ROOT / 'var' / 'live.db'}"
    if not re.match(r"^(sqlite|postgres|postgresql|postgresext)(\+\w+)?://", database_url):
        raise ConfigError(
            f"LIVE_DATABASE_URL must start with sqlite:/// or postgresql://, got {database_url.split('://')[0]!r}"
        )

    config_repo = _path(env, "LIVE_CONFIG_REPO", PROJECT_ROOT / "examples" / "config-repo")
    if not env.get("LIVE_GITLAB_URL") and not (config_repo / "products").is_dir():
        raise ConfigError(f"LIVE_CONFIG_REPO={config_repo} has no products/ folder")

    base_domain = (env.get("LIVE_BASE_DOMAIN") or "localhost").strip().lower().rstrip(".")
    if not _HOSTNAME_RE.match(base_domain) or base_domain.rsplit(".", 1)[-1].isdigit():
        # An IP address matches the name pattern; an all-numeric last label is never a DNS name (RFC 3696).
        raise ConfigError(f"LIVE_BASE_DOMAIN must be a DNS name like geocat.live, got {base_domain!r}")


    log_level = (env.get("LIVE_LOG_LEVEL") or "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"LIVE_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {log_level!r}")

    gitlab_url = (env.get("LIVE_GITLAB_URL") or "").strip().rstrip("/") or None
    gitlab_project = (env.get("LIVE_GITLAB_PROJECT") or "").strip()
    if gitlab_url and not re.match(r"^https?://[^/\s]+", gitlab_url):
        raise ConfigError(f"LIVE_GITLAB_URL must be an http(s) URL like https://gitlab.example.org, got {gitlab_url!r}")
    if bool(gitlab_url) != bool(gitlab_project):
        raise ConfigError("LIVE_GITLAB_URL and LIVE_GITLAB_PROJECT go together: set both (GitLab catalog) or neither (local folder)")

    deployment = (env.get("LIVE_DEPLOYMENT") or "live").strip()
    if not re.match(r"^[a-z][a-z0-9]{0,15}$", deployment):
        raise ConfigError(f"LIVE_DEPLOYMENT must be 1-16 lowercase letters or digits, starting with a letter, got {deployment!r}")

    backup_dir = _path(env, "LIVE_BACKUP_DIR", PROJECT_ROOT / "var" / "backups")
    return Settings(
        deployment=deployment,
        database_url=database_url,
        config_repo=config_repo,
        base_domain=base_domain,
        backup_dir=backup_dir,
        docker_host=env.get("DOCKER_HOST") or None,
        worker_concurrency=_int(env, "LIVE_WORKER_CONCURRENCY", 4),
        worker_poll_seconds=_float(env, "LIVE_WORKER_POLL_SECONDS", 1.0, minimum=0.05),
        operation_max_attempts=_int(env, "LIVE_OPERATION_MAX_ATTEMPTS", 5),
        retry_base_seconds=_float(env, "LIVE_RETRY_BASE_SECONDS", 2.0),
        health_timeout_seconds=_float(env, "LIVE_HEALTH_TIMEOUT_SECONDS", 300.0, minimum=1.0),
        lease_seconds=_float(env, "LIVE_LEASE_SECONDS", 60.0, minimum=1.0),
        mirror_stale_seconds=_interval(env, "LIVE_MIRROR_STALE_SECONDS", 10.0, minimum=3.0),
        mirror_poll_seconds=_interval(env, "LIVE_MIRROR_POLL_SECONDS", 2.0, minimum=0.2),
        log_level=log_level,
        catalog_sync_seconds=_float(env, "LIVE_CATALOG_SYNC_SECONDS", 300.0, minimum=5.0),
        gitlab_url=gitlab_url,
        gitlab_token=env.get("LIVE_GITLAB_TOKEN") or "",
        gitlab_project=gitlab_project,
        gitlab_ref=(env.get("LIVE_GITLAB_REF") or "main").strip(),
        gitlab_timeout=_float(env, "LIVE_GITLAB_TIMEOUT_SECONDS", 10.0, minimum=1.0),
        gitlab_webhook_secret=env.get("LIVE_GITLAB_WEBHOOK_SECRET") or "",
        wait_slots=_wait_slots(env),
        helper_image=_helper_image(env),
        backup_min_free_gb=_float(env, "LIVE_BACKUP_MIN_FREE_GB", Settings.backup_min_free_gb),
        usage_sample_seconds=_interval(env, "LIVE_USAGE_SAMPLE_SECONDS", Settings.usage_sample_seconds, minimum=1.0),
        usage_disk_seconds=_interval(env, "LIVE_USAGE_DISK_SECONDS", Settings.usage_disk_seconds, minimum=10.0),
        usage_stats_per_second=_float(env, "LIVE_USAGE_STATS_PER_SECOND", Settings.usage_stats_per_second,
                                      minimum=0.1),
        logs_timeout_seconds=_float(env, "LIVE_LOGS_TIMEOUT_SECONDS", Settings.logs_timeout_seconds, minimum=1.0,
                                    maximum=3600.0),
        **_ingress(env),
        **_backup_store(env, backup_dir),
        **_backup_policy(env),
        **_orchestrator(env),
        **_drift(env),
        **_webhooks(env),
    )


#: The shortest LIVE_WEBHOOK_SECRET accepted: an HMAC key a receiver shares (RFC 2104 asks for at least the
#: hash's output length; 16 characters is the floor refused by name).
MIN_WEBHOOK_SECRET_LENGTH = 16


#: The most attempts per delivery LIVE_WEBHOOK_MAX_ATTEMPTS accepts (with the hour-long cap on the wait, 50
#: attempts already span two days).
MAX_WEBHOOK_ATTEMPTS = 50
#: One label of a host name (letters, digits, ``-`` inside, ``_`` for container names), 1 to 63 characters.
_HOST_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


def _webhook_host_ok(url: str) -> bool:
    """True when ``url`` parses, its port (if any) is a number and its host is an IP address or a host name the
    HTTP client can connect to (no empty label as in ``a..b``; an international name must encode to IDNA)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
        host = parts.hostname
    except ValueError:  # "http://[::1" (an unclosed IPv6 bracket), a port out of range or not a number
        return False
    if not host:
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:  # an empty or too long label
        return False
    labels = ascii_host[:-1].split(".") if ascii_host.endswith(".") else ascii_host.split(".")
    return len(ascii_host) <= 253 and all(_HOST_LABEL.match(label) for label in labels)


def _url_start(value: str) -> str:
    """A bad LIVE_WEBHOOK_URLS entry as its error shows it: up to the host (``scheme://host[:port]``), with no user or
    password, and ``/…`` for a path, query or fragment (a chat service's token is there), as app/alerts.py's
    ``redact_url`` shows a good one in listings and logs; text without ``://`` is shown as it is."""
    scheme, found, rest = value.partition("://")
    if not found:
        return value
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    return f"{scheme}://{authority.rsplit('@', 1)[-1]}" + ("/…" if len(authority) < len(rest) else "")


def _webhooks(env: dict) -> dict:
    """LIVE_WEBHOOK_URLS (comma-separated http(s) URLs), LIVE_WEBHOOK_SECRET (required with them, at least
    :data:`MIN_WEBHOOK_SECRET_LENGTH` characters), the delivery numbers and LIVE_OPERATION_STUCK_SECONDS
    (app/alerts.py, docs/OPERATIONS.md "Alerts"); raises ConfigError naming the setting."""
    urls = []
    for raw in (env.get("LIVE_WEBHOOK_URLS") or "").split(","):
        value = raw.strip()
        if not value:
            continue
        if not re.match(r"^https?://[^/\s]+[^\s]*$", value) or not _webhook_host_ok(value):
            raise ConfigError(f"LIVE_WEBHOOK_URLS must be comma-separated http(s) URLs like "
                              f"https://alerts.example.org/live, got {_url_start(value)!r}")
        urls.append(value)
    secret = env.get("LIVE_WEBHOOK_SECRET") or ""
    if urls and len(secret) < MIN_WEBHOOK_SECRET_LENGTH:
        raise ConfigError(f"LIVE_WEBHOOK_SECRET must be set, at least {MIN_WEBHOOK_SECRET_LENGTH} characters, with "
                          f"LIVE_WEBHOOK_URLS: every alert is signed with it (got {len(secret)} characters)")
    return {"webhook_urls": tuple(dict.fromkeys(urls)), "webhook_secret": secret,
            "webhook_max_attempts": _number(env, "LIVE_WEBHOOK_MAX_ATTEMPTS", Settings.webhook_max_attempts, 1, int,
                                            MAX_WEBHOOK_ATTEMPTS),
            "webhook_retry_seconds": _interval(env, "LIVE_WEBHOOK_RETRY_SECONDS", Settings.webhook_retry_seconds,
                                               minimum=0.01),
            "webhook_timeout_seconds": _float(env, "LIVE_WEBHOOK_TIMEOUT_SECONDS", Settings.webhook_timeout_seconds,
                                              minimum=0.1, maximum=300.0),
            "operation_stuck_seconds": _interval(env, "LIVE_OPERATION_STUCK_SECONDS",
                                                 Settings.operation_stuck_seconds, minimum=1.0)}


def _drift(env: dict) -> dict:
    """LIVE_DRIFT (``repair`` or ``report``) and the drift checker's numbers (app/orders/drift.py); raises
    ConfigError naming the setting."""
    mode = (env.get("LIVE_DRIFT") or Settings.drift).strip().lower()
    if mode not in ("repair", "report"):
        raise ConfigError(f"LIVE_DRIFT must be repair (redeploy an order whose containers drifted) or report "
                          f"(events only), got {mode!r}")
    return {"drift": mode,
            "drift_seconds": _interval(env, "LIVE_DRIFT_SECONDS", Settings.drift_seconds, minimum=0.1),
            "drift_max_repairs": _int(env, "LIVE_DRIFT_MAX_REPAIRS", Settings.drift_max_repairs, minimum=0),
            "drift_window_seconds": _interval(env, "LIVE_DRIFT_WINDOW_SECONDS", Settings.drift_window_seconds,
                                           minimum=1.0),
            "drift_crash_deaths": _int(env, "LIVE_DRIFT_CRASH_DEATHS", Settings.drift_crash_deaths, minimum=1),
            "drift_unhealthy_seconds": _interval(env, "LIVE_DRIFT_UNHEALTHY_SECONDS", Settings.drift_unhealthy_seconds),
            "drift_log_lines": _int(env, "LIVE_DRIFT_LOG_LINES", Settings.drift_log_lines, minimum=0)}


def _orchestrator(env: dict) -> dict:
    """LIVE_ORCHESTRATOR (``docker`` or ``swarm``), LIVE_SWARM_ENCRYPT_NETWORKS (``true``/``false``),
    LIVE_SWARM_POOL (a node label value) and LIVE_SWARM_PROXY_CONTAINER (a container name, required in swarm mode
    with an ingress, LIVE_CADDY_ADMIN_URL); raises ConfigError naming the setting (docs/SCALING.md)."""
    orchestrator = (env.get("LIVE_ORCHESTRATOR") or "docker").strip().lower()
    if orchestrator not in ("docker", "swarm"):
        raise ConfigError(f"LIVE_ORCHESTRATOR must be docker (one engine) or swarm (a Docker Swarm manager at "
                          f"DOCKER_HOST), got {orchestrator!r}")
    encrypt = (env.get("LIVE_SWARM_ENCRYPT_NETWORKS") or "false").strip().lower()
    if encrypt not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError(f"LIVE_SWARM_ENCRYPT_NETWORKS must be true or false, got {encrypt!r}")
    pool = (env.get("LIVE_SWARM_POOL") or "").strip()
    if pool and not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", pool):
        raise ConfigError(f"LIVE_SWARM_POOL must be a node label value like sdi-large (letters, digits, '.', '_', "
                          f"'-'), got {pool!r}")
    proxy = (env.get("LIVE_SWARM_PROXY_CONTAINER") or "").strip()
    if proxy and not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", proxy):
        raise ConfigError(f"LIVE_SWARM_PROXY_CONTAINER must be a container name like live-proxy (letters, digits, "
                          f"'.', '_', '-'), got {proxy!r}")
    if orchestrator == "docker" and (pool or proxy or encrypt in ("true", "1", "yes")):
        raise ConfigError("LIVE_SWARM_POOL, LIVE_SWARM_ENCRYPT_NETWORKS and LIVE_SWARM_PROXY_CONTAINER apply to "
                          "LIVE_ORCHESTRATOR=swarm only; set LIVE_ORCHESTRATOR=swarm or unset them")
    if orchestrator == "swarm" and (env.get("LIVE_CADDY_ADMIN_URL") or "").strip() and not proxy:
        raise ConfigError("LIVE_SWARM_PROXY_CONTAINER must name the ingress proxy's container on the swarm manager "
                          "with LIVE_ORCHESTRATOR=swarm and LIVE_CADDY_ADMIN_URL: the proxy reaches the orders' "
                          "services only over the networks the bridge connects it to (docs/SCALING.md)")
    return {"orchestrator": orchestrator, "swarm_encrypt_networks": encrypt in ("true", "1", "yes"),
            "swarm_pool": pool, "swarm_proxy_container": proxy}


def _url(env: dict, name: str, example: str) -> str:
    """An http(s) URL setting without whitespace or braces (Caddy reads ``{...}`` as a placeholder); "" when unset."""
    value = (env.get(name) or "").strip()
    if value and not re.match(r"^https?://[^/\s{}]+[^\s{}]*$", value):
        raise ConfigError(f"{name} must be an http(s) URL like {example}, got {value!r}")
    return value


def _admin_url(env: dict) -> str | None:
    """LIVE_CADDY_ADMIN_URL: ``http://host:port`` of Caddy's admin API, without a path; None when unset."""
    value = _url(env, "LIVE_CADDY_ADMIN_URL", "http://127.0.0.1:2019").rstrip("/")
    if not value:
        return None
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port == -1 or parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"LIVE_CADDY_ADMIN_URL must be http(s)://<host>:<port> of Caddy's admin API, without a "
                          f"path, like http://127.0.0.1:2019, got {value!r}")
    return value


def _tls(env: dict) -> str:
    """LIVE_TLS, or what the older LIVE_PUBLIC_SCHEME said (``http`` -> ``off``, ``https`` -> ``acme``).

    Raises ConfigError naming the variable for an unknown value, or when both are set and disagree.
    """
    tls = (env.get("LIVE_TLS") or "").strip().lower()
    if tls and tls not in ("acme", "internal", "off"):
        raise ConfigError(f"LIVE_TLS must be acme, internal or off, got {tls!r}")
    scheme = (env.get("LIVE_PUBLIC_SCHEME") or "").strip().lower()
    if scheme and scheme not in ("http", "https"):
        raise ConfigError(f"LIVE_PUBLIC_SCHEME must be http or https, got {scheme!r}")
    if scheme and tls and (scheme == "http") != (tls == "off"):
        raise ConfigError(f"LIVE_PUBLIC_SCHEME={scheme} contradicts LIVE_TLS={tls}: LIVE_TLS replaces it, remove it")
    return tls or ("off" if scheme == "http" else "acme")


def _ingress(env: dict) -> dict:
    """The ingress settings (docs/OPERATIONS.md, "Ingress"); raises ConfigError naming the variable."""
    bind = (env.get("LIVE_INGRESS_BIND") or "").strip()
    if bind:
        try:
            bind = str(ipaddress.ip_address(bind.strip("[]")))
        except ValueError:
            raise ConfigError(f"LIVE_INGRESS_BIND must be an IP address of this host like 127.0.0.1 or ::1 "
                              f"(empty: every interface), got {bind!r}") from None
    ports = {name: _int(env, name, default, minimum=1)
             for name, default in (("LIVE_INGRESS_HTTP_PORT", 80), ("LIVE_INGRESS_HTTPS_PORT", 443))}
    for name, port in ports.items():
        if port > 65535:
            raise ConfigError(f"{name} must be a TCP port (1-65535), got {port}")
    tls = _tls(env)
    if tls != "off" and ports["LIVE_INGRESS_HTTP_PORT"] == ports["LIVE_INGRESS_HTTPS_PORT"]:
        raise ConfigError("LIVE_INGRESS_HTTP_PORT and LIVE_INGRESS_HTTPS_PORT must differ "
                          f"(both are {ports['LIVE_INGRESS_HTTP_PORT']})")
    email = (env.get("LIVE_ACME_EMAIL") or "").strip()
    if email and not re.match(r"^[^@\s{}]+@[^@\s{}]+\.[^@\s{}]+$", email):
        raise ConfigError(f"LIVE_ACME_EMAIL must be an email address, got {email!r}")
    return {
        "caddy_admin_url": _admin_url(env),
        "tls": tls,
        "acme_email": email,
        "ingress_bind": bind,
        "ingress_http_port": ports["LIVE_INGRESS_HTTP_PORT"],
        "ingress_https_port": ports["LIVE_INGRESS_HTTPS_PORT"],
        "billing_url": _url(env, "LIVE_BILLING_URL", "https://billing.example.org/clientarea.php"),
        "ingress_resync_seconds": _float(env, "LIVE_INGRESS_RESYNC_SECONDS", 30.0, minimum=1.0),
        "ingress_ask_url": _url(env, "LIVE_INGRESS_ASK_URL", "http://127.0.0.1:8000/ingress/v1/ask")
                           or Settings.ingress_ask_url,
    }


_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX_SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _backup_policy(env: dict) -> dict:
    """LIVE_BACKUP_SCHEDULE (5-field cron, UTC; default daily at 03:00) and LIVE_BACKUP_KEEP (retention like
    ``daily=7,weekly=4``): the defaults of products that declare none; LIVE_BACKUP_KEEP_TERMINATED_DAYS (default
    30) and LIVE_BACKUP_KEEP_UNSCHEDULED_DAYS (default 14) (docs/BACKUPS.md). Raises ConfigError naming the
    variable."""
    from app.backups.policy import Retention, check_schedule  # the policy module owns both syntaxes

    schedule = (env.get("LIVE_BACKUP_SCHEDULE") or Settings.backup_schedule).strip()
    try:
        check_schedule(schedule)
    except ValueError as exc:
        raise ConfigError(f"LIVE_BACKUP_SCHEDULE must be a 5-field cron expression like '0 3 * * *', got "
                          f"{schedule!r}: {exc}") from None
    keep = (env.get("LIVE_BACKUP_KEEP") or Settings.backup_keep).strip()
    try:
        Retention.parse(keep)
    except (ValueError, ConfigError) as exc:
        raise ConfigError(f"LIVE_BACKUP_KEEP must be like daily=7,weekly=4 (keys last, hourly, daily, weekly, "
                          f"monthly, yearly), got {keep!r}: {exc}") from None
    return {"backup_schedule": schedule, "backup_keep": keep,
            "backup_keep_terminated_days": _int(env, "LIVE_BACKUP_KEEP_TERMINATED_DAYS", 30, minimum=0),
            "backup_keep_unscheduled_days": _int(env, "LIVE_BACKUP_KEEP_UNSCHEDULED_DAYS", 14, minimum=0)}


def _backup_store(env: dict, backup_dir: Path) -> dict:
    """LIVE_BACKUP_STORE and LIVE_S3_ENDPOINT_URL (docs/BACKUPS.md, "The store"); raises ConfigError naming the
    variable.

    ``file:///<absolute path>`` (normalized; default ``file://<LIVE_BACKUP_DIR>``, itself ``<repo>/var/backups``) or ``s3://<bucket>[/<prefix>]``
    (an S3 bucket name; the prefix's segments letters, digits, ``.``, ``_``, ``-``). The endpoint is an http(s)
    URL without credentials, path or query, and only goes with an ``s3://`` store.
    """
    raw = (env.get("LIVE_BACKUP_STORE") or "").strip()
    default = f"file://{Path(backup_dir).resolve()}"
    value = raw or default
    if value.startswith("file://"):
        path = value[len("file://"):]
        if not path.startswith("/") or "\x00" in path:
            raise ConfigError(f"LIVE_BACKUP_STORE must be file:///<absolute path> (three slashes) or "
                              f"s3://<bucket>/<prefix>, got {raw!r}")
        store = f"file://{os.path.normpath(path)}"
    elif value.startswith("s3://"):
        bucket, _, prefix = value[len("s3://"):].partition("/")
        prefix = prefix.strip("/")
        if not _BUCKET_RE.match(bucket) or ".." in bucket:
            raise ConfigError(f"LIVE_BACKUP_STORE must name an S3 bucket (3-63 lowercase letters, digits, '.' "
                              f"and '-') like s3://geocat-backups/live, got {raw!r}")
        if prefix and not all(_PREFIX_SEGMENT_RE.match(part) for part in prefix.split("/")):
            raise ConfigError(f"LIVE_BACKUP_STORE's prefix must be folders of letters, digits, '.', '_' and '-' "
                              f"like s3://geocat-backups/live/prod, got {raw!r}")
        store = f"s3://{bucket}" + (f"/{prefix}" if prefix else "")
    else:
        raise ConfigError(f"LIVE_BACKUP_STORE must be file:///<absolute path> or s3://<bucket>/<prefix>, got {raw!r}")
    endpoint = (env.get("LIVE_S3_ENDPOINT_URL") or "").strip().rstrip("/")
    if endpoint:
        parts = urlsplit(endpoint)
        try:
            parts.port
        except ValueError:
            parts = None
        if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.username
                or parts.password or parts.path or parts.query or parts.fragment):
            # Never echo the value: it may hold a key someone pasted into the URL.
            raise ConfigError("LIVE_S3_ENDPOINT_URL must be http(s)://<host>[:<port>] of an S3-compatible service, "
                              "without credentials or a path, like https://s3.example.org")
        if not store.startswith("s3://"):
            raise ConfigError("LIVE_S3_ENDPOINT_URL is set but LIVE_BACKUP_STORE is not s3://...: set both or "
                              "unset LIVE_S3_ENDPOINT_URL")
    return {"backup_store": store, "s3_endpoint_url": endpoint or None}


def _helper_image(env: dict) -> str:
    """LIVE_HELPER_IMAGE: the archive helper's image reference (default ``live/archive-helper:2``).

    Raises ConfigError naming the variable when the value is not a Docker image reference.
    """
    ref = (env.get("LIVE_HELPER_IMAGE") or Settings.helper_image).strip()
    if not _IMAGE_REF_RE.match(ref):
        raise ConfigError(f"LIVE_HELPER_IMAGE must be a Docker image reference like live/archive-helper:2, got {ref!r}")
    return ref


def _wait_slots(env: dict) -> int:
    """LIVE_WAIT_SLOTS: 0 (calls never wait) up to one less than gunicorn's threads per worker.

    Each waiting call holds a gunicorn thread for up to 120 s; at least one thread must stay
    free for /healthz and the calls that do not wait. Raises ConfigError naming the variable.
    """
    slots = _int(env, "LIVE_WAIT_SLOTS", Settings.wait_slots, minimum=0)
    threads = _int(env, "GUNICORN_THREADS", DEFAULT_GUNICORN_THREADS)
    if slots >= threads:
        raise ConfigError(f"LIVE_WAIT_SLOTS must be below GUNICORN_THREADS ({threads}) so that /healthz and calls "
                          f"that do not wait keep a thread, got {slots}")
    return slots
