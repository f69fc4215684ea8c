"""The whole order lifecycle on the real Docker engine and on a (single-node) Docker Swarm, on SQLite and
PostgreSQL."""
from __future__ import annotations

import tarfile
import urllib.request

import docker.errors
import pytest

from app.models import Operation, Order
from tests.conftest import BOTH_MODES
from tests.support.observed import Observer

pytestmark = pytest.mark.usefixtures("docker_engine", "stack_cleanup")

#: An HTTP request to the web service by its name, from another service (busybox's static wget crashes resolving
#: names; nc does not).
HTTP_GET_WEB = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 web 8080"


def run_all(live):
    live.worker().run_until_idle(timeout=120)


def containers_by_service(docker_engine, settings, order):
    found = docker_engine.containers.list(all=True, filters={"label": [f"live.deployment={settings.deployment}", f"live.order={order.id}"]})
    return {c.labels["live.service"]: c for c in found}


@BOTH_MODES
def test_full_lifecycle(live, settings, docker_engine, orchestrator, make_customer):
    """Create, suspend, unsuspend, change plan, redeploy and terminate: on one engine and on a swarm."""
    observer = Observer(docker_engine, settings.deployment, orchestrator)
    outcome = live.orders.create(service_id=101, customer=make_customer(), product="busybox-demo", plan="small",
                                 username="Acme Maps")
    assert outcome.created and outcome.operation.kind == "create"
    run_all(live)

    order = Order.get_by_id(outcome.order.id)
    assert order.status == "active", order.last_error
    assert order.instance == "acme-maps"
    assert order.hostname == "acme-maps.test.local"
    services = observer.services(order.id)
    assert sorted(services) == ["app", "db", "web"]
    for service, observed in services.items():
        assert observed.running
        labels = observed.labels
        assert labels["live.order"] == str(order.id)
        assert labels["live.instance"] == "acme-maps"
        assert labels["live.product"] == "busybox-demo"
        assert labels["live.revision"] == order.revision.label
        assert labels["live.service"] == service
        assert len(labels["live.config-hash"]) == 64
    # Routing is the bridge's (Caddy's admin API), never labels a proxy would read off the containers.
    assert not [key for observed in services.values() for key in observed.labels if key.startswith("traefik.")]
    # Every network and volume carries the order's labels too.
    objects = observer.objects()
    assert objects["networks"] == [f"{settings.deployment}-acme-maps_default"]
    assert objects["volumes"] == [f"{settings.deployment}-acme-maps_app-state", f"{settings.deployment}-acme-maps_db-data"]
    # The services reach each other by name on the order's network (an overlay network in a swarm).
    assert b"acme-maps.test.local" in services["app"].run(["sh", "-c", HTTP_GET_WEB])
    if orchestrator == "swarm":
        assert order.node_name == docker_engine.nodes.get(order.node).attrs["Description"]["Hostname"]
        assert {observed.node for observed in services.values()} == {order.node}  # the whole order on its node
        assert order.published_ports == {}  # nothing is published in a swarm: the proxy reaches the services
    else:
        assert order.node is None
        # The endpoint is published on 127.0.0.1 at the recorded port.
        port = order.published_ports["web:8080"]
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
        assert "acme-maps.test.local" in body

    # Data written before suspend survives suspend/unsuspend.
    services["db"].run(["sh", "-c", "echo precious > /data/customer.txt"])
    live.orders.suspend(order)
    run_all(live)
    order = Order.get_by_id(order.id)
    assert order.status == "suspended"
    assert {observed.running for observed in observer.services(order.id).values()} == {False}
    assert len(observer.objects()["volumes"]) == 2

    live.orders.unsuspend(order)
    run_all(live)
    order = Order.get_by_id(order.id)
    assert order.status == "active"
    after = observer.services(order.id)
    assert after["db"].run(["cat", "/data/customer.txt"]) == b"precious\n"
    if orchestrator == "docker":
        assert order.published_ports["web:8080"] == port, "the host port is stable across suspend/unsuspend"
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()

    # A plan change recreates (a swarm: updates) only the service whose configuration it touches (app).
    before = {name: observed.container for name, observed in after.items()}
    live.orders.change_plan(order, "large")
    run_all(live)
    order = Order.get_by_id(order.id)
    assert order.status == "active" and order.plan == "large"
    changed = observer.services(order.id)
    assert changed["db"].container == before["db"]
    assert changed["web"].container == before["web"]
    assert changed["app"].container != before["app"] and changed["app"].running
    assert changed["app"].memory_limit == 128 * 1024 * 1024
    assert changed["db"].run(["cat", "/data/customer.txt"]) == b"precious\n"

    # Redeploying the same thing recreates nothing.
    live.orders.redeploy(order)
    run_all(live)
    assert {n: o.container for n, o in observer.services(order.id).items()} == {n: o.container for n, o in changed.items()}

    # Terminate: a final backup with a readable archive of every volume, then nothing left.
    live.orders.terminate(order)
    run_all(live)
    order = Order.get_by_id(order.id)
    assert order.status == "terminated" and order.terminated_at is not None
    assert observer.wait_until_nothing_left() == {"containers": [], "services": [], "networks": [], "volumes": []}
    [final] = live.backups.list(order)  # the change of plan's pre-change backup was pruned
    assert final.kind == "final"
    assert [a.name for a in final.artefacts] == ["volume.app-state.tar", "volume.db-data.tar"]
    assert (settings.backup_dir / "acme-maps" / final.backup_id / "manifest.json").is_file()
    with live.backups.store.open_artefact(final.backup_id, "volume.db-data.tar") as body, \
            tarfile.open(fileobj=body, mode="r|") as archive:
        contents = {m.name: archive.extractfile(m).read() for m in archive if m.name.endswith("customer.txt")}
    assert list(contents.values()) == [b"precious\n"]
    kinds = [op.kind for op in Operation.select().where(Operation.order == order).order_by(Operation.id)]
    assert kinds == ["create", "suspend", "unsuspend", "change_plan", "redeploy", "terminate"]
    assert all(op.state == "succeeded" for op in Operation.select())


@BOTH_MODES
def test_same_create_twice_makes_one_stack(live, settings, docker_engine, orchestrator, make_customer):
    first = live.orders.create(service_id=7, customer=make_customer(), product="busybox-demo", plan="small", username="twice")
    second = live.orders.create(service_id=7, customer=make_customer(), product="busybox-demo", plan="small", username="twice")
    assert second.order.id == first.order.id and second.operation.id == first.operation.id
    run_all(live)
    third = live.orders.create(service_id=7, customer=make_customer(), product="busybox-demo", plan="small", username="twice")
    assert third.operation is None and third.message == "order already active"
    assert Order.select().count() == 1
    assert Operation.select().count() == 1
    assert len(Observer(docker_engine, settings.deployment, orchestrator).services(first.order.id)) == 3


@pytest.mark.parametrize("taker", ["process", "container"])
def test_a_port_taken_while_suspended_moves_the_endpoint(live, settings, docker_engine, make_customer, taker):
    """Another process (or another installation's container) takes the order's host port while it is suspended:
    unsuspend moves the endpoint to a free port instead of failing."""
    import errno
    import socket

    from tests.conftest import TEST_IMAGE

    outcome = live.orders.create(service_id=140, customer=make_customer(), product="busybox-demo", plan="small",
                                 username=f"port-{taker}")
    run_all(live)
    order = Order.get_by_id(outcome.order.id)
    assert order.status == "active", order.last_error_detail
    (endpoint, port), = order.published_ports.items()
    live.orders.suspend(order)
    run_all(live)
    holder = None
    if taker == "process":
        holder = socket.socket()
        # SO_REUSEADDR as any server sets it: a connection of the create's checks to the port may linger in
        # TIME_WAIT, which is not a holder. Anything else already bound there (another test's socket on this busy
        # machine, seen in a run) takes the port anyway, as in the container case below.
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            holder.bind(("127.0.0.1", port))
            holder.listen()
        except OSError as exc:
            assert exc.errno == errno.EADDRINUSE, exc
            holder.close()
            holder = None
    else:
        holder = docker_engine.containers.create(TEST_IMAGE, ["sleep", "600"], init=True,
                                                 ports={"80/tcp": ("127.0.0.1", port)},
                                                 labels={"live.deployment": settings.deployment})
        try:
            holder.start()
        except docker.errors.APIError as exc:  # another test run on this engine took the port first: taken anyway
            assert "port is already allocated" in str(exc), exc
    try:
        live.orders.unsuspend(Order.get_by_id(order.id))
        run_all(live)
        order = Order.get_by_id(order.id)
        assert order.status == "active", order.last_error_detail
        moved = order.published_ports[endpoint]
        assert moved != port
        web = containers_by_service(docker_engine, settings, order)["web"]
        web.reload()
        assert web.status == "running"
        assert web.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"] == str(moved)
        steps = [s["message"] for s in Operation.select().where(Operation.order == order)
                 .order_by(Operation.id.desc()).first().steps]
        assert f"host port {port} is taken by another process; moving the endpoint to a free port" in steps
    finally:
        if taker == "container":
            holder.remove(force=True)
        elif holder is not None:
            holder.close()
