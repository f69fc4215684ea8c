"""``live orders show`` shows the order's drift: its state, why it is failing, the problems, and the failing
event's log lines as private detail (the CLI is staff's)."""
from __future__ import annotations

import pytest

from app.models import ObservedContainer, utcnow
from tests.support.cli_runner import live_cli_runner
from tests.unit.test_drift import checker, container, mirror
from tests.unit.test_operations_fake import create, engine, live  # noqa: F401 (fixtures)


@pytest.fixture
def show(live):
    runner = live_cli_runner(live)
    return lambda order: runner.invoke(args=["live", "orders", "show", order], catch_exceptions=False).output


def test_orders_show_prints_the_drift_and_why_an_order_is_failing(live, engine, show):
    order = create(live)
    assert "drift        ok" in show(order.instance)
    db = container(engine, order, "db")
    engine.logs[db.id] = "starting\nFATAL: cannot open the data directory\n"
    mirror(live, engine)
    ObservedContainer.update(deaths=3, last_died_at=utcnow(), state="restarting").where(
        ObservedContainer.container_id == db.id).execute()
    assert checker(live).check().failing == [order.id]

    shown = show(order.instance)
    line = next(line for line in shown.splitlines() if line.startswith("drift "))
    assert line.split()[1] == "failing" and "crash" in line
    assert any(line.split()[:2] == ["db", "crash_loop:"] for line in shown.splitlines())
    assert "FATAL: cannot open the data directory" in shown  # the failing event's log lines (private detail)
