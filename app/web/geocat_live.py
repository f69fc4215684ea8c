"""GeoCat Live 1.0: the order lookup GeoCat Bridge desktop clients (QGIS, ArcMap) call.

``GET /geocat-live/api/1.0/order/<instance>`` without credentials, answering
``{"services": [{"application", "url", "status"}]}``. Read-only, nothing secret.
"""
from __future__ import annotations

import logging

from apiflask import APIBlueprint
from flask import current_app

from app.errors import LiveError, NotFound
from app.models import Operation, Order
from app.presenters import endpoint_views
from app.web.schemas import LegacyOrderOut

log = logging.getLogger(__name__)
bp = APIBlueprint("geocat_live", __name__, url_prefix="/geocat-live/api/1.0", tag="GeoCat Live 1.0")

RUNNING, WAITING, ERROR = "SERVICE_RUNNING", "SERVICE_WAITING", "SERVICE_ERROR"


@bp.get("/order/<instance>")
@bp.output(LegacyOrderOut)
@bp.doc(summary="Services of an order, by instance identifier (no credentials)", responses={404: "Unknown instance"})
def legacy_order(instance: str):
    live = current_app.extensions["live"]
    order = Order.get_or_none(Order.instance == instance)
    if order is None or order.status == "terminated":
        raise NotFound(f"no order with instance identifier {instance!r}")
    containers = _containers_by_service(live, order)
    busy = Operation.select().where((Operation.order == order) & Operation.state.in_(("pending", "running"))).exists()
    services = []
    for endpoint in endpoint_views(order, live.catalog, live.settings.public_scheme):
        services.append({"application": endpoint["application"], "url": endpoint["url"],
                         "status": _status(order, busy, containers, endpoint["service"])})
    return {"services": services}


def _containers_by_service(live, order: Order):
    try:
        selector = {"live.deployment": live.settings.deployment, "live.order": str(order.id)}
        return {c.service: c for c in live.engine.list_containers(selector)}
    except LiveError as exc:
        log.warning("cannot read containers of %s: %s", order.instance, exc)
        return None


def _status(order: Order, busy: bool, containers, service: str) -> str:
    if order.status in ("failed", "suspended"):
        return ERROR
    if order.status == "pending":
        return WAITING
    if containers is None:
        return ERROR  # the engine cannot be asked: do not claim the service runs
    container = containers.get(service)
    if container is None or not container.running or container.health == "unhealthy":
        return WAITING if busy else ERROR
    if container.health == "starting" or busy:
        return WAITING
    return RUNNING
