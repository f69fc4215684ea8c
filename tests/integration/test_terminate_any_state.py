"""Terminate finishes from any order state, and a failed one tells the truth (issue 10), on the in-memory engine.

The real worker, database (SQLite and PostgreSQL) and backup store (the file store in ``LIVE_BACKUP_DIR``) run
every operation; only the container engine is :class:`tests.fakes.FakeEngine`, so each branch (half-made
stacks, missing networks, images gone, a product that no longer renders, the store failing) is cheap to
reach. Terminate takes the order's final backup into the store (issue 13) before it removes anything. The
cases that matter most also run on the real engine in ``test_archive_destination.py``.
"""
from __future__ import annotations

import os
import stat
import tarfile

import pytest

from app.backups.file_store import FileBackupStore
from app.backups.service import BackupState
from app.errors import InvalidRequest, EngineUnavailable
from app.models import Backup, Event, Operation, Order
from tests.conftest import TEST_IMAGE
from tests.fakes import FakeEngine


@pytest.fixture
def engine(live):
    """The in-memory engine under the composed application, with the product image and the archive helper."""
    fake = FakeEngine([TEST_IMAGE, live.settings.helper_image])
    live.deployer.engine = fake
    return fake


def create(live, make_customer, service_id: int, name: str, run: bool = True) -> Order:
    outcome = live.orders.create(service_id=service_id, customer=make_customer(), product="busybox-demo",
                                 plan="small", username=name)
    if run:
        live.worker().run_until_idle(timeout=60)
    return Order.get_by_id(outcome.order.id)


def terminate(live, order: Order) -> Operation:
    outcome = live.orders.terminate(Order.get_by_id(order.id))
    live.worker().run_until_idle(timeout=60)
    return Operation.get_by_id(outcome.operation.id)


def objects(engine: FakeEngine, live, order: Order) -> dict[str, list[str]]:
    selector = {"live.deployment": live.settings.deployment, "live.order": str(order.id)}
    return {"containers": sorted(c.name for c in engine.list_containers(selector)),
            "networks": sorted(n.name for n in engine.list_networks(selector)),
            "volumes": sorted(v.name for v in engine.list_volumes(selector))}


def running(engine: FakeEngine, live, order: Order) -> list[str]:
    selector = {"live.deployment": live.settings.deployment, "live.order": str(order.id)}
    return sorted(c.service for c in engine.list_containers(selector) if c.running)


def assert_private(path) -> None:
    """Backups hold customer data and generated passwords: folders 0700, files 0600."""
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700, path.parent
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


def artefacts(volumes: list[str]) -> list[str]:
    """The artefact names of a final backup of the engine volumes ``volumes`` (``<deployment>-<instance>_<volume>``)."""
    return sorted(f"volume.{name.rsplit('_', 1)[1]}.tar" for name in volumes)


def block_the_order_folder(live, order: Order) -> str:
    """Put a file where the store makes the order's folder: the store answers, but cannot take the backup. The
    error detail the terminate then fails with."""
    folder = live.settings.backup_dir / order.instance
    live.settings.backup_dir.mkdir(parents=True, exist_ok=True)
    folder.write_text("an operator's file")
    return f"backup store: cannot create the folder {folder}: File exists (EEXIST)"


# -- the states an order can be in when billing terminates it ----------------------------------------------------
def active(live, engine, make_customer):
    return create(live, make_customer, 201, "active")


def suspended(live, engine, make_customer):
    order = create(live, make_customer, 202, "suspended")
    live.orders.suspend(order)
    live.worker().run_until_idle(timeout=60)
    return order


def failed_create(live, engine, make_customer):
    """The product's image is missing: the create fails and its clean-up (helper image only) removes everything."""
    del engine.images[TEST_IMAGE]
    order = create(live, make_customer, 203, "failed-create")
    assert Order.get_by_id(order.id).status == "failed"
    assert objects(engine, live, order) == {"containers": [], "networks": [], "volumes": []}
    [final] = live.backups.list(order)
    assert final.kind == "final" and [a.name for a in final.artefacts] == ["volume.app-state.tar", "volume.db-data.tar"]
    return order


def failed_create_left_objects(live, engine, make_customer):
    """A failed create whose clean-up could not finish (the helper was missing then): networks and volumes remain."""
    del engine.images[TEST_IMAGE]
    del engine.images[live.settings.helper_image]
    order = create(live, make_customer, 204, "half-cleaned")
    assert Order.get_by_id(order.id).status == "failed"
    assert objects(engine, live, order)["volumes"], "nothing was dropped without a backup"
    assert live.backups.list(order) == []
    assert "cleanup did not finish" in Order.get_by_id(order.id).last_error_detail
    engine.add_image(live.settings.helper_image)  # an operator installs the helper
    return order


def pending_with_create_queued(live, engine, make_customer):
    return create(live, make_customer, 205, "queued", run=False)


def pending_with_create_that_will_fail(live, engine, make_customer):
    del engine.images[TEST_IMAGE]
    return create(live, make_customer, 206, "doomed", run=False)


def half_made(live, engine, make_customer):
    order = create(live, make_customer, 207, "half-made")
    engine.remove_container(engine.container(f"{live.settings.deployment}-half-made_web").id)
    return order


def containers_missing(live, engine, make_customer):
    order = create(live, make_customer, 208, "no-containers")
    for container in list(engine.containers.values()):
        engine.remove_container(container.id)
    return order


def networks_missing(live, engine, make_customer):
    order = create(live, make_customer, 209, "no-networks")
    for container in list(engine.containers.values()):
        engine.remove_container(container.id)
    for network in list(engine.networks):
        engine.remove_network(network)
    return order


def images_gone(live, engine, make_customer):
    """The product's image was removed from the engine after the deploy (pruned, or never pullable again)."""
    order = create(live, make_customer, 210, "images-gone")
    del engine.images[TEST_IMAGE]
    return order


def no_longer_renders(live, engine, make_customer):
    """The order's plan is gone from its revision: the stack cannot be rendered, the labels still find it."""
    order = create(live, make_customer, 211, "unrenderable")
    Order.update(plan="retired").where(Order.id == order.id).execute()
    with pytest.raises(InvalidRequest, match="has no plan 'retired'"):
        live.runner.project(Order.get_by_id(order.id))
    return order


STATES = [active, suspended, failed_create, failed_create_left_objects, pending_with_create_queued,
          pending_with_create_that_will_fail, half_made, containers_missing, networks_missing, images_gone,
          no_longer_renders]


@pytest.mark.parametrize("state", STATES, ids=[s.__name__ for s in STATES])
def test_terminate_succeeds_from_any_state(live, engine, make_customer, state):
    order = state(live, engine, make_customer)
    volumes_before = objects(engine, live, order)["volumes"]
    operation = terminate(live, order)
    assert operation.state == "succeeded", (operation.error_detail, operation.steps)
    assert operation.attempts == 1
    order = Order.get_by_id(order.id)
    assert order.status == "terminated" and order.terminated_at is not None
    assert objects(engine, live, order) == {"containers": [], "networks": [], "volumes": []}
    final = Event.get((Event.order == order) & (Event.kind == "order.archived")).data["backup_id"]
    manifests = live.backups.list(order)
    assert manifests and {m.kind for m in manifests} == {"final"}, "a terminated order keeps its final backups only"
    if volumes_before:
        manifest = live.backups.find(final, order)
        assert sorted(a.name for a in manifest.artefacts) == artefacts(volumes_before), "every volume there was is in it"
    elif state is failed_create:  # its clean-up backed the volumes up and removed them: nothing left to back up
        assert final is None
    for manifest in manifests:
        assert live.backups.store.verify(manifest.backup_id) == []
        for artefact in manifest.artefacts:
            path = live.settings.backup_dir / order.instance / manifest.backup_id / artefact.name
            assert_private(path)
            with tarfile.open(path) as archive:
                archive.getmembers()
    assert engine.calls_of("pull") == [], "terminate never pulls an image"


def test_terminate_never_uses_the_products_images(live, engine, make_customer):
    order = create(live, make_customer, 220, "helper-only")
    terminate(live, order)
    helpers = [c for c in engine.calls if c == ("export_volume", f"{live.settings.deployment}-helper-only_db-data")]
    assert helpers, engine.calls
    assert Order.get_by_id(order.id).status == "terminated"


# -- failures: nothing deleted, no helper left, a status that tells the truth ------------------------------------
def assert_nothing_claimed(operation: Operation, order: Order) -> None:
    """Nothing was stopped, so nothing is said to run again and no ``order.active`` event is added."""
    steps = [step["message"] for step in operation.steps]
    assert steps[-1] == "terminate failed before anything was stopped: the order's containers keep running"
    assert not any("run again" in step or step.startswith("wait for health") for step in steps)
    assert Event.select().where((Event.order == order) & (Event.kind == "order.active")).count() == 1  # the create


def test_helper_image_missing_fails_at_once_naming_the_setting_and_the_script(live, engine, make_customer):
    order = create(live, make_customer, 230, "no-helper")
    del engine.images[live.settings.helper_image]
    before = objects(engine, live, order)
    operation = terminate(live, order)
    assert operation.state == "failed" and operation.attempts == 1, "not retried: only an operator can fix it"
    assert operation.error == ("the final backup failed: the archive tool of the platform is not installed; nothing "
                               f"was deleted (operation {operation.id})")
    assert "live/archive-helper:2 (LIVE_HELPER_IMAGE) is not on the Docker engine" in operation.error_detail
    assert "bash scripts/build-helper-image.sh live/archive-helper:2" in operation.error_detail
    order = Order.get_by_id(order.id)
    assert order.status == "active" and running(engine, live, order) == ["app", "db", "web"]
    assert objects(engine, live, order) == before, "nothing was stopped, nothing deleted"
    assert engine.calls_of("stop_container") == []
    assert_nothing_claimed(operation, order)


def test_a_store_that_cannot_be_listed_fails_at_once_before_anything_stops(live, engine, make_customer, tmp_path):
    order = create(live, make_customer, 231, "to-a-file")
    root = tmp_path / "backups.tar"
    root.write_text("an operator's file")
    live.backups.store = FileBackupStore(root)  # as LIVE_BACKUP_STORE naming a file
    before = objects(engine, live, order)
    operation = terminate(live, order)
    assert operation.state == "failed" and operation.attempts == 1
    assert operation.error == ("the final backup failed: the backup storage cannot be used right now "
                               f"(operation {operation.id})")
    assert operation.error_detail == f"backup store: cannot use the folder {root}: Not a directory (ENOTDIR)"
    order = Order.get_by_id(order.id)
    assert order.status == "active" and order.last_error_detail == operation.error_detail
    assert objects(engine, live, order) == before and running(engine, live, order) == ["app", "db", "web"]
    assert engine.calls_of("stop_container") == []
    assert_nothing_claimed(operation, order)


def test_the_store_failing_after_the_stop_restarts_the_stack_and_keeps_everything(live, engine, make_customer):
    order = create(live, make_customer, 232, "midway")
    volume = f"{live.settings.deployment}-midway_db-data"
    engine.write_file(volume, "base/1/rows", os.urandom(20000))
    before = objects(engine, live, order)
    detail = block_the_order_folder(live, order)
    operation = terminate(live, order)
    assert operation.state == "failed" and operation.attempts == 1
    assert operation.error_detail == detail
    order = Order.get_by_id(order.id)
    # The containers terminate stopped run again: the order is truly active, nothing was deleted.
    assert order.status == "active" and running(engine, live, order) == ["app", "db", "web"]
    assert objects(engine, live, order) == before
    assert len(engine.volumes[volume].files["base/1/rows"]) == 20000, "the data is still there"
    assert [row.state for row in Backup.select().where(Backup.order == order)] == [BackupState.FAILED]
    assert Event.select().where((Event.order == order) & (Event.kind == "order.active")).count() == 2  # create, restore
    steps = [step["message"] for step in operation.steps]
    assert "stop db" in steps
    assert "terminate failed and nothing was deleted: the order's containers run again" in steps


def test_a_stack_that_cannot_start_again_is_recorded_failed_not_active(live, engine, make_customer):
    order = create(live, make_customer, 233, "stays-down")
    block_the_order_folder(live, order)
    del engine.images[TEST_IMAGE]  # so the stack cannot be converged back
    operation = terminate(live, order)
    assert operation.state == "failed"
    order = Order.get_by_id(order.id)
    assert order.status == "failed", "its containers are stopped: the order must not say active"
    assert running(engine, live, order) == []
    assert objects(engine, live, order)["volumes"], "nothing was deleted"
    event = Event.get((Event.order == order) & (Event.kind == "order.failed"))
    assert "image" in event.data["error_detail"]
    view = live.queries.order_view(order, include_local_urls=True)
    assert [e["local_url"] for e in view["endpoints"]] == [None]


def test_a_suspended_order_stays_suspended_when_terminate_fails(live, engine, make_customer):
    order = suspended(live, engine, make_customer)
    block_the_order_folder(live, order)
    operation = terminate(live, order)
    assert operation.state == "failed"
    order = Order.get_by_id(order.id)
    assert order.status == "suspended" and running(engine, live, order) == []
    assert engine.calls_of("start_container").count(f"{live.settings.deployment}-suspended_db") == 1  # create only


def test_a_transient_engine_failure_midway_is_retried_and_finishes(live, engine, make_customer):
    order = create(live, make_customer, 234, "blip")
    engine.stream_failures[("export_volume", f"{live.settings.deployment}-blip_db-data")] = EngineUnavailable(
        "read volume: the Docker engine's stream broke: connection reset")
    operation = terminate(live, order)
    assert operation.state == "succeeded" and operation.attempts == 2
    assert Order.get_by_id(order.id).status == "terminated"
    assert objects(engine, live, order) == {"containers": [], "networks": [], "volumes": []}
    [final] = live.backups.list(order)  # the broken attempt's upload was removed: one backup in the store
    assert sorted(os.listdir(live.settings.backup_dir / order.instance)) == [final.backup_id]
    assert sorted(row.state for row in Backup.select().where(Backup.order == order)) == ["failed", "succeeded"]


@pytest.mark.parametrize("kind", ["suspend", "unsuspend", "restart", "redeploy"])
def test_an_operation_queued_behind_a_terminate_leaves_the_order_terminated(live, engine, make_customer, kind):
    order = create(live, make_customer, 280 + ["suspend", "unsuspend", "restart", "redeploy"].index(kind), f"late-{kind}")
    if kind == "unsuspend":
        live.orders.suspend(order)
        live.worker().run_until_idle(timeout=60)
    terminated = live.orders.terminate(Order.get_by_id(order.id))
    late = getattr(live.orders, kind)(Order.get_by_id(order.id))  # WHMCS's next call, before the worker ran
    assert late is not None and late.operation.id != terminated.operation.id
    live.worker().run_until_idle(timeout=60)
    order = Order.get_by_id(order.id)
    assert order.status == "terminated"
    assert objects(engine, live, order) == {"containers": [], "networks": [], "volumes": []}
    operation = Operation.get_by_id(late.operation.id)
    assert operation.state == "succeeded"
    assert [step["message"] for step in operation.steps][-1] == f"order {order.instance} is terminated: nothing to do"
