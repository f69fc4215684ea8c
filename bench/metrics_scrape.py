"""`BENCH_ONLY=metrics`: the scrapes of Zabbix's two master items at many orders: the public ``GET /metrics`` and
``GET /metrics/orders`` (the per-order series, with a read key).

BENCH_METRICS_ORDERS / 10 and then BENCH_METRICS_ORDERS synthetic orders (default 1,000 and 10,000; rows written
straight into the database, copies of one real order) with a usage row each, one in 100 failing (drift), one in 50
with a failed operation and one in 2 with a successful backup; at each scale BENCH_METRICS_REPEATS scrapes of each
path through the Flask test client (routing, the key check, the collectors' grouped queries, the text exposition;
no network). Reports, per path and scale, the median time, the size of the answer and the SQL statements of one warm
scrape (both paths must cost a fixed number of queries).

Baselines, same run and same app: ``/metrics/orders`` against the public ``/metrics`` at the same orders (what the
per-order series cost over the global figures), and each path's time per order at the large scale against the small
one (ratio 1 = linear; statements: ratio 1 = constant).

Standalone on SQLite and the in-memory engine, without Docker: ``python -m bench.metrics_scrape``; in the bench
(``BENCH_ONLY=metrics python -m bench``) on the bench's database.
"""
from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import peewee

ORDERS = int(os.environ.get("BENCH_METRICS_ORDERS", "10000"))
SCALES = (ORDERS // 10, ORDERS)
REPEATS = int(os.environ.get("BENCH_METRICS_REPEATS", "5"))
SERVICE_ID_BASE = 2_000_000


def seed(live, orders: int, have: int = 0) -> None:
    """``orders`` orders not terminated in all (``have`` of them seeded already), each with a usage row; some
    failing, failed or backed up."""
    from app.models import Backup, Operation, Order, OrderDrift, OrderUsage, utcnow
    from app.orders.service import CustomerInfo

    product = next(p for p in live.queries.whmcs_products() if p["valid"] and p["plans"])
    if have:
        template = Order.get(Order.whmcs_service_id == SERVICE_ID_BASE)
    else:
        template = live.orders.create(service_id=SERVICE_ID_BASE, customer=CustomerInfo(email="metrics@bench.local"),
                                      product=product["slug"], plan=product["plans"][0], username="metricsbench").order
    now = utcnow()
    with live.db.atomic():
        for start in range(max(1, have), orders, 500):
            Order.insert_many([{
                "whmcs_service_id": SERVICE_ID_BASE + n, "customer": template.customer_id,
                "product": template.product_id, "revision": template.revision_id, "plan": template.plan,
                "instance": f"met{n}", "hostname": f"met{n}.bench.local", "status": "active", "secrets": {},
                "published_ports": {}, "created_at": now, "updated_at": now} for n in range(start, min(start + 500, orders))
            ]).execute()
        ids = [order_id for (order_id,) in Order.select(Order.id).where(Order.whmcs_service_id >= SERVICE_ID_BASE + have)
               .order_by(Order.id).tuples()]
        for chunk in peewee.chunked(ids, 100):
            OrderUsage.insert_many([{"order": i, "sampled_at": now, "memory_bytes": 10_000_000, "cpu_seconds": 1.5,
                                     "containers_running": 1, "containers_total": 1, "disk_sampled_at": now,
                                     "disk_bytes": 4096} for i in chunk]).on_conflict_replace().execute()
            OrderDrift.insert_many([{"order": i, "state": "failing" if i % 100 == 0 else "ok", "expected": {},
                                     "baseline": {}, "problems": [], "repairs": []} for i in chunk]
                                   ).on_conflict_replace().execute()
            failed = [{"order": i, "kind": "redeploy", "state": "failed", "finished_at": now} for i in chunk if i % 50 == 0]
            if failed:
                Operation.insert_many(failed).execute()
            Backup.insert_many([{"order": i, "kind": "scheduled", "state": "succeeded", "backup_id": f"met-{i}",
                                 "started_at": now, "finished_at": now, "size": 1000}
                                for i in chunk if i % 2 == 0]).execute()


PATHS = ("/metrics", "/metrics/orders")


def measure(live, client, path: str, headers: dict) -> dict:
    """The median time (s) of REPEATS scrapes of ``path`` after a first one (which warms the caches: the key's
    check is then cached, as for ``app.apikeys.CACHE_SECONDS``), the answer's size (bytes) and the SQL statements of
    the first timed scrape (comparable between scales: the first of all may also read and touch the key's row)."""
    statements = []
    execute = type(live.db).execute_sql

    def counted(db, sql, *args, **kwargs):
        statements.append(sql)
        return execute(db, sql, *args, **kwargs)
    times, size = [], 0
    for attempt in range(REPEATS + 1):
        type(live.db).execute_sql = counted if attempt == 1 else execute
        try:
            started = time.perf_counter()
            answer = client.get(path, headers=headers)
            elapsed = time.perf_counter() - started
        finally:
            type(live.db).execute_sql = execute
        if answer.status_code != 200:
            raise RuntimeError(f"{path} answered {answer.status_code}")
        size = len(answer.get_data())
        if attempt:  # the first scrape warms the caches
            times.append(elapsed)
    return {"s": round(statistics.median(times), 4), "bytes": size, "statements": len(statements)}


def measure_scales(live, client, headers: dict) -> dict:
    """``{scale: {path: measure's figures}}``: the orders seeded up to each of SCALES, both paths read at each."""
    from bench.run import log

    results, have = {}, 0
    for scale in SCALES:
        started = time.monotonic()
        seed(live, scale, have)
        have = scale
        log(f"metrics: seeded {scale} orders in {time.monotonic() - started:.1f}s")
        results[scale] = {path: measure(live, client, path, headers) for path in PATHS}
    return results


def report(bench, results: dict, kind: str) -> None:
    """``results`` (measure_scales') as rows of ``bench``'s table: ``/metrics/orders`` against ``/metrics``, each path
    per order at the large scale against the small one, and the statements at both."""
    low, high = SCALES
    small, large = results[low], results[high]
    public, orders = large["/metrics"], large["/metrics/orders"]
    bench.row(f"GET /metrics/orders vs GET /metrics @{high} orders ({kind})", round(orders["s"] * 1000, 1),
              round(public["s"] * 1000, 1), "-", None, "ms",
              f"baseline = the public /metrics, same run; {orders['bytes']} vs {public['bytes']} bytes")
    for path in PATHS:
        per_order = {scale: results[scale][path]["s"] / scale * 1e6 for scale in SCALES}
        bench.row(f"GET {path} per order @{high} vs @{low} orders ({kind})", round(per_order[high], 2),
                  round(per_order[low], 2), "ratio <= 1.5 (~1: linear)", per_order[high] <= 1.5 * per_order[low],
                  "us/order", f"{round(large[path]['s'] * 1000, 1)} ms @{high}, {round(small[path]['s'] * 1000, 1)} ms "
                  f"@{low}; {large[path]['bytes']} bytes @{high}")
        bench.row(f"GET {path} SQL statements @{high} vs @{low} orders ({kind})", large[path]["statements"],
                  small[path]["statements"], "ratio 1.0 (constant)",
                  large[path]["statements"] == small[path]["statements"], "statements")


def run(bench) -> None:
    """In bench/run.py (its database and catalog)."""
    from app.apikeys import create_key
    from bench.run import in_process_app

    _app, live, client, _headers = in_process_app(bench.settings("metrics", deployment=bench.ns + "m"), "bench-metrics")
    headers = {"Authorization": f"Bearer {create_key('bench-metrics-read', 'read')[1]}"}
    try:
        results = measure_scales(live, client, headers)
    finally:
        live.db.close()
    bench.raw["metrics"] = results
    report(bench, results, "postgresql" if isinstance(live.db, peewee.PostgresqlDatabase) else "sqlite")


def main() -> None:
    """Standalone: SQLite in a temporary folder and the in-memory engine."""
    import json

    from app import create_app
    from app.apikeys import create_key
    from app.config import PROJECT_ROOT, load_settings
    from app.db import upgrade
    from bench.run import Figures
    from tests.fakes import FakeEngine
    import app as app_package
    from app.bootstrap import bootstrap

    folder = Path(tempfile.mkdtemp(prefix="metrics-bench-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    try:
        repo = folder / "config-repo"
        shutil.copytree(PROJECT_ROOT / "examples" / "config-repo" / "products" / "busybox-demo",
                        repo / "products" / "busybox-demo")
        settings = load_settings({"LIVE_DATABASE_URL": f"sqlite:///{folder / 'live.db'}", "LIVE_CONFIG_REPO": str(repo),
                                  "LIVE_BASE_DOMAIN": "bench.local", "LIVE_BACKUP_DIR": str(folder / "backups"),
                                  "LIVE_DEPLOYMENT": "metricsbench", "LIVE_LOG_LEVEL": "WARNING"})
        live = bootstrap(settings, engine=FakeEngine())
        upgrade(live.db)
        live.catalog.sync()
        original = app_package.bootstrap
        app_package.bootstrap = lambda _settings: live
        try:
            client = create_app(settings).test_client()
        finally:
            app_package.bootstrap = original
        headers = {"Authorization": f"Bearer {create_key('bench-metrics-read', 'read')[1]}"}
        figures = Figures()
        results = measure_scales(live, client, headers)
        print(json.dumps(results, indent=2))
        report(figures, results, "sqlite")
        figures.report()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
