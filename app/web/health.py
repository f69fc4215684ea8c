"""Liveness and readiness probes (the full HTTP API comes with its own blueprints)."""
from __future__ import annotations

import peewee
from apiflask import APIBlueprint
from flask import current_app, jsonify

from app.db import pending_migrations
from app.errors import LiveError

bp = APIBlueprint("health", __name__, tag="Health")


@bp.get("/healthz")
@bp.doc(summary="The process is alive (no credentials)")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
@bp.doc(summary="Database and Docker engine reachable (no credentials); 503 names what is not",
        responses={200: "Ready", 503: "Not ready: the body names the failing dependency"})
def readyz():
    live = current_app.extensions["live"]
    checks = {}
    try:
        pending = pending_migrations(live.db)
        checks["database"] = {"ok": not pending, "detail": f"pending migrations: {', '.join(pending)}" if pending else "ok"}
    except peewee.PeeweeException as exc:
        checks["database"] = {"ok": False, "detail": f"unreachable: {exc}"}
    try:
        live.runtime.ping()
        checks["docker"] = {"ok": True, "detail": "ok"}
    except LiveError as exc:
        checks["docker"] = {"ok": False, "detail": str(exc)}
    ready = all(check["ok"] for check in checks.values())
    # A failing catalog source is reported, not fatal: orders keep using the last good catalog.
    checks["catalog"] = _catalog_check(live)
    status = ("ready" if checks["catalog"]["ok"] else "degraded") if ready else "unavailable"
    return jsonify(status=status, checks=checks), 200 if ready else 503


def _catalog_check(live) -> dict:
    try:
        state = live.catalog.status()
    except peewee.PeeweeException as exc:
        return {"ok": False, "detail": f"unknown: {exc}"}
    if state.last_error:
        since = f"last good sync {state.last_success_at:%Y-%m-%d %H:%M:%S}Z" if state.last_success_at else "no good sync yet"
        return {"ok": False, "detail": f"{state.last_error} ({since}; serving the last good catalog)"}
    if state.last_success_at is None:
        return {"ok": True, "detail": "not synced yet"}
    return {"ok": True, "detail": f"synced {state.last_success_at:%Y-%m-%d %H:%M:%S}Z at commit {(state.commit or '-')[:12]}"}
