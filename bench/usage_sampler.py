"""`BENCH_ONLY=usage`: the background usage sampler (app/orders/usage.py) and the usage answer it feeds.

At each of BENCH_USAGE_SCALES real orders of the `mini` product (one container each) on the local engine, made
through the bridge in namespace ``<bench ns>u``:

- a sampler pass as the worker runs it here (cgroup files of this machine): engine API calls and time, the target
  being calls constant in the number of orders (baseline: the smallest scale);
- the same pass without cgroup files (one stats call per running container, the rate bound lifted): calls and time,
  what a remote engine or another swarm node costs;
- the disk pass (ONE ``docker system df``): calls and time;
- ``GET /whmcs/v1/usage`` (Flask test client, whmcs key: routing, authentication, the query and serialisation, no
  network) at those scales and at BENCH_USAGE_ROWS rows (synthetic orders and usage rows written straight into the
  database), the target being < 1 s at the largest.

Each figure is the median of REPEATS runs (calls: the most of one run). Results go to ``bench.raw["usage"]``.
"""
from __future__ import annotations

import os
import statistics
import time

import peewee

from app.orders.usage import STATS_THREADS

SCALES = [int(n) for n in os.environ.get("BENCH_USAGE_SCALES", "10,300").split(",")]
ROWS = int(os.environ.get("BENCH_USAGE_ROWS", "10000"))
SERVICE_ID_BASE = 80000  # WHMCS service ids of the real orders; synthetic rows follow at 1,000,000


def namespace(bench) -> str:
    """The LIVE_DEPLOYMENT of this bench's orders (bench/run.py's clean-up removes its objects)."""
    return bench.ns + "u"


def run(bench) -> None:
    from app.orders.usage import CgroupReader, UsageSampler
    from bench.run import REPEATS, _measure_calls, bench_worker, grow_orders, in_process_app, log

    _app, live, client, headers = in_process_app(bench.settings("usage", deployment=namespace(bench)), "bench-usage")
    worker = bench_worker(live)
    engine = live.engine
    local = worker.usage  # cgroup files where this machine runs the containers, as the worker does
    remote = UsageSampler(engine, live.settings.deployment, live.runner.project, stats_per_second=1e6)
    if not isinstance(local.cgroups, CgroupReader):
        raise RuntimeError("the worker's sampler reads no cgroup files")

    def answer() -> int:
        response = client.get("/whmcs/v1/usage", headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"usage answered {response.status_code}: {response.get_data(as_text=True)[:200]}")
        return len(response.get_data())

    def answer_time() -> dict[str, float]:
        times, size = [], 0
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            size = answer()
            times.append(time.perf_counter() - t0)
        return {"s": round(statistics.median(times), 4), "bytes": size}

    results: dict = {}
    made = 0
    for scale in SCALES:
        started = time.monotonic()
        made = grow_orders(live, worker, made, scale, SERVICE_ID_BASE, "u")
        running = sum(1 for c in engine.list_containers({"live.deployment": live.settings.deployment}) if c.running)
        log(f"usage scale {scale}: {running} containers running, ready in {time.monotonic() - started:.0f}s")
        passes = {}
        results[scale] = {
            "running": running,
            "pass_cgroup": _measure_calls(engine, lambda: passes.__setitem__("cgroup", local.sample())),
            "pass_stats": _measure_calls(engine, lambda: passes.__setitem__("stats", remote.sample())),
            "pass_disk": _measure_calls(engine, lambda: local.sample_disk()),
            "answer": answer_time(),
        }
        results[scale]["cgroup_reads"] = passes["cgroup"].cgroup_reads
        results[scale]["stats_calls"] = passes["stats"].stats_calls
        log(f"usage scale {scale}: {results[scale]}")
    _synthetic_rows(live, ROWS)
    results["rows"] = {"rows": ROWS, "answer": answer_time()}
    log(f"usage answer at {ROWS} rows: {results['rows']}")
    bench.raw["usage"] = results
    _report(bench, results)
    live.db.close()


def _synthetic_rows(live, rows: int) -> None:
    """Orders (copies of the first real one) and sampled usage rows until the table holds ``rows`` orders."""
    from app.models import Order, OrderUsage, utcnow

    template = Order.select().order_by(Order.id).first()
    have = Order.select().count()
    now = utcnow()
    with live.db.atomic():
        for start in range(have, rows, 500):
            numbers = range(start, min(start + 500, rows))
            Order.insert_many([{
                "whmcs_service_id": 1_000_000 + n, "customer": template.customer_id, "product": template.product_id,
                "revision": template.revision_id, "plan": template.plan, "instance": f"syn{n}",
                "hostname": f"syn{n}.bench.local", "status": "active", "secrets": {}, "published_ports": {},
                "created_at": now, "updated_at": now} for n in numbers]).execute()
        new = Order.select(Order.id).where(Order.instance.startswith("syn")).tuples()
        for chunk in peewee.chunked([order_id for (order_id,) in new], 100):
            OrderUsage.insert_many([{
                "order": order_id, "sampled_at": now, "memory_bytes": 10_000_000, "memory_limit_bytes": None,
                "cpu_seconds": 1.5, "containers_running": 1, "containers_total": 1, "disk_sampled_at": now,
                "disk_bytes": 4096} for order_id in chunk]).execute()


def _report(bench, results: dict) -> None:
    low, high = SCALES[0], SCALES[-1]
    a, b = results[low], results[high]
    bench.row(f"usage sampler pass (cgroup files): API calls @{high} orders", b["pass_cgroup"]["calls"],
              a["pass_cgroup"]["calls"], "ratio 1.0 (constant)", b["pass_cgroup"]["calls"] == a["pass_cgroup"]["calls"],
              "calls", f"baseline = @{low} orders; {b['cgroup_reads']} containers read from cgroup files")
    bench.row(f"usage sampler pass (cgroup files): time @{high}", round(b["pass_cgroup"]["s"] * 1000, 1),
              round(a["pass_cgroup"]["s"] * 1000, 1), f"ratio <= {high / low:.0f} (linear)",
              b["pass_cgroup"]["s"] <= a["pass_cgroup"]["s"] * high / low, "ms", f"baseline = @{low} orders")
    bench.row(f"usage sampler pass (stats calls, no cgroup files): API calls @{high}", b["pass_stats"]["calls"],
              a["pass_stats"]["calls"], "-", None, "calls",
              f"1 listing + 1 stats call per running container (rate bound lifted); {b['stats_calls']} stats calls")
    bench.row(f"usage sampler pass (stats calls): time @{high}", round(b["pass_stats"]["s"] * 1000, 1),
              round(a["pass_stats"]["s"] * 1000, 1), "-", None, "ms", f"{STATS_THREADS} stats calls in flight")
    bench.row(f"usage disk pass (one df): API calls @{high}", b["pass_disk"]["calls"], a["pass_disk"]["calls"],
              "ratio 1.0 (constant)", b["pass_disk"]["calls"] == a["pass_disk"]["calls"], "calls")
    bench.row(f"usage disk pass: time @{high}", round(b["pass_disk"]["s"] * 1000, 1),
              round(a["pass_disk"]["s"] * 1000, 1), "-", None, "ms")
    rows = results["rows"]
    bench.row(f"GET /whmcs/v1/usage @{high} orders", round(b["answer"]["s"] * 1000, 1), round(a["answer"]["s"] * 1000, 1),
              "-", None, "ms", f"baseline = @{low}; {b['answer']['bytes']} bytes")
    bench.row(f"GET /whmcs/v1/usage @{rows['rows']} rows", round(rows["answer"]["s"] * 1000, 1),
              round(a["answer"]["s"] * 1000, 1), "< 1000 ms", rows["answer"]["s"] < 1.0, "ms",
              f"baseline = @{low} orders; {rows['answer']['bytes']} bytes")
