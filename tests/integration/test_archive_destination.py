"""Issue 10 on the real Docker engine: missing images, a missing helper and broken backup destinations.

- A create whose images cannot be pulled is cleaned up with the archive helper alone, and its order can
  be terminated (it used to fail forever with "image ... is not available").
- When the helper image or the backup folder fails, terminate fails at once with the cause, deletes
  nothing, leaves no helper container, and the order's status tells the truth about its containers.

Small file systems are tmpfs mounts (the tests run as root, as CI does).
"""
from __future__ import annotations

import os
import stat
import subprocess
import tarfile
import time

import pytest

from app.models import Operation, Order
from app.stacks import archives
from tests.conftest import unavailable

pytestmark = pytest.mark.usefixtures("docker_engine", "stack_cleanup")

PUBLIC_DESTINATION = "the data archive could not be written to the backup storage; nothing was deleted"


@pytest.fixture
def small_filesystem(tmp_path):
    """``mount(size, read_only)``: a fresh tmpfs of ``size`` (``1m``), unmounted after the test."""
    mounted = []

    def mount(size: str = "1m", read_only: bool = False):
        point = tmp_path / f"fs{len(mounted)}"
        point.mkdir()
        options = f"size={size},mode=0700" + (",ro" if read_only else "")
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            unavailable(f"cannot mount a tmpfs (the test needs root): {result.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def run_all(live):
    live.worker().run_until_idle(timeout=180)


def create_busybox(live, make_customer, service_id: int, name: str) -> Order:
    outcome = live.orders.create(service_id=service_id, customer=make_customer(), product="busybox-demo",
                                 plan="small", username=name)
    run_all(live)
    order = Order.get_by_id(outcome.order.id)
    assert order.status == "active", order.last_error_detail
    return order


def terminate(live, order: Order) -> tuple[Operation, float]:
    started = time.monotonic()
    outcome = live.orders.terminate(Order.get_by_id(order.id))
    run_all(live)
    return Operation.get_by_id(outcome.operation.id), time.monotonic() - started


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
    # The failed create removed what it made (2 networks, 2 volumes), archiving the volumes first.
    assert deployed_objects() == {"containers": [], "networks": [], "volumes": []}
    failed = sorted((settings.backup_dir / "geo").glob("*-failed-*.tar"))
    assert [p.name.rsplit("_", 1)[1] for p in failed] == ["geoserver-data.tar", "postgis-data.tar"]
    for path in failed:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with tarfile.open(path) as archive:
            archive.getmembers()
    assert stat.S_IMODE((settings.backup_dir / "geo").stat().st_mode) == 0o700

    terminated, _ = terminate(live, order)
    assert terminated.state == "succeeded", terminated.error_detail
    assert Order.get_by_id(order.id).status == "terminated"


def test_missing_helper_image_fails_at_once_and_changes_nothing(live, settings, docker_engine, deployed_objects,
                                                                make_customer):
    order = create_busybox(live, make_customer, 302, "no-helper")
    live.deployer.helper_image = "live/archive-helper:absent"  # as LIVE_HELPER_IMAGE naming an image not built
    before = deployed_objects()
    operation, _ = terminate(live, order)
    assert operation.state == "failed" and operation.attempts == 1
    assert operation.error_detail == (
        "the archive helper image live/archive-helper:absent (LIVE_HELPER_IMAGE) is not on the Docker engine; build "
        "it there with `bash scripts/build-helper-image.sh live/archive-helper:absent` (nothing was stopped or "
        "deleted)")
    assert Order.get_by_id(order.id).status == "active"
    assert_untouched(docker_engine, settings, deployed_objects, order, before)


def test_destination_that_is_a_file_fails_at_once_and_changes_nothing(live, settings, docker_engine, deployed_objects,
                                                                      make_customer, tmp_path):
    order = create_busybox(live, make_customer, 303, "to-a-file")
    target = tmp_path / "backups"
    target.write_text("not a folder")
    live.runner.backup_dir = target
    before = deployed_objects()
    operation, _ = terminate(live, order)
    assert operation.state == "failed" and operation.attempts == 1
    assert operation.error == f"{PUBLIC_DESTINATION} (operation {operation.id})"
    assert operation.error_detail == f"cannot use the backup folder {target}: Not a directory (ENOTDIR)"
    assert Order.get_by_id(order.id).status == "active"
    assert_untouched(docker_engine, settings, deployed_objects, order, before)


def test_full_destination_fails_at_once_before_anything_stops(live, settings, docker_engine, deployed_objects,
                                                              make_customer, small_filesystem):
    order = create_busybox(live, make_customer, 304, "full")
    live.runner.backup_dir = small_filesystem("1m")
    before = deployed_objects()
    operation, seconds = terminate(live, order)
    assert operation.state == "failed" and operation.attempts == 1 and seconds < 30
    assert operation.error_detail.startswith(f"cannot write archives to {live.runner.backup_dir / 'full'}: "
                                             "No space left on device (ENOSPC): 1.0 MiB free, ")
    assert Order.get_by_id(order.id).status == "active"
    assert_untouched(docker_engine, settings, deployed_objects, order, before)


def test_read_only_destination_fails_at_once(live, settings, docker_engine, deployed_objects, make_customer,
                                             small_filesystem):
    order = create_busybox(live, make_customer, 305, "read-only")
    live.runner.backup_dir = small_filesystem("4m", read_only=True)
    before = deployed_objects()
    operation, _ = terminate(live, order)
    assert operation.state == "failed" and operation.attempts == 1
    assert operation.error_detail == (f"cannot create the backup folder {live.runner.backup_dir / 'read-only'}: "
                                      "Read-only file system (EROFS)")
    assert Order.get_by_id(order.id).status == "active"
    assert_untouched(docker_engine, settings, deployed_objects, order, before)


def test_destination_filling_up_while_writing_fails_fast_with_the_cause(live, settings, docker_engine,
                                                                        deployed_objects, make_customer,
                                                                        small_filesystem, monkeypatch):
    """The issue's 2-minute hang: the engine's stream was left open, so removing the helper timed out."""
    order = create_busybox(live, make_customer, 306, "fills-up")
    db = docker_engine.containers.get(f"{settings.deployment}-fills-up_db")
    assert db.exec_run(["sh", "-c", "head -c 3145728 /dev/urandom > /data/big"]).exit_code == 0
    destination = small_filesystem("1m")
    live.runner.backup_dir = destination
    # Let the checks before the stop pass, as when the volumes' size is unknown and the margin too small.
    monkeypatch.setattr(archives, "FREE_SPACE_MARGIN_BYTES", 0)
    monkeypatch.setattr(live.deployer, "_volume_bytes", lambda project, volumes: None)
    before = deployed_objects()
    operation, seconds = terminate(live, order)
    assert operation.state == "failed" and operation.attempts == 1, "not retried as an engine error"
    assert seconds < 60
    partial = destination / "fills-up" / f"{operation.created_at:%Y%m%dT%H%M%S}-op{operation.id}-{db.name}"
    assert operation.error_detail == (f"cannot write the archive {partial.parent}/"
                                      f"{partial.name.replace(db.name, settings.deployment + '-fills-up_db-data')}"
                                      ".tar.partial: No space left on device (ENOSPC)")
    assert operation.error == f"{PUBLIC_DESTINATION} (operation {operation.id})"
    # Nothing deleted, no partial file, no helper; the containers terminate stopped run again.
    assert not list((destination / "fills-up").glob("*.partial"))
    order = Order.get_by_id(order.id)
    assert order.status == "active", order.last_error_detail
    assert_untouched(docker_engine, settings, deployed_objects, order, before)
    assert db.exec_run(["test", "-s", "/data/big"]).exit_code == 0, "the customer's data is still there"
    steps = [step["message"] for step in operation.steps]
    assert "stop db" in steps
    assert steps[-1] == "terminate failed and nothing was deleted: the order's containers run again"

    # Once the operator gives it room, the same terminate goes through.
    live.runner.backup_dir = settings.backup_dir
    again, _ = terminate(live, order)
    assert again.state == "succeeded", again.error_detail
    assert deployed_objects() == {"containers": [], "networks": [], "volumes": []}
    archive = next((settings.backup_dir / "fills-up").glob("*_db-data.tar"))
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600 and archive.stat().st_size > 3 * 1048576
    assert os.path.getsize(archive) == archive.stat().st_size
