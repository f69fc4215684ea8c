"""The proxy's questions to the bridge (issue 12): ``GET /ingress/v1/ask?domain=<hostname>``.

Caddy's on-demand TLS asks this URL before it obtains a certificate for a hostname it has none for
(Caddy 2.6: ``apps.tls.automation.on_demand.ask``; only a 200 lets it go on, caddyserver.com/docs/json,
"on_demand"). It answers 200 for the hostname of an order that is not terminated and 404 for anything
else, so strangers cannot make the proxy request certificates for arbitrary names. No credentials: Caddy
sends none; it says only whether a hostname is a live order's, which its DNS says anyway.
"""
from __future__ import annotations

from apiflask import APIBlueprint

from app.collaborators import queries
from app.errors import NotFound
from app.web.schemas import AskOut, AskQuery

bp = APIBlueprint("ingress", __name__, url_prefix="/ingress/v1", tag="Ingress")


@bp.get("/ask")
@bp.input(AskQuery, location="query", arg_name="query")
@bp.output(AskOut)
@bp.doc(summary="May the proxy obtain a certificate for this hostname? (no credentials)",
        responses={404: "Not the hostname of an order that is not terminated"})
def ask(query: dict):
    domain = query["domain"]
    if not queries.serves_hostname(domain):
        raise NotFound(f"no order is served at {domain!r}")
    return {"domain": domain, "allowed": True}
