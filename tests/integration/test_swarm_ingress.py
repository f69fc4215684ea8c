"""Ingress in a swarm (issue 14): the real local swarm and a real Caddy container (scripts/build-caddy-image.sh)
run as docs/OPERATIONS.md ("The proxy in a swarm") says, programmed by the bridge through its published admin API.

An order of busybox-demo is created, redeployed, suspended and terminated by the real worker; every page is
fetched over HTTPS through the proxy's published port with the order's hostname as SNI and Host, the certificate
verified against Caddy's internal CA (LIVE_TLS=internal), which Caddy obtains on demand after asking the bridge
(the real ask endpoint, served on the host's address of the proxy's network). Nothing of the order is published
on a host port: the proxy reaches the web service by its swarm service name over the order's overlay network.
"""
from __future__ import annotations

import secrets
import threading

import docker.errors
import pytest
import urllib3
from werkzeug.serving import make_server

from app.models import Order
from app.stacks.project import NODE_POOL_LABEL
from tests.conftest import require_swarm_manager, unavailable
from tests.support.caddy_container import CaddyContainer, ensure_caddy_image
from tests.support.observed import Observer
from tests.support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("docker_engine", "stack_cleanup")

SETTLE_SECONDS = 60


@pytest.fixture
def orchestrator():
    return "swarm"


@pytest.fixture
def database_url(tmp_path):
    """SQLite only: what is tested here is the engine and the proxy, not the database."""
    return f"sqlite:///{tmp_path / 'live.db'}"


@pytest.fixture
def proxy(docker_engine, tmp_path):
    """A proxy container of the test's own: one installation per Caddy (two would both claim the base domain's
    certificate policy and port 443, which Caddy refuses; docs/OPERATIONS.md)."""
    require_swarm_manager(docker_engine)
    problem = ensure_caddy_image(docker_engine)
    if problem:
        unavailable(f"cannot build the Caddy image: {problem}")
    caddy = CaddyContainer(docker_engine, tmp_path / "proxy")
    try:
        yield caddy.start()
    finally:
        caddy.stop()


class LateApp:
    """A WSGI application set once the bridge exists (its settings need the server's address first)."""

    app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


@pytest.fixture
def ask_server(proxy):
    """A server on the host's address of the proxy's network, where the container reaches the bridge's ask URL."""
    late = LateApp()
    server = make_server(proxy.gateway, 0, late, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="ask-server", daemon=True)
    thread.start()
    yield server, late
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def worker_pool(request):
    """For a test that uses the second node (``swarm_worker``): a placement pool only that node is in
    (``live.pool`` on the node the fixture created), so the order is placed there; "" otherwise."""
    if "swarm_worker" not in request.fixturenames:
        yield ""
        return
    node = request.getfixturevalue("swarm_worker")
    client = request.getfixturevalue("docker_engine")
    pool = f"ingress-{secrets.token_hex(3)}"
    swarm_node = client.nodes.get(node.node_id)
    spec = swarm_node.attrs["Spec"]
    spec["Labels"] = {**(spec.get("Labels") or {}), NODE_POOL_LABEL: pool}
    swarm_node.update(spec)
    yield pool
    swarm_node.reload()
    spec = swarm_node.attrs["Spec"]
    spec["Labels"] = {k: v for k, v in (spec.get("Labels") or {}).items() if k != NODE_POOL_LABEL}
    swarm_node.update(spec)


@pytest.fixture
def settings(settings, proxy, ask_server, worker_pool):
    """The shared test settings, with the proxy container as the swarm's ingress."""
    from dataclasses import replace

    server, _ = ask_server
    # The ingress ports are the container's (published on free 127.0.0.1 ports). A swarm task may take long to
    # start on a busy machine: the health timeout is a deadline, not a measure.
    return replace(settings, caddy_admin_url=proxy.admin_url, swarm_proxy_container=proxy.name, tls="internal",
                   ingress_https_port=443, ingress_http_port=80, ingress_resync_seconds=1.0,
                   health_timeout_seconds=180, swarm_pool=worker_pool,
                   ingress_ask_url=f"http://{proxy.gateway}:{server.server_port}/ingress/v1/ask")


@pytest.fixture
def leave_proxy(docker_engine, settings, proxy):
    """After the test (before ``stack_cleanup``): whatever a failure left, the proxy leaves the deployment's
    networks and those networks go once swarm has let go of the removed services' tasks."""
    yield
    selector = {"label": f"live.deployment={settings.deployment}"}
    for service in docker_engine.services.list(filters=selector):
        service.remove()
    for network in docker_engine.networks.list(filters=selector):
        if network.name in proxy.networks():
            try:
                network.disconnect(proxy.name, force=True)
            except docker.errors.APIError as exc:  # removed meanwhile: the manager answers 500 "not found"
                if "not found" not in str(exc):
                    raise

    def removed(network):
        try:
            network.remove()
        except docker.errors.NotFound:
            return True
        except docker.errors.APIError as exc:  # "in use by task": swarm still removes the service's task
            if "not found" in str(exc):
                return True
            if "in use" not in str(exc) and "active endpoints" not in str(exc):
                raise
            return False
        return True

    for network in docker_engine.networks.list(filters=selector):
        wait_for(lambda: removed(network), timeout=120, interval=0.5, what=f"network {network.name} removed")
    # The manager lists a removed overlay network for a moment longer: stack_cleanup must not find it.
    wait_for(lambda: not docker_engine.networks.list(filters=selector), timeout=60, interval=0.5,
             what="the deployment's networks gone from the listing")


@pytest.fixture
def bridge(settings, ask_server, leave_proxy):
    """The application (its web side answers the ask URL), on a migrated database with the catalog synced."""
    from app import create_app
    from app.db import upgrade

    app = create_app(settings)
    live = app.extensions["live"]
    upgrade(live.db)
    live.catalog.sync()
    ask_server[1].app = app
    yield live
    if not live.db.is_closed():
        live.db.close()


def run_all(live):
    """Run every queued operation, then the ingress resync the worker runs every LIVE_INGRESS_RESYNC_SECONDS
    (the first one, at the worker's start, creates the bridge's server in an empty Caddy)."""
    live.worker().run_until_idle(timeout=300)
    assert live.ingress.resync() is not None, "the resync could not reach the proxy"


def https_until(proxy: CaddyContainer, hostname: str, accept, what: str):
    """Polls an HTTPS GET of ``/`` for ``hostname`` through the proxy until ``accept(answer)``; returns it."""
    seen: list[object] = []

    def attempt():
        if not proxy.root_cert.exists():
            return None
        try:
            answer = proxy.https_get(hostname, "/")
        except urllib3.exceptions.HTTPError as exc:
            seen.append(exc)
            return None
        seen.append(answer)
        return answer if accept(answer) else None

    try:
        return wait_for(attempt, timeout=SETTLE_SECONDS, interval=0.25, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last: {seen[-1:]}; proxy log: {proxy.logs(2000)}") from None


def http_from(service, address: str, port: int, host: str) -> bytes:
    """What ``address:port`` answers an HTTP GET sent from inside ``service``'s task (busybox nc)."""
    request = f"GET /config/ HTTP/1.0\\r\\nHost: {host}\\r\\n\\r\\n"
    return service.run(["sh", "-c", f"printf '{request}' | nc -w 3 {address} {port}; echo rc=$?"])


def test_the_proxy_reaches_the_order_by_service_name_and_follows_its_life(bridge, settings, docker_engine, proxy,
                                                                         make_customer):
    live = bridge
    observer = Observer(docker_engine, settings.deployment, "swarm")
    outcome = live.orders.create(service_id=141, customer=make_customer(), product="busybox-demo", plan="small",
                                 username="Acme Maps")
    run_all(live)
    order = Order.get_by_id(outcome.order.id)
    assert order.status == "active", order.last_error
    network = f"{settings.deployment}-acme-maps_default"
    hostname = order.hostname

    # The proxy joined the order's network, and its HTTPS page is the web service's (its hostname in <h1>).
    assert network in proxy.networks()
    page = https_until(proxy, hostname, lambda a: a.status == 200, "the order's page through the proxy")
    assert f"<h1>{hostname}</h1>" in page.text

    # Nothing of the order is published on a host port: not by the swarm services, not by their tasks' containers.
    assert order.published_ports == {}
    services = observer.services(order.id)
    assert sorted(services) == ["app", "db", "web"]
    ours = {"label": [f"live.deployment={settings.deployment}", f"live.order={order.id}"]}
    for service in docker_engine.services.list(filters=ours):
        assert not (service.attrs["Spec"].get("EndpointSpec") or {}).get("Ports"), service.name
        assert not (service.attrs.get("Endpoint") or {}).get("Ports"), service.name
    tasks = docker_engine.containers.list(filters=ours)
    assert len(tasks) == 3
    for container in tasks:
        assert not container.attrs["HostConfig"].get("PortBindings"), container.name
        assert not [binding for binding in container.attrs["NetworkSettings"]["Ports"].values() if binding]

    # The order's services reach the proxy's HTTP server on the network they share, never its admin API: it
    # listens on the proxy's own bridge address only (nothing routes there from an order network).
    overlay_address = proxy.network_address(network)
    assert b" 308 Permanent Redirect" in http_from(services["app"], overlay_address, 80, hostname)
    admin_host = f"127.0.0.1:{proxy.admin_port}"
    for address in (overlay_address, proxy.address):
        answer = http_from(services["app"], address, 2019, admin_host)
        assert b"HTTP/" not in answer and b"rc=0" not in answer, answer

    # A proxy recreated (here: disconnected) is attached again by the order's next deploy.
    docker_engine.networks.get(network).disconnect(proxy.name)
    assert network not in proxy.networks()
    live.orders.redeploy(order)
    run_all(live)
    assert network in proxy.networks()
    https_until(proxy, hostname, lambda a: a.status == 200 and f"<h1>{hostname}</h1>" in a.text,
                "the order's page after the redeploy")

    # Suspended: the suspended page.
    live.orders.suspend(Order.get_by_id(order.id))
    run_all(live)
    suspended = https_until(proxy, hostname, lambda a: a.status == 503, "the suspended page")
    assert "is suspended" in suspended.text

    # Terminated: the proxy left the order's network before it was removed, and nothing of the order is left.
    live.orders.terminate(Order.get_by_id(order.id))
    run_all(live)
    order = Order.get_by_id(order.id)
    assert order.status == "terminated", order.last_error
    assert network not in proxy.networks()
    assert observer.wait_until_nothing_left() == {"containers": [], "services": [], "networks": [], "volumes": []}
    assert https_until(proxy, hostname, lambda a: a.status == 404, "the unknown-site page").status == 404


def test_the_proxy_on_the_manager_reaches_an_order_placed_on_another_node(bridge, settings, docker_engine, proxy,
                                                                          swarm_worker, make_customer):
    """The order runs on the second node (its own engine in a network namespace); the proxy on the manager
    reaches its web service over the order's overlay network, across the nodes."""
    live = bridge
    outcome = live.orders.create(service_id=142, customer=make_customer(), product="busybox-demo", plan="small",
                                 username="Far Away")
    run_all(live)
    order = Order.get_by_id(outcome.order.id)
    assert order.status == "active", order.last_error
    assert order.node == swarm_worker.node_id
    tasks = Observer(docker_engine, settings.deployment, "swarm").services(order.id)
    assert {service.node for service in tasks.values()} == {swarm_worker.node_id}
    assert f"{settings.deployment}-far-away_default" in proxy.networks()
    page = https_until(proxy, order.hostname, lambda a: a.status == 200, "the far order's page through the proxy")
    assert f"<h1>{order.hostname}</h1>" in page.text

    live.orders.terminate(order)
    run_all(live)
    assert Order.get_by_id(order.id).status == "terminated"
    assert f"{settings.deployment}-far-away_default" not in proxy.networks()


def test_the_doctor_checks_the_proxy_container(bridge, settings, docker_engine, proxy):
    """``swarm-proxy``: ok for the proxy run as documented; a container on the default bridge (which never resolves
    a service name), a stopped one and a missing one fail, naming what is wrong."""
    from app.doctor import FAIL, OK, Doctor
    from app.stacks.swarm_engine import SwarmEngine
    from tests.conftest import TEST_IMAGE

    def check(container: str):
        swarm = SwarmEngine(settings.docker_host, timeout=10, proxy_container=container)
        return Doctor(settings, bridge.db, None, bridge.catalog, swarm=swarm).check_swarm_proxy()

    found = check(proxy.name)
    assert (found.status, found.finding) == (OK, f"the proxy container {settings.swarm_proxy_container} runs on the "
                                                 "manager, on a user-defined network")
    wrong = docker_engine.containers.run(TEST_IMAGE, ["sleep", "600"], name=f"{proxy.name}-default-bridge",
                                         init=True, detach=True, labels={"live.test.caddy-container": "1"})
    try:
        found = check(wrong.name)
        assert found.status == FAIL and "does not use Docker's resolver 127.0.0.11" in found.finding
        assert "docs/OPERATIONS.md" in found.fix
        wrong.stop(timeout=1)
        assert "is exited, not running" in check(wrong.name).finding
    finally:
        wrong.remove(force=True)
    assert f"there is no container {wrong.name}" in check(wrong.name).finding
