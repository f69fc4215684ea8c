"""Resource usage per order: sampled in the background by the worker, answered from the ``order_usage`` table.

:class:`UsageSampler` (run by the worker, :meth:`UsageSampler.tick`) is the only writer of
:class:`~app.models.OrderUsage` and the only caller of the engine's disk usage (``docker system df``):

- **memory, CPU, containers** every LIVE_USAGE_SAMPLE_SECONDS (:meth:`UsageSampler.sample`): one listing of the
  installation's containers by label (one engine call; a swarm: two, services and tasks), then for each running
  container its cgroup files when this machine runs it (:class:`CgroupReader`, no engine call), else one stats call
  to the engine that runs it (a swarm task on another node: that node's engine, ``SwarmEngine.node_engine``), at
  most LIVE_USAGE_STATS_PER_SECOND of them (a pass with N such containers lasts at least N / that many seconds).
  "Local" is decided per container: its cgroup files exist here (a remote ``DOCKER_HOST``, a bridge in a container
  of its own or another swarm node has none of them).
- **disk** at most once per LIVE_USAGE_DISK_SECONDS (:meth:`UsageSampler.sample_disk`): ONE ``docker system df``
  (a swarm: one per node). The engine refuses a second df while one runs ("a disk usage operation is already
  running"): asked per request, concurrent usage requests failed with 503.
- **memory limits** (the sum of the services' ``mem_limit``) rendered once per (revision, plan) and cached.

Every usage answer (:func:`usage_answers`, ``GET /whmcs/v1/usage``) reads the table in one query and never calls
the engine; an order not sampled yet answers ``sampled_at`` (or ``disk_sampled_at``) ``null`` with its figures
``null``, never a made-up 0.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import peewee

from app.errors import EngineUnavailable, LiveError
from app.backups.service import BackupState
from app.models import Backup, Order, OrderUsage, utcnow
from app.orders.lifecycle import OrderStatus
from app.presenters import timestamp
from app.stacks.engine import ContainerState, Engine
from app.stacks.project import Project, deployment_selector, order_id_of

log = logging.getLogger(__name__)
MB = 1024 * 1024
#: Stats calls in flight at once when cgroup files cannot be read (each also waits for the rate bound).
STATS_THREADS = 4
#: Rows per INSERT ... ON CONFLICT statement (9 values a row: under SQLite's oldest limit of 999 variables).
ROWS_PER_STATEMENT = 100
_SAMPLE_FIELDS = [OrderUsage.order, OrderUsage.sampled_at, OrderUsage.memory_bytes, OrderUsage.memory_limit_bytes,
                  OrderUsage.cpu_seconds, OrderUsage.containers_running, OrderUsage.containers_total]
_DISK_FIELDS = [OrderUsage.order, OrderUsage.disk_bytes, OrderUsage.disk_sampled_at]


# -- cgroup files ---------------------------------------------------------------------------------------------
class CgroupReader:
    """Memory and CPU of a container from this machine's cgroup files (no engine call).

    ``root`` is the cgroup mount (``/sys/fs/cgroup``). cgroup v2 (``cgroup.controllers`` at the root):
    ``<root>/docker/<id>/`` (the cgroupfs driver) or ``<root>/system.slice/docker-<id>.scope/`` (systemd),
    ``memory.current`` − ``inactive_file`` of ``memory.stat``, ``usage_usec`` of ``cpu.stat``. cgroup v1:
    ``<root>/memory/docker/<id>/`` or ``<root>/memory/system.slice/docker-<id>.scope/``: ``memory.usage_in_bytes``
    − ``total_inactive_file`` of ``memory.stat`` (page cache is reclaimable: what ``docker stats`` shows), and
    ``cpuacct.usage`` (ns) under ``cpuacct/`` or ``cpu,cpuacct/`` likewise.
    """

    def __init__(self, root: Path | str = "/sys/fs/cgroup"):
        self.root = Path(root)
        self.version = 2 if (self.root / "cgroup.controllers").is_file() else 1

    def read(self, container_id: str) -> tuple[float, float] | None:
        """``(memory bytes in use, CPU seconds used)`` of the container, or None when this machine has no cgroup
        of it (not local: ask the engine). A container that stops while it is read reads ``(0.0, 0.0)``."""
        if not container_id or "/" in container_id or container_id.startswith("."):
            return None
        if self.version == 2:
            found = self._first([self.root / "docker" / container_id,
                                 self.root / "system.slice" / f"docker-{container_id}.scope"], "memory.current")
            if found is None:
                return None
            try:
                used = int((found / "memory.current").read_text()) - _stat(found / "memory.stat").get("inactive_file", 0)
                return float(max(0, used)), _stat(found / "cpu.stat").get("usage_usec", 0) / 1e6
            except (OSError, ValueError) as exc:
                log.debug("cgroup of %s gone while read: %s", container_id[:12], exc)
                return 0.0, 0.0
        memory = self._first([self.root / "memory" / "docker" / container_id,
                              self.root / "memory" / "system.slice" / f"docker-{container_id}.scope"],
                             "memory.usage_in_bytes")
        cpu = self._first([self.root / controller / parent
                           for controller in ("cpuacct", "cpu,cpuacct")
                           for parent in (f"docker/{container_id}", f"system.slice/docker-{container_id}.scope")],
                          "cpuacct.usage")
        if memory is None or cpu is None:
            return None
        try:
            stat = _stat(memory / "memory.stat")
            inactive = stat.get("total_inactive_file", stat.get("inactive_file", 0))
            used = int((memory / "memory.usage_in_bytes").read_text()) - inactive
            return float(max(0, used)), int((cpu / "cpuacct.usage").read_text()) / 1e9
        except (OSError, ValueError) as exc:
            log.debug("cgroup of %s gone while read: %s", container_id[:12], exc)
            return 0.0, 0.0

    @staticmethod
    def _first(folders: Iterable[Path], name: str) -> Path | None:
        return next((folder for folder in folders if (folder / name).is_file()), None)


def _stat(path: Path) -> dict[str, int]:
    """A flat-keyed cgroup file (``memory.stat``, ``cpu.stat``): ``{"key": value}``."""
    values = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            values[key] = int(value)
    return values


# -- the sampler ------------------------------------------------------------------------------------------------
class _RateBound:
    """At most ``per_second`` starts a second, for every thread together; ``wait`` returns False when stopped."""

    def __init__(self, per_second: float, clock: Callable[[], float], stopping: threading.Event):
        self.interval = 1.0 / per_second
        self.clock, self.stopping = clock, stopping
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> bool:
        with self._lock:
            now = self.clock()
            start = max(now, self._next)
            self._next = start + self.interval
        return not self.stopping.wait(max(0.0, start - now))


@dataclass
class SamplePass:
    """What one :meth:`UsageSampler.sample` did: orders written, containers listed, running containers read from
    cgroup files and by stats calls, stats calls that failed (their orders keep their previous sample)."""

    orders: int = 0
    containers: int = 0
    cgroup_reads: int = 0
    stats_calls: int = 0
    stats_failures: int = 0
    seconds: float = 0.0


@dataclass
class _Figures:
    memory: float = 0.0
    cpu: float = 0.0
    running: int = 0
    total: int = 0
    failed: bool = False
    running_containers: list[ContainerState] = field(default_factory=list)


class UsageSampler:
    """Samples every order's usage into ``order_usage`` (see the module docstring); one per worker.

    ``render(order)`` is the order's project (``OperationRunner.project``), rendered once per (revision, plan) for
    its memory limits. ``cgroups`` None: every running container is asked for by a stats call. ``clock`` and
    ``stats_per_second`` bound the stats calls (monotonic seconds).
    """

    def __init__(self, engine: Engine, deployment: str, render: Callable[[Order], Project], *,
                 sample_seconds: float = 30.0, disk_seconds: float = 300.0, stats_per_second: float = 10.0,
                 cgroups: CgroupReader | None = None, clock: Callable[[], float] = time.monotonic):
        self.engine = engine
        self.deployment = deployment
        self.render = render
        self.sample_seconds = sample_seconds
        self.disk_seconds = disk_seconds
        self.cgroups = cgroups
        self.clock = clock
        self._stopping = threading.Event()
        self._rate = _RateBound(stats_per_second, clock, self._stopping)
        self._limits: dict[tuple[int, str], int | None] = {}
        self._df_lock = threading.Lock()
        self._last_sample: float | None = None
        self._last_df: float | None = None

    @property
    def tick_seconds(self) -> float:
        """How often :meth:`tick` should run: the shorter of the two intervals."""
        return min(self.sample_seconds, self.disk_seconds)

    def stop(self) -> None:
        """End a pass early (the worker stops): stats calls not made yet are not made, nothing more is written."""
        self._stopping.set()

    def tick(self) -> None:
        """Sample memory/CPU if LIVE_USAGE_SAMPLE_SECONDS have passed since the last sample, and disk if
        LIVE_USAGE_DISK_SECONDS have since the last df. Raises the database's and the engine's errors (the worker
        logs them; the next tick tries again)."""
        if self._stopping.is_set():
            return
        if self._due(self._last_sample, self.sample_seconds):
            self._last_sample = self.clock()
            self.sample()
        if self._due(self._last_df, self.disk_seconds):
            self.sample_disk()

    def _due(self, last: float | None, seconds: float) -> bool:
        return last is None or self.clock() - last >= seconds * 0.95  # the scheduler's ticks are not exact

    # -- memory, CPU, containers --------------------------------------------------
    def sample(self) -> SamplePass:
        """One memory/CPU pass over every order not terminated (see the module docstring); returns what it did.

        Raises the engine's LiveError when the containers cannot be listed (no row is changed)."""
        started = self.clock()
        done = SamplePass()
        orders = list(Order.select(Order.id, Order.revision, Order.plan)
                      .where(Order.status != OrderStatus.TERMINATED).order_by(Order.id))
        containers = self.engine.list_containers(deployment_selector(self.deployment))
        done.containers = len(containers)
        figures = {order.id: _Figures() for order in orders}
        for container in containers:
            found = figures.get(order_id_of(container.labels))
            if found is None:
                continue
            found.total += 1
            if container.running:
                found.running += 1
                found.running_containers.append(container)
        asked = []
        for found in figures.values():
            for container in found.running_containers:
                local = self.cgroups.read(container.task_container or container.id) if self.cgroups else None
                if local is None:
                    asked.append((found, container))
                    continue
                done.cgroup_reads += 1
                found.memory += local[0]
                found.cpu += local[1]
        if asked:
            with ThreadPoolExecutor(max_workers=min(STATS_THREADS, len(asked)), thread_name_prefix="stats") as pool:
                results = list(pool.map(lambda item: self._stats(item[1]), asked))
            for (found, _), result in zip(asked, results):
                if result is None:
                    found.failed = True
                    done.stats_failures += 1
                    continue
                done.stats_calls += 1
                found.memory += result[0]
                found.cpu += result[1]
        if self._stopping.is_set():
            return done
        now = utcnow()
        rows = [{"order": order.id, "sampled_at": now, "memory_bytes": int(figures[order.id].memory),
                 "memory_limit_bytes": self._memory_limit(order), "cpu_seconds": round(figures[order.id].cpu, 3),
                 "containers_running": figures[order.id].running, "containers_total": figures[order.id].total}
                for order in orders if not figures[order.id].failed]
        _upsert(rows, _SAMPLE_FIELDS)
        _forget_terminated()
        done.orders = len(rows)
        done.seconds = round(self.clock() - started, 4)
        log.debug("usage sample: %s", done)
        return done

    def _stats(self, container: ContainerState) -> tuple[float, float] | None:
        """One stats call within the rate bound; None when stopped or when the engine that runs it cannot be
        reached (the order keeps its previous sample). A container that stopped meanwhile counts as idle."""
        if not self._rate.wait():
            return None
        try:
            return self.engine.running_usage(container)
        except EngineUnavailable as exc:
            log.warning("no stats for container %s: %s", container.name, exc)
            return None
        except LiveError as exc:
            log.info("no stats for container %s (stopped meanwhile?): %s", container.name, exc)
            return 0.0, 0.0

    def _memory_limit(self, order: Order) -> int | None:
        """Sum of the order's services' memory limits in bytes, None when one is unlimited; rendered once per
        (revision, plan). A product that no longer renders has no known limit (logged once)."""
        key = (order.revision_id, order.plan)
        if key not in self._limits:
            try:
                full = Order.with_relations().where(Order.id == order.id).get()
                limits = [service.mem_limit for service in self.render(full).stack.services.values()]
                self._limits[key] = None if not limits or any(limit is None for limit in limits) else int(sum(limits))
            except LiveError as exc:
                if exc.transient:
                    return None  # asked again at the next pass
                log.warning("memory limit of revision %s plan %s unknown: %s", order.revision_id, order.plan, exc)
                self._limits[key] = None
        return self._limits[key]

    # -- disk ------------------------------------------------------------------------
    def sample_disk(self) -> int | None:
        """ONE disk usage call (``docker system df``) for every order not terminated; returns the orders written,
        None when another disk sample is running (never two at once). Raises the engine's LiveError (no row is
        changed)."""
        if not self._df_lock.acquire(blocking=False):
            return None
        try:
            self._last_df = self.clock()
            usage = self.engine.volume_usage(deployment_selector(self.deployment))
            sizes: dict[int, int] = {}
            for volume in usage.volumes:
                order_id = order_id_of(volume.labels)
                if order_id is not None:
                    sizes[order_id] = sizes.get(order_id, 0) + volume.size
            now = utcnow()
            orders = Order.select(Order.id).where(Order.status != OrderStatus.TERMINATED).order_by(Order.id)
            if usage.unread_nodes:  # their disk is unknown: keep the last figure and its time, never write 0
                orders = orders.where(Order.node.is_null() | Order.node.not_in(sorted(usage.unread_nodes)))
            ids = [order_id for (order_id,) in orders.tuples()]
            if self._stopping.is_set():
                return 0
            _upsert([{"order": order_id, "disk_bytes": sizes.get(order_id, 0), "disk_sampled_at": now}
                     for order_id in ids], _DISK_FIELDS)
            return len(ids)
        finally:
            self._df_lock.release()


def _upsert(rows: list[dict[str, Any]], fields: list[peewee.Field]) -> None:
    """Insert or update ``fields`` of each order's row, the other columns kept (a few statements per pass)."""
    preserve = [f for f in fields if f is not OrderUsage.order]
    with OrderUsage._meta.database.atomic():
        for chunk in peewee.chunked(rows, ROWS_PER_STATEMENT):
            (OrderUsage.insert_many([[row[f.name] for f in fields] for row in chunk], fields=fields)
             .on_conflict(conflict_target=[OrderUsage.order], preserve=preserve).execute())


def _forget_terminated() -> None:
    """Rows of terminated orders are never answered: delete them (one statement)."""
    terminated = Order.select(Order.id).where(Order.status == OrderStatus.TERMINATED)
    OrderUsage.delete().where(OrderUsage.order.in_(terminated)).execute()


# -- the answer ---------------------------------------------------------------------------------------------------
def usage_answers(service_ids: list[int] | None = None) -> list[dict[str, Any]]:
    """Every order not terminated (or those WHMCS services), by order id, from ``order_usage`` in one query
    (``ServiceUsageOut``)::

        {"service_id", "status", "sampled_at": iso | None, "memory_mb", "memory_limit_mb", "cpu_seconds",
         "containers_running", "containers_total", "disk_sampled_at": iso | None, "disk_mb", "backup_mb"}

    Figures of a half not sampled yet are None (``sampled_at``/``disk_sampled_at`` None says so);
    ``memory_limit_mb`` is also None when a service is unlimited. ``backup_mb`` is not sampled: the sum of the sizes
    of the order's stored backups (:class:`~app.models.Backup` rows ``succeeded``: not pruned or deleted), 0.0
    without any, read in the same query. MB are MiB (2 decimals); never asks the engine.
    """
    stored = (Backup.select(Backup.order.alias("stored_order"), peewee.fn.SUM(Backup.size).alias("stored_bytes"))
              .where(Backup.state == BackupState.SUCCEEDED).group_by(Backup.order).alias("stored"))
    query = (Order.select(Order.whmcs_service_id, Order.status, OrderUsage.sampled_at, OrderUsage.memory_bytes,
                          OrderUsage.memory_limit_bytes, OrderUsage.cpu_seconds, OrderUsage.containers_running,
                          OrderUsage.containers_total, OrderUsage.disk_sampled_at, OrderUsage.disk_bytes,
                          stored.c.stored_bytes)
             .join(OrderUsage, peewee.JOIN.LEFT_OUTER, on=(OrderUsage.order == Order.id))
             .join_from(Order, stored, peewee.JOIN.LEFT_OUTER, on=(stored.c.stored_order == Order.id))
             .where(Order.status != OrderStatus.TERMINATED).order_by(Order.id))
    if service_ids:
        query = query.where(Order.whmcs_service_id.in_(service_ids))
    return [{"service_id": service_id, "status": status, "sampled_at": timestamp(sampled_at),
             "memory_mb": _mb(memory) if sampled_at else None, "memory_limit_mb": _mb(limit) if sampled_at else None,
             "cpu_seconds": cpu if sampled_at else None, "containers_running": running if sampled_at else None,
             "containers_total": total if sampled_at else None, "disk_sampled_at": timestamp(disk_at),
             "disk_mb": _mb(disk) if disk_at else None, "backup_mb": _mb(int(backups or 0))}
            for (service_id, status, sampled_at, memory, limit, cpu, running, total, disk_at, disk, backups)
            in query.tuples()]


def _mb(value: int | None) -> float | None:
    return None if value is None else round(value / MB, 2)

