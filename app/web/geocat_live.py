"""GeoCat Live 1.0: the order lookup GeoCat Bridge desktop clients (QGIS, ArcMap) call.

``GET /geocat-live/api/1.0/order/<instance>`` without credentials, answering
``{"services": [{"application", "url", "status"}]}``. Read-only, nothing secret;
the statuses are decided by :meth:`app.orders.queries.OrderQueries.geocat_live_services`.
"""
from __future__ import annotations

from apiflask import APIBlueprint

from app.collaborators import queries
from app.web.schemas import LegacyOrderOut

bp = APIBlueprint("geocat_live", __name__, url_prefix="/geocat-live/api/1.0", tag="GeoCat Live 1.0")


@bp.get("/order/<instance>")
@bp.output(LegacyOrderOut)
@bp.doc(summary="Services of an order, by instance identifier (no credentials)", responses={404: "Unknown instance"})
def legacy_order(instance: str):
    return {"services": queries.geocat_live_services(instance)}
