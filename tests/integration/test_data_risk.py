"""An upgrade never silently leaves the customer's data behind (issue 9, item 5), on the real engine."""
from __future__ import annotations

import pytest

from app.errors import DataRiskError
from app.models import Event, Operation, Order
from tests.conftest import write_product

pytestmark = pytest.mark.usefixtures("docker_engine", "stack_cleanup")

MANIFEST = "name: Keeper\nplans: {basic: {}}\nendpoints:\n  - {application: web, service: db, port: 8080}\n"


def compose(volume: str, path: str = "/data") -> str:
    # The service keeps a marker in its volume: a fresh (empty) volume gets a new one.
    return f"""
services:
  db:
    image: live-test/busybox:latest
    init: true
    command: ["sh", "-c", "test -f {path}/marker || cat /proc/sys/kernel/random/uuid > {path}/marker; exec httpd -f -p 8080 -h {path}"]
    volumes:
      - {volume}:{path}
    stop_grace_period: 1s
volumes:
  {volume}:
"""


def run_all(live):
    live.worker().run_until_idle(timeout=120)


def marker(docker_engine, settings, order, path="/data") -> str:
    [container] = docker_engine.containers.list(filters={"label": [f"live.deployment={settings.deployment}",
                                                                   f"live.order={order.id}"]})
    return container.exec_run(["cat", f"{path}/marker"]).output.decode().strip()


@pytest.fixture
def keeper(live, config_repo, make_customer, docker_engine, settings):
    write_product(config_repo, "keeper", MANIFEST, compose("pgdata"))
    live.catalog.sync()
    outcome = live.orders.create(service_id=900, customer=make_customer(), product="keeper", plan="basic",
                                 username="keeper")
    run_all(live)
    order = Order.get_by_id(outcome.order.id)
    assert order.status == "active", order.last_error
    return order, live.catalog.product("keeper").current_revision


def new_revision(live, config_repo, text: str):
    write_product(config_repo, "keeper", MANIFEST, text)
    live.catalog.sync()
    return live.catalog.product("keeper").current_revision


def test_a_renamed_volume_is_named_by_the_dry_run_and_refused(live, config_repo, keeper):
    order, _ = keeper
    renamed = new_revision(live, config_repo, compose("db-data"))
    preview = live.runner.preview(order, renamed)
    assert preview["services"] == {"db": "recreate"}
    assert preview["data"]["left_behind"] == ["pgdata"] and preview["data"]["new_volumes"] == ["db-data"]
    assert preview["data"]["existing_volumes"] == []
    assert "service db: /data moves from volume pgdata to volume db-data (new, empty)" in preview["data"]["risks"]

    with pytest.raises(DataRiskError, match="volume pgdata is left behind"):
        live.orders.upgrade(order)
    assert not Operation.select().where(Operation.kind == "upgrade").exists(), "nothing was queued"


def test_an_accepted_risk_keeps_lists_and_archives_the_old_volume(live, config_repo, keeper, docker_engine,
                                                                   settings, deployed_objects):
    order, first = keeper
    before = marker(docker_engine, settings, order)
    renamed = new_revision(live, config_repo, compose("db-data"))
    live.orders.upgrade(order, allow_data_risk=True)
    run_all(live)
    order = Order.get_by_id(order.id)
    assert order.status == "active" and order.revision_id == renamed.id, order.last_error
    assert [entry["volume"] for entry in order.detached_volumes] == ["pgdata"]
    assert order.detached_volumes[0]["revision"] == first.label
    assert f"{settings.deployment}-keeper_pgdata" in deployed_objects()["volumes"], "kept on the engine"
    assert marker(docker_engine, settings, order) != before, "the service runs on the new, empty volume"
    assert Event.select().where(Event.kind == "order.data_detached").count() == 1

    # Rolling back re-attaches the old volume: the dry run says it is not empty, and it leaves the list.
    preview = live.runner.preview(order, first)
    assert preview["data"]["existing_volumes"] == ["pgdata"]
    live.orders.upgrade(order, first.content_hash, allow_data_risk=True)
    run_all(live)
    order = Order.get_by_id(order.id)
    assert marker(docker_engine, settings, order) == before, "the customer's data is back"
    assert [entry["volume"] for entry in order.detached_volumes] == ["db-data"]

    live.orders.terminate(order)
    run_all(live)
    [final] = live.backups.list(order)
    assert final.kind == "final"
    assert sorted(a.name for a in final.artefacts) == ["volume.db-data.tar", "volume.pgdata.tar"], \
        "terminate's final backup holds the volumes left behind too"


def test_a_volume_mounted_at_another_path_is_a_data_risk(live, config_repo, keeper):
    order, _ = keeper
    new_revision(live, config_repo, compose("pgdata", "/var/lib/data"))
    with pytest.raises(DataRiskError, match="moves from /data to /var/lib/data"):
        live.orders.upgrade(order)


def test_the_worker_checks_again_before_it_changes_anything(live, config_repo, keeper, docker_engine, settings):
    order, _ = keeper
    before = marker(docker_engine, settings, order)
    renamed = new_revision(live, config_repo, compose("db-data"))
    # Queued as if the request had been checked against another state: the worker refuses it.
    operation = Operation.create(order=order, kind="upgrade", params={"revision": renamed.content_hash})
    run_all(live)
    operation = Operation.get_by_id(operation.id)
    assert operation.state == "failed" and "would leave the customer's data behind" in operation.error_detail
    order = Order.get_by_id(order.id)
    assert order.revision_id != renamed.id and order.detached_volumes == []
    assert marker(docker_engine, settings, order) == before, "nothing was touched"
