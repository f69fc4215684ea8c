"""Issue 15's fast read path: an in-process profile of the hot WHMCS calls (``BENCH_ONLY=fast``).

``python -m bench.fast [N]`` (or ``BENCH_ONLY=fast python -m bench``): the bench's fresh PostgreSQL database (SQLite
when PostgreSQL does not answer), the app of ``create_app`` with the example catalog plus the bench's ``mini`` product,
then N (default 300) ``GET /whmcs/v1/services/1`` and N ``POST /whmcs/v1/services/<new id>/create`` (no wait)
through Flask's test client, each batch under cProfile. Prints, per batch, the mean milliseconds of one call
(wall and CPU of this process, without the profiler; then with it), the database statements per call, and the
profile's top functions by cumulative time (``BENCH_PROFILE_TOP``, default 25). ``BENCH_FAST_SQL=1`` prints the
statements of one status and one create call. No gunicorn, no network, no worker: it shows where one call's CPU
goes, not throughput (figure 1 measures that).
"""
from __future__ import annotations

import cProfile
import io
import os
import pstats
import sys
import time
import uuid

from app.config import load_settings

TOP = int(os.environ.get("BENCH_PROFILE_TOP", "25"))


class _StatementCounter:
    """Counts the statements peewee sends (wraps ``Database.execute_sql``)."""

    def __init__(self, db):
        self.count = 0
        original = db.execute_sql

        def counted(sql, params=None, *args, **kwargs):
            self.count += 1
            return original(sql, params, *args, **kwargs)

        db.execute_sql = counted


def _profiled(label: str, calls: int, call) -> dict:
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    for n in range(calls):
        call(n)
    profile.disable()
    elapsed = time.perf_counter() - started
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(TOP)
    print(f"\n=== {label}: {calls} calls, {1000 * elapsed / calls:.2f} ms per call (profiler on)")
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:12000])
    return {"ms_per_call": round(1000 * elapsed / calls, 2)}


def _timed(calls: int, call) -> tuple[float, float]:
    """Wall and CPU (this process: the app and the test client, not PostgreSQL) milliseconds per call."""
    started, cpu = time.perf_counter(), time.process_time()
    for n in range(calls):
        call(n)
    return (round(1000 * (time.perf_counter() - started) / calls, 3),
            round(1000 * (time.process_time() - cpu) / calls, 3))


def main(bench, calls: int = 300) -> dict:
    """Profile on ``bench`` (a :class:`bench.run.Bench`: its config repository with the ``mini`` product, its
    fresh database, removed by its ``cleanup``); returns the figures."""
    from bench.run import in_process_app

    url = bench.database("fast")
    results: dict = {"database": "sqlite" if url.startswith("sqlite") else "postgresql"}
    settings = load_settings({"LIVE_DATABASE_URL": url, "LIVE_CONFIG_REPO": str(bench.config_repo),
                              "LIVE_BASE_DOMAIN": "bench.local", "LIVE_BACKUP_DIR": str(bench.tmp / "backups"),
                              "LIVE_DEPLOYMENT": "bf" + uuid.uuid4().hex[:6], "LIVE_LOG_LEVEL": "WARNING"})
    _app, live, client, headers = in_process_app(settings, "bench-fast")

    def create(service_id: int):
        answer = client.post(f"/whmcs/v1/services/{service_id}/create", headers=headers,
                             json={"client": {"id": service_id, "email": f"c{service_id}@example.org"},
                                   "product": "mini", "plan": "basic"})
        assert answer.status_code in (200, 202), answer.get_data(as_text=True)

    def status(_n: int):
        answer = client.get("/whmcs/v1/services/1", headers=headers)
        assert answer.status_code == 200, answer.get_data(as_text=True)

    create(1)
    if os.environ.get("BENCH_FAST_SQL"):  # the statements of one status and one create call
        import logging

        handler = logging.StreamHandler(sys.stdout)
        logging.getLogger("peewee").addHandler(handler)
        logging.getLogger("peewee").setLevel(logging.DEBUG)
        print("--- status"), status(0), print("--- create"), create(999_999)
        logging.getLogger("peewee").removeHandler(handler)
        logging.getLogger("peewee").setLevel(logging.WARNING)
    for _ in range(20):  # warm-up: pools, caches, imports
        status(0)
    counter = _StatementCounter(live.db)
    results["status_ms"], results["status_cpu_ms"] = _timed(calls, status)
    results["status_statements"] = round(counter.count / calls, 2)
    counter.count = 0
    results["create_ms"], results["create_cpu_ms"] = _timed(calls, lambda n: create(1000 + n))
    results["create_statements"] = round(counter.count / calls, 2)
    print(f"without profiler: status {results['status_ms']} ms/call ({results['status_cpu_ms']} ms CPU), "
          f"{results['status_statements']} statements; create {results['create_ms']} ms/call "
          f"({results['create_cpu_ms']} ms CPU), {results['create_statements']} statements")
    results["status_profiled"] = _profiled("GET /whmcs/v1/services/1", calls, status)
    results["create_profiled"] = _profiled("POST /whmcs/v1/services/<id>/create", calls,
                                           lambda n: create(100000 + n))
    if not live.db.is_closed():
        live.db.close()
    return results


if __name__ == "__main__":
    from bench.run import Bench

    runner = Bench()
    try:
        print(main(runner, int(sys.argv[1]) if len(sys.argv) > 1 else 300))
    finally:
        runner.cleanup()
