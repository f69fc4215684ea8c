"""Liveness and readiness probes (the full HTTP API comes with its own blueprints).

Both answer without credentials, so they say *what* is not ready in fixed
words ("unavailable", "pending migrations: 1", "last sync failed at ...")
and never quote an error: host names, URLs and library text go to the log.
"""
from __future__ import annotations

import logging

import peewee
from apiflask import APIBlueprint
from flask import current_app, jsonify

from app.db import pending_migrations
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
        responses={200: "Ready", 503: "Not ready: the body names the failing dependency"})
def readyz():
    """Database (reachable, no pending migration) and engine checks decide readiness; the catalog is reported."""
    live = current_app.extensions["live"]
    checks = {}
    try:
        pending = pending_migrations(live.db)
        if pending:
            log.warning("readyz: pending migrations: %s", ", ".join(pending))
        checks["database"] = {"ok": not pending, "detail": f"pending migrations: {len(pending)}" if pending else "ok"}
    except peewee.PeeweeException as exc:
        log.warning("readyz: database unavailable: %s", exc)
        checks["database"] = {"ok": False, "detail": "unavailable"}
    try:
        live.runtime.ping()
        checks["docker"] = {"ok": True, "detail": "ok"}
    except LiveError as exc:
        log.warning("readyz: Docker engine unavailable: %s", exc)
        checks["docker"] = {"ok": False, "detail": "unavailable"}
    ready = all(check["ok"] for check in checks.values())
    # A failing catalog source is reported, not fatal: orders keep using the last good catalog.
    checks["catalog"] = _catalog_check(live)
    status = ("ready" if checks["catalog"]["ok"] else "degraded") if ready else "unavailable"
    return jsonify(status=status, checks=checks), 200 if ready else 503


def _catalog_check(live) -> dict:
    try:
        state = live.catalog.status()
    except peewee.PeeweeException as exc:
        log.warning("readyz: catalog state unreadable: %s", exc)
        return {"ok": False, "detail": "unknown"}
    if state.last_error:
        # The error itself (GitLab URL, server answer) is in the worker's log and, for admin keys, GET /api/v1/catalog.
        failed = f"last sync failed at {state.last_attempt_at:{TIME}}Z" if state.last_attempt_at else "last sync failed"
        since = f"last good sync {state.last_success_at:{TIME}}Z" if state.last_success_at else "no good sync yet"
        return {"ok": False, "detail": f"{failed}; serving the last good catalog ({since})"}
    if state.last_success_at is None:
        return {"ok": True, "detail": "not synced yet"}
    return {"ok": True, "detail": f"synced {state.last_success_at:{TIME}}Z at commit {(state.commit or '-')[:12]}"}
