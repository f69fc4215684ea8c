"""Routing: what makes ``https://<hostname><path>`` reach a service port of a project.

Each endpoint of a product (:class:`~app.compose.model.Endpoint`) is routed from the order's hostname and
the endpoint's path to the endpoint's port of its service's container. Today the edge proxy is Traefik
with its Docker provider, which reads the route from the container's labels (Traefik's "Docker provider"
and "routers" documentation): per endpoint, a router ``o<order>-<application>`` with rule
``Host(`<hostname>`) && PathPrefix(`<path>`)``, entrypoint ``websecure`` and the ``le`` certificate
resolver (``web`` without TLS), and a service of the same name whose load-balancer port is the endpoint's
port (docs/PRODUCTS.md, "What Live does with it").

The request builder (:mod:`app.stacks.engine_requests`) only asks :func:`routing_labels` for the labels
of a service's container; the ingress issue fills this module in (which proxy, its own configuration),
behind the same question. The labels count in the container's config hash: for an unchanged product they
must stay exactly what they are, or every running container is recreated.
"""
from __future__ import annotations

from app.errors import StackSpecError
from app.stacks.project import Project

#: Traefik's entrypoint of routes with TLS and without (the edge proxy's static configuration names them).
TLS_ENTRYPOINT, PLAIN_ENTRYPOINT = "websecure", "web"
#: Traefik's certificate resolver of routes with TLS (ACME, in the edge proxy's static configuration).
CERT_RESOLVER = "le"


def routing_labels(project: Project, service: str) -> dict[str, str]:
    """The labels that route every endpoint of ``service`` (Traefik's router and service labels); ``{}``
    for a service without endpoints.

    Raises :class:`StackSpecError` for a path Traefik's rule cannot quote (a backtick).
    """
    labels: dict[str, str] = {}
    for endpoint in project.endpoints:
        if endpoint.service != service:
            continue
        if "`" in endpoint.path:  # Traefik quotes rule arguments with backticks: the router would never load
            raise StackSpecError(f"endpoints: {endpoint.application}: path {endpoint.path!r} cannot contain '`'")
        router = f"o{project.order_id}-{endpoint.application}"
        prefix = f"traefik.http.routers.{router}"
        labels["traefik.enable"] = "true"
        labels[f"{prefix}.rule"] = f"Host(`{project.hostname}`) && PathPrefix(`{endpoint.path}`)"
        labels[f"{prefix}.service"] = router
        labels[f"{prefix}.entrypoints"] = TLS_ENTRYPOINT if project.tls else PLAIN_ENTRYPOINT
        if project.tls:
            labels[f"{prefix}.tls.certresolver"] = CERT_RESOLVER
        labels[f"traefik.http.services.{router}.loadbalancer.server.port"] = str(endpoint.port)
    return labels
