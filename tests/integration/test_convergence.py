"""Convergence beyond the happy path: product changes, paused and removed containers, recreates."""
from __future__ import annotations

import secrets
import subprocess
import urllib.request

import pytest

from app.errors import DataRiskError
from app.models import Operation, Order
from tests.conftest import TEST_IMAGE, write_product

pytestmark = pytest.mark.usefixtures("docker_engine", "stack_cleanup")


def services(docker_engine, settings):
    found = docker_engine.containers.list(all=True, filters={"label": f"live.deployment={settings.deployment}"})
    return {c.labels["live.service"]: c for c in found}


def run_all(live):
    live.worker().run_until_idle(timeout=120)


@pytest.fixture
def active_order(live, make_customer):
    outcome = live.orders.create(service_id=77, customer=make_customer(), product="busybox-demo", plan="small",
                                 username="converge")
    run_all(live)
    order = Order.get_by_id(outcome.order.id)
    assert order.status == "active", order.last_error
    return order


def test_product_change_keeps_shared_services_and_data(live, settings, config_repo, docker_engine, deployed_objects,
                                                       active_order):
    # A bigger product that keeps the same "db" service and replaces app + web by "api".
    demo = config_repo / "products" / "busybox-demo"
    compose = (demo / "docker-compose.yml").read_text()
    db_block = compose[compose.index("  db:"):compose.index("  app:")]
    write_product(config_repo, "busybox-pro", """
name: Busybox pro
variables:
  DB_PASSWORD: {generate: secret}
  API_TOKEN: {generate: hex, length: 16}
plans:
  pro: {}
endpoints:
  - {application: api, service: api, port: 9090, path: /api}
""", "services:\n" + db_block + """
  api:
    image: live-test/busybox:latest
    init: true
    command: ["sh", "-c", "mkdir -p /www/api && echo $$API_TOKEN > /www/api/token && exec httpd -f -p 9090 -h /www"]
    environment:
      API_TOKEN: ${API_TOKEN}
    depends_on:
      db: {condition: service_healthy}
    stop_grace_period: 2s
volumes:
  db-data:
""")
    live.catalog.sync()
    before = services(docker_engine, settings)
    before["db"].exec_run(["sh", "-c", "echo kept > /data/marker"])
    old_secret = active_order.secrets["DB_PASSWORD"]

    # app's volume would be left behind: refused unless the operator accepts it (issue 9, item 5).
    with pytest.raises(DataRiskError, match="volume app-state is left behind") as refused:
        live.orders.change_plan(active_order, "pro", product="busybox-pro")
    assert refused.value.report.left_behind == ["app-state"]
    live.orders.change_plan(active_order, "pro", product="busybox-pro", allow_data_risk=True)
    run_all(live)
    order = Order.get_by_id(active_order.id)
    assert [entry["volume"] for entry in order.detached_volumes] == ["app-state"], "listed on the order"
    assert (order.status, order.product.slug, order.plan) == ("active", "busybox-pro", "pro"), order.last_error
    after = services(docker_engine, settings)
    assert sorted(after) == ["api", "db"], "app and web were removed as orphans"
    assert after["db"].id == before["db"].id, "db's configuration is the same, so it was not recreated"
    assert after["db"].exec_run(["cat", "/data/marker"]).output == b"kept\n"
    assert order.secrets["DB_PASSWORD"] == old_secret and len(order.secrets["API_TOKEN"]) == 16
    assert set(order.published_ports) == {"api:9090"}
    # The old product's app-state volume is kept (data is never dropped without an archive).
    assert f"{settings.deployment}-converge_app-state" in deployed_objects()["volumes"]

    live.orders.terminate(order)
    run_all(live)
    assert deployed_objects() == {"containers": [], "networks": [], "volumes": []}
    [final] = live.backups.list(order)
    assert final.kind == "final"
    assert sorted(a.name for a in final.artefacts) == ["volume.app-state.tar", "volume.db-data.tar"]


def test_redeploy_repairs_paused_stopped_and_removed_containers(live, settings, docker_engine, active_order):
    containers = services(docker_engine, settings)
    containers["web"].pause()
    containers["app"].stop(timeout=1)
    containers["db"].remove(force=True)
    live.orders.redeploy(Order.get_by_id(active_order.id))
    run_all(live)
    repaired = services(docker_engine, settings)
    assert {name: c.status for name, c in repaired.items()} == {"db": "running", "app": "running", "web": "running"}
    assert repaired["web"].id == containers["web"].id and repaired["app"].id == containers["app"].id
    assert repaired["db"].id != containers["db"].id
    assert Order.get_by_id(active_order.id).status == "active"


def test_a_taken_host_port_moves_the_endpoint(live, settings, docker_engine, active_order):
    import socket
    import urllib.request

    live.orders.suspend(Order.get_by_id(active_order.id))
    run_all(live)
    old_port = Order.get_by_id(active_order.id).published_ports["web:8080"]
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", old_port))
    squatter.listen()
    try:
        live.orders.unsuspend(Order.get_by_id(active_order.id))
        run_all(live)
        order = Order.get_by_id(active_order.id)
        assert order.status == "active", order.last_error
        new_port = order.published_ports["web:8080"]
        assert new_port != old_port
        assert b"converge.test.local" in urllib.request.urlopen(f"http://127.0.0.1:{new_port}/", timeout=5).read()
    finally:
        squatter.close()


def change_web(config_repo, live, *changes: tuple[str, str]) -> None:
    """A new revision of busybox-demo whose web service differs (each ``(old, new)`` replaced in its block)."""
    path = config_repo / "products" / "busybox-demo" / "docker-compose.yml"
    compose = path.read_text()
    start = compose.index("  web:")
    end = compose.index("\n\n", start)
    block = compose[start:end]
    for old, new in changes:
        assert old in block
        block = block.replace(old, new)
    path.write_text(compose[:start] + block + compose[end:])
    live.catalog.sync()


def page(port: int) -> bytes:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()


def test_a_recreated_service_gets_its_final_name_and_keeps_its_host_port(live, settings, config_repo, docker_engine,
                                                                         active_order):
    before = services(docker_engine, settings)
    port = active_order.published_ports["web:8080"]
    change_web(config_repo, live, ("org.example.role: frontend", "org.example.role: frontend-v2"))
    live.orders.upgrade(Order.get_by_id(active_order.id))
    run_all(live)
    order = Order.get_by_id(active_order.id)
    assert order.status == "active" and order.last_error is None, order.last_error_detail
    after = services(docker_engine, settings)
    web = after["web"]
    assert web.id != before["web"].id and web.labels["org.example.role"] == "frontend-v2"
    assert web.name == f"{settings.deployment}-converge_web", "renamed from its temporary name"
    assert web.labels["live.replaces"] == before["web"].id
    assert (after["db"].id, after["app"].id) == (before["db"].id, before["app"].id)
    assert len(docker_engine.containers.list(all=True, filters={"label": f"live.deployment={settings.deployment}"})) \
        == 3
    assert order.published_ports["web:8080"] == port
    assert web.attrs["HostConfig"]["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    assert b"converge.test.local" in page(port)


class ImageRemovedAfterPlan:
    """The real engine, but the image ``ref`` is untagged as soon as the plan has read its id (an operator
    removed it meanwhile): the replacement's create is the call that fails, on the engine."""

    def __init__(self, engine, ref: str, client):
        self._engine, self.ref, self.client = engine, ref, client

    def image_id(self, ref: str) -> str:
        found = self._engine.image_id(ref)
        if ref == self.ref:
            self.client.images.remove(ref)
        return found

    def __getattr__(self, name):
        return getattr(self._engine, name)


def test_a_replacement_that_cannot_be_created_leaves_the_old_container_serving(live, settings, config_repo,
                                                                               docker_engine, active_order):
    gone = f"live-test/busybox:gone-{secrets.token_hex(4)}"
    docker_engine.images.get(TEST_IMAGE).tag(gone)
    try:
        before = services(docker_engine, settings)
        port = active_order.published_ports["web:8080"]
        # Another tag of the same image id: the label makes the change.
        change_web(config_repo, live, (f"image: {TEST_IMAGE}", f"image: {gone}"), ("frontend", "frontend-v2"))
        live.deployer.engine = ImageRemovedAfterPlan(live.engine, gone, docker_engine)
        outcome = live.orders.upgrade(Order.get_by_id(active_order.id))
        run_all(live)
    finally:
        subprocess.run(["docker", "image", "rm", gone], capture_output=True, check=False)
    operation = Operation.get_by_id(outcome.operation.id)
    assert operation.state == "failed" and operation.attempts == 1
    assert f"No such image: {gone}" in operation.error_detail
    after = services(docker_engine, settings)
    assert {name: c.id for name, c in after.items()} == {name: c.id for name, c in before.items()}
    assert {c.status for c in after.values()} == {"running"}
    names = sorted(c.name for c in docker_engine.containers.list(
        all=True, filters={"label": f"live.deployment={settings.deployment}"}))
    assert names == sorted(f"{settings.deployment}-converge_{s}" for s in ("app", "db", "web")), "no replacement left"
    assert b"converge.test.local" in page(port)
