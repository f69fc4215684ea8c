"""Request ids, structured access logs and Prometheus metrics."""
from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid

from flask import Flask, Response, g, request
from peewee import PeeweeException, fn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from app.models import Operation, Order

access_log = logging.getLogger("app.web.access")
log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

REQUESTS = Counter("live_http_requests_total", "HTTP requests", ["method", "endpoint", "status"])
LATENCY = Histogram("live_http_request_duration_seconds", "HTTP request latency", ["method", "endpoint"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120))


class DatabaseCollector:
    """Orders by status and operations by kind and state, read at scrape time (the same in every process)."""

    def collect(self):
        try:
            yield from self._collect()
        except PeeweeException as exc:  # the database is down: serve the request metrics anyway
            log.warning("metrics without database figures: %s", exc)

    def _collect(self):
        orders = GaugeMetricFamily("live_orders", "Orders by status", labels=["status"])
        for status, count in Order.select(Order.status, fn.COUNT(Order.id)).group_by(Order.status).tuples():
            orders.add_metric([status], count)
        yield orders
        operations = GaugeMetricFamily("live_operations", "Operations by kind and state", labels=["kind", "state"])
        query = (Operation.select(Operation.kind, Operation.state, fn.COUNT(Operation.id))
                 .group_by(Operation.kind, Operation.state).tuples())
        for kind, state, count in query:
            operations.add_metric([kind, state], count)
        yield operations


def metrics_registry() -> CollectorRegistry:
    """Aggregates all gunicorn workers when PROMETHEUS_MULTIPROC_DIR is set, else this process."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REQUESTS)
        registry.register(LATENCY)
    registry.register(DatabaseCollector())
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
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
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
        return Response(generate_latest(metrics_registry()), mimetype=CONTENT_TYPE_LATEST)
