"""Moving an order between swarm nodes (OperationRunner._do_move, OrderService.move) on the in-memory engine.

The fake engine models two swarm nodes (``swarm_nodes``) and keeps a volume per node (``volume(name, node)``); the
order (busybox-demo: db, app, web; volumes db-data and app-state) is placed on n1, the node with the most room.
The same move on the real two-node swarm is in tests/integration/test_swarm_move.py.
"""
from __future__ import annotations

import pytest

from app.backups.service import BackupKind
from app.errors import BackupStoreError, Conflict, EngineOperationError, InvalidRequest, NoCapacity
from app.ingress.routes import RouteMode, route_mode
from app.models import Backup, Event, Operation, Order
from tests.fakes import Killed
from tests.unit.test_operations_fake import InlineExecutor, again, containers, create, last_operation, run
from tests.unit.test_placement import node

N1, N2 = "id-n1", "id-n2"


@pytest.fixture
def swarm(fake_engine):
    """Two nodes: n1 (8 GiB free) takes new orders, n2 (7 GiB free) is where they move."""
    fake_engine.swarm_nodes = [node("n1", 8), node("n2", 8, 1)]
    return fake_engine


def volume_of(live, order, volume: str) -> str:
    return f"{live.settings.deployment}-{order.instance}_{volume}"


def volumes_on(engine, live, order) -> dict[str, set[str]]:
    """node -> the order's volume names (compose names) there."""
    found: dict[str, set[str]] = {}
    for volume in engine.volumes.values():
        if volume.labels.get("live.order") == str(order.id) or volume.name.startswith(volume_of(live, order, "")):
            found.setdefault(volume.node, set()).add(volume.name.rsplit("_", 1)[1])
    return found


def placed(engine, live, order) -> set:
    """The nodes the order's containers are placed on."""
    selector = {"live.deployment": live.settings.deployment, "live.order": str(order.id)}
    return {c.node for c in engine.list_containers(selector)}


def with_data(live, engine) -> Order:
    order = create(live)
    assert (order.status, order.node) == ("active", N1)
    engine.write_file(volume_of(live, order, "db-data"), "records", b"customer rows", node=N1)
    engine.write_file(volume_of(live, order, "app-state"), "state", b"app state", node=N1)
    return order


def move(live, order, target: str = "n2") -> Operation:
    live.orders.move(again(order), target, requested_by="test")
    run(live)
    return last_operation(order)


def assert_on(engine, live, order, where: str, *, state: str = "running") -> None:
    order = again(order)
    assert order.node == where and order.node_name == where.removeprefix("id-")
    assert volumes_on(engine, live, order) == {where: {"db-data", "app-state"}}
    assert engine.volume(volume_of(live, order, "db-data"), where).files == {"records": b"customer rows"}
    assert engine.volume(volume_of(live, order, "app-state"), where).files == {"state": b"app state"}
    assert set(containers(engine, live, order).values()) == {state}
    assert placed(engine, live, order) == {where}


# -- refusals ------------------------------------------------------------------------------------------------
def test_one_engine_refuses_a_move(fake_live, fake_engine):
    order = create(fake_live)
    with pytest.raises(InvalidRequest, match="needs Docker Swarm"):
        fake_live.orders.move(order, "n2")
    assert last_operation(order).kind == "create"


@pytest.mark.parametrize(("target", "error", "text"), [
    ("n9", InvalidRequest, r"no swarm node 'n9': the nodes are n1 \(id-n1\), n2 \(id-n2\)"),
    ("n1", InvalidRequest, "is on node n1 already: nothing to move"),
    (N1, InvalidRequest, "is on node n1 already"),
])
def test_an_unknown_node_or_the_orders_own_node_is_refused(fake_live, swarm, target, error, text):
    order = create(fake_live)
    with pytest.raises(error, match=text):
        fake_live.orders.move(order, target)
    assert Operation.select().where(Operation.kind == "move").count() == 0


@pytest.mark.parametrize(("n2", "text"), [
    (node("n2", 8, ready=False), "node n2 cannot take orders: not ready"),
    (node("n2", 8, active=False), "node n2 cannot take orders: not active"),
    (node("n2", 8, engine=None), "node n2 cannot take orders: no live.engine label"),
    (node("n2", 1, 1), r"node n2 has 0 MiB unreserved \(1024 MiB, 1024 MiB reserved\); the order reserves \d+ MiB"),
])
def test_a_node_that_cannot_take_the_order_is_refused_with_why(fake_live, swarm, n2, text):
    order = create(fake_live)
    swarm.swarm_nodes = [node("n1", 8), n2]
    with pytest.raises(NoCapacity, match=text):
        fake_live.orders.move(order, "n2")
    assert Operation.select().where(Operation.kind == "move").count() == 0


def test_the_pool_does_not_apply_to_an_operators_choice(fake_live, swarm):
    order = create(fake_live)
    swarm.swarm_nodes = [node("n1", 8, pool="a"), node("n2", 8, 1, pool="b")]
    fake_live.runner.swarm_pool = "a"
    outcome = fake_live.orders.move(order, "n2")
    assert outcome.operation.params == {"node": N2}


@pytest.mark.parametrize("status", ["pending", "failed", "terminated"])
def test_only_active_and_suspended_orders_move(fake_live, swarm, status):
    order = create(fake_live)
    Order.update(status=status).where(Order.id == order.id).execute()
    with pytest.raises(Conflict, match=f"order acme is {status}"):
        fake_live.orders.move(again(order), "n2")


def test_a_repeated_request_returns_the_queued_move(fake_live, swarm):
    order = create(fake_live)
    first = fake_live.orders.move(order, "n2")
    second = fake_live.orders.move(again(order), N2)
    assert second.operation.id == first.operation.id and second.message == "move already under way"
    assert route_mode("active", ["move"]) == RouteMode.PREPARING
    assert route_mode("suspended", ["move"]) == RouteMode.SUSPENDED


# -- the move ------------------------------------------------------------------------------------------------
def test_an_active_order_moves_with_its_data_and_nothing_is_left_on_the_source(fake_live, swarm):
    order = with_data(fake_live, swarm)
    operation = move(fake_live, order)
    assert (operation.kind, operation.state) == ("move", "succeeded"), operation.error_detail
    assert again(order).status == "active"
    assert_on(swarm, fake_live, order, N2)
    backup = Backup.get(Backup.kind == BackupKind.PRE_CHANGE)
    assert operation.params["_pre_change_backup"] == backup.backup_id
    event = Event.get(Event.kind == "order.moved")
    assert event.message == "order acme moved from node n1 to node n2"
    assert event.data == {"from_node": N1, "from_node_name": "n1", "to_node": N2, "to_node_name": "n2",
                          "backup_id": backup.backup_id}
    steps = [step["message"] for step in operation.steps]
    assert steps.index("move the order to node n2") < steps.index("restore volume db-data")
    assert steps[-1] == f"remove volume {volume_of(fake_live, order, 'db-data')} from node n1" or \
        steps[-1] == f"remove volume {volume_of(fake_live, order, 'app-state')} from node n1"

    operation = move(fake_live, order, "n1")  # and back
    assert operation.state == "succeeded", operation.error_detail
    assert_on(swarm, fake_live, order, N1)


def test_a_suspended_order_moves_and_stays_suspended(fake_live, swarm):
    order = with_data(fake_live, swarm)
    fake_live.orders.suspend(order)
    run(fake_live)
    operation = move(fake_live, order)
    assert operation.state == "succeeded", operation.error_detail
    assert again(order).status == "suspended"
    assert_on(swarm, fake_live, order, N2, state="exited")
    fake_live.orders.unsuspend(again(order))
    run(fake_live)
    assert_on(swarm, fake_live, order, N2)


def test_volumes_left_behind_by_a_change_move_too(fake_live, swarm):
    order = with_data(fake_live, swarm)
    left = volume_of(fake_live, order, "old-data")
    from app.stacks.engine import VolumeRequest
    swarm.create_volume(VolumeRequest(left, {"live.deployment": fake_live.settings.deployment,
                                             "live.order": str(order.id), "live.instance": order.instance,
                                             "live.volume": "old-data"}, node=N1))
    swarm.write_file(left, "old", b"kept", node=N1)
    assert move(fake_live, order).state == "succeeded"
    assert swarm.volume(left, N2).files == {"old": b"kept"}
    assert not swarm.volume_exists(left, node=N1)


# -- a worker killed at any step -------------------------------------------------------------------------------
@pytest.mark.parametrize("where", [
    ("export_volume", "db-data"),  # taking the backup
    ("stop_container", "web"),  # stopping on the source
    ("remove_container", "db"),  # removing the source's services
    ("import_volume", "db-data"),  # restoring on the target
    ("start_container", "web"),  # deploying on the target
    ("remove_volume", "app-state"),  # removing the source's volumes
])
def test_a_move_killed_at_any_step_resumes_and_finishes(fake_live, swarm, where):
    order = with_data(fake_live, swarm)
    call, name = where
    key = f"{volume_of(fake_live, order, name)}@{N1}" if call == "remove_volume" else \
        volume_of(fake_live, order, name) if call in ("export_volume", "import_volume") else name
    swarm.failures[(call, key)] = Killed()
    fake_live.orders.move(order, "n2")
    worker = fake_live.worker()
    worker._pool = InlineExecutor()
    with pytest.raises(Killed):
        worker.dispatch()
    assert last_operation(order).state == "running"
    fake_live.worker().recover()
    run(fake_live)
    operation = last_operation(order)
    assert operation.state == "succeeded", operation.error_detail
    assert_on(swarm, fake_live, order, N2)
    backups = [row.state for row in Backup.select().where(Backup.kind == BackupKind.PRE_CHANGE)]
    assert backups == (["failed", "succeeded"] if call == "export_volume" else ["succeeded"])
    assert Event.select().where(Event.kind == "order.moved").count() == 1


# -- a move that fails for good ------------------------------------------------------------------------------
def test_a_move_failing_on_the_target_leaves_the_order_running_on_its_source(fake_live, swarm):
    order = with_data(fake_live, swarm)
    swarm.failures[("start_container", "web")] = EngineOperationError("start container: the target is broken")
    operation = move(fake_live, order)
    assert operation.state == "failed"
    assert operation.error_detail.endswith("the target is broken")
    order = again(order)
    assert order.status == "active" and order.last_error
    assert_on(swarm, fake_live, order, N1)  # data as it was; nothing left on n2
    steps = [step["message"] for step in operation.steps]
    assert "move failed: bringing the order back on node n1" in steps
    assert steps[-1] == "the order runs on node n1 again, with its data as it was"
    event = Event.get(Event.kind == "order.move_rolled_back")
    assert event.data == {"from_node": N1, "to_node": N2}
    assert not Event.select().where(Event.kind == "order.moved").exists()


def test_a_suspended_order_whose_move_fails_stays_suspended_on_its_source(fake_live, swarm):
    order = with_data(fake_live, swarm)
    fake_live.orders.suspend(order)
    run(fake_live)
    swarm.failures[("start_container", "web")] = EngineOperationError("start container: the target is broken")
    assert move(fake_live, order).state == "failed"
    order = again(order)
    assert (order.status, order.node) == ("suspended", N1)
    assert volumes_on(swarm, fake_live, order) == {N1: {"db-data", "app-state"}}
    assert not containers(swarm, fake_live, order)  # made again on n1 when it is resumed
    fake_live.orders.unsuspend(order)
    run(fake_live)
    assert_on(swarm, fake_live, order, N1)


def test_a_store_that_does_not_answer_changes_nothing(fake_live, swarm, monkeypatch):
    order = with_data(fake_live, swarm)
    monkeypatch.setattr(fake_live.backups.store, "check", lambda: (_ for _ in ()).throw(
        BackupStoreError("the bucket is gone")))
    stops = len(swarm.calls_of("stop_container"))
    operation = move(fake_live, order)
    assert operation.state == "failed"
    assert operation.error.startswith("the backup before the change failed")
    assert len(swarm.calls_of("stop_container")) == stops  # never stopped
    assert_on(swarm, fake_live, order, N1)
    assert not Event.select().where(Event.kind == "order.move_rolled_back").exists()


def test_the_backup_is_taken_with_the_applications_stopped_and_a_failed_one_brings_the_order_back(
        fake_live, swarm, monkeypatch):
    order = with_data(fake_live, swarm)
    running_at_backup = []

    def take(*args, **kwargs):
        running_at_backup.extend(sorted(name for name, state in containers(swarm, fake_live, order).items()
                                        if state == "running"))
        raise BackupStoreError("the bucket is gone")

    monkeypatch.setattr(fake_live.backups, "take", take)
    operation = move(fake_live, order)
    assert operation.state == "failed" and operation.error.startswith("the backup before the change failed")
    dumped = {name for name, s in fake_live.runner.policy(order).services.items() if s.dump}
    kept = set(dumped)  # the dumped services and what they depend on keep running; nothing else
    stack = fake_live.runner.project(order).stack
    for name in list(kept):
        kept |= set(stack.services[name].depends_on)
    assert {name.rsplit("_", 1)[-1] for name in running_at_backup} == kept
    assert Event.select().where(Event.kind == "order.move_rolled_back").exists()
    assert_on(swarm, fake_live, order, N1)  # back on its source node, running


def test_a_source_volume_that_cannot_be_removed_leaves_the_order_on_its_new_node(fake_live, swarm):
    order = with_data(fake_live, swarm)
    swarm.failures[("remove_volume", f"{volume_of(fake_live, order, 'db-data')}@{N1}")] = EngineOperationError(
        "remove volume: the disk is read-only")
    operation = move(fake_live, order)
    assert operation.state == "failed"
    order = again(order)
    assert (order.status, order.node) == ("active", N2)
    assert set(containers(swarm, fake_live, order).values()) == {"running"}
    assert swarm.volume_exists(volume_of(fake_live, order, "db-data"), node=N1)  # left for the operator
    assert not Event.select().where(Event.kind == "order.move_rolled_back").exists()


def test_target_volumes_that_cannot_be_removed_do_not_fail_the_rollback(fake_live, swarm):
    order = with_data(fake_live, swarm)
    swarm.failures[("start_container", "web")] = EngineOperationError("start container: the target is broken")
    swarm.failures[("remove_volume", f"{volume_of(fake_live, order, 'db-data')}@{N2}")] = EngineOperationError(
        "remove volume: the node's disk is read-only")
    operation = move(fake_live, order)
    assert operation.state == "failed"
    order = again(order)
    assert (order.status, order.node) == ("active", N1)
    assert set(containers(swarm, fake_live, order).values()) == {"running"}
    steps = [step["message"] for step in operation.steps]
    assert any(step.startswith("the volumes made on node n2 were not removed") for step in steps)
    assert Event.select().where(Event.kind == "order.move_rolled_back").exists()
