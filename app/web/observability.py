"""Request ids, structured access logs and Prometheus metrics."""
from __future__ import annotations

import functools
import json
import logging
import os
import re
import time
import uuid

from apiflask.schemas import FileSchema
from flask import Flask, Response, g, request
from peewee import PeeweeException
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from app.collaborators import queries
from app.orders.queries import OrderQueries
from app.web.auth import auth

access_log = logging.getLogger("app.web.access")
log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# A variable of a Werkzeug rule, with its optional converter and arguments (werkzeug.routing.rules._part_re).
_RULE_VARIABLE = re.compile(r"<(?:[a-zA-Z_][a-zA-Z0-9_]*(?:\(.*?\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>")

REQUESTS = Counter("live_http_requests_total", "HTTP requests", ["method", "endpoint", "status"])
LATENCY = Histogram("live_http_request_duration_seconds", "HTTP request latency", ["method", "endpoint"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120))


class DatabaseCollector:
    """Figures read from the database at scrape time (the same in every process).

    - ``live_orders{status}``, ``live_operations{kind,state}``: counts.
    - ``live_worker_heartbeat_age_seconds``: seconds since the newest worker heartbeat; ``-1`` when no
      worker has one (none ever started, or the last one stopped cleanly).
      Absent while the database cannot be read.
    - ``live_worker_alive``: 1 while that heartbeat is younger than the threshold of
      ``app/orders/heartbeat.py`` (``max(15 s, 10 × LIVE_WORKER_POLL_SECONDS)``), else 0; also 0 while the
      database cannot be read (unknown is not alive).
    - ``live_database_up``: 1 when the database answered the scrape, else 0.
    - ``live_mirror_fresh``: 1 while the engine mirror is fresh (the rule of ``app/stacks/mirror.py``
      :func:`~app.stacks.mirror.freshness`: the worker's follower connected and beaten within
      LIVE_MIRROR_STALE_SECONDS; views show runtime states only then), else 0; also 0 while the database cannot be
      read. ``live_mirror_age_seconds``: seconds since the mirror's last beat; ``-1`` when no worker ever followed
      the engine; absent while the database cannot be read. Read from the ``engine_mirror`` row, never the engine.
    - ``live_backup_last_success_timestamp_seconds{instance}``: when the newest successful backup of each order
      that is not terminated finished (Unix time); orders without one have no series (alert on ``absent`` or on
      ``time() - ... > 2 * 86400``). ``live_backup_bytes{instance}``: that backup's size.
    - ``live_backup_failures_total{kind}``: failed backup attempts (Backup rows), every kind present from 0.

    Read with a fixed number of grouped queries, whatever the number of orders.

    ``queries`` reads them (:class:`~app.orders.queries.OrderQueries`).
    """

    def __init__(self, queries: OrderQueries):
        self.queries = queries

    def collect(self):
        try:
            yield from self._counts()
            database_up = 1
        except PeeweeException as exc:  # the database is down: serve the request metrics anyway
            log.warning("metrics without database figures: %s", exc)
            database_up = 0
        yield GaugeMetricFamily("live_database_up", "1 when the bridge's database answered this scrape, else 0",
                                value=database_up)
        worker = _unless_down("worker heartbeat", self.queries.worker_status)
        if worker is not None:
            age = worker.age_seconds if worker.age_seconds is not None else -1.0
            yield GaugeMetricFamily("live_worker_heartbeat_age_seconds",
                                    "Seconds since the newest worker heartbeat; -1 when no worker has one", value=age)
        # Unknown counts as not alive: an alert on live_worker_alive == 0 must fire while the database is down.
        yield GaugeMetricFamily("live_worker_alive", "1 while a worker's heartbeat is fresh, else 0",
                                value=1 if worker is not None and worker.alive else 0)
        mirror = _unless_down("engine mirror", self.queries.mirror_freshness)
        if mirror is not None:
            yield GaugeMetricFamily("live_mirror_age_seconds", "Seconds since the engine mirror's last beat; -1 when "
                                    "no worker ever followed the engine",
                                    value=mirror.age_seconds if mirror.age_seconds is not None else -1.0)
        # Unknown is not fresh, as for live_worker_alive.
        yield GaugeMetricFamily("live_mirror_fresh", "1 while the engine mirror is fresh (views show runtime states), "
                                "else 0", value=1 if mirror is not None and mirror.fresh else 0)

    def _counts(self):
        orders = GaugeMetricFamily("live_orders", "Orders by status", labels=["status"])
        for status, count in self.queries.order_counts():
            orders.add_metric([status], count)
        operations = GaugeMetricFamily("live_operations", "Operations by kind and state", labels=["kind", "state"])
        for kind, state, count in self.queries.operation_counts():
            operations.add_metric([kind, state], count)
        instances, failures = self.queries.backup_figures()
        last = GaugeMetricFamily("live_backup_last_success_timestamp_seconds",
                                 "When the order's newest successful backup finished (Unix time)", labels=["instance"])
        size = GaugeMetricFamily("live_backup_bytes", "Size of the order's newest successful backup (bytes)",
                                 labels=["instance"])
        for instance, at, size_bytes in instances:
            last.add_metric([instance], at)
            size.add_metric([instance], size_bytes)
        failed = CounterMetricFamily("live_backup_failures", "Failed backup attempts by kind", labels=["kind"])
        for kind, count in failures:
            failed.add_metric([kind], count)
        return [orders, operations, last, size, failed]


class OrderCollector:
    """One set of series per order that is not terminated, for ``GET /metrics/orders`` (a read key: they name
    customers' instances and services), read at each scrape with the five queries of
    :meth:`~app.orders.queries.OrderQueries.order_figures` whatever the number of orders, never the engine.

    - ``live_order_status{order_id,service_id,instance,product,status} 1``: one series per order, its current
      status (``pending``, ``active``, ``suspended``, ``failed``) as the ``status`` label; the order's identity for
      discovery (Zabbix LLD; Prometheus joins the others on ``instance``).
    - by ``instance`` alone: ``live_order_failing`` (1 while the drift checker calls it failing, else 0);
      ``live_order_failed_operations_total`` (its operations that ended failed, ever, from 0);
      ``live_order_disk_bytes`` (its named volumes) and ``live_order_memory_bytes`` (its running containers, page
      cache excluded) as the usage sampler last measured them, absent until sampled;
      ``live_order_backup_last_success_timestamp_seconds`` (when its newest successful backup finished, Unix time;
      absent before its first).

    - ``live_orders_reported``: how many orders this answer holds (0 without any): a series every answer has, for
      an alert on the endpoint itself (a wrong key, a database down).

    A database error is not caught: the route answers it as any other (``503``), a scrape without figures.
    ``queries`` reads them (:class:`~app.orders.queries.OrderQueries`).
    """

    def __init__(self, queries: OrderQueries):
        self.queries = queries

    def collect(self):
        status = GaugeMetricFamily("live_order_status", "1 for the order's current status (the status label); one "
                                   "series per order not terminated",
                                   labels=["order_id", "service_id", "instance", "product", "status"])
        failing = GaugeMetricFamily("live_order_failing", "1 while the drift checker calls the order failing, else 0",
                                    labels=["instance"])
        failed = CounterMetricFamily("live_order_failed_operations", "Operations of the order that ended failed",
                                     labels=["instance"])
        disk = GaugeMetricFamily("live_order_disk_bytes", "Disk used by the order's named volumes, as last sampled "
                                 "(bytes)", labels=["instance"])
        memory = GaugeMetricFamily("live_order_memory_bytes", "Memory used by the order's running containers, page "
                                   "cache excluded, as last sampled (bytes)", labels=["instance"])
        backup = GaugeMetricFamily("live_order_backup_last_success_timestamp_seconds", "When the order's newest "
                                   "successful backup finished (Unix time)", labels=["instance"])
        for order in self.queries.order_figures():
            status.add_metric([str(order.order_id), str(order.service_id), order.instance, order.product,
                               order.status], 1)
            failing.add_metric([order.instance], 1 if order.failing else 0)
            failed.add_metric([order.instance], order.failed_operations)
            for family, value in ((disk, order.disk_bytes), (memory, order.memory_bytes),
                                  (backup, order.last_backup_at)):
                if value is not None:
                    family.add_metric([order.instance], value)
        reported = GaugeMetricFamily("live_orders_reported", "Orders in this answer (every order not terminated)",
                                     value=len(status.samples))
        return [reported, status, failing, failed, disk, memory, backup]


def _unless_down(what: str, read):
    """``read()``, or None (logged) when the database cannot answer it."""
    try:
        return read()
    except PeeweeException as exc:
        log.warning("metrics: %s unreadable: %s", what, exc)
        return None


@functools.lru_cache(maxsize=1024)
def route_label(rule: str) -> str:
    """The ``endpoint`` label of a route: its rule as the OpenAPI document writes the path.

    ``/whmcs/v1/services/<int(min=1, max=2147483647):service_id>`` is ``/whmcs/v1/services/{service_id}``:
    no converter syntax in dashboards, and the same text as the API documentation. Cached: the
    rules are the app's, a bounded set.
    """
    return _RULE_VARIABLE.sub(r"{\1}", rule)


def metrics_registry(queries: OrderQueries) -> CollectorRegistry:
    """Aggregates all gunicorn workers when PROMETHEUS_MULTIPROC_DIR is set, else this process.

    The database figures are read with ``queries`` at each scrape (:class:`DatabaseCollector`).
    """
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REQUESTS)
        registry.register(LATENCY)
    registry.register(DatabaseCollector(queries))
    return registry


def init_observability(app: Flask) -> None:
    @app.before_request
    def start_request():
        supplied = request.headers.get("X-Request-ID", "")
        g.request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def finish_request(response):
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        endpoint = route_label(request.url_rule.rule) if request.url_rule else "unmatched"
        response.headers["X-Request-ID"] = g.get("request_id", "-")
        REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
        LATENCY.labels(request.method, endpoint).observe(elapsed)
        principal = g.get("flask_httpauth_user")
        access_log.info(json.dumps({
            "request_id": g.get("request_id"), "method": request.method, "path": request.path,
            "endpoint": endpoint, "status": response.status_code, "duration_ms": round(elapsed * 1000, 2),
            "key": getattr(principal, "name", None), "remote": request.remote_addr,
        }, sort_keys=True))
        return response

    @app.get("/metrics")
    @app.doc(hide=True)
    def metrics():
        return Response(generate_latest(metrics_registry(queries)), mimetype=CONTENT_TYPE_LATEST)

    @app.get("/metrics/orders")
    @app.auth_required(auth, roles=["read"])
    @app.output(FileSchema(type="string"), content_type="text/plain",
                description="The Prometheus text exposition format (as /metrics)")
    @app.doc(summary="Per-order metrics (Prometheus text)", description=(
        "One set of series per order that is not terminated (status with the order's identity, failing, failed "
        "operations, disk, memory, last successful backup): docs/API.md. A key with the read scope: they name "
        "every customer's instance and service, unlike the public `/metrics`."))
    def order_metrics():
        registry = CollectorRegistry()
        registry.register(OrderCollector(queries))
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
