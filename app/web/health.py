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
    return jsonify(status="ready" if ready else "unavailable", checks=checks), 200 if ready else 503
