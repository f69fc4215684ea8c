"""Every operation handler's branches (app/orders/operations.py), run by the worker on the in-memory engine.

The application is bootstrapped with :class:`tests.fakes.FakeEngine` injected and a SQLite file (the
``fake_live`` fixture of this folder's conftest); the product is busybox-demo (db <- app <- web, web the
endpoint on port 8080, volumes db-data and app-state). The same paths on the real engine and PostgreSQL
are in tests/integration.
"""
from __future__ import annotations

import time

import pytest

from app.errors import EngineOperationError, EngineUnavailable
from app.models import Event, Operation, Order
from app.orders.service import CustomerInfo
from app.stacks.ports import PortAllocator
from tests.conftest import TEST_IMAGE
from tests.fakes import FakeEngine

SERVICES = ["app", "db", "web"]


@pytest.fixture
def live(fake_live):
    return fake_live


@pytest.fixture
def engine(fake_engine):
    return fake_engine


class InlineExecutor:
    """Runs what the worker hands its thread pool at once, in the caller's thread: no polling between steps."""

    @staticmethod
    def submit(fn, *args):
        fn(*args)


def run(live, timeout: float = 30.0) -> None:
    """Run every queued operation to its end with the worker's own dispatch and execute (retries included)."""
    worker = live.worker()
    worker._pool = InlineExecutor()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not worker.dispatch():
            if not Operation.select().where(Operation.state.in_(("pending", "running"))).exists():
                return
            time.sleep(0.005)  # a retry waits for its backoff
    raise TimeoutError(f"operations still unfinished after {timeout}s")


def create(live, name: str = "acme", service_id: int = 1, run_it: bool = True) -> Order:
    outcome = live.orders.create(service_id=service_id, customer=CustomerInfo(email="ops@example.org"),
                                 product="busybox-demo", plan="small", username=name)
    if run_it:
        run(live)
    return Order.get_by_id(outcome.order.id)


def again(order: Order) -> Order:
    return Order.get_by_id(order.id)


def operations(order: Order) -> list[tuple[str, str]]:
    return [(o.kind, o.state) for o in Operation.select().where(Operation.order == order).order_by(Operation.id)]


def last_operation(order: Order) -> Operation:
    return Operation.select().where(Operation.order == order).order_by(Operation.id.desc()).get()


def containers(engine: FakeEngine, live, order: Order) -> dict[str, str]:
    """service -> state of the order's containers."""
    selector = {"live.deployment": live.settings.deployment, "live.order": str(order.id)}
    return {c.service: c.state for c in engine.list_containers(selector)}


def ids(engine: FakeEngine, live, order: Order) -> dict[str, str]:
    selector = {"live.deployment": live.settings.deployment, "live.order": str(order.id)}
    return {c.service: c.id for c in engine.list_containers(selector)}


def objects(engine: FakeEngine, live, order: Order) -> dict[str, list[str]]:
    selector = {"live.deployment": live.settings.deployment, "live.order": str(order.id)}
    return {"containers": sorted(c.name for c in engine.list_containers(selector)),
            "networks": sorted(n.name for n in engine.list_networks(selector)),
            "volumes": sorted(v.name for v in engine.list_volumes(selector))}


def events(order: Order) -> list[str]:
    return [e.kind for e in Event.select().where(Event.order == order).order_by(Event.id)]


def steps(operation: Operation) -> list[str]:
    return [step["message"] for step in operation.steps]


# -- create ------------------------------------------------------------------------------------------------------
def test_create_deploys_the_stack_and_the_order_becomes_active(live, engine):
    order = create(live)
    assert order.status == "active" and order.last_error is None
    assert containers(engine, live, order) == {"db": "running", "app": "running", "web": "running"}
    port = order.published_ports["web:8080"]
    assert 20000 <= port <= 29999
    assert engine.container(f"{live.settings.deployment}-acme_web").host_ports == {"8080/tcp": port}
    assert engine.calls_of("start_container")[0].endswith("_db"), "db first: app waits for it to be healthy"
    assert operations(order) == [("create", "succeeded")]
    assert "order.active" in events(order)


def test_a_failed_create_archives_and_removes_what_it_made(live, engine):
    engine.failures[("create_container", "web")] = EngineOperationError("create container: refused by the engine")
    order = create(live, "broken")
    operation = last_operation(order)
    assert (operation.state, operation.attempts) == ("failed", 1), "a refusal is not retried"
    assert order.status == "failed"
    assert order.last_error == f"the container platform refused the operation (operation {operation.id})"
    assert "refused by the engine" in order.last_error_detail
    assert objects(engine, live, order) == {"containers": [], "networks": [], "volumes": []}
    [manifest] = live.backups.list(order)
    assert manifest.kind == "final" and [a.name for a in manifest.artefacts] == ["volume.app-state.tar",
                                                                                  "volume.db-data.tar"]
    assert live.backups.store.verify(manifest.backup_id) == []


def test_a_failed_create_whose_cleanup_cannot_finish_still_stops_its_containers(live, engine):
    engine.failures[("create_container", "web")] = EngineOperationError("create container: refused")
    del engine.images[live.settings.helper_image]
    order = create(live, "half")
    assert order.status == "failed" and "cleanup did not finish" in order.last_error_detail
    assert set(containers(engine, live, order).values()) == {"exited"}
    assert objects(engine, live, order)["volumes"], "nothing is dropped without an archive"


def test_a_failed_dependency_skips_its_dependents_and_its_own_error_is_reported(live, engine):
    engine.failures[("start_container", "db")] = EngineOperationError("start container: runc refused")
    order = create(live, "upstream")
    assert order.status == "failed" and "runc refused" in order.last_error_detail
    assert [name.rsplit("_", 1)[1] for name in engine.calls_of("create_container")] == ["db"], \
        "app and web wait for db: they were never created"
    assert objects(engine, live, order)["containers"] == []


def test_a_health_check_failure_fails_the_create_with_the_reason(live, engine):
    engine.health["db"] = "unhealthy"
    order = create(live, "sick")
    assert order.status == "failed"
    assert order.last_error == "db is unhealthy, so app was not started"
    assert last_operation(order).attempts == 1
    assert objects(engine, live, order)["containers"] == []


class FlakyEngine:
    """The in-memory engine, but the first N container creations fail as an engine in trouble does."""

    def __init__(self, engine, failures: int):
        self._engine = engine
        self.failures = failures

    def create_container(self, request):
        if self.failures > 0:
            self.failures -= 1
            raise EngineUnavailable(f"create container {request.name}: Docker engine error: simulated 500")
        return self._engine.create_container(request)

    def __getattr__(self, name):
        return getattr(self._engine, name)


def test_transient_engine_errors_are_retried_with_backoff(live, engine):
    """Moved from tests/integration/test_failures.py: the worker's retries, not the engine, are under test."""
    live.deployer.engine = FlakyEngine(live.engine, failures=2)
    order = create(live, "flaky")
    operation = last_operation(order)
    assert operation.state == "succeeded"
    assert operation.attempts == 3
    retries = Event.select().where((Event.operation == operation) & (Event.kind == "operation.retry"))
    assert retries.count() == 2 and "simulated 500" in retries.first().data["error_detail"]
    assert "simulated 500" not in retries.first().message  # read keys see event messages
    assert len(engine.containers) == 3


def test_transient_errors_give_up_after_max_attempts(live, engine):
    """Moved from tests/integration/test_failures.py."""
    live.deployer.engine = FlakyEngine(live.engine, failures=100)
    order = create(live, "down")
    operation = last_operation(order)
    assert operation.state == "failed" and operation.attempts == 3
    assert again(order).status == "failed"


def test_a_host_port_taken_at_create_moves_the_endpoint_to_another_port(live, engine):
    first = PortAllocator(29000, 29999).allocate(set())  # free on this host
    live.runner.ports = PortAllocator(first, 29999, start=first)
    engine.busy_ports.add(first)  # another process listens there
    order = create(live, "moved")
    assert order.status == "active", order.last_error_detail
    port = order.published_ports["web:8080"]
    assert port != first and engine.container(f"{live.settings.deployment}-moved_web").host_ports == {"8080/tcp": port}
    assert f"host port {first} is taken by another process; moving the endpoint to a free port" in \
        steps(last_operation(order))


# -- suspend, unsuspend, restart, redeploy ------------------------------------------------------------------------
def test_suspend_while_the_create_is_pending_ends_suspended(live, engine):
    order = create(live, "early", run_it=False)
    assert order.status == "pending"
    live.orders.suspend(order)
    run(live)
    order = again(order)
    assert order.status == "suspended"
    assert operations(order) == [("create", "succeeded"), ("suspend", "succeeded")]
    assert set(containers(engine, live, order).values()) == {"exited"}
    assert objects(engine, live, order)["volumes"], "volumes are kept"


def test_unsuspend_starts_the_same_containers_on_the_same_port(live, engine):
    order = create(live, "resumed")
    before, port = ids(engine, live, order), order.published_ports["web:8080"]
    live.orders.suspend(order)
    run(live)
    assert engine.calls_of("stop_container")[0].endswith("_web"), "dependents stop first"
    live.orders.unsuspend(again(order))
    run(live)
    order = again(order)
    assert order.status == "active" and order.published_ports["web:8080"] == port
    assert ids(engine, live, order) == before, "started again, not recreated"
    assert set(containers(engine, live, order).values()) == {"running"}


def test_restart_stops_and_starts_every_container(live, engine):
    order = create(live, "restarted")
    before = ids(engine, live, order)
    live.orders.restart(order)
    run(live)
    order = again(order)
    assert order.status == "active" and ids(engine, live, order) == before
    assert len(engine.calls_of("stop_container")) == 3 and len(engine.calls_of("start_container")) == 6


def test_redeploy_repairs_the_stack_and_does_nothing_to_a_suspended_order(live, engine):
    order = create(live, "repaired")
    before = ids(engine, live, order)
    engine.remove_container(before["db"])
    engine.pause_container(before["web"])
    live.orders.redeploy(order)
    run(live)
    after = ids(engine, live, again(order))
    assert after["db"] != before["db"] and after["web"] == before["web"] and after["app"] == before["app"]
    assert set(containers(engine, live, order).values()) == {"running"}

    live.orders.suspend(again(order))
    run(live)
    calls = len(engine.calls)
    live.orders.redeploy(again(order))
    run(live)
    assert again(order).status == "suspended" and engine.calls[calls:] == []
    assert "order is suspended: nothing to start" in steps(last_operation(order))


# -- change plan and upgrade --------------------------------------------------------------------------------------
def test_change_plan_recreates_only_the_changed_service(live, engine):
    order = create(live, "bigger")
    before = ids(engine, live, order)
    live.orders.change_plan(order, "large")
    run(live)
    order = again(order)
    assert (order.status, order.plan) == ("active", "large")
    after = ids(engine, live, order)
    assert after["app"] != before["app"] and (after["db"], after["web"]) == (before["db"], before["web"])
    app = engine.container(f"{live.settings.deployment}-bigger_app")
    assert app.payload["HostConfig"]["Memory"] == 128 * 1024 * 1024 and app.state == "running"
    assert "recreated: app" in steps(last_operation(order))
    assert "order.plan_changed" in events(order)


def test_change_plan_of_a_suspended_order_applies_when_it_is_resumed(live, engine):
    order = create(live, "later")
    live.orders.suspend(order)
    run(live)
    before = ids(engine, live, order)
    live.orders.change_plan(again(order), "large")
    run(live)
    order = again(order)
    assert (order.status, order.plan) == ("suspended", "large") and ids(engine, live, order) == before
    live.orders.unsuspend(order)
    run(live)
    assert ids(engine, live, order)["app"] != before["app"]
    assert engine.container(f"{live.settings.deployment}-later_app").payload["HostConfig"]["Memory"] == 128 * 2**20


def test_upgrade_moves_the_order_to_the_new_revision_and_recreates_what_changed(live, engine):
    order = create(live, "upgraded")
    before = ids(engine, live, order)
    compose = live.settings.config_repo / "products" / "busybox-demo" / "docker-compose.yml"
    compose.write_text(compose.read_text().replace("org.example.role: frontend", "org.example.role: frontend-v2"))
    live.catalog.sync()
    live.orders.upgrade(order)
    run(live)
    order = again(order)
    assert order.status == "active" and order.revision_id == live.catalog.product("busybox-demo").current_revision_id
    after = ids(engine, live, order)
    assert after["web"] != before["web"] and (after["db"], after["app"]) == (before["db"], before["app"])
    web = engine.container(f"{live.settings.deployment}-upgraded_web")
    assert web.labels["org.example.role"] == "frontend-v2" and web.labels["live.replaces"] == before["web"]
    assert web.host_ports == {"8080/tcp": order.published_ports["web:8080"]}
    assert "order.upgraded" in events(order)


# -- terminate ----------------------------------------------------------------------------------------------------
def active(live, engine):
    return create(live, "was-active", 11)


def suspended(live, engine):
    order = create(live, "was-suspended", 12)
    live.orders.suspend(order)
    run(live)
    return again(order)


def pending(live, engine):
    return create(live, "was-pending", 13, run_it=False)


def failed(live, engine):
    engine.health["db"] = "unhealthy"
    order = create(live, "was-failed", 14)
    engine.health.clear()
    return order


@pytest.mark.parametrize("state", [active, suspended, pending, failed], ids=lambda s: s.__name__)
def test_terminate_archives_and_removes_everything_from_any_state(live, engine, state):
    order = state(live, engine)
    live.orders.terminate(order)
    run(live)
    order = again(order)
    assert order.status == "terminated" and order.terminated_at is not None
    assert last_operation(order).state == "succeeded"
    assert objects(engine, live, order) == {"containers": [], "networks": [], "volumes": []}
    final = Event.get((Event.order == order) & (Event.kind == "order.archived")).data["backup_id"]
    [manifest] = live.backups.list(order)  # the terminated order keeps its final backup only
    assert manifest.kind == "final"
    assert sorted(a.name for a in manifest.artefacts) == ["volume.app-state.tar", "volume.db-data.tar"]
    # A failed create took the final backup of its volumes already and removed them: the terminate has nothing
    # left to back up, and takes no empty backup.
    assert final == (None if state is failed else manifest.backup_id)


def test_a_failed_terminate_starts_the_active_stack_again(live, engine):
    order = create(live, "kept")
    volume = f"{live.settings.deployment}-kept_db-data"
    engine.write_file(volume, "base/1", b"rows")
    before = objects(engine, live, order)
    engine.stream_failures[("export_volume", volume)] = EngineOperationError("read volume: refused by the engine")
    live.orders.terminate(order)
    run(live)
    operation = last_operation(order)
    assert operation.state == "failed" and operation.attempts == 1
    order = again(order)
    assert order.status == "active" and set(containers(engine, live, order).values()) == {"running"}
    assert objects(engine, live, order) == before and engine.volumes[volume].files == {"base/1": b"rows"}
    assert "terminate failed and nothing was deleted: the order's containers run again" in steps(operation)


def test_a_failed_terminate_whose_stack_cannot_start_again_leaves_the_order_failed(live, engine):
    order = create(live, "down")
    engine.stream_failures[("export_volume", f"{live.settings.deployment}-down_app-state")] = \
        EngineOperationError("read volume: refused")
    engine.failures[("start_container", "db")] = EngineOperationError("start container: runc refused")
    live.orders.terminate(order)
    run(live)
    order = again(order)
    assert order.status == "failed" and set(containers(engine, live, order).values()) == {"exited"}
    assert objects(engine, live, order)["volumes"], "nothing was deleted"
    assert "runc refused" in Event.get((Event.order == order) & (Event.kind == "order.failed")).data["error_detail"]


def test_the_fake_is_what_the_application_runs_on(live, engine):
    assert live.engine is engine and live.deployer.engine is engine
    assert TEST_IMAGE in engine.images


def test_host_ports_are_searched_from_a_random_start_and_wrap_around():
    # Two bridges sharing a host (or tests side by side), each with its own records, rarely reach for the same port.
    chosen = {PortAllocator(29000, 29999).allocate(set()) for _ in range(20)}
    assert len(chosen) > 1 and all(29000 <= port <= 29999 for port in chosen)
    first = PortAllocator(29990, 29999, start=29990).allocate(set())
    wrapped = PortAllocator(first, 29999, start=29999).allocate({29999} | set(range(first + 1, 29999)))
    assert wrapped == first, "past the last port the search goes on from the first"
