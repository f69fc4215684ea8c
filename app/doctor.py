"""``live doctor``: checks everything a running installation needs, each with what it found and the fix.

Each check gives a :class:`Finding`: ``ok``, ``warn`` (works, but will hurt: e.g. few address pools, a
catalog sync that failed), ``fail`` (something the bridge needs is broken or missing) or ``skip`` (it
could not run because a check it depends on failed; that one carries the fix). The command exits with
:func:`exit_code`: 0 when nothing is worse than ok, 1 for warnings, 2 for failures.

The checks, in the order printed:

===============  =============================================================================
engine           the Docker engine answers (DOCKER_HOST); its version
address-pools    ``default-address-pools`` leave room for many networks (one per order)
helper-image     the archive helper image (LIVE_HELPER_IMAGE) is on the engine
swarm            (LIVE_ORCHESTRATOR=swarm) the engine is a manager; the nodes that take orders, their free
                 memory, and every node's own engine answering with the helper image (docs/SCALING.md)
database         LIVE_DATABASE_URL answers and no migration is pending
worker           a worker's heartbeat is fresh (the rule of ``app/orders/heartbeat.py``)
mirror           the worker follows the engine: the engine mirror is fresh (``app/stacks/mirror.py``); a warning when
                 not (views show runtime ``unknown``), the ``worker`` check failing already when no worker runs
backup-store     LIVE_BACKUP_STORE answers; a folder store is (or can be) writable, with LIVE_BACKUP_MIN_FREE_GB free
catalog          the last sync worked; valid and invalid products
catalog-source   GitLab answers for the project and ref (when LIVE_GITLAB_URL is set)
api-keys         an active ``whmcs`` key that WHMCS uses; no idle ``admin`` keys
ingress          Caddy (LIVE_CADDY_ADMIN_URL) answers and holds every order's route, when it is set
swarm-proxy      swarm mode with an ingress only: the proxy's container (LIVE_SWARM_PROXY_CONTAINER) runs on the
                 manager, created on a user-defined network
===============  =============================================================================

The doctor only reads, except for a temporary file it creates and removes in a folder backup store.
No check raises: an unexpected error is a ``fail`` finding naming it.
"""
from __future__ import annotations

import datetime as dt
import errno
import ipaddress
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import peewee

from app.backups import backup_store
from app.backups.file_store import FileBackupStore
from app.backups.store import BackupStore
from app.catalog.catalog import REMOVED, Catalog
from app.catalog.gitlab_source import GitLabSource
from app.config import Settings
from app.db import pending_migrations
from app.errors import CatalogSourceError, LiveError
from app.ingress.service import IngressService
from app.models import ApiKey, CatalogSync, Operation, Product, utcnow
from app.orders.heartbeat import describe_seconds, worker_status
from app.orders.lifecycle import OperationState
from app.stacks.mirror import freshness
from app.stacks.deployer import HELPER_SCRIPT

log = logging.getLogger(__name__)

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
_SEVERITY = {SKIP: 0, OK: 0, WARN: 1, FAIL: 2}

#: The bridge network through which a swarm node's task containers reach outside their overlay networks: each
#: running task on an overlay network takes one of its addresses, and swarm makes it a /24 (~250) by default.
GWBRIDGE = "docker_gwbridge"
#: Fewer task addresses than this on a node's docker_gwbridge is a warning (a /22 holds 1,021).
MIN_GWBRIDGE_ADDRESSES = 1000

#: Seconds the doctor waits for the Docker engine per request.
ENGINE_TIMEOUT_SECONDS = 10
#: Fewer networks than this in the engine's address pools is a warning (every order has its own network).
MIN_NETWORKS = 100
#: A warning when this share of the pools' networks exists already.
NETWORKS_FULL_SHARE = 0.8
#: Networks the engine makes itself; they take no subnet of the address pools.
_PREDEFINED_NETWORKS = {"bridge", "host", "none", "docker_gwbridge", "ingress"}
#: What .ci/run writes: 4096 networks of 256 addresses.
DAEMON_JSON = '{"default-address-pools": [{"base": "10.240.0.0/12", "size": 24}]}'
#: An admin key unused this long (or never used this long after its creation) is a warning.
ADMIN_KEY_IDLE = dt.timedelta(days=90)
ADMIN_KEY_GRACE = dt.timedelta(days=1)
GB = 1000 ** 3


@dataclass(frozen=True)
class Finding:
    """One check's result: ``check`` (its name), ``status`` (ok, warn, fail, skip), ``finding`` (one line)
    and ``fix`` (what to do; empty when ok)."""

    check: str
    status: str
    finding: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def worst(findings: list[Finding]) -> str:
    """The most severe status of ``findings`` (``ok`` when there is none worse; ``skip`` counts as ok)."""
    worst_status = OK
    for finding in findings:
        if _SEVERITY[finding.status] > _SEVERITY[worst_status]:
            worst_status = finding.status
    return worst_status


def exit_code(findings: list[Finding]) -> int:
    """0 when nothing is worse than ok, 1 when the worst is a warning, 2 when a check failed."""
    return _SEVERITY[worst(findings)]


class Doctor:
    """Runs the checks against one installation.

    ``engine`` is a :class:`~app.stacks.docker_engine.DockerEngine` (give it a short timeout: the CLI uses
    :data:`ENGINE_TIMEOUT_SECONDS`); ``now`` returns naive UTC (tests pass their own clock). ``store`` is the
    backup store (default: the one ``settings.backup_store`` names). ``swarm`` is the
    :class:`~app.stacks.swarm_engine.SwarmEngine` of swarm mode (the ``swarm-proxy`` check), None on one engine.
    """

    def __init__(self, settings: Settings, db: peewee.Database, engine, catalog: Catalog, *,
                 now: Callable[[], dt.datetime] = utcnow, ingress: IngressService | None = None,
                 store: BackupStore | None = None, swarm=None):
        self.swarm = swarm
        self.settings = settings
        self.store = store if store is not None else backup_store(settings)
        self.db = db
        self.engine = engine
        self.catalog = catalog
        self.now = now
        self.ingress = ingress

    def run(self) -> list[Finding]:
        """Every check, in the order of the module's table; checks that need a failed one are skipped."""
        findings = []
        engine = self._safely("engine", self.check_engine)
        findings.append(engine)
        checks = [("address-pools", self.check_address_pools), ("helper-image", self.check_helper_image)]
        if self.settings.orchestrator == "swarm":
            checks.append(("swarm", self.check_swarm))
        for name, check in checks:
            findings.append(self._safely(name, check) if engine.status == OK
                            else Finding(name, SKIP, "not checked: the Docker engine does not answer"))
        database = self._safely("database", self.check_database)
        findings.append(database)
        schema_ready = database.status == OK
        if schema_ready:
            findings.append(self._safely("worker", self.check_worker))
            findings.append(self._safely("mirror", self.check_mirror))
        else:
            findings.append(Finding("worker", SKIP, "not checked: the database is not ready"))
            findings.append(Finding("mirror", SKIP, "not checked: the database is not ready"))
        findings.append(self._safely("backup-store", self.check_backup_store))
        findings.append(self._safely("catalog", self.check_catalog) if schema_ready
                        else Finding("catalog", SKIP, "not checked: the database is not ready"))
        findings.append(self._safely("catalog-source", self.check_catalog_source))
        findings.append(self._safely("api-keys", self.check_api_keys) if schema_ready
                        else Finding("api-keys", SKIP, "not checked: the database is not ready"))
        findings.append(self._safely("ingress", self.check_ingress) if schema_ready
                        else Finding("ingress", SKIP, "not checked: the database is not ready"))
        if self.settings.orchestrator == "swarm" and self.settings.caddy_admin_url:
            findings.append(self._safely("swarm-proxy", self.check_swarm_proxy) if engine.status == OK
                            else Finding("swarm-proxy", SKIP, "not checked: the Docker engine does not answer"))
        return findings

    @staticmethod
    def _safely(name: str, check: Callable[[], Finding]) -> Finding:
        """Run ``check``; an error it did not expect becomes a failed finding instead of a traceback."""
        try:
            return check()
        except Exception as exc:  # noqa: BLE001 (the doctor reports every problem, its own included)
            log.debug("check %s crashed", name, exc_info=True)
            return Finding(name, FAIL, f"the check itself failed: {type(exc).__name__}: {exc}",
                           "run again with LIVE_LOG_LEVEL=DEBUG for the traceback, and report it")

    # -- the engine -----------------------------------------------------------
    def _engine_address(self) -> str:
        return self.settings.docker_host or os.environ.get("DOCKER_HOST") or "the local socket"

    def check_engine(self) -> Finding:
        try:
            version, api_version = self.engine.version()
        except LiveError as exc:
            return Finding("engine", FAIL, f"the Docker engine at {self._engine_address()} does not answer: {exc}",
                           "start it (`systemctl start docker`), or set DOCKER_HOST to its address; the bridge's user "
                           "needs access to its socket (group docker)")
        return Finding("engine", OK, f"Docker {version} (API {api_version}) at {self._engine_address()}")

    def check_address_pools(self) -> Finding:
        pools, networks = self.engine.address_pools()
        used = sum(1 for name, driver in networks if name not in _PREDEFINED_NETWORKS and driver in ("bridge", "overlay"))
        fix = (f"configure larger pools in /etc/docker/daemon.json, e.g. {DAEMON_JSON} (room for 4096 networks), then "
               "restart the engine at a quiet moment (`systemctl restart docker`; the stacks start again at their next "
               "operation, or with `live orders redeploy`)")
        if not pools:
            return Finding("address-pools", WARN,
                           "no default-address-pools configured: the engine's built-in pools hold about 30 networks, "
                           f"and every order has its own, so orders fail after about 30 ({used} networks exist)", fix)
        capacity = sum(_pool_networks(pool) for pool in pools)
        described = ", ".join(f"{pool.get('Base')} in /{pool.get('Size')} networks" for pool in pools)
        if capacity < MIN_NETWORKS:
            return Finding("address-pools", WARN, f"the address pools ({described}) hold only {capacity} networks, one "
                                                  f"per order ({used} exist)", fix)
        if used >= NETWORKS_FULL_SHARE * capacity:
            return Finding("address-pools", WARN, f"{used} of the {capacity} networks the address pools ({described}) "
                                                  "hold exist already", fix)
        return Finding("address-pools", OK, f"{described}: room for {capacity} networks ({used} exist)")

    def check_helper_image(self) -> Finding:
        image = self.settings.helper_image
        if self.engine.image_present(image):
            return Finding("helper-image", OK, f"the archive helper image {image} is on the engine")
        return Finding("helper-image", FAIL,
                       f"the archive helper image {image} (LIVE_HELPER_IMAGE) is not on the engine: terminates (and "
                       "the clean-up of a failed create) cannot archive volumes, so they stop before deleting anything",
                       f"build it there: `bash {HELPER_SCRIPT} {image}` (it is never pulled)")

    # -- the database and what it holds -----------------------------------------
    def check_swarm(self) -> Finding:
        """The manager, the nodes placement may choose (app/stacks/placement.py) and each node's engine."""
        from app.stacks.placement import eligible_nodes
        from app.stacks.swarm_engine import SwarmEngine

        swarm = SwarmEngine(self.settings.docker_host, timeout=ENGINE_TIMEOUT_SECONDS)
        try:
            swarm.ping()
        except LiveError as exc:
            return Finding("swarm", FAIL, str(exc), "make DOCKER_HOST a swarm manager (`docker swarm init`, or the "
                                                    "address of a manager), or set LIVE_ORCHESTRATOR=docker")
        nodes = swarm.nodes()
        problems = []
        for node in nodes:
            if not node.ready:
                continue
            if node.engine is None:
                problems.append(f"{node.hostname}: no live.engine label (its orders cannot be backed up)")
                continue
            try:
                engine = swarm.node_engine(node.id)
                engine.ping()
                if not engine.image_present(self.settings.helper_image):
                    problems.append(f"{node.hostname}: no {self.settings.helper_image} image")
                tasks = sum(ipaddress.ip_network(s).num_addresses - 3 for s in engine.network_subnets(GWBRIDGE))
                if tasks < MIN_GWBRIDGE_ADDRESSES:
                    problems.append(f"{node.hostname}: {GWBRIDGE} holds {tasks} addresses, so at most {tasks} running "
                                    "tasks on overlay networks")
            except LiveError as exc:
                problems.append(f"{node.hostname}: its engine does not answer ({exc})")
        eligible = eligible_nodes(nodes, self.settings.swarm_pool)
        pool = f" in pool {self.settings.swarm_pool!r}" if self.settings.swarm_pool else ""
        free = ", ".join(f"{n.hostname} {n.free_bytes / 2**30:.1f} GiB free" for n in eligible)
        summary = f"{len(nodes)} node(s), {len(eligible)} taking orders{pool}" + (f": {free}" if free else "")
        fix = (f"make {GWBRIDGE} a /16 on each node before it joins the swarm (docs/SCALING.md, section 0); "
               "label each node with its engine's address (`docker node update --label-add live.engine=tcp://<address>"
               f":2376 <node>`, TLS), build the helper image on it (`bash {HELPER_SCRIPT}`)"
               + (f", and label nodes for new orders (`--label-add live.pool={self.settings.swarm_pool}`)"
                  if self.settings.swarm_pool else ""))
        if not eligible:
            return Finding("swarm", FAIL, f"{summary}: new orders cannot be placed" +
                           (f"; {'; '.join(problems)}" if problems else ""), fix)
        if problems:
            return Finding("swarm", WARN, f"{summary}; {'; '.join(problems)}", fix)
        return Finding("swarm", OK, summary)

    def check_database(self) -> Finding:
        where = _describe_database(self.settings.database_url)
        sqlite_file = self.settings.database_url.split(":///", 1)[-1] if self.settings.database_url.startswith(
            "sqlite") else None
        if sqlite_file and sqlite_file != ":memory:" and not Path(sqlite_file).exists():
            # Asking would create an empty file; the doctor only reads.
            return Finding("database", FAIL, f"{where} does not exist",
                           "create it: `flask --app wsgi live db upgrade`, or fix LIVE_DATABASE_URL")
        try:
            pending = pending_migrations(self.db)
        except peewee.PeeweeException as exc:
            return Finding("database", FAIL, f"{where} cannot be used: {str(exc).strip() or type(exc).__name__}",
                           "check LIVE_DATABASE_URL (host, port, name, user, password) and that the server runs")
        if pending:
            return Finding("database", FAIL, f"{where}: {len(pending)} migration(s) pending: {', '.join(pending)}",
                           "apply them: `flask --app wsgi live db upgrade` (then restart the worker and gunicorn)")
        return Finding("database", OK, f"{where}: reachable, every migration applied")

    def check_worker(self) -> Finding:
        status = worker_status(self.now())
        queued = Operation.select().where(Operation.state == OperationState.PENDING).count()
        running = Operation.select().where(Operation.state == OperationState.RUNNING).count()
        waiting = f"{queued} operation(s) queued, {running} running"
        start = ("start it: `flask --app wsgi live worker` (systemd: `systemctl start live-worker`); one per database, "
                 "with the same environment as gunicorn")
        if status.age_seconds is None:
            return Finding("worker", FAIL, f"no worker is running: none has a heartbeat (never started, or stopped); "
                                           f"{waiting}", start)
        if not status.alive:
            return Finding("worker", FAIL,
                           f"worker {status.worker} has not beaten for {status.describe_age()} (alive means "
                           f"within {status.stale_after:.0f} s): it was killed, hangs, or cannot reach the database; "
                           f"{waiting}",
                           f"see its log (`journalctl -u live-worker`) and restart it; {start}")
        return Finding("worker", OK, f"worker {status.worker} alive: last heartbeat {status.describe_age()} ago, "
                                     f"running since {status.started_at:%Y-%m-%d %H:%M:%S}Z, concurrency "
                                     f"{status.concurrency}; {waiting}")

    def check_mirror(self) -> Finding:
        """The engine mirror's freshness (the ``engine_mirror`` row, never the engine): ok when fresh, else a warning
        (views and the GeoCat Live lookup cannot say what runs: ``unknown``, ``SERVICE_WAITING``)."""
        state = freshness(self.settings.deployment, stale_seconds=self.settings.mirror_stale_seconds, now=self.now())
        fix = ("the worker follows the engine (docs/MIRROR.md): when the `worker` check fails, start the worker; else "
               "its log (`journalctl -u live-worker`, logger app.stacks.mirror) says why (it reconnects by itself)")
        unknown = "views show runtime `unknown` (GeoCat Live: SERVICE_WAITING)"
        if state.age_seconds is None:
            return Finding("mirror", WARN, f"no worker has followed the engine yet: {unknown}", fix)
        age = describe_seconds(state.age_seconds)
        if not state.connected:
            return Finding("mirror", WARN, f"not following the engine (last beat {age} ago, by {state.follower}): "
                                           f"{state.error or 'disconnected'}; {unknown}", fix)
        if not state.fresh:
            return Finding("mirror", WARN, f"stale: last beat {age} ago by {state.follower} (fresh means within "
                                           f"{state.stale_after:.0f} s, LIVE_MIRROR_STALE_SECONDS): the worker was "
                                           f"killed or hangs, or the engine does not answer; {unknown}", fix)
        listed = (f", last full listing {describe_seconds((self.now() - state.last_listing_at).total_seconds())} ago"
                  if state.last_listing_at is not None else "")
        return Finding("mirror", OK, f"fresh: {state.follower} follows the engine, last beat {age} ago{listed}")

    def check_ingress(self) -> Finding:
        """The proxy (LIVE_CADDY_ADMIN_URL) answers, holds the bridge's server, and no route is pending."""
        if self.ingress is None or not self.ingress.enabled:
            return Finding("ingress", OK, "off: LIVE_CADDY_ADMIN_URL is not set, orders get only their 127.0.0.1 ports")
        where = f"Caddy's admin API at {self.settings.caddy_admin_url}"
        state = self.ingress.status()
        pending = f"{state.pending} order route(s) pending"
        if not state.reachable:
            return Finding("ingress", FAIL, f"{where} does not answer, or holds no server of this installation yet; "
                                            f"{pending}",
                           "start Caddy (`systemctl start caddy-api`) and the worker: its resync writes every route "
                           "within LIVE_INGRESS_RESYNC_SECONDS (docs/OPERATIONS.md, Ingress)")
        if state.pending:
            return Finding("ingress", WARN, f"{where} answers; {pending}",
                           "the worker applies them within LIVE_INGRESS_RESYNC_SECONDS; if the number stays, see the "
                           "worker's log for what Caddy refused")
        host = urlsplit(self.settings.caddy_admin_url).hostname or ""
        if not _is_loopback(host):
            return Finding("ingress", WARN, f"{where} answers, but not on the loopback: it has no authentication, and "
                                            "whoever reaches it rewrites the proxy in front of every customer",
                           "give Caddy an admin address on 127.0.0.1 or ::1 (admin.listen) and run the bridge on "
                           "the same host")
        return Finding("ingress", OK, f"{where} answers and holds every order's route (LIVE_TLS={self.settings.tls})")

    def check_swarm_proxy(self) -> Finding:
        """Swarm mode: the proxy's container (LIVE_SWARM_PROXY_CONTAINER) can join the orders' networks and
        resolve their services (:meth:`~app.stacks.swarm_engine.SwarmEngine.proxy_problem`)."""
        problem = self.swarm.proxy_problem() if self.swarm is not None else "no swarm engine was given"
        if problem:
            return Finding("swarm-proxy", FAIL, f"{problem}: no order's endpoint is reachable through the proxy",
                           "run the proxy as docs/OPERATIONS.md, \"The proxy in a swarm\", shows, and set "
                           "LIVE_SWARM_PROXY_CONTAINER to its name; each order gets it back at its next deploy")
        return Finding("swarm-proxy", OK, f"the proxy container {self.settings.swarm_proxy_container} runs on the "
                                          "manager, on a user-defined network")

    def check_backup_store(self) -> Finding:
        """The store answers a listing; a folder store is also (or can be created) writable, with
        LIVE_BACKUP_MIN_FREE_GB free (one check: the default store is the folder LIVE_BACKUP_DIR)."""
        if isinstance(self.store, FileBackupStore):
            return self._check_folder_store(self.store)
        where = f"LIVE_BACKUP_STORE={self.store.location}"
        try:
            self.store.check()
        except LiveError as exc:
            return Finding("backup-store", FAIL, f"{where} cannot be used: {exc}: every backup fails (orders keep "
                                                 "running)",
                           "check the bucket and prefix, LIVE_S3_ENDPOINT_URL, the AWS_* credentials (they need list, "
                           "get, put and delete on the prefix) and the network to the store")
        return Finding("backup-store", OK, f"{where}: answers")

    def _check_folder_store(self, store: FileBackupStore) -> Finding:
        folder = store.root
        existing = store.nearest_existing()
        setting = f"LIVE_BACKUP_STORE={store.location}"
        if not existing.is_dir():
            what = "is a file" if existing == folder else f"cannot be created: {existing} is a file"
            return Finding("backup-store", FAIL, f"{setting}: {folder} {what}, not a folder: every backup fails, and "
                                                 "terminates stop before deleting anything",
                           "point LIVE_BACKUP_STORE (or LIVE_BACKUP_DIR, its default) at a folder, or move that file "
                           "away")
        try:
            handle, probe = tempfile.mkstemp(prefix=".live-doctor-", dir=existing)
            os.close(handle)
            os.unlink(probe)
        except OSError as exc:
            if exc.errno == errno.EROFS:  # no ownership change helps a read-only file system
                fix = f"remount {existing}'s file system read-write, or point LIVE_BACKUP_STORE at a writable disk"
            else:
                fix = f"let the bridge's user write there: `chown -R <user> {existing}`"
            return Finding("backup-store", FAIL, f"{setting}: {existing} is not writable: {exc.strerror or exc}", fix)
        if existing == folder:
            try:
                store.check()
            except LiveError as exc:
                return Finding("backup-store", FAIL, f"{setting}: cannot be listed: {exc}",
                               f"let the bridge's user read everything under {folder}: `chown -R <user> {folder}`")
        free = shutil.disk_usage(existing).free
        minimum = self.settings.backup_min_free_gb * GB
        later = "" if existing == folder else f" (created at the first backup, in {existing})"
        place = f"{setting}: writable{later}"
        space = f"{free / GB:.1f} GB free"
        if free < minimum:
            status = FAIL if free < minimum / 10 else WARN
            return Finding("backup-store", status, f"{place}, only {space} (LIVE_BACKUP_MIN_FREE_GB is "
                                                   f"{self.settings.backup_min_free_gb:g}): backups stop when it is "
                                                   "full, and terminates take a final backup there",
                           "free space there (`live backups prune`), or move the store to a larger disk")
        return Finding("backup-store", OK, f"{place}, {space}")

    def check_catalog(self) -> Finding:
        state = CatalogSync.get_or_none()
        products = list(Product.select(Product.slug, Product.valid, Product.errors).order_by(Product.slug).tuples())
        valid = [slug for slug, ok, _ in products if ok]
        # Removed from the source on purpose: kept for the orders that use them, and nothing to fix.
        retired = [slug for slug, ok, errors in products if not ok and errors == [REMOVED]]
        invalid = [slug for slug, ok, errors in products if not ok and errors != [REMOVED]]
        named = f" ({', '.join(invalid)})" if invalid else ""
        counts = f"{len(valid)} valid product(s), {len(invalid)} invalid{named}"
        if retired:
            counts += f", {len(retired)} retired ({', '.join(retired)}: {REMOVED}, kept for their orders)"
        sync = "`flask --app wsgi live products sync` (the worker syncs every LIVE_CATALOG_SYNC_SECONDS)"
        if state is None or (state.last_success_at is None and state.last_error is None):
            return Finding("catalog", WARN, f"never synced; {counts}", f"sync it: {sync}")
        if not valid:
            return Finding("catalog", FAIL, f"{counts}: WHMCS cannot create any order",
                           "add a product to the config repository (docs/PRODUCTS.md), check it with "
                           f"`flask --app wsgi live products validate`, then {sync}")
        if state.last_error:
            since = f"{state.last_success_at:%Y-%m-%d %H:%M:%S}Z" if state.last_success_at else "never"
            return Finding("catalog", WARN, f"the last sync failed: {state.last_error}; serving the last good catalog "
                                            f"(last good sync: {since}); {counts}",
                           f"fix the source (see the catalog-source check), then {sync}")
        synced = f"synced {state.last_success_at:%Y-%m-%d %H:%M:%S}Z" + (f" at commit {state.commit[:12]}"
                                                                        if state.commit else "")
        if invalid:
            return Finding("catalog", WARN, f"{synced}; {counts}",
                           "`flask --app wsgi live products list` and `products show SLUG` name the errors; fix "
                           "them in the config repository")
        return Finding("catalog", OK, f"{synced}; {counts}")

    def check_catalog_source(self) -> Finding:
        s = self.settings
        if not s.gitlab_url:
            return Finding("catalog-source", OK, f"the folder LIVE_CONFIG_REPO={s.config_repo} (GitLab is not used)")
        where = f"GitLab {s.gitlab_url}, project {s.gitlab_project} at {s.gitlab_ref}"
        source = GitLabSource(s.gitlab_url, s.gitlab_token, s.gitlab_project, s.gitlab_ref, timeout=s.gitlab_timeout)
        try:
            commit = source.probe()
        except CatalogSourceError as exc:
            reason, status = exc.details.get("reason"), exc.details.get("status")
            if reason == "token_rejected":
                return Finding("catalog-source", FAIL, f"{where}: the token is rejected ({status})",
                               "give LIVE_GITLAB_TOKEN read_repository (read_api) on the project, or a new token")
            if reason == "not_found":
                return Finding("catalog-source", FAIL, f"{where}: project or ref not found",
                               "check LIVE_GITLAB_PROJECT (id or path) and LIVE_GITLAB_REF (branch or tag)")
            if reason == "gitlab_error":
                return Finding("catalog-source", WARN, f"{where}: GitLab answers with an error: "
                                                       f"{status or ''} {exc.details.get('gitlab_message', '')}",
                               "try again later; the last good catalog keeps serving meanwhile")
            return Finding("catalog-source", WARN,
                           f"{where}: unreachable ({exc.details.get('cause')}); the last good catalog keeps serving",
                           "check LIVE_GITLAB_URL, the network between the bridge and GitLab, and GitLab itself")
        return Finding("catalog-source", OK, f"{where}: answers, {s.gitlab_ref} is {commit[:12]}")

    def check_api_keys(self) -> Finding:
        now = self.now()
        keys = list(ApiKey.select().where(ApiKey.revoked_at.is_null()).order_by(ApiKey.name))
        whmcs = [key for key in keys if key.scope == "whmcs"]
        admins = [key for key in keys if key.scope == "admin"]
        counts = (f"{len(whmcs)} whmcs, {sum(1 for key in keys if key.scope == 'read')} read, {len(admins)} admin "
                  "key(s) active")
        if not whmcs:
            return Finding("api-keys", FAIL, f"no active key with the whmcs scope: the WHMCS module cannot call the "
                                             f"bridge ({counts})",
                           "`flask --app wsgi live apikey create whmcs-prod --scope whmcs`, and put the token in the "
                           "WHMCS server's Access Hash")
        problems, fixes = [], []
        if all(key.last_used_at is None for key in whmcs):
            problems.append(f"WHMCS has never called with {_names(whmcs)}")
            fixes.append("check the WHMCS server (System Settings > Servers > Test Connection)")
        never = [key for key in admins if key.last_used_at is None and now - key.created_at > ADMIN_KEY_GRACE]
        idle = [key for key in admins if key.last_used_at is not None and now - key.last_used_at > ADMIN_KEY_IDLE]
        if never:
            problems.append(f"admin key(s) never used: {_names(never)}")
        if idle:
            problems.append(f"admin key(s) unused for more than {ADMIN_KEY_IDLE.days} days: {_names(idle)}")
        if never or idle:
            fixes.append("revoke admin keys nobody needs (they may change every order): "
                         "`flask --app wsgi live apikey revoke NAME`")
        if problems:
            return Finding("api-keys", WARN, f"{'; '.join(problems)} ({counts})", "; ".join(fixes))
        last = max(key.last_used_at for key in whmcs if key.last_used_at is not None)
        return Finding("api-keys", OK, f"{counts}; WHMCS last called {describe_seconds((now - last).total_seconds())} "
                                       "ago (to the minute)")


def _is_loopback(host: str) -> bool:
    """``localhost``, or an address of 127.0.0.0/8 or ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _pool_networks(pool: dict[str, Any]) -> int:
    """How many networks of ``pool["Size"]`` bits fit in ``pool["Base"]`` (0 for a pool that makes no sense)."""
    try:
        prefix = ipaddress.ip_network(str(pool.get("Base")), strict=False).prefixlen
        size = int(pool.get("Size"))
    except (TypeError, ValueError):
        return 0
    return 2 ** (size - prefix) if size >= prefix else 0


def _describe_database(url: str) -> str:
    """The database URL without its password: ``PostgreSQL live@db.example.org:5432/live``, ``SQLite /var/live.db``."""
    if url.startswith("sqlite"):
        return f"SQLite {url.split(':///', 1)[-1]}"
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"PostgreSQL {user}{parts.hostname or 'localhost'}{port}{parts.path}"


def _names(keys: list) -> str:
    return ", ".join(key.name for key in keys)


# -- the command ---------------------------------------------------------------------
_LABELS = {OK: "ok", WARN: "WARN", FAIL: "FAIL", SKIP: "skip"}


def render_text(findings: list[Finding]) -> str:
    """The findings for people: one line each (status, check, finding), the fix indented below, and a summary."""
    width = max(len(finding.check) for finding in findings)
    lines = []
    for finding in findings:
        lines.append(f"{_LABELS[finding.status]:4}  {finding.check:{width}}  {finding.finding}")
        if finding.fix:
            lines.append(f"{'':4}  {'':{width}}  fix: {finding.fix}")
    counts = {status: sum(1 for finding in findings if finding.status == status) for status in (OK, WARN, FAIL, SKIP)}
    lines.append(f"{len(findings)} checks: {counts[OK]} ok, {counts[WARN]} warning(s), {counts[FAIL]} failed, "
                 f"{counts[SKIP]} skipped")
    return "\n".join(lines)


def render_json(findings: list[Finding]) -> dict[str, Any]:
    """``{"status": worst, "exit_code": 0|1|2, "checks": [{"check", "status", "finding", "fix"}, ...]}``."""
    return {"status": worst(findings), "exit_code": exit_code(findings),
            "checks": [finding.as_dict() for finding in findings]}


def doctor_command(live, *, as_json: bool = False, echo: Callable[[str], None] = print) -> int:
    """Run every check for the composed application ``live`` (``app.bootstrap.Live``), print the findings
    with ``echo`` (text, or JSON with ``as_json``) and return the exit code (0, 1 or 2)."""
    import json

    from app.stacks.docker_engine import DockerEngine

    from app.stacks.swarm_engine import SwarmEngine

    engine = DockerEngine(live.settings.docker_host, timeout=ENGINE_TIMEOUT_SECONDS)
    swarm = (SwarmEngine(live.settings.docker_host, timeout=ENGINE_TIMEOUT_SECONDS,
                         proxy_container=live.settings.swarm_proxy_container)
             if live.settings.orchestrator == "swarm" else None)
    findings = Doctor(live.settings, live.db, engine, live.catalog, ingress=live.ingress,
                      store=live.backups.store, swarm=swarm).run()
    echo(json.dumps(render_json(findings), indent=2) if as_json else render_text(findings))
    return exit_code(findings)
