"""GeoCat Live Bridge: the application factory."""
from __future__ import annotations

from apiflask import APIFlask
from flask import request

from app import collaborators
from app.bootstrap import bootstrap
from app.config import Settings

# Request bodies of every route unless its view says otherwise (app.web.input_guard.body_limit).
MAX_BODY_BYTES = 64 * 1024

API_DESCRIPTION = """The bridge between WHMCS and Live.

- `/whmcs/v1/*`: the WHMCS server-module callbacks (scope `whmcs`).
- `/api/v1/*`: the developer REST API (scope `read`; `admin` for changes).
- `/geocat-live/api/1.0/order/{instance}`: GeoCat Live 1.0 for GeoCat Bridge desktop clients (public).

Send `Authorization: Bearer <token>`; make keys with `flask --app wsgi live apikey create NAME --scope SCOPE`.
Errors are `{"error": {"code", "message", "details"}}`; every response carries `X-Request-ID`.
"""


def create_app(settings: Settings | None = None) -> APIFlask:
    live = bootstrap(settings)
    app = APIFlask(__name__, title="GeoCat Live Bridge", version="1.0",
                   spec_path="/api/v1/openapi.json", docs_path="/api/v1/docs")

    from app.web.schemas import ErrorOut
    from app.web.unread_body import CloseUnreadBody
    from app.web.wait_slots import WaitSlots

    # What views and CLI commands use (app/collaborators.py). Lifecycle calls that wait hold a thread:
    # at most LIVE_WAIT_SLOTS of them at once in this process.
    collaborators.init_app(app, live, WaitSlots(live.settings.wait_slots))
    # An answer given before the body was read (401, 404, 413...) closes the connection: a slow body holds no thread.
    app.wsgi_app = CloseUnreadBody(app.wsgi_app)

    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        DESCRIPTION=API_DESCRIPTION,
        HTTP_ERROR_SCHEMA=ErrorOut,
        VALIDATION_ERROR_SCHEMA=ErrorOut,
        AUTO_OPERATION_ID=True,
        JSON_SORT_KEYS=False,
    )

    # First of all before_request hooks: every answer, even one to a failed hook, carries its request id.
    from app.web.observability import init_observability

    init_observability(app)

    # Liveness, readiness and metrics must answer while the database is down (a supervisor would otherwise
    # restart healthy processes; /readyz names the dependency that fails); they open it themselves if needed.
    no_database = {"/healthz", "/readyz", "/metrics"}

    @app.before_request
    def _open_db():
        if request.path not in no_database:
            live.db.connect(reuse_if_open=True)

    @app.teardown_request
    def _close_db(_exc):
        if not live.db.is_closed():
            live.db.close()

    from app.cli import live_cli
    from app.web import api_v1, geocat_live, gitlab_hook, health, ingress, whmcs
    from app.web.errors import register_error_handlers
    from app.web.input_guard import init_input_guard
    from app.web.openapi import register_spec_processor

    init_input_guard(app)
    register_error_handlers(app)
    register_spec_processor(app)
    for blueprint in (health.bp, whmcs.bp, api_v1.bp, geocat_live.bp, gitlab_hook.bp, ingress.bp):
        app.register_blueprint(blueprint)

    # The docs page loads Swagger UI from the bridge, never from a CDN: it works on hosts without internet.
    from app.web.docs_ui import init_docs_ui

    init_docs_ui(app)
    app.cli.add_command(live_cli)
    return app
