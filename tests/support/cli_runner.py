"""The ``live`` CLI of an application built around a test's ``Live`` (the in-memory engine's, usually)."""
from __future__ import annotations

from apiflask import APIFlask

from app import collaborators
from app.cli import live_cli
from app.web.wait_slots import WaitSlots


def live_cli_runner(live):
    """A click test runner of a Flask app holding ``live`` with the ``live`` command group: ``runner.invoke(args=
    ["live", ...])``."""
    app = APIFlask(__name__)
    collaborators.init_app(app, live, WaitSlots(0))
    app.cli.add_command(live_cli)
    return app.test_cli_runner()
