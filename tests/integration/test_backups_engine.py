"""Backups and restores on the real Docker engine, with the real worker (issue 13).

busybox-demo with a backup declaration: db's data is saved by a dump command (``cat /data/records``) and put
back by a restore command; app's volume app-state is archived as files. Each case runs on SQLite and PostgreSQL.
The store is a folder (the default, ``file://<LIVE_BACKUP_DIR>``); tests/integration/test_backups_s3.py runs
the lifecycle on S3.
"""
from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from app.backups.service import BackupKind
from app.config import PROJECT_ROOT
from app.models import Backup, Operation, Order
from tests.conftest import BOTH_MODES
from tests.support.live_service import settings_env
from tests.support.observed import Observer
from tests.support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("docker_engine", "stack_cleanup")

DECLARATION = """
backup:
  services:
    db:
      dump: cat /data/records
      restore: cat > /data/records.new && mv /data/records.new /data/records
"""
SLOW_DUMP = DECLARATION.replace("dump: cat /data/records", "dump: sleep 4; cat /data/records")
SLOW_RESTORE = DECLARATION.replace("restore: cat >", "restore: sleep 4; cat >")
FAILING_RESTORE = DECLARATION.replace("restore: cat > /data/records.new && mv /data/records.new /data/records",
                                      "restore: cat > /dev/null; echo 'no space left in the tablespace' >&2; exit 3")


def declare(live, text: str = DECLARATION) -> None:
    manifest = live.settings.config_repo / "products" / "busybox-demo" / "product.yml"
    manifest.write_text(manifest.read_text().split("\nbackup:")[0] + text)
    live.catalog.sync()


def create(live, make_customer, service_id: int, name: str) -> Order:
    outcome = live.orders.create(service_id=service_id, customer=make_customer(), product="busybox-demo",
                                 plan="small", username=name)
    live.worker().run_until_idle(timeout=120)
    order = Order.get_by_id(outcome.order.id)
    assert order.status == "active", order.last_error_detail
    return order


def container(docker_engine, live, order, service: str):
    """What runs ``service`` of the order (one engine or swarm: tests/support/observed.py)."""
    return Observer(docker_engine, live.settings.deployment, live.settings.orchestrator).services(order.id)[service]


def write(docker_engine, live, order, service: str, path: str, text: str) -> None:
    code, output = container(docker_engine, live, order, service).exec(["sh", "-c", f'printf "%s" "$1" > {path}', "sh", text])
    assert code == 0, output


def read(docker_engine, live, order, service: str, path: str) -> str:
    code, output = container(docker_engine, live, order, service).exec(["cat", path])
    return output.decode() if code == 0 else f"<missing: {output.decode().strip()}>"


def run(live, call) -> Operation:
    outcome = call()
    live.worker().run_until_idle(timeout=180)
    return Operation.get_by_id(outcome.operation.id)


def back_up(live, order) -> str:
    operation = run(live, lambda: live.orders.back_up(Order.get_by_id(order.id)))
    assert operation.state == "succeeded", operation.error_detail
    return operation.params["_backup"]


def restore(live, order, backup_id: str) -> Operation:
    manifest = live.backups.find(backup_id)
    return run(live, lambda: live.orders.restore(Order.get_by_id(order.id), backup_id, product=manifest.product,
                                                 source_order_id=manifest.order_id))


@BOTH_MODES
def test_data_in_a_volume_and_in_a_dump_survives_backup_destruction_and_restore(live, make_customer, docker_engine):
    declare(live)
    order = create(live, make_customer, 701, "keeper")
    write(docker_engine, live, order, "db", "/data/records", "rows of the catalogue")
    write(docker_engine, live, order, "app", "/state/settings", "layer styles")
    backup_id = back_up(live, order)
    manifest = live.backups.find(backup_id)
    assert sorted(a.name for a in manifest.artefacts) == ["dump.db", "volume.app-state.tar"]
    assert manifest.artefact("dump.db").size == len("rows of the catalogue")

    # The customer destroys both.
    write(docker_engine, live, order, "db", "/data/records", "DROP TABLE")
    container(docker_engine, live, order, "app").exec(["sh", "-c", "rm -rf /state/*"])

    operation = restore(live, order, backup_id)
    assert operation.state == "succeeded", operation.error_detail
    assert read(docker_engine, live, order, "db", "/data/records") == "rows of the catalogue"
    assert read(docker_engine, live, order, "app", "/state/settings") == "layer styles"
    assert Order.get_by_id(order.id).status == "active"
    safety = live.backups.find(operation.params["_safety_backup"])
    assert safety.kind == "pre_restore"
    with live.backups.store.open_artefact(safety.backup_id, "dump.db") as stream:
        assert stream.read() == b"DROP TABLE", "the safety backup holds the data the restore replaced"
    running = {name: s.running for name, s in Observer(
        docker_engine, live.settings.deployment, live.settings.orchestrator).services(order.id).items()}
    assert set(running.values()) == {True}, running


def test_a_corrupted_artefact_is_refused_before_the_data_is_touched(live, make_customer, docker_engine):
    declare(live)
    order = create(live, make_customer, 702, "corrupt")
    write(docker_engine, live, order, "db", "/data/records", "version 1")
    backup_id = back_up(live, order)
    dump = live.settings.backup_dir / order.instance / backup_id / "dump.db"
    dump.write_bytes(b"version X")  # same size, another sha256
    write(docker_engine, live, order, "db", "/data/records", "version 2")
    operation = restore(live, order, backup_id)
    assert operation.state == "failed" and operation.attempts == 1
    assert "does not match its manifest" in operation.error_detail
    assert read(docker_engine, live, order, "db", "/data/records") == "version 2"
    assert not Backup.select().where(Backup.kind == BackupKind.PRE_RESTORE).exists()


@BOTH_MODES
def test_a_failing_restore_command_rolls_back_to_the_safety_backup(live, make_customer, docker_engine):
    declare(live)
    order = create(live, make_customer, 703, "rollback")
    write(docker_engine, live, order, "db", "/data/records", "version 1")
    write(docker_engine, live, order, "app", "/state/settings", "settings 1")
    backup_id = back_up(live, order)
    write(docker_engine, live, order, "db", "/data/records", "version 2")
    write(docker_engine, live, order, "app", "/state/settings", "settings 2")
    declare(live, FAILING_RESTORE)  # the backup's manifest keeps the working command: break the backup's copy
    manifest_path = live.settings.backup_dir / order.instance / backup_id / "manifest.json"
    manifest_path.write_text(manifest_path.read_text().replace(
        "cat > /data/records.new && mv /data/records.new /data/records",
        "cat > /dev/null; echo 'no space left in the tablespace' >&2; exit 3"))
    operation = restore(live, order, backup_id)
    assert operation.state == "failed"
    assert "no space left in the tablespace" in operation.error_detail
    # Back from the safety backup: the data of just before the restore, the order running.
    assert read(docker_engine, live, order, "db", "/data/records") == "version 2"
    assert read(docker_engine, live, order, "app", "/state/settings") == "settings 2"
    assert Order.get_by_id(order.id).status == "active"
    steps = [step["message"] for step in operation.steps]
    assert any(step.startswith("the order runs again with the data of safety backup") for step in steps), steps


def test_a_change_of_plan_leaves_a_pre_change_backup(live, make_customer, docker_engine):
    order = create(live, make_customer, 704, "changer")
    operation = run(live, lambda: live.orders.change_plan(Order.get_by_id(order.id), "large"))
    assert operation.state == "succeeded", operation.error_detail
    manifest = live.backups.find(operation.params["_pre_change_backup"])
    assert (manifest.kind, manifest.plan) == ("pre_change", "small")
    assert sorted(a.name for a in manifest.artefacts) == ["volume.app-state.tar", "volume.db-data.tar"]


def test_a_terminated_orders_final_backup_restores_into_a_new_order(live, make_customer, docker_engine,
                                                                     deployed_objects):
    declare(live)
    old = create(live, make_customer, 705, "late-payer")
    write(docker_engine, live, old, "db", "/data/records", "the late payer's rows")
    write(docker_engine, live, old, "app", "/state/settings", "their styles")
    terminated = run(live, lambda: live.orders.terminate(Order.get_by_id(old.id)))
    assert terminated.state == "succeeded", terminated.error_detail
    prefix = f"{live.settings.deployment}-{old.instance}"
    assert not [name for names in deployed_objects().values() for name in names if name.startswith(prefix + "_")]
    final = live.backups.find(terminated.params["_final_backup"])
    assert final.kind == "final" and sorted(a.name for a in final.artefacts) == ["dump.db", "volume.app-state.tar"]

    new = create(live, make_customer, 706, "late-payer-back")
    write(docker_engine, live, new, "db", "/data/records", "a fresh start")
    operation = restore(live, new, final.backup_id)
    assert operation.state == "succeeded", operation.error_detail
    assert read(docker_engine, live, new, "db", "/data/records") == "the late payer's rows"
    assert read(docker_engine, live, new, "app", "/state/settings") == "their styles"
    assert Order.get_by_id(new.id).secrets == Order.get_by_id(old.id).secrets


# -- the worker killed mid-way ---------------------------------------------------------------------------------------
def start_worker(settings, log_path):
    env = settings_env(settings, LIVE_WORKER_POLL_SECONDS="0.1", LIVE_RETRY_BASE_SECONDS="0.2",
                       LIVE_HEALTH_TIMEOUT_SECONDS="30")
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "live", "worker"], cwd=PROJECT_ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT)


def kill_when(settings, tmp_path, operation_id: int, step: str) -> None:
    """Start the real worker, SIGKILL it once the operation recorded ``step``, and leave the operation running."""
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        wait_for(lambda: any(s["message"] == step for s in Operation.get_by_id(operation_id).steps), timeout=120,
                 interval=0.05, what=f"step {step!r}")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert Operation.get_by_id(operation_id).state == "running"


def finish(settings, tmp_path, operation_id: int) -> Operation:
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        return wait_for(lambda: (op := Operation.get_by_id(operation_id)).state in ("succeeded", "failed") and op,
                        timeout=180, what="the operation to finish")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)


def test_a_worker_killed_during_a_backup_lists_nothing_half_made_and_converges(live, settings, make_customer,
                                                                               docker_engine, tmp_path):
    declare(live, SLOW_DUMP)
    order = create(live, make_customer, 707, "killed-backup")
    write(docker_engine, live, order, "db", "/data/records", "precious")
    outcome = live.orders.back_up(Order.get_by_id(order.id))
    kill_when(settings, tmp_path, outcome.operation.id, "dump db")
    assert live.backups.list(order) == [], "a backup being written is never listed"
    operation = finish(settings, tmp_path, outcome.operation.id)
    assert operation.state == "succeeded", (operation.error_detail, (tmp_path / "worker.log").read_text()[-3000:])
    [manifest] = live.backups.list(order)
    assert live.backups.store.verify(manifest.backup_id) == []
    with live.backups.store.open_artefact(manifest.backup_id, "dump.db") as stream:
        assert stream.read() == b"precious"
    assert sorted(row.state for row in Backup.select().where(Backup.order == order.id)) == ["failed", "succeeded"]
    # The killed attempt's upload is gone from the store: one folder, the committed backup's.
    assert [p.name for p in (settings.backup_dir / order.instance).iterdir()] == [manifest.backup_id]
    assert read(docker_engine, live, order, "db", "/data/records") == "precious"


def test_a_worker_killed_during_a_restore_converges_to_the_backup(live, settings, make_customer, docker_engine,
                                                                  tmp_path):
    declare(live, SLOW_RESTORE)
    order = create(live, make_customer, 708, "killed-restore")
    write(docker_engine, live, order, "db", "/data/records", "from the backup")
    backup_id = back_up(live, order)
    write(docker_engine, live, order, "db", "/data/records", "a mistake")
    manifest = live.backups.find(backup_id)
    outcome = live.orders.restore(Order.get_by_id(order.id), backup_id, product=manifest.product,
                                  source_order_id=manifest.order_id)
    kill_when(settings, tmp_path, outcome.operation.id, "restore db from its dump")
    operation = finish(settings, tmp_path, outcome.operation.id)
    assert operation.state == "succeeded", (operation.error_detail, (tmp_path / "worker.log").read_text()[-3000:])
    assert read(docker_engine, live, order, "db", "/data/records") == "from the backup"
    # One safety backup, taken before anything was touched, holding the data of before the restore.
    [safety] = [m for m in live.backups.list(order) if m.kind == "pre_restore"]
    with live.backups.store.open_artefact(safety.backup_id, "dump.db") as stream:
        assert stream.read() == b"a mistake"


def test_a_restore_drill_brings_the_latest_backup_up_in_a_temporary_order(live, make_customer, docker_engine,
                                                                         deployed_objects):
    from app.backups.drill import RestoreDrills

    declare(live, DECLARATION + "  verify: weekly\n")
    order = create(live, make_customer, 709, "drilled")
    write(docker_engine, live, order, "db", "/data/records", "drilled rows")
    back_up(live, order)
    before = deployed_objects()
    drills = RestoreDrills(live.backups, live.runner.policy, live.runner.project, live.settings.deployment)
    assert drills.due().id == order.id
    assert drills.drill(order) is None
    assert deployed_objects() == before, "the temporary order is gone, the real one untouched"
    row = Backup.get(Backup.order == order.id)
    assert row.verified_at is not None and row.verify_error is None
    assert read(docker_engine, live, order, "db", "/data/records") == "drilled rows"
