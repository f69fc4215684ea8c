"""GeoCat Live Bridge: the Flask application factory."""
from __future__ import annotations

import logging

from flask import Flask

from app.bootstrap import Live, bootstrap
from app.config import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Flask:
    live = bootstrap(settings)
    app = Flask(__name__)
    app.extensions["live"] = live

    @app.before_request
    def _open_db():
        live.db.connect(reuse_if_open=True)

    @app.teardown_request
    def _close_db(_exc):
        if not live.db.is_closed():
            live.db.close()

    from app.web.health import bp as health_bp
    from app.cli import live_cli

    app.register_blueprint(health_bp)
    app.cli.add_command(live_cli)
    return app


def current_live(app: Flask) -> Live:
    return app.extensions["live"]
