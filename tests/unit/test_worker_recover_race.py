"""recover() and an operation that finishes while it looks: a succeeded last attempt is never failed (and its
fresh stack never cleaned up) because it left the worker's in-flight set between two reads."""
import contextlib

from app.models import Operation, Order
from app.orders.service import CustomerInfo


def test_an_operation_finishing_while_recover_reads_is_left_alone(fake_live):
    worker = fake_live.worker()
    outcome = fake_live.orders.create(service_id=77, customer=CustomerInfo(email="r@example.org"),
                                      product="busybox-demo", plan="small", username="racer")
    op = outcome.operation
    # Its last attempt runs in this worker.
    Operation.update(state="running", attempts=op.max_attempts).where(Operation.id == op.id).execute()
    worker._in_flight.add(op.id)
    worker._busy_orders.add(op.order_id)
    real_context = worker.db.connection_context

    @contextlib.contextmanager
    def finishing_first():
        # The operation succeeds just as recover() opens its connection to read the running rows, i.e. after
        # any look at the in-flight set made before, before the rows are read: as execute() ends it.
        Operation.update(state="running").where(Operation.id == op.id).execute()
        with worker._lock:
            worker._in_flight.discard(op.id)
            worker._busy_orders.discard(op.order_id)
        with real_context():
            yield
        Operation.update(state="succeeded").where(Operation.id == op.id).execute()

    worker.db.connection_context = finishing_first
    try:
        assert worker.recover() == 0
    finally:
        worker.db.connection_context = real_context
    assert Operation.get_by_id(op.id).state == "succeeded"
    assert Order.get_by_id(op.order_id).status != "failed"
    assert not fake_live.engine.calls_of("remove_container")


def test_a_dead_workers_operation_is_still_recovered(fake_live):
    worker = fake_live.worker()
    outcome = fake_live.orders.create(service_id=78, customer=CustomerInfo(email="d@example.org"),
                                      product="busybox-demo", plan="small", username="dead")
    op = outcome.operation
    Operation.update(state="running", attempts=1, lease_owner="gone:1").where(Operation.id == op.id).execute()
    assert worker.recover() == 1
    assert Operation.get_by_id(op.id).state == "pending"
