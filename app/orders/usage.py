"""Resource usage per order, for billing (WHMCS UsageUpdate) and operators.

A pass costs a constant number of engine calls for the listing (one disk
usage call, one container list) plus one stats call per running container
of the orders asked for, made in parallel.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from app.errors import LiveError
from app.models import Order
from app.stacks.engine import Engine
from app.stacks.project import deployment_selector, order_id_of

log = logging.getLogger(__name__)
MB = 1024 * 1024


@dataclass
class OrderUsage:
    service_id: int
    status: str
    disk_mb: float = 0.0
    memory_mb: float = 0.0
    memory_limit_mb: float | None = None
    cpu_seconds: float = 0.0
    containers_running: int = 0
    containers_total: int = 0


def collect_usage(engine: Engine, deployment: str, orders: list[Order],
                  memory_limits: dict[int, float | None]) -> list[OrderUsage]:
    by_id = {order.id: OrderUsage(order.whmcs_service_id, order.status, memory_limit_mb=memory_limits.get(order.id))
             for order in orders}
    if not by_id:
        return []
    for volume in engine.volume_usage(deployment_selector(deployment)):
        usage = by_id.get(order_id_of(volume.labels))
        if usage is not None:
            usage.disk_mb += round(volume.size / MB, 2)
    running = []
    for container in engine.list_containers(deployment_selector(deployment)):
        usage = by_id.get(order_id_of(container.labels))
        if usage is None:
            continue
        usage.containers_total += 1
        if container.running:
            usage.containers_running += 1
            running.append((usage, container.id))
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="stats") as pool:
        results = pool.map(lambda item: _stats(engine, item[1]), running)
        for (usage, _), (memory, cpu) in zip(running, results):
            usage.memory_mb = round(usage.memory_mb + memory / MB, 2)
            usage.cpu_seconds = round(usage.cpu_seconds + cpu, 3)
    return [by_id[order.id] for order in orders]


def _stats(engine: Engine, container_id: str) -> tuple[float, float]:
    try:
        return engine.container_usage(container_id)
    except LiveError as exc:  # a container that stopped meanwhile has no stats: count it as idle
        log.info("no stats for container %s: %s", container_id[:12], exc)
        return 0.0, 0.0
