"""Drift (issue 15, ``BENCH_ONLY=drift``): how fast a container removed by hand shows on its order and is repaired.

For each mode (one engine; a swarm when the engine is a swarm manager) a real worker process (its engine mirror
and its drift checker, LIVE_DRIFT_SECONDS=0.5, LIVE_MIRROR_POLL_SECONDS=0.5) runs one order of the one-service
``mini`` product on PostgreSQL. BENCH_DRIFT_REPEATS times: once the order is judged (the mirror fresh, the last
deploy's expectation settled), its container is removed as an operator would (``docker rm -f``; a swarm:
``docker service scale <service>=0``), and the database is polled every 50 ms for three moments: the order's
``drift`` shows it, the checker's redeploy succeeded (the container runs again), and ``drift_repaired``
(the view says ``ok`` again: after the mirror caught up, SETTLE_SECONDS after that deploy). Medians are reported.
"""
from __future__ import annotations

import datetime as dt
import os
import signal
import statistics
import subprocess
import sys
import time

from app.config import PROJECT_ROOT
from tests.support.waiting import wait_for

REPEATS = int(os.environ.get("BENCH_DRIFT_REPEATS", "3"))
POLL_SECONDS = 0.05


def poll(predicate, timeout: float, what: str):
    return wait_for(predicate, timeout=timeout, interval=POLL_SECONDS, what=what)


def run(bench) -> None:
    """Both modes on ``bench`` (bench/run.py's :class:`Bench`: its settings, database, rows, log)."""
    swarm = bool((bench.docker.info().get("Swarm") or {}).get("ControlAvailable"))
    modes = [m for m in os.environ.get("BENCH_DRIFT_MODES", "docker,swarm").split(",") if m]
    for mode in [m for m in modes if m == "docker" or swarm]:
        measure(bench, mode)
    if not swarm:
        bench.row("drift (swarm, skipped)", "the engine is not a swarm manager", None, "-", None)


def measure(bench, mode: str) -> None:
    from app.bootstrap import bootstrap
    from app.db import upgrade
    from bench.run import log
    from app.models import Event, Operation, Order, OrderDrift, utcnow
    from app.orders.drift import SETTLE_SECONDS
    from app.orders.service import CustomerInfo
    from app.stacks.mirror import freshness, observed
    from tests.conftest import remove_deployment_objects
    from tests.support.live_service import settings_env

    deployment = bench.ns + ("x" if mode == "swarm" else "d")
    settings = bench.settings(f"drift-{mode}", deployment=deployment, LIVE_ORCHESTRATOR=mode)
    live = bootstrap(settings)
    upgrade(live.db)
    live.catalog.sync()
    log_path = bench.tmp / f"drift-{mode}-worker.log"
    env = settings_env(settings, LIVE_WORKER_POLL_SECONDS="0.1", LIVE_DRIFT_SECONDS="0.5",
                       LIVE_MIRROR_POLL_SECONDS="0.5", LIVE_DRIFT_MAX_REPAIRS=str(REPEATS + 1), LIVE_LOG_LEVEL="INFO")
    with open(log_path, "ab") as output:  # the child keeps its own copy of the descriptor
        worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "live", "worker"], cwd=PROJECT_ROOT,
                                  env=env, stdout=output, stderr=subprocess.STDOUT)
    timings: dict[str, list[float]] = {"shown": [], "running": [], "repaired": []}
    timeline: list[list[tuple[str, float]]] = []
    try:
        outcome = live.orders.create(service_id=9151, customer=CustomerInfo(email="drift@example.org"),
                                     product="mini", plan="basic", username=f"drift {mode}")
        order_id = outcome.order.id
        order = poll(lambda: (o := Order.get_by_id(order_id)).status == "active" and o, 180, "order active")
        name = f"{deployment}-{order.instance}_web"

        def judged() -> bool:
            row = observed([order_id]).get(order_id, {}).get("web")
            expectation = OrderDrift.get(OrderDrift.order == order_id)
            return (freshness(deployment).fresh and row is not None and row.state == "running"
                    and expectation.state == "ok"
                    and expectation.expected_at <= utcnow() - dt.timedelta(seconds=SETTLE_SECONDS)
                    and not Operation.select().where((Operation.order == order_id)
                                                     & Operation.state.in_(("pending", "running"))).exists())

        for attempt in range(REPEATS):
            poll(judged, 120, "order judged")
            repairs = Operation.select().where((Operation.order == order_id) & (Operation.requested_by == "drift")
                                               & (Operation.state == "succeeded")).count()
            repaired_events = Event.select().where((Event.order == order_id) & (Event.kind == "drift_repaired")).count()
            started, removed_at = time.monotonic(), utcnow()
            if mode == "swarm":
                bench.docker.services.get(name).scale(0)
            else:
                bench.docker.containers.get(name).remove(force=True)
            poll(lambda: live.queries.order_view(Order.get_by_id(order_id))["drift"]["state"] != "ok", 120,
                 "drift shown")
            timings["shown"].append(time.monotonic() - started)
            poll(lambda: Operation.select().where((Operation.order == order_id) & (Operation.requested_by == "drift")
                                                  & (Operation.state == "succeeded")).count() > repairs, 180,
                 "redeploy succeeded")
            timings["running"].append(time.monotonic() - started)
            poll(lambda: Event.select().where((Event.order == order_id)
                                              & (Event.kind == "drift_repaired")).count() > repaired_events, 120,
                 "drift_repaired")
            timings["repaired"].append(time.monotonic() - started)
            # Where the time went (seconds after the removal): the checker's events and operations, the mirror's row.
            timeline.append(sorted(
                [(e.kind, round((e.created_at - removed_at).total_seconds(), 2)) for e in Event.select().where(
                    (Event.order == order_id) & (Event.created_at >= removed_at)
                    & (Event.kind.startswith("drift_") | Event.kind.startswith("operation.")))],
                key=lambda item: item[1]))
            log(f"drift {mode} #{attempt + 1} timeline: {timeline[-1]}")
            log(f"drift {mode} #{attempt + 1}: shown {timings['shown'][-1]:.2f}s, running again "
                f"{timings['running'][-1]:.2f}s, repaired {timings['repaired'][-1]:.2f}s")
    except Exception:
        drift_events = [(e.kind, e.message[:200]) for e in Event.select().where(
            (Event.order == order_id) & (Event.kind.startswith("drift_") | Event.kind.startswith("operation.")))
            .order_by(Event.id)] if "order_id" in locals() else []
        log(f"drift {mode} failed; events: {drift_events}; worker log: {log_path.read_text()[-4000:]}")
        raise
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
        remove_deployment_objects(bench.docker, deployment)
        live.db.close()
    how = "docker rm -f" if mode == "docker" else "docker service scale …=0"
    labels = {"shown": f"drift ({mode}): from `{how}` to the order's drift showing it",
              "running": f"drift ({mode}): to the checker's redeploy succeeded (running again)",
              "repaired": f"drift ({mode}): to drift_repaired (the view says ok)"}
    bench.raw[f"drift_{mode}"] = {**{key: [round(v, 3) for v in values] for key, values in timings.items()},
                                  "timeline": timeline}
    for key, label in labels.items():
        bench.row(label, round(statistics.median(timings[key]), 2), None, "-", None, "s",
                  f"median of {REPEATS}; LIVE_DRIFT_SECONDS=0.5, LIVE_MIRROR_POLL_SECONDS=0.5, settle "
                  f"{SETTLE_SECONDS:.0f}s after a deploy")
