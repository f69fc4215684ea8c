"""What the HTTP views and the CLI commands work with, bound to the Flask app once by ``create_app``.

Views and commands import these names and use them as the objects they stand for::

    from app.collaborators import orders, queries

    outcome = orders.suspend(queries.order_for_service(service_id), requested_by=actor())

Each name is a :class:`werkzeug.local.LocalProxy` resolving, at each use, to the current app's
component, as Flask's own ``current_app``, ``g`` and ``request`` do; they work inside an application
context (every request, every ``flask --app wsgi live ...`` command). :func:`init_app` binds them; it
is the one place that stores the components on the app (``app.extensions``), so several apps (the
tests make one each) never share them.

- ``queries``: every read (:class:`app.orders.queries.OrderQueries`);
- ``orders``: the order use cases (:class:`app.orders.service.OrderService`);
- ``catalog``: catalog syncs (:class:`app.catalog.catalog.Catalog`);
- ``backups``: taking, checking and pruning backups (:class:`app.backups.service.BackupService`; its reads
  for views are in ``queries``);
- ``logs``: orders' service logs (:class:`app.orders.logs.OrderLogs`);
- ``settings``: the configuration (:class:`app.config.Settings`);
- ``wait_slots``: the bound on lifecycle calls that wait (:class:`app.web.wait_slots.WaitSlots`);
- ``live``: all components (:class:`app.bootstrap.Live`), for the CLI's installation commands
  (database schema, worker, doctor).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, current_app
from werkzeug.local import LocalProxy

if TYPE_CHECKING:
    from app.backups.service import BackupService
    from app.bootstrap import Live
    from app.catalog.catalog import Catalog
    from app.config import Settings
    from app.orders.logs import OrderLogs
    from app.orders.queries import OrderQueries
    from app.orders.service import OrderService
    from app.web.wait_slots import WaitSlots

LIVE = "live"
WAIT_SLOTS = "wait_slots"


def init_app(app: Flask, live: Live, wait_slots: WaitSlots) -> None:
    """Bind the app's components: what the proxies of this module resolve to inside its contexts."""
    app.extensions[LIVE] = live
    app.extensions[WAIT_SLOTS] = wait_slots


def _live() -> Live:
    return current_app.extensions[LIVE]


# Typed as the objects they stand for, as flask.globals does for current_app and request.
live: Live = LocalProxy(_live)  # type: ignore[assignment]
queries: OrderQueries = LocalProxy(lambda: _live().queries)  # type: ignore[assignment]
orders: OrderService = LocalProxy(lambda: _live().orders)  # type: ignore[assignment]
catalog: Catalog = LocalProxy(lambda: _live().catalog)  # type: ignore[assignment]
backups: BackupService = LocalProxy(lambda: _live().backups)  # type: ignore[assignment]
logs: OrderLogs = LocalProxy(lambda: _live().logs)  # type: ignore[assignment]
settings: Settings = LocalProxy(lambda: _live().settings)  # type: ignore[assignment]
wait_slots: WaitSlots = LocalProxy(lambda: current_app.extensions[WAIT_SLOTS])  # type: ignore[assignment]
