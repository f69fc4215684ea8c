"""`BENCH_ONLY=accounts` (or `python -m bench.accounts`): WHMCS Server Sync's listing and usage billing at scale.

At BENCH_ACCOUNTS_ROWS orders (default 10,000, written straight into a fresh database: SQLite and PostgreSQL) with
two stored backups each, in process through Flask's test client with a whmcs key (routing, authentication, the
query and serialisation; no network):

- the full listing of ``GET /whmcs/v1/accounts``, page after page (``after`` = the previous ``next``) at
  ``limit`` 1000 and 500 (the module's page): total time and requests;
- ``GET /whmcs/v1/usage`` (every order, with ``backup_mb`` summed from the backups table).

Each figure is the median of REPEATS runs. Results go to ``bench.raw["accounts"]`` (bench/run.py) or stdout.
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import peewee

ROWS = int(os.environ.get("BENCH_ACCOUNTS_ROWS", "10000"))
REPEATS = 3
POSTGRES_ADMIN_URL = os.environ.get("LIVE_TEST_POSTGRES_URL", "postgresql://live:live@127.0.0.1:5432/postgres")


def _seed(live, rows: int) -> None:
    """``rows`` orders of busybox-demo (service ids 1..rows, every status) and two stored backups of each."""
    from app.models import Backup, Customer, Order, Product, utcnow

    product = Product.get(Product.slug == "busybox-demo")
    customer = Customer.create(email="bench@example.org", whmcs_client_id=1)
    now = utcnow()
    statuses = ("active", "suspended", "terminated", "pending", "failed")
    with live.db.atomic():
        for chunk in peewee.chunked(range(1, rows + 1), 500):
            Order.insert_many([{
                "whmcs_service_id": n, "customer": customer.id, "product": product.id,
                "revision": product.current_revision_id, "plan": "small", "instance": f"acct{n}",
                "hostname": f"acct{n}.bench.local", "status": statuses[n % len(statuses)], "secrets": {},
                "published_ports": {}, "created_at": now, "updated_at": now} for n in chunk]).execute()
        ids = [order_id for (order_id,) in Order.select(Order.id).tuples()]
        for chunk in peewee.chunked([(order_id, k) for order_id in ids for k in (0, 1)], 500):
            Backup.insert_many([{
                "order": order_id, "kind": "scheduled", "state": "succeeded", "backup_id": f"b{order_id}-{k}",
                "started_at": now, "finished_at": now, "size": 3_000_000 + k} for order_id, k in chunk]).execute()


def _measure(client, headers, rows: int) -> dict:
    def listing(limit: int) -> tuple[int, int]:
        after, requests, seen = 0, 0, 0
        while after is not None:
            answer = client.get("/whmcs/v1/accounts", query_string={"after": after, "limit": limit}, headers=headers)
            if answer.status_code != 200:
                raise RuntimeError(f"accounts answered {answer.status_code}: {answer.get_data(as_text=True)[:200]}")
            page = answer.get_json()
            seen += len(page["items"])
            after = page["next"]
            requests += 1
        if seen != rows:
            raise RuntimeError(f"the listing gave {seen} orders, not {rows}")
        return requests, seen

    def timed(action) -> tuple[float, object]:
        times, result = [], None
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            result = action()
            times.append(time.perf_counter() - t0)
        return round(statistics.median(times), 4), result

    results = {}
    for limit in (1000, 500):
        seconds, (requests, _) = timed(lambda: listing(limit))
        results[f"listing_limit_{limit}"] = {"s": seconds, "requests": requests}
    seconds, size = timed(lambda: len(client.get("/whmcs/v1/usage", headers=headers).get_data()))
    results["usage"] = {"s": seconds, "bytes": size}
    return results


def measure(database_url: str, rows: int = ROWS) -> dict:
    """The figures at ``rows`` orders on a fresh database at ``database_url``."""
    from app.config import PROJECT_ROOT, load_settings
    from bench.run import in_process_app

    folder = Path(tempfile.mkdtemp(prefix="bench-accounts-"))
    settings = load_settings({
        "LIVE_DATABASE_URL": database_url, "LIVE_CONFIG_REPO": str(PROJECT_ROOT / "examples" / "config-repo"),
        "LIVE_BASE_DOMAIN": "bench.local", "LIVE_BACKUP_DIR": str(folder / "backups"),
        "LIVE_DEPLOYMENT": "bacct" + uuid.uuid4().hex[:6], "LIVE_LOG_LEVEL": "WARNING"})
    _app, live, client, headers = in_process_app(settings, "bench-accounts")
    try:
        _seed(live, rows)
        return _measure(client, headers, rows)
    finally:
        live.db.close()


def _postgres_database() -> tuple[str, callable]:
    import psycopg2

    name = f"bench_accounts_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(POSTGRES_ADMIN_URL)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")

    def drop() -> None:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", drop


def run_all(rows: int = ROWS) -> dict:
    results = {"rows": rows}
    with tempfile.TemporaryDirectory(prefix="bench-accounts-sqlite-") as folder:
        results["sqlite"] = measure(f"sqlite:///{folder}/live.db", rows)
    url, drop = _postgres_database()
    try:
        results["postgresql"] = measure(url, rows)
    finally:
        drop()
    return results


def run(bench) -> None:
    """bench/run.py's hook: the figures into ``bench.raw["accounts"]`` and its table."""
    results = run_all()
    bench.raw["accounts"] = results
    for kind in ("sqlite", "postgresql"):
        for name, figure in results[kind].items():
            bench.row(f"GET /whmcs/v1/{'usage' if name == 'usage' else 'accounts ' + name} @{results['rows']} orders "
                      f"({kind})", round(figure["s"] * 1000, 1), None, "-", None, "ms",
                      f"{figure.get('requests', 1)} request(s)")


if __name__ == "__main__":
    import json

    print(json.dumps(run_all(), indent=2))
