"""`BENCH_ONLY=accounts` (or `python -m bench.accounts`): WHMCS Server Sync's listing and usage billing at scale.

At BENCH_ACCOUNTS_ROWS / 10 and then BENCH_ACCOUNTS_ROWS orders (default 1,000 and 10,000, written straight into a
fresh database: SQLite and, when it answers, PostgreSQL) with two stored backups each, in process through Flask's
test client with a whmcs key (routing, authentication, the query and serialisation; no network):

- the full listing of ``GET /whmcs/v1/accounts``, page after page (``after`` = the previous ``next``) at
  ``limit`` 1000 and 500 (the module's page): total time and requests;
- ``GET /whmcs/v1/usage`` (every order, with ``backup_mb`` summed from the backups table).

Baselines, same run and same app: as many requests to ``GET /bench/ceiling`` (bench/ceiling.py's route, added to
this app: the same whmcs-key check, a constant answer, no query) as the call made, so the ratio is what the
query and its answer cost over authentication and framework; and each call at the smaller scale (ratio 10 =
linear in the orders). Each figure is the median of REPEATS runs. Results go to ``bench.raw["accounts"]`` and the
table (bench/run.py's ``row``), or, standalone, to stdout.
"""
from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import peewee

ROWS = int(os.environ.get("BENCH_ACCOUNTS_ROWS", "10000"))
SCALES = (ROWS // 10, ROWS)
REPEATS = 3
LIMITS = (1000, 500)
POSTGRES_ADMIN_URL = os.environ.get("LIVE_TEST_POSTGRES_URL", "postgresql://live:live@127.0.0.1:5432/postgres")


def _seed(live, first: int, last: int) -> None:
    """Orders of busybox-demo with service ids ``first``..``last`` (every status) and two stored backups of each."""
    from app.models import Backup, Customer, Order, Product, utcnow

    product = Product.get(Product.slug == "busybox-demo")
    customer = Customer.get_or_create(email="bench@example.org", defaults={"whmcs_client_id": 1})[0]
    now = utcnow()
    statuses = ("active", "suspended", "terminated", "pending", "failed")
    with live.db.atomic():
        for chunk in peewee.chunked(range(first, last + 1), 500):
            Order.insert_many([{
                "whmcs_service_id": n, "customer": customer.id, "product": product.id,
                "revision": product.current_revision_id, "plan": "small", "instance": f"acct{n}",
                "hostname": f"acct{n}.bench.local", "status": statuses[n % len(statuses)], "secrets": {},
                "published_ports": {}, "created_at": now, "updated_at": now} for n in chunk]).execute()
        ids = [order_id for (order_id,) in Order.select(Order.id).where(Order.whmcs_service_id >= first).tuples()]
        for chunk in peewee.chunked([(order_id, k) for order_id in ids for k in (0, 1)], 500):
            Backup.insert_many([{
                "order": order_id, "kind": "scheduled", "state": "succeeded", "backup_id": f"b{order_id}-{k}",
                "started_at": now, "finished_at": now, "size": 3_000_000 + k} for order_id, k in chunk]).execute()


def _timed(action) -> tuple[float, object]:
    """``action()`` REPEATS times: the median seconds and the last result."""
    times, result = [], None
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 5), result


def _measure(client, headers, rows: int) -> dict:
    """``{"listing_limit_<L>": {"s", "requests", "baseline_s"}, "usage": {"s", "bytes", "baseline_s"}}`` at ``rows``
    orders; ``baseline_s``: as many ceiling requests as the call made."""
    from bench.ceiling import PATH as CEILING

    def get(path: str, **query) -> bytes:
        answer = client.get(path, query_string=query, headers=headers)
        if answer.status_code != 200:
            raise RuntimeError(f"{path} answered {answer.status_code}: {answer.get_data(as_text=True)[:200]}")
        return answer.get_data()

    def listing(limit: int) -> int:
        after, requests, seen = 0, 0, 0
        while after is not None:
            page = client.get("/whmcs/v1/accounts", query_string={"after": after, "limit": limit}, headers=headers)
            if page.status_code != 200:
                raise RuntimeError(f"accounts answered {page.status_code}: {page.get_data(as_text=True)[:200]}")
            seen += len(page.get_json()["items"])
            after = page.get_json()["next"]
            requests += 1
        if seen != rows:
            raise RuntimeError(f"the listing gave {seen} orders, not {rows}")
        return requests

    def ceiling(requests: int) -> float:
        return _timed(lambda: [get(CEILING) for _ in range(requests)])[0]

    results = {}
    for limit in LIMITS:
        seconds, requests = _timed(lambda: listing(limit))
        results[f"listing_limit_{limit}"] = {"s": seconds, "requests": requests, "baseline_s": ceiling(requests)}
    seconds, size = _timed(lambda: len(get("/whmcs/v1/usage")))
    results["usage"] = {"s": seconds, "bytes": size, "requests": 1, "baseline_s": ceiling(1)}
    return results


def measure(database_url: str) -> dict:
    """``{scale: _measure's figures}`` at each of SCALES orders, grown in one fresh database at ``database_url``."""
    from app.config import PROJECT_ROOT, load_settings
    from bench.ceiling import add_ceiling
    from bench.run import in_process_app

    folder = Path(tempfile.mkdtemp(prefix="bench-accounts-"))
    settings = load_settings({
        "LIVE_DATABASE_URL": database_url, "LIVE_CONFIG_REPO": str(PROJECT_ROOT / "examples" / "config-repo"),
        "LIVE_BASE_DOMAIN": "bench.local", "LIVE_BACKUP_DIR": str(folder / "backups"),
        "LIVE_DEPLOYMENT": "bacct" + uuid.uuid4().hex[:6], "LIVE_LOG_LEVEL": "WARNING"})
    app, live, client, headers = in_process_app(settings, "bench-accounts")
    add_ceiling(app)
    try:
        results, have = {}, 0
        for scale in SCALES:
            _seed(live, have + 1, scale)
            have = scale
            results[scale] = _measure(client, headers, scale)
        return results
    finally:
        live.db.close()
        shutil.rmtree(folder, ignore_errors=True)


def _postgres_database() -> tuple[str, callable]:
    import psycopg2

    name = f"bench_accounts_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(POSTGRES_ADMIN_URL, connect_timeout=3)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")

    def drop() -> None:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", drop


def run_all() -> dict:
    """The figures on SQLite and, when it answers, PostgreSQL: ``{"sqlite": ..., "postgresql": ...}``."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-accounts-sqlite-") as folder:
        results["sqlite"] = measure(f"sqlite:///{folder}/live.db")
    try:
        url, drop = _postgres_database()
    except Exception as exc:  # no PostgreSQL here: SQLite alone, and say so
        results["notes"] = [f"accounts: PostgreSQL unavailable ({type(exc).__name__}: {exc}); SQLite only"]
        return results
    try:
        results["postgresql"] = measure(url)
    finally:
        drop()
    return results


def report(bench, results: dict) -> None:
    """``results`` (run_all's) as rows of ``bench``'s table: each call against its ceiling requests, and at the
    large scale against the small one."""
    low, high = SCALES
    bench.notes.extend(results.get("notes", []))
    for kind in ("sqlite", "postgresql"):
        if kind not in results:
            continue
        small, large = results[kind][low], results[kind][high]
        for name, figure in large.items():
            call = "GET /whmcs/v1/usage" if name == "usage" else f"GET /whmcs/v1/accounts full listing, limit={name.rsplit('_', 1)[1]}"
            bench.row(f"{call} @{high} orders ({kind})", round(figure["s"] * 1000, 2),
                      round(figure["baseline_s"] * 1000, 2), "-", None, "ms",
                      f"baseline = {figure['requests']} request(s) to GET /bench/ceiling (same app, same key check, "
                      f"constant answer); {figure['requests']} request(s)")
            bench.row(f"{call} @{high} vs @{low} orders ({kind})", round(figure["s"] * 1000, 2),
                      round(small[name]["s"] * 1000, 2), f"ratio <= {1.5 * high / low:.0f} (~{high / low:.0f}: linear)",
                      figure["s"] <= small[name]["s"] * 1.5 * high / low, "ms",
                      f"baseline = @{low} orders ({small[name]['requests']} request(s))")


def run(bench) -> None:
    """bench/run.py's hook: the figures into ``bench.raw["accounts"]`` and its table."""
    results = run_all()
    bench.raw["accounts"] = results
    report(bench, results)


if __name__ == "__main__":
    import json

    from bench.run import Figures

    figures = Figures()
    run(figures)
    print(json.dumps(figures.raw, indent=2))
    figures.report()
