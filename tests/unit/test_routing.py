"""Routing labels (app/stacks/routing.py): what routes ``https://<hostname><path>`` to a service port."""
from __future__ import annotations

import pytest

from app.compose.model import Endpoint, StackSpec
from app.errors import StackSpecError
from app.stacks.project import Project
from app.stacks.routing import routing_labels


def project(*endpoints: Endpoint, tls: bool = True) -> Project:
    return Project(order_id=7, instance="acme", product="demo", revision="r1", hostname="acme.example.org",
                   stack=StackSpec(services={}, volumes=[], networks={}), endpoints=list(endpoints), tls=tls)


def test_an_endpoint_is_routed_from_its_hostname_and_path_to_its_port():
    assert routing_labels(project(Endpoint("viewer", "web", 8080, "/maps")), "web") == {
        "traefik.enable": "true",
        "traefik.http.routers.o7-viewer.rule": "Host(`acme.example.org`) && PathPrefix(`/maps`)",
        "traefik.http.routers.o7-viewer.service": "o7-viewer",
        "traefik.http.routers.o7-viewer.entrypoints": "websecure",
        "traefik.http.routers.o7-viewer.tls.certresolver": "le",
        "traefik.http.services.o7-viewer.loadbalancer.server.port": "8080",
    }


def test_without_tls_the_route_uses_the_plain_entrypoint_and_no_certificate():
    labels = routing_labels(project(Endpoint("viewer", "web", 8080), tls=False), "web")
    assert labels["traefik.http.routers.o7-viewer.entrypoints"] == "web"
    assert not any("certresolver" in key for key in labels)


def test_each_service_gets_only_its_own_endpoints():
    routed = project(Endpoint("viewer", "web", 8080), Endpoint("api", "app", 9000, "/api"))
    assert routing_labels(routed, "db") == {}
    assert {key for key in routing_labels(routed, "app") if ".rule" in key} == {"traefik.http.routers.o7-api.rule"}


def test_a_path_the_rule_cannot_quote_is_refused():
    with pytest.raises(StackSpecError, match="cannot contain '`'"):
        routing_labels(project(Endpoint("viewer", "web", 8080, "/a`b")), "web")
