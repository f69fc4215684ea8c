"""Orders on a two-node swarm (the manager and the harness's worker, tests/support/swarm_node.py), through the
bridge: placement by pool, the whole order pinned to its node, data on that node only, a final backup taken
from the worker's engine, and nothing left on either node after terminate."""
from __future__ import annotations

import dataclasses
import socket
import threading
import secrets
import tarfile

import pytest

from app.models import Event, Order
from tests.support.observed import Observer

# Placement and node-local data do not depend on the database: PostgreSQL only (the lifecycle runs on both).
pytestmark = [pytest.mark.usefixtures("docker_engine", "stack_cleanup"),
              pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]


@pytest.fixture
def orchestrator():
    return "swarm"


def set_pool_label(client, node_id: str, pool: str | None) -> None:
    """Set (or remove, with None) the node's live.pool label; a concurrent change of the node is read again."""
    import docker.errors

    for attempt in range(5):
        node = client.nodes.get(node_id)
        spec = node.attrs["Spec"]
        labels = {k: v for k, v in (spec.get("Labels") or {}).items() if k != "live.pool"}
        if pool is not None:
            labels["live.pool"] = pool
        try:
            node.update({**spec, "Labels": labels})
            return
        except docker.errors.APIError as exc:
            if "out of sequence" not in str(exc) or attempt == 4:
                raise


@pytest.fixture
def pool(docker_engine, swarm_worker):
    """A placement pool only the worker is in (its node label live.pool), removed afterwards."""
    name = "t" + secrets.token_hex(4)
    set_pool_label(docker_engine, swarm_worker.node_id, name)
    yield name
    set_pool_label(docker_engine, swarm_worker.node_id, None)


@pytest.fixture
def settings(settings, pool, swarm_worker):
    yield dataclasses.replace(settings, swarm_pool=pool)
    selector = {"label": f"live.deployment={settings.deployment}"}  # what a failed test left on the worker
    for container in swarm_worker.client.containers.list(all=True, filters=selector):
        container.remove(force=True)
    for volume in swarm_worker.client.volumes.list(filters=selector):
        volume.remove(force=True)


def run_all(live):
    live.worker().run_until_idle(timeout=180)


def test_an_order_runs_on_the_pool_node_with_its_data_there_and_terminate_archives_it_from_there(
        live, settings, docker_engine, swarm_worker, make_customer):
    observer = Observer(docker_engine, settings.deployment, "swarm")
    outcome = live.orders.create(service_id=1401, customer=make_customer(), product="busybox-demo", plan="small",
                                 username="far away")
    run_all(live)
    order = Order.get_by_id(outcome.order.id)
    assert order.status == "active", order.last_error_detail
    assert (order.node, order.node_name) == (swarm_worker.node_id, swarm_worker.hostname)
    assert Event.get(Event.kind == "order.placed").data["node"] == swarm_worker.node_id

    # Every service is pinned to the order's node, runs there, and its volumes exist there only.
    services = observer.services(order.id)
    assert {s.node for s in services.values()} == {swarm_worker.node_id}
    mine = {"label": [f"live.deployment={settings.deployment}", f"live.order={order.id}"]}
    for service in docker_engine.services.list(filters=mine):
        placement = service.attrs["Spec"]["TaskTemplate"]["Placement"]
        assert placement["Constraints"] == [f"node.id=={swarm_worker.node_id}"]
    prefix = f"{settings.deployment}-{order.instance}"
    volumes = sorted(v.name for v in swarm_worker.client.volumes.list(filters=mine))
    assert volumes == [f"{prefix}_app-state", f"{prefix}_db-data"]
    assert not docker_engine.volumes.list(filters={"label": f"live.deployment={settings.deployment}"})
    # The order's network spans the nodes: the manager's view lists it as an overlay network.
    [network] = docker_engine.networks.list(filters=mine)
    assert (network.attrs["Driver"], network.attrs["Scope"], network.attrs["Attachable"]) == ("overlay", "swarm", True)
    assert b"far-away.test.local" in services["app"].run(
        ["sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 web 8080"])

    # Data survives suspend (scaled to zero) and unsuspend, on the same node.
    services["db"].run(["sh", "-c", "echo far > /data/customer.txt"])
    live.orders.suspend(order)
    run_all(live)
    assert not any(s.running for s in observer.services(order.id).values())
    live.orders.unsuspend(Order.get_by_id(order.id))
    run_all(live)
    after = observer.services(order.id)
    assert {s.node for s in after.values()} == {swarm_worker.node_id}
    assert after["db"].run(["cat", "/data/customer.txt"]) == b"far\n"

    # Terminate: the final backup is read from the worker's engine, then nothing is left on either node.
    live.orders.terminate(Order.get_by_id(order.id))
    run_all(live)
    order = Order.get_by_id(order.id)
    assert order.status == "terminated", order.last_error_detail
    [final] = live.backups.list(order)
    assert final.kind == "final"
    with live.backups.store.open_artefact(final.backup_id, "volume.db-data.tar") as body, \
            tarfile.open(fileobj=body, mode="r|") as archive:
        contents = {m.name: archive.extractfile(m).read() for m in archive if m.name.endswith("customer.txt")}
    assert list(contents.values()) == [b"far\n"]
    assert observer.wait_until_nothing_left() == {"containers": [], "services": [], "networks": [], "volumes": []}


def test_encrypted_order_networks_when_asked(live, settings, docker_engine, make_customer):
    live.runner.deployer.engine.encrypt_networks = True  # LIVE_SWARM_ENCRYPT_NETWORKS=true
    outcome = live.orders.create(service_id=1402, customer=make_customer(), product="busybox-demo", plan="small",
                                 username="secret net")
    run_all(live)
    order = Order.get_by_id(outcome.order.id)
    assert order.status == "active", order.last_error_detail
    [network] = docker_engine.networks.list(filters={"label": [f"live.deployment={settings.deployment}"]})
    assert "encrypted" in (network.attrs.get("Options") or {})


def test_no_room_in_the_pool_fails_the_create_naming_the_figures(live, settings, docker_engine, make_customer,
                                                                 config_repo):
    compose = (config_repo / "products" / "busybox-demo" / "docker-compose.yml")
    compose.write_text(compose.read_text().replace("mem_limit: 64m", "mem_reservation: 64g"))
    report = live.catalog.sync()
    assert not report.invalid, report
    outcome = live.orders.create(service_id=1403, customer=make_customer(), product="busybox-demo", plan="small",
                                 username="too big")
    run_all(live)
    order = Order.get_by_id(outcome.order.id)
    assert order.status == "failed"
    assert "no node has 65" in order.last_error_detail and "MiB unreserved for the order" in order.last_error_detail
    assert order.node is None
    assert not docker_engine.services.list(filters={"label": [f"live.deployment={settings.deployment}"]})


def test_a_worker_is_no_manager_and_a_node_without_its_engine_label_is_named(docker_engine, swarm_worker):
    from app.errors import EngineOperationError, EngineUnavailable
    from app.stacks.swarm_engine import SwarmEngine

    with pytest.raises(EngineUnavailable, match="is not a swarm manager .*`docker swarm init`"):
        SwarmEngine(swarm_worker.socket_url, timeout=10).ping()
    engine = SwarmEngine(timeout=10)
    assert engine.node_engine(swarm_worker.node_id).api.info()["Name"] == swarm_worker.client.info()["Name"]
    node = docker_engine.nodes.get(swarm_worker.node_id)
    label = node.attrs["Spec"]["Labels"]["live.engine"]
    try:
        spec = node.attrs["Spec"]
        node.update({**spec, "Labels": {k: v for k, v in spec["Labels"].items() if k != "live.engine"}})
        fresh = SwarmEngine(timeout=10)
        with pytest.raises(EngineOperationError, match=f"swarm node {swarm_worker.hostname} has no live.engine label"):
            fresh.node_engine(swarm_worker.node_id)
        assert swarm_worker.node_id not in {n.id for n in fresh.nodes() if n.engine is not None}
    finally:
        for attempt in range(5):
            node.reload()
            spec = node.attrs["Spec"]
            try:
                node.update({**spec, "Labels": {**spec.get("Labels", {}), "live.engine": label}})
                break
            except Exception:
                if attempt == 4:
                    raise


def set_engine_label(client, node_id: str, address: str) -> None:
    """Point the node's live.engine label at ``address`` (a concurrent change of the node is read again)."""
    import docker.errors

    for attempt in range(5):
        node = client.nodes.get(node_id)
        spec = node.attrs["Spec"]
        try:
            node.update({**spec, "Labels": {**(spec.get("Labels") or {}), "live.engine": address}})
            return
        except docker.errors.APIError as exc:
            if "out of sequence" not in str(exc) or attempt == 4:
                raise


@pytest.fixture
def hanging_up_engine(tmp_path):
    """A unix socket that accepts every connection and closes it at once: an engine that does not answer.

    (A socket path that does not exist would do too, but docker-py's UnixHTTPConnection leaks the socket of each
    failed connect, and the garbage collector's warnings would land in later tests.)"""
    path = tmp_path / "hangs-up.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(16)
    stop = threading.Event()

    def serve():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"unix://{path}"
    stop.set()
    thread.join(timeout=5)
    server.close()


def test_an_unreachable_node_engine_never_reads_as_no_volumes(live, settings, docker_engine, swarm_worker,
                                                             make_customer, hanging_up_engine):
    """Terminate of an order whose node's engine cannot be reached fails and deletes nothing (no final backup
    without the volumes, no pruning); once the engine answers again, terminate archives the data."""
    outcome = live.orders.create(service_id=1404, customer=make_customer(), product="busybox-demo", plan="small",
                                 username="cut off")
    run_all(live)
    order = Order.get_by_id(outcome.order.id)
    assert order.node == swarm_worker.node_id, order.last_error_detail
    Observer(docker_engine, settings.deployment, "swarm").services(order.id)["db"].run(
        ["sh", "-c", "echo kept > /data/customer.txt"])
    live.orders.suspend(order)
    run_all(live)
    before = [b.backup_id for b in live.backups.list(order)]

    set_engine_label(docker_engine, swarm_worker.node_id, hanging_up_engine)
    live.engine.forget_node_engines()  # the bridge reads the label again, as after a restart
    try:
        live.orders.terminate(Order.get_by_id(order.id))
        run_all(live)
        failed = Order.get_by_id(order.id)
        assert failed.status != "terminated"
        assert f"on the engine of swarm node {swarm_worker.hostname} ({hanging_up_engine})" in \
            (failed.last_error_detail or "")
        assert [b.backup_id for b in live.backups.list(failed)] == before  # nothing pruned, no empty final backup
        assert len(swarm_worker.client.volumes.list(filters={"label": f"live.order={order.id}"})) == 2
    finally:
        set_engine_label(docker_engine, swarm_worker.node_id, swarm_worker.socket_url)
        live.engine.forget_node_engines()
    live.orders.terminate(Order.get_by_id(order.id))
    run_all(live)
    order = Order.get_by_id(order.id)
    assert order.status == "terminated", order.last_error_detail
    [final] = [b for b in live.backups.list(order) if b.kind == "final"]
    with live.backups.store.open_artefact(final.backup_id, "volume.db-data.tar") as body, \
            tarfile.open(fileobj=body, mode="r|") as archive:
        assert [archive.extractfile(m).read() for m in archive if m.name.endswith("customer.txt")] == [b"kept\n"]
