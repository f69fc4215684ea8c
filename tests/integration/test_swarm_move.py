"""Moving an order between the two nodes of a real swarm (issue 14): the manager and the harness's worker
(tests/support/swarm_node.py), LIVE_ORCHESTRATOR=swarm.

The order (busybox-demo: db, app, web; volumes db-data and app-state) is created while the worker is paused (so it
is placed on the manager whatever the nodes' memory), gets data, moves to the worker and back. Each move checks
what Docker itself reports (tests/support/observed.py): the services run on the target, the data is there, the
source node holds none of the order's volumes any more, and the services still reach each other by name.
"""
from __future__ import annotations

import pytest

from app.models import Event, Operation, Order
from tests.support.observed import Observer
from tests.support.waiting import wait_for

# Moves do not depend on the database: PostgreSQL only (the lifecycle runs on both).
pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

#: From the app service to the web service by name over the order's overlay network (busybox wget crashes; nc not).
HTTP_GET_WEB = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 web 8080"


@pytest.fixture
def orchestrator():
    return "swarm"


def set_availability(docker_engine, node_id: str, availability: str) -> None:
    node = docker_engine.nodes.get(node_id)
    spec = dict(node.attrs["Spec"], Availability=availability)
    node.update(spec)


@pytest.fixture
def two_nodes(docker_engine, swarm_worker, settings):
    """The swarm with the worker; afterwards the worker is active again and every object of the test's deployment
    is removed from both nodes (services first, then what their tasks used, once those are gone)."""
    yield swarm_worker
    set_availability(docker_engine, swarm_worker.node_id, "active")
    selector = {"label": f"live.deployment={settings.deployment}"}
    clients = (docker_engine, swarm_worker.client)
    for service in docker_engine.services.list(filters=selector):
        service.remove()
    for client in clients:
        for container in client.containers.list(all=True, filters=selector):
            container.remove(force=True)
    for client in clients:
        for volume in client.volumes.list(filters=selector):
            volume.remove(force=True)
    for network in docker_engine.networks.list(filters=selector):
        network.remove()


@pytest.fixture
def cli(settings, live):
    """``flask --app wsgi live ...`` on the test's settings (the ``live`` fixture migrated the database)."""
    from app import create_app

    runner = create_app(settings).test_cli_runner()
    return lambda *args: runner.invoke(args=["live", *args], catch_exceptions=False)


def run_all(live) -> None:
    live.worker().run_until_idle(timeout=120)


def check_on(observer: Observer, docker_engine, worker, settings, order: Order, node_id: str) -> None:
    """The order runs on ``node_id`` only, with its data, and its volumes are on that node only."""
    services = observer.services(order.id)
    assert sorted(services) == ["app", "db", "web"]
    assert {s.node for s in services.values()} == {node_id}, {n: s.node for n, s in services.items()}
    assert all(s.running for s in services.values())
    assert services["db"].run(["cat", "/data/customer.txt"]) == b"precious\n"
    assert services["app"].run(["cat", "/state/kept.txt"]) == b"state\n"
    assert order.hostname.encode() in services["app"].run(["sh", "-c", HTTP_GET_WEB])  # same names, same network
    selector = {"label": [f"live.deployment={settings.deployment}", f"live.order={order.id}"]}
    manager_id = docker_engine.info()["Swarm"]["NodeID"]
    where = {manager_id: docker_engine, worker.node_id: worker.client}
    expected = sorted(f"{settings.deployment}-{order.instance}_{v}" for v in ("app-state", "db-data"))
    for node, client in where.items():
        names = sorted(v.name for v in client.volumes.list(filters=selector))
        assert names == (expected if node == node_id else []), f"volumes on {node}: {names}"


def test_an_order_moves_to_the_worker_with_its_data_and_back(live, settings, docker_engine, two_nodes,
                                                                make_customer, cli):
    worker = two_nodes
    observer = Observer(docker_engine, settings.deployment, "swarm")
    manager_id = docker_engine.info()["Swarm"]["NodeID"]
    set_availability(docker_engine, worker.node_id, "pause")  # placement: the manager only
    outcome = live.orders.create(service_id=1401, customer=make_customer(), product="busybox-demo", plan="small",
                                 username="mover")
    run_all(live)
    order = Order.get_by_id(outcome.order.id)
    assert (order.status, order.node) == ("active", manager_id), order.last_error_detail
    set_availability(docker_engine, worker.node_id, "active")
    services = observer.services(order.id)
    services["db"].run(["sh", "-c", "echo precious > /data/customer.txt"])
    services["app"].run(["sh", "-c", "echo state > /state/kept.txt"])

    live.orders.move(order, worker.hostname, requested_by="test")  # by hostname
    run_all(live)
    operation = Operation.select().where(Operation.order == order).order_by(Operation.id.desc()).get()
    assert (operation.kind, operation.state) == ("move", "succeeded"), operation.error_detail
    order = Order.get_by_id(order.id)
    assert (order.status, order.node, order.node_name) == ("active", worker.node_id, worker.hostname)
    check_on(observer, docker_engine, worker, settings, order, worker.node_id)

    same = cli("orders", "move", order.instance, "--node", worker.hostname)
    assert same.exit_code == 1 and f"is on node {worker.hostname} already: nothing to move" in same.output
    back = cli("orders", "move", str(order.id), "--node", manager_id)  # and back, by id, from the CLI
    assert back.exit_code == 0, back.output
    assert f"order {order.id} ({order.instance}): move accepted" in back.output
    run_all(live)
    operation = Operation.select().where(Operation.order == order).order_by(Operation.id.desc()).get()
    assert (operation.kind, operation.state) == ("move", "succeeded"), operation.error_detail
    order = Order.get_by_id(order.id)
    assert order.node == manager_id
    check_on(observer, docker_engine, worker, settings, order, manager_id)
    moves = [(e.data["from_node"], e.data["to_node"]) for e in Event.select().where(
        (Event.kind == "order.moved") & (Event.order == order)).order_by(Event.id)]
    assert moves == [(manager_id, worker.node_id), (worker.node_id, manager_id)]
    # The worker's task containers of the order are gone too (swarm removed them with the old tasks).
    wait_for(lambda: not worker.client.containers.list(
        all=True, filters={"label": [f"live.deployment={settings.deployment}", f"live.order={order.id}"]}),
        timeout=30, interval=0.5, what="the order's containers gone from the worker")


def test_swarm_volumes_are_per_node_while_an_order_moves(docker_engine, swarm_worker, settings, two_nodes):
    """SwarmEngine: one volume name on both nodes (a move's window); each node's is created, checked, filled, read
    and removed on its own."""
    import io

    from app.stacks.engine import VolumeRequest
    from app.stacks.swarm_engine import SwarmEngine
    from tests.conftest import HELPER_IMAGE
    from tests.fakes import files_of, tar_of

    engine = SwarmEngine()
    manager_id = engine.own_node()
    name = f"{settings.deployment}-pernode_data"
    labels = {"live.deployment": settings.deployment}
    for node in (manager_id, swarm_worker.node_id):
        engine.create_volume(VolumeRequest(name, labels, node=node))
    assert engine.volume_exists(name, node=swarm_worker.node_id) and engine.volume_exists(name, node=manager_id)
    assert sorted(v.node for v in engine.list_volumes(labels)) == sorted([manager_id, swarm_worker.node_id])
    archive = tar_of({"where": b"worker"})
    helper = f"{settings.deployment}-pernode-helper"
    engine.import_volume(name, HELPER_IMAGE, helper, labels, io.BytesIO(archive), node=swarm_worker.node_id)
    with engine.export_volume(name, HELPER_IMAGE, helper, labels, node=swarm_worker.node_id) as stream:
        assert files_of(b"".join(iter(lambda: stream.read(65536), b""))) == {"where": b"worker"}
    with engine.export_volume(name, HELPER_IMAGE, helper, labels, node=manager_id) as stream:
        assert files_of(b"".join(iter(lambda: stream.read(65536), b""))) == {}  # the manager's is another volume
    engine.remove_volume(name, node=swarm_worker.node_id)
    assert not engine.volume_exists(name, node=swarm_worker.node_id)
    assert engine.volume_exists(name, node=manager_id)
    engine.remove_volume(name)
    assert not engine.volume_exists(name)
