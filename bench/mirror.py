"""The engine mirror's bench (``BENCH_ONLY=mirror``; docs/MIRROR.md): what a status pass costs when the views read
the mirror instead of the engine.

A *status pass* asks, for every order, its GeoCat Live 1.0 answer and its WHMCS status view (``service_info``, with
``runtime``): what WHMCS crons and desktop clients do. Measured, each the median of 3 passes:

- on the real engine at each of BENCH_MIRROR_SCALES orders (default 10 and 300) of the one-service ``mini``
  product, with the worker's follower running (its own engine client, so the views' engine calls are counted
  alone): engine API calls and seconds of one pass; against it, the old read path measured in the same run
  (one ``list_containers`` by order label per order, what GeoCat Live did before); and the follower's first
  listing (engine calls, seconds, rows written);
- with the in-memory engine (tests/fakes.py) and BENCH_MIRROR_FAKE_ROWS orders (default 10,000), each with its
  row in ``observed_container``, written straight into the database: the same pass.

Targets: engine calls of a pass constant in the number of orders (0), time at most linear.
"""
from __future__ import annotations

import os
import secrets
import threading
import time
from typing import Any

from app.stacks.project import deployment_selector, order_selector
from tests.support.waiting import wait_for

SCALES = [int(n) for n in os.environ.get("BENCH_MIRROR_SCALES", "10,300").split(",")]
FAKE_ROWS = int(os.environ.get("BENCH_MIRROR_FAKE_ROWS", "10000"))


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] mirror: {message}", flush=True)


def status_pass(live, orders) -> None:
    """Every order's GeoCat Live answer and WHMCS status view, as the web side answers them."""
    for order in orders:
        live.queries.geocat_live_services(order.instance)
        live.queries.service_info(order.whmcs_service_id)


def measure(engine, fn) -> dict[str, float]:
    """``fn()`` run REPEATS times: the median seconds and the most engine API calls of one run (bench/run.py's)."""
    from bench.run import _measure_calls

    return _measure_calls(engine, fn)


def run(bench) -> None:
    """Both parts; rows and ``raw["mirror"]`` on ``bench`` (bench/run.py's Bench)."""
    bench.raw["mirror"] = {"real": real_engine(bench), "fake": fake_engine(bench)}


def real_engine(bench) -> dict[int, Any]:
    from app.bootstrap import bootstrap
    from app.db import upgrade
    from app.models import ObservedContainer, Order
    from app.stacks.docker_engine import DockerEngine
    from app.stacks.mirror import MirrorFollower
    from bench.run import bench_worker, grow_orders

    ns = bench.ns + "m"
    live = bootstrap(bench.settings("mirror", deployment=ns))
    upgrade(live.db)
    live.catalog.sync()
    worker = bench_worker(live)
    results: dict[int, Any] = {}
    made = 0
    try:
        for scale in SCALES:
            started = time.monotonic()
            made = grow_orders(live, worker, made, scale, 70000, "m")
            orders = list(Order.select().where(Order.status == "active"))
            log(f"scale {scale}: {len(orders)} active orders ready in {time.monotonic() - started:.0f}s")

            # The follower's first listing, on an engine client of its own.
            follower_engine = DockerEngine()
            follower = MirrorFollower(follower_engine, live.db, ns, f"bench:{scale}")
            ObservedContainer.delete().execute()
            t0 = time.perf_counter()
            written = follower.sync()
            listing = {"s": round(time.perf_counter() - t0, 4), "calls": follower_engine.api_calls,
                       "rows_written": written}
            follower.start()
            wait_for(lambda: live.queries.mirror_freshness().fresh, timeout=60, what="the mirror fresh")
            wait_for(lambda: ObservedContainer.select().count() >= len(orders), timeout=120,
                     what="every container mirrored")
            engine = live.engine
            mirror_pass = measure(engine, lambda: status_pass(live, orders))
            selector = deployment_selector(ns)
            old_pass = measure(engine, lambda: [engine.list_containers(order_selector(ns, o.id)) for o in orders])
            follower.stop()
            results[scale] = {"orders": len(orders), "status_pass": mirror_pass, "engine_per_order": old_pass,
                              "listing": listing, "follower_writes_after_listing": follower.writes - written,
                              "selector": selector}
            log(f"scale {scale}: {results[scale]}")
        low, high = SCALES[0], SCALES[-1]
        a, b = results[low]["status_pass"], results[high]["status_pass"]
        bench.row(f"mirror status pass (GeoCat + WHMCS status per order): engine calls @{high}", b["calls"], None,
                  "0 (constant)", b["calls"] == 0 and a["calls"] == 0, "calls",
                  f"@{low}: {a['calls']}; the old path (list by order label) @{high}: "
                  f"{results[high]['engine_per_order']['calls']} calls")
        bench.row(f"mirror status pass: time @{high}", round(b["s"] * 1000, 1), round(a["s"] * 1000, 1),
                  f"ratio <= {high / low:.0f} (linear)", b["s"] <= a["s"] * high / low, "ms",
                  f"baseline = @{low} orders; the old path @{high}: "
                  f"{results[high]['engine_per_order']['s'] * 1000:.1f} ms")
        bench.row(f"mirror first listing @{high}", round(results[high]["listing"]["s"] * 1000, 1), None, "-", None,
                  "ms", f"{results[high]['listing']['calls']} engine call(s), "
                        f"{results[high]['listing']['rows_written']} rows written")
    finally:
        live.db.close()
        _remove(bench, ns)
    return results


def fake_engine(bench) -> dict[str, Any]:
    from app.bootstrap import bootstrap
    from app.db import upgrade
    from app.models import Customer, EngineMirror, ObservedContainer, Order, Product, utcnow
    from tests.conftest import HELPER_IMAGE, TEST_IMAGE
    from tests.fakes import FakeEngine

    engine = FakeEngine([TEST_IMAGE, HELPER_IMAGE])
    ns = bench.ns + "f"
    live = bootstrap(bench.settings("mirror-fake", deployment=ns), engine=engine)
    upgrade(live.db)
    live.catalog.sync()
    try:
        product = Product.get(Product.slug == "mini")
        customer = Customer.create(email="fake@example.org")
        now = utcnow()
        log(f"writing {FAKE_ROWS} orders and their mirror rows")
        with live.db.atomic():
            for start in range(0, FAKE_ROWS, 500):
                Order.insert_many([
                    {"whmcs_service_id": 900000 + n, "customer": customer.id, "product": product.id,
                     "revision": product.current_revision_id, "plan": "basic", "instance": f"f{n}",
                     "hostname": f"f{n}.bench.local", "status": "active", "secrets": {}, "ingress_pending": False}
                    for n in range(start, min(start + 500, FAKE_ROWS))]).execute()
            ids = [o.id for o in Order.select(Order.id).order_by(Order.id)]
            for start in range(0, len(ids), 500):
                ObservedContainer.insert_many([
                    {"container_id": secrets.token_hex(32), "order_id": order_id, "service": "web",
                     "name": f"{ns}-f{order_id}_web", "state": "running", "health": None, "changed_at": now,
                     "observed_at": now} for order_id in ids[start:start + 500]]).execute()
            EngineMirror.create(deployment=ns, follower="bench:fake", connected=True, beat_at=now)
        stop = threading.Event()

        def beat() -> None:  # the follower's beat, so the mirror stays fresh through a long pass
            while not stop.wait(1.0):
                with live.db.connection_context():
                    EngineMirror.update(beat_at=utcnow()).execute()

        beater = threading.Thread(target=beat, daemon=True)
        beater.start()
        orders = list(Order.select())
        result = measure(engine, lambda: status_pass(live, orders))
        stop.set()
        beater.join(5)
        result["orders"] = len(orders)
        log(f"fake engine, {len(orders)} orders: {result}")
        bench.row(f"mirror status pass @{len(orders)} rows (fake engine): engine calls", result["calls"], None,
                  "0 (constant)", result["calls"] == 0, "calls")
        bench.row(f"mirror status pass @{len(orders)} rows (fake engine): time", round(result["s"], 2), None,
                  "linear", None, "s", f"{result['s'] / len(orders) * 1000:.2f} ms per order")
        return result
    finally:
        live.db.close()


def _remove(bench, ns: str) -> None:
    """Every container, network and volume of ``ns`` (bench/run.py's cleanup knows its own namespaces only)."""
    selector = {"label": f"live.deployment={ns}"}
    for container in bench.docker.containers.list(all=True, filters=selector):
        container.remove(force=True)
    for network in bench.docker.networks.list(filters=selector):
        network.remove()
    for volume in bench.docker.volumes.list(filters=selector):
        volume.remove(force=True)
