"""Ingress in a swarm without an engine: routes dial services by name, the order's networks the proxy joins, the
deployer attaching it at every deploy, the SwarmEngine's connect and disconnect (on the answers Docker Engine
20.10 gives), and LIVE_SWARM_PROXY_CONTAINER."""
from __future__ import annotations

import logging
from types import SimpleNamespace

import docker.errors
import pytest
import requests

from app.catalog.product import build_project, load_product, sample_builtins
from app.compose.model import Endpoint
from app.config import ConfigError, load_settings
from app.ingress.caddy import CaddyIngress, CaddySettings
from app.ingress.routes import PathRoute, Route, RouteMode, desired_route, upstream
from app.stacks.deployer import DEFAULT_HELPER_IMAGE, Deployer
from app.stacks.engine import NetworkRequest
from app.stacks.engine_requests import network_requests
from app.stacks.swarm_engine import SwarmEngine
from tests.fakes import FakeEngine

ENDPOINTS = (Endpoint("site", "web", 8080, "/"), Endpoint("viewer", "web", 8080, "/maps/"),
             Endpoint("deep", "api", 9000, "/maps/api"))


def swarm_route(status="active", kinds=(), endpoints=ENDPOINTS, ports=None):
    return desired_route(order_id=7, instance="acme", hostname="acme.geocat.live", status=status,
                         unfinished_kinds=kinds, endpoints=endpoints, published_ports=ports or {},
                         swarm_deployment="prod")


# -- routes -----------------------------------------------------------------------------------------------------
def test_in_a_swarm_each_path_goes_to_its_service_by_name_longest_first():
    assert swarm_route() == Route(7, "acme", "acme.geocat.live", RouteMode.PROXY, (
        PathRoute("/maps/api", "prod-acme_api:9000"), PathRoute("/maps", "prod-acme_web:8080"),
        PathRoute("/", "prod-acme_web:8080")))


def test_in_a_swarm_published_ports_are_never_dialled():
    """An order's ports recorded before (one engine) mean nothing in a swarm: nothing is published there."""
    assert swarm_route(ports={"web:8080": 20007, "api:9000": 20008}).paths == swarm_route().paths


def test_the_service_name_is_the_swarm_services_name():
    """The upstream is exactly the name the deployer gives the service (Project.container_name)."""
    product = load_product("demo", "name: Demo\nplans: {small: {}}\nendpoints:\n"
                                   "  - {application: web, service: web, port: 8080, path: /}\n",
                           "services:\n  web:\n    image: nginx:1.25\n")
    assert product.errors == []
    builtins = dict(sample_builtins("demo", "small"), LIVE_ORDER_ID="7", LIVE_INSTANCE="acme",
                    LIVE_HOSTNAME="acme.example.org")
    project = build_project(product, "small", builtins, {}, revision="r1", deployment="prod")
    assert upstream(Endpoint("site", "web", 8080, "/"), instance="acme", published_ports={},
                    swarm_deployment="prod") == f"{project.container_name('web')}:8080"


def test_one_engine_still_dials_the_published_port_or_shows_the_preparing_page():
    one_engine = dict(instance="acme", published_ports={"web:8080": 20007})
    assert upstream(Endpoint("site", "web", 8080, "/"), **one_engine) == "127.0.0.1:20007"
    assert upstream(Endpoint("deep", "api", 9000, "/"), **one_engine) is None


@pytest.mark.parametrize("status, kinds, mode", [
    ("pending", ["create"], RouteMode.PREPARING),
    ("active", ["upgrade"], RouteMode.PREPARING),
    ("failed", [], RouteMode.PREPARING),
    ("active", ["suspend"], RouteMode.SUSPENDED),
    ("suspended", [], RouteMode.SUSPENDED),
])
def test_in_a_swarm_the_pages_follow_the_order_life_as_on_one_engine(status, kinds, mode):
    got = swarm_route(status=status, kinds=kinds)
    assert (got.mode, got.paths) == (mode, ())
    assert swarm_route(status="terminated") is None


def test_the_caddy_route_dials_the_service_name():
    ingress = CaddyIngress(CaddySettings(admin_url="http://127.0.0.1:2019", deployment="prod"))
    handlers = [entry["handle"][0] for entry in ingress.route_json(swarm_route())["handle"][0]["routes"]]
    assert [h["upstreams"] for h in handlers] == [[{"dial": "prod-acme_api:9000"}], [{"dial": "prod-acme_web:8080"}],
                                                  [{"dial": "prod-acme_web:8080"}]]


# -- which networks the proxy joins -------------------------------------------------------------------------------
MANIFEST = """\
name: Demo
plans: {small: {}}
endpoints:
  - {application: web, service: web, port: 8080, path: /}
  - {application: api, service: api, port: 9000, path: /api}
"""
COMPOSE = """\
services:
  db:
    image: postgres:17
    networks: [backend]
  web:
    image: nginx:1.25
    networks: [front, backend]
  api:
    image: nginx:1.25
  worker:
    image: nginx:1.25
    networks: [jobs]
networks:
  front: {}
  backend: {internal: true}
  jobs: {}
"""


def demo_project(manifest: str = MANIFEST, compose: str = COMPOSE, deployment: str = "t"):
    product = load_product("demo", manifest, compose)
    assert product.errors == []
    builtins = dict(sample_builtins("demo", "small"), LIVE_ORDER_ID="7", LIVE_INSTANCE="acme",
                    LIVE_HOSTNAME="acme.example.org")
    return build_project(product, "small", builtins, {}, revision="r1", deployment=deployment)


def test_the_proxy_joins_the_first_network_of_each_endpoint_service_only():
    proxied = {request.name: request.proxied for request in network_requests(demo_project())}
    # web's first network is front (its backend, the database's, stays closed); api has only the default one;
    # the worker has no endpoint.
    assert proxied == {"t-acme_front": True, "t-acme_backend": False, "t-acme_jobs": False, "t-acme_default": True}


def test_a_product_without_endpoints_has_no_proxied_network():
    manifest = "name: Demo\nplans: {small: {}}\n"
    assert not any(request.proxied for request in network_requests(demo_project(manifest=manifest)))


class RecordingEngine(FakeEngine):
    """The in-memory engine, recording every network the deployer asks the proxy to join."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.proxy_calls: list[tuple[str, bool]] = []

    def connect_proxy(self, request: NetworkRequest) -> None:
        self.proxy_calls.append((request.name, request.proxied))


def test_every_deploy_asks_for_the_proxy_on_every_network_of_the_order():
    """Not only when a network is created: a proxy recreated since then is attached again by the next deploy."""
    engine = RecordingEngine(("postgres:17", "nginx:1.25", DEFAULT_HELPER_IMAGE))
    deployer = Deployer(engine, health_timeout=5)
    project = demo_project()
    wanted = sorted((r.name, r.proxied) for r in network_requests(project))
    deployer.deploy(project)
    assert sorted(engine.proxy_calls) == wanted
    engine.proxy_calls.clear()
    deployer.deploy(project)  # nothing to create any more
    assert sorted(engine.proxy_calls) == wanted


# -- the SwarmEngine's side, on the engine's answers --------------------------------------------------------------
def api_error(status: int, explanation: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    cls = docker.errors.NotFound if status == 404 else docker.errors.APIError
    return cls(explanation, response=response, explanation=explanation)


class ProxyApi:
    """The calls SwarmEngine makes for the proxy, answering as Engine 20.10 does (checked on the local swarm)."""

    def __init__(self, containers=("live-proxy",)):
        self.containers = set(containers)
        self.connected: set[tuple[str, str]] = set()
        self.calls: list[tuple[str, str, str]] = []

    def connect_container_to_network(self, container, network):
        self.calls.append(("connect", container, network))
        if container not in self.containers:
            raise api_error(404, f"No such container: {container}")
        if (container, network) in self.connected:
            raise api_error(409, f"{container} is already attached to network {network}")
        self.connected.add((container, network))

    def disconnect_container_from_network(self, container, network):
        self.calls.append(("disconnect", container, network))
        if container not in self.containers:
            raise api_error(404, f"No such container: {container}")
        if (container, network) not in self.connected:
            raise api_error(500, f"container 0123abcd is not connected to network {network}")
        self.connected.discard((container, network))

    def inspect_container(self, container):
        if container not in self.containers:
            raise api_error(404, f"No such container: {container}")
        return {"Id": container}


def swarm(api: ProxyApi, proxy: str | None = "live-proxy") -> SwarmEngine:
    engine = SwarmEngine("unix:///nonexistent.sock", proxy_container=proxy)
    removed: list[str] = []
    engine.manager = SimpleNamespace(api=api, remove_network=removed.append, removed=removed)
    return engine


PROXIED = NetworkRequest("t-acme_default", {}, driver="overlay", proxied=True)


def test_the_proxy_joins_a_proxied_network_once_and_a_second_connect_is_fine():
    api = ProxyApi()
    engine = swarm(api)
    engine.connect_proxy(PROXIED)
    engine.connect_proxy(PROXIED)  # every deploy asks again: already attached
    assert api.connected == {("live-proxy", "t-acme_default")}


def test_no_proxy_for_a_network_that_is_not_proxied_or_without_the_setting():
    api = ProxyApi()
    swarm(api).connect_proxy(NetworkRequest("t-acme_backend", {}, driver="overlay"))
    swarm(api, proxy=None).connect_proxy(PROXIED)
    assert api.calls == []


def test_a_missing_proxy_container_is_logged_and_the_deploy_goes_on(caplog):
    engine = swarm(ProxyApi(containers=()))
    with caplog.at_level(logging.WARNING, logger="app.stacks.swarm_engine"):
        engine.connect_proxy(PROXIED)
    assert "LIVE_SWARM_PROXY_CONTAINER" in caplog.text and "does not exist" in caplog.text


def test_removing_a_network_disconnects_the_proxy_first_and_ignores_a_network_it_never_joined():
    api = ProxyApi()
    engine = swarm(api)
    engine.connect_proxy(PROXIED)
    engine.remove_network("t-acme_default")
    engine.remove_network("t-acme_backend")  # not connected: the engine's 500 is not an error here
    assert api.connected == set()
    assert engine.manager.removed == ["t-acme_default", "t-acme_backend"]
    gone = swarm(ProxyApi(containers=()))  # the proxy container was removed: the network goes all the same
    gone.remove_network("t-acme_default")
    assert gone.manager.removed == ["t-acme_default"]


# -- the setting ---------------------------------------------------------------------------------------------------
def test_the_proxy_container_is_read_in_swarm_mode():
    settings = load_settings({"LIVE_ORCHESTRATOR": "swarm", "LIVE_SWARM_PROXY_CONTAINER": "live-proxy",
                              "LIVE_CADDY_ADMIN_URL": "http://127.0.0.1:2019"})
    assert settings.swarm_proxy_container == "live-proxy"
    assert load_settings({"LIVE_ORCHESTRATOR": "swarm"}).swarm_proxy_container == ""  # no ingress: not needed
    assert load_settings({}).swarm_proxy_container == ""


@pytest.mark.parametrize("env, message", [
    ({"LIVE_SWARM_PROXY_CONTAINER": "live-proxy"}, "apply to LIVE_ORCHESTRATOR=swarm only"),
    ({"LIVE_ORCHESTRATOR": "swarm", "LIVE_SWARM_PROXY_CONTAINER": "live proxy"},
     "LIVE_SWARM_PROXY_CONTAINER must be a container name"),
    ({"LIVE_ORCHESTRATOR": "swarm", "LIVE_SWARM_PROXY_CONTAINER": "/live-proxy"},
     "LIVE_SWARM_PROXY_CONTAINER must be a container name"),
    ({"LIVE_ORCHESTRATOR": "swarm", "LIVE_CADDY_ADMIN_URL": "http://127.0.0.1:2019"},
     "LIVE_SWARM_PROXY_CONTAINER must name the ingress proxy's container"),
])
def test_the_proxy_container_setting_is_refused_where_it_cannot_work(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env)
