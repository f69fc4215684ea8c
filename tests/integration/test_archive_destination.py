"""Issues 10 and 13 on the real Docker engine: terminate's final backup when images, the helper or the store fail.

- A create whose images cannot be pulled is cleaned up with the archive helper alone (its volumes go into a
  final backup in the store), and its order can be terminated (it used to fail forever with "image ... is
  not available").
- When the helper image is missing or the store cannot be listed, terminate fails at once with the cause,
  stops and deletes nothing, and leaves no helper container.
- When the store fails once the stack is stopped, nothing is deleted and the containers run again; once the
  operator fixes the store, the same terminate goes through.

The store is the default one, ``file://<LIVE_BACKUP_DIR>``; its failures are made with plain files in the
way of its folders (the tests run as root, where permissions would not stop a write).
"""
from __future__ import annotations

import stat
import tarfile

import pytest

from app.backups.file_store import FileBackupStore
from app.models import Backup, Event, Operation, Order

pytestmark = pytest.mark.usefixtures("docker_engine", "stack_cleanup")

PUBLIC_STORE = "the final backup failed: the backup storage cannot be used right now"


def run_all(live):
    live.worker().run_until_idle(timeout=180)


def create_busybox(live, make_customer, service_id: int, name: str) -> Order:
    outcome = live.orders.create(service_id=service_id, customer=make_customer(), product="busybox-demo",
                                 plan="small", username=name)
    run_all(live)
    order = Order.get_by_id(outcome.order.id)
    assert order.status == "active", order.last_error_detail
    return order


def terminate(live, order: Order) -> Operation:
    outcome = live.orders.terminate(Order.get_by_id(order.id))
    run_all(live)
    return Operation.get_by_id(outcome.operation.id)


def states(docker_engine, settings, order: Order) -> dict[str, str]:
    """Container name -> state, for every container of the order (archive helpers included)."""
    found = docker_engine.containers.list(all=True, filters={"label": [f"live.deployment={settings.deployment}",
                                                                       f"live.order={order.id}"]})
    return {c.name: c.status for c in found}


def assert_untouched(docker_engine, settings, deployed_objects, order: Order, before: dict) -> None:
    """Everything of the order is still there and running, and no archive helper was left behind."""
    assert deployed_objects() == before
    assert set(states(docker_engine, settings, order).values()) == {"running"}
    assert not [name for name in states(docker_engine, settings, order) if name.endswith("-archive")]


def assert_private(settings, manifest) -> None:
    """Backups hold customer data and generated passwords: folders 0700, files 0600, tar artefacts readable."""
    folder = settings.backup_dir / manifest.instance / manifest.backup_id
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for artefact in manifest.artefacts:
        path = folder / artefact.name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        with tarfile.open(path) as archive:
            archive.getmembers()


def test_failed_create_with_unpullable_images_is_cleaned_up_and_can_be_terminated(live, settings, deployed_objects,
                                                                                    make_customer):
    """The issue's case: geoserver-postgis where postgis/postgis:17-3.5 cannot be pulled."""
    outcome = live.orders.create(service_id=301, customer=make_customer(), product="geoserver-postgis",
                                 plan=sorted(live.catalog.definition(
                                     live.catalog.deployable_revision("geoserver-postgis")).plans)[0],
                                 username="geo")
    run_all(live)
    order = Order.get_by_id(outcome.order.id)
    operation = Operation.get_by_id(outcome.operation.id)
    assert order.status == "failed" and operation.attempts == 1
    assert "could not be pulled" in order.last_error_detail
    assert "cleanup did not finish" not in order.last_error_detail
    assert not [s for s in operation.steps if "cleanup did not finish" in s["message"]]
    # The failed create removed what it made (2 networks, 2 volumes), with a final backup of the volumes first;
    # PostGIS never ran, so its volume is archived as files instead of dumped.
    assert deployed_objects() == {"containers": [], "networks": [], "volumes": []}
    [final] = live.backups.list(order)
    assert final.kind == "final"
    assert [a.name for a in final.artefacts] == ["volume.geoserver-data.tar", "volume.postgis-data.tar"]
    assert live.backups.store.verify(final.backup_id) == []
    assert_private(settings, final)

    terminated = terminate(live, order)
    assert terminated.state == "succeeded", terminated.error_detail
    assert Order.get_by_id(order.id).status == "terminated"
    assert [m.backup_id for m in live.backups.list(order)] == [final.backup_id], "the failed create's backup is kept"


def test_missing_helper_image_fails_at_once_and_changes_nothing(live, settings, docker_engine, deployed_objects,
                                                                make_customer):
    order = create_busybox(live, make_customer, 302, "no-helper")
    live.deployer.helper_image = "live/archive-helper:absent"  # as LIVE_HELPER_IMAGE naming an image not built
    before = deployed_objects()
    operation = terminate(live, order)
    assert operation.state == "failed" and operation.attempts == 1
    assert operation.error_detail == (
        "the archive helper image live/archive-helper:absent (LIVE_HELPER_IMAGE) is not on the Docker engine; build "
        "it there with `bash scripts/build-helper-image.sh live/archive-helper:absent` (nothing was stopped or "
        "deleted)")
    assert Order.get_by_id(order.id).status == "active"
    assert_untouched(docker_engine, settings, deployed_objects, order, before)
    assert not [step for step in operation.steps if step["message"].startswith("stop ")]
    assert live.backups.list(order) == []


def test_a_store_that_is_a_file_fails_at_once_and_changes_nothing(live, settings, docker_engine, deployed_objects,
                                                                  make_customer, tmp_path):
    order = create_busybox(live, make_customer, 303, "to-a-file")
    target = tmp_path / "elsewhere"
    target.write_text("not a folder")
    live.backups.store = FileBackupStore(target)  # as LIVE_BACKUP_STORE (or LIVE_BACKUP_DIR) naming a file
    before = deployed_objects()
    operation = terminate(live, order)
    assert operation.state == "failed" and operation.attempts == 1
    assert operation.error == f"{PUBLIC_STORE} (operation {operation.id})"
    assert operation.error_detail == f"backup store: cannot use the folder {target}: Not a directory (ENOTDIR)"
    assert Order.get_by_id(order.id).status == "active"
    assert_untouched(docker_engine, settings, deployed_objects, order, before)
    assert not [step for step in operation.steps if step["message"].startswith("stop ")]


def test_the_store_failing_after_the_stop_keeps_everything_and_the_containers_run_again(
        live, settings, docker_engine, deployed_objects, make_customer):
    order = create_busybox(live, make_customer, 306, "fails-later")
    db = docker_engine.containers.get(f"{settings.deployment}-fails-later_db")
    assert db.exec_run(["sh", "-c", "head -c 3145728 /dev/urandom > /data/big"]).exit_code == 0
    # The store answers (it can be listed) but cannot make the order's folder: a file is in the way.
    blocker = settings.backup_dir / order.instance
    settings.backup_dir.mkdir(parents=True, exist_ok=True)
    blocker.write_text("an operator's file")
    before = deployed_objects()
    operation = terminate(live, order)
    assert operation.state == "failed" and operation.attempts == 1, "not retried: an operator must fix the store"
    assert operation.error == f"{PUBLIC_STORE} (operation {operation.id})"
    assert operation.error_detail == f"backup store: cannot create the folder {blocker}: File exists (EEXIST)"
    # Nothing deleted, no helper; the containers terminate stopped run again.
    order = Order.get_by_id(order.id)
    assert order.status == "active", order.last_error_detail
    assert_untouched(docker_engine, settings, deployed_objects, order, before)
    db = docker_engine.containers.get(f"{settings.deployment}-fails-later_db")
    assert db.exec_run(["test", "-s", "/data/big"]).exit_code == 0, "the customer's data is still there"
    steps = [step["message"] for step in operation.steps]
    assert "stop db" in steps
    assert steps[-1] == "terminate failed and nothing was deleted: the order's containers run again"
    assert [row.state for row in Backup.select().where(Backup.order == order)] == ["failed"]

    # Once the operator moves the file away, the same terminate goes through.
    blocker.unlink()
    again = terminate(live, order)
    assert again.state == "succeeded", again.error_detail
    assert deployed_objects() == {"containers": [], "networks": [], "volumes": []}
    [final] = live.backups.list(order)
    assert Event.get((Event.order == order) & (Event.kind == "order.archived")).data == {"backup_id": final.backup_id}
    assert [a.name for a in final.artefacts] == ["volume.app-state.tar", "volume.db-data.tar"]
    assert final.artefact("volume.db-data.tar").size > 3 * 1048576
    assert live.backups.store.verify(final.backup_id) == []
    assert_private(settings, final)
    with tarfile.open(settings.backup_dir / order.instance / final.backup_id / "volume.db-data.tar") as archive:
        assert archive.getmember("./big").size == 3145728
