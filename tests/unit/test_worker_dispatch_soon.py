"""The worker dispatches again as soon as an operation finishes (a free slot does not wait for the next poll)."""
from __future__ import annotations

from app.models import Operation
from app.orders.service import CustomerInfo


class RecordingScheduler:
    """Stands in for the worker's APScheduler: records the one-off jobs added while it runs."""

    def __init__(self, running: bool = True):
        self.running = running
        self.jobs: list[tuple[object, str]] = []

    def add_job(self, func, id: str, replace_existing: bool = False, max_instances: int = 1):  # noqa: A002
        assert replace_existing, "a second wake-up must replace a pending one, not queue beside it"
        assert max_instances > 1, "a wake-up while another tick runs must not be skipped"
        self.jobs.append((func, id))


class InlineExecutor:
    @staticmethod
    def submit(fn, *args):
        fn(*args)


def _queue_create(live, service_id: int) -> int:
    outcome = live.orders.create(service_id=service_id, customer=CustomerInfo(email="soon@example.org"),
                                 product="busybox-demo", plan="small", username=f"soon{service_id}")
    return outcome.operation.id


def test_a_finished_operation_schedules_a_dispatch_tick_at_once(fake_live):
    worker = fake_live.worker()
    worker._pool = InlineExecutor()
    worker._scheduler = scheduler = RecordingScheduler()
    operation_id = _queue_create(fake_live, 1)
    assert worker.dispatch() == [operation_id]
    assert Operation.get_by_id(operation_id).state == "succeeded"
    assert scheduler.jobs == [(worker.dispatch_safely, "dispatch-now")]
    scheduler.jobs[0][0]()  # the tick itself runs (and finds nothing to do)
    assert not worker._in_flight


def test_no_dispatch_is_scheduled_once_the_scheduler_stopped(fake_live):
    worker = fake_live.worker()
    worker._pool = InlineExecutor()
    worker._scheduler = scheduler = RecordingScheduler(running=False)
    operation_id = _queue_create(fake_live, 2)
    assert worker.dispatch() == [operation_id]
    assert Operation.get_by_id(operation_id).state == "succeeded"
    assert scheduler.jobs == []


def test_a_dispatch_tick_recovers_and_claims_under_the_dispatch_lock(fake_live):
    """Ticks run one at a time: one that recovers while another claims would put the claimed operation back in
    the queue (claimed in the database, not yet in ``_in_flight``)."""
    worker = fake_live.worker()
    worker._pool = InlineExecutor()
    seen = []
    recover, dispatch = worker.recover, worker.dispatch
    worker.recover = lambda: (seen.append(("recover", worker._dispatch_lock.locked())), recover())[1]
    worker.dispatch = lambda: (seen.append(("dispatch", worker._dispatch_lock.locked())), dispatch())[1]
    _queue_create(fake_live, 3)
    worker.dispatch_safely()
    assert seen == [("recover", True), ("dispatch", True)]
    assert not worker._dispatch_lock.locked()
