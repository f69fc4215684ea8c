"""Liveness and readiness probes (the full HTTP API comes with its own blueprints).

Both answer without credentials, so they say *what* is not ready in fixed
words ("unavailable", "pending migrations: 1", "last sync failed at ...",
"no heartbeat for 42 s") and never quote an error or name a host: host names,
URLs and library text go to the log.

``/readyz`` answers ``ready`` (200), ``degraded`` (200: this process serves
and records calls, but the catalog source failed or no worker runs the
operations) or ``unavailable`` (503: the database or the engine cannot be
used, or a migration is pending). The backup store unreachable is ``degraded`` too:
orders run, backups fail (visibly) until it answers. Degraded stays 200 on purpose: a load
balancer must keep sending calls, which are recorded and run once the worker
is back; monitoring alerts on the status word or on the metrics
``live_worker_alive`` and ``live_worker_heartbeat_age_seconds``.
"""
from __future__ import annotations

import logging

import peewee
from apiflask import APIBlueprint
from flask import jsonify

from app.collaborators import queries
from app.errors import LiveError

log = logging.getLogger(__name__)
bp = APIBlueprint("health", __name__, tag="Health")
TIME = "%Y-%m-%d %H:%M:%S"


@bp.get("/healthz")
@bp.doc(summary="The process is alive (no credentials)")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
@bp.doc(summary="Database and Docker engine reachable (no credentials); 503 names what is not",
        responses={200: "Ready, or degraded: the catalog source failed or no worker runs operations",
                   503: "Not ready: the body names the failing dependency"})
def readyz():
    """Database (reachable, no pending migration) and engine checks decide readiness (503 when one fails);
    the catalog, the worker's heartbeat, the ingress and the backup store make it ``degraded`` (still 200) when
    they fail."""
    checks = {}
    try:
        pending = queries.pending_migrations()
        if pending:
            log.warning("readyz: pending migrations: %s", ", ".join(pending))
        checks["database"] = {"ok": not pending, "detail": f"pending migrations: {len(pending)}" if pending else "ok"}
    except peewee.PeeweeException as exc:
        log.warning("readyz: database unavailable: %s", exc)
        checks["database"] = {"ok": False, "detail": "unavailable"}
    try:
        queries.ping_engine()
        checks["docker"] = {"ok": True, "detail": "ok"}
    except LiveError as exc:
        log.warning("readyz: Docker engine unavailable: %s", exc)
        checks["docker"] = {"ok": False, "detail": "unavailable"}
    ready = all(check["ok"] for check in checks.values())
    # A failing catalog source is reported, not fatal: orders keep using the last good catalog.
    checks["catalog"] = _catalog_check()
    # No worker: calls are still recorded (and run once a worker is back), so degraded, not unavailable.
    checks["worker"] = _worker_check() if checks["database"]["ok"] else UNKNOWN
    # The proxy down: orders run and operations finish; their routes wait for it. Degraded too.
    checks["ingress"] = _ingress_check() if checks["database"]["ok"] else UNKNOWN
    # The backup store down: orders run, backups fail (each one visibly) until it answers. Degraded too.
    checks["backup_store"] = _backup_store_check()
    healthy = all(checks[name]["ok"] for name in ("catalog", "worker", "ingress", "backup_store"))
    status = ("ready" if healthy else "degraded") if ready else "unavailable"
    if ready:
        return jsonify(status=status, checks=checks), 200
    return jsonify(status=status, checks=checks), 503, {"Retry-After": "5"}  # as every 503 of the bridge


#: A check whose state the database cannot give right now.
UNKNOWN = {"ok": False, "detail": "unknown"}


def _read(what: str, reader):
    """``reader()``, or None when the database cannot be read now (logged, with ``what`` it was for)."""
    try:
        return reader()
    except peewee.PeeweeException as exc:
        log.warning("readyz: %s unreadable: %s", what, exc)
        return None


def _catalog_check() -> dict:
    state = _read("catalog state", queries.catalog_status)
    if state is None:
        return UNKNOWN
    if state.last_error:
        # The error itself (GitLab URL, server answer) is in the worker's log and, for admin keys, GET /api/v1/catalog.
        failed = f"last sync failed at {state.last_attempt_at:{TIME}}Z" if state.last_attempt_at else "last sync failed"
        since = f"last good sync {state.last_success_at:{TIME}}Z" if state.last_success_at else "no good sync yet"
        return {"ok": False, "detail": f"{failed}; serving the last good catalog ({since})"}
    if state.last_success_at is None:
        return {"ok": True, "detail": "not synced yet"}
    return {"ok": True, "detail": f"synced {state.last_success_at:{TIME}}Z at commit {(state.commit or '-')[:12]}"}


def _ingress_check() -> dict:
    """Whether the proxy answers and holds every order's route, in fixed words (no address)."""
    state = _read("ingress state", queries.ingress_status)
    if state is None:
        return UNKNOWN
    if not state.enabled:
        return {"ok": True, "detail": "off (LIVE_CADDY_ADMIN_URL is not set)"}
    routes = f"{state.pending} route{'s' if state.pending != 1 else ''} pending"
    if not state.reachable:
        return {"ok": False, "detail": f"the proxy is unreachable or not programmed yet; {routes}"}
    if state.pending:
        return {"ok": False, "detail": f"{routes}: the worker applies them"}
    return {"ok": True, "detail": "ok"}


def _backup_store_check() -> dict:
    """Whether the backup store (LIVE_BACKUP_STORE) answers, in fixed words: never its location or the cause."""
    try:
        queries.check_backup_store()
    except LiveError as exc:
        log.warning("readyz: backup store unavailable: %s", exc)
        return {"ok": False, "detail": "unreachable: backups fail until it answers"}
    return {"ok": True, "detail": "ok"}


def _worker_check() -> dict:
    """Whether a worker beats (the rule of app/orders/heartbeat.py), in fixed words without its host name."""
    worker = _read("worker heartbeat", queries.worker_status)
    if worker is None:
        return UNKNOWN
    if worker.age_seconds is None:
        log.warning("readyz: no worker heartbeat: no worker is running")
        return {"ok": False, "detail": "no worker is running (none has a heartbeat)"}
    if not worker.alive:
        log.warning("readyz: the heartbeat of worker %s is %.0f s old", worker.worker, worker.age_seconds)
        return {"ok": False, "detail": f"no heartbeat for {worker.describe_age()} (last at {worker.beat_at:{TIME}}Z); "
                                       "operations wait until a worker runs"}
    return {"ok": True, "detail": f"heartbeat {worker.describe_age()} ago"}
