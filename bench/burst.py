"""Figure 5 (`BENCH_ONLY=5`): a burst of creates against the same stacks deployed by docker-compose, both measured.

One round = the baseline, then the bridge, back to back, on the same machine:

- baseline: BENCH_BURST (default 50) `busybox-demo` stacks rendered as figure 2 renders them
  (:meth:`bench.run.Bench.compose_file`), deployed by `docker-compose up -d` in parallel batches of
  LIVE_WORKER_CONCURRENCY (the next batch starts once the whole batch is up), each stack waited for until every
  service runs and is healthy; seconds from the first `up` to the last stack healthy. Then removed.
  BENCH_BURST_BASELINE=window runs them in a sliding window of the same size instead (as the worker's slots do).
- bridge: gunicorn and a worker (the tests' settings, `tests/support/live_service.py`: concurrency 4, dispatch
  poll 0.1 s, or BENCH_WORKER_POLL_SECONDS) on a fresh database and namespace; BENCH_BURST creates posted at once; seconds from the first post
  to every order `active` (read from the database every 0.1 s). Then the lost/duplicated check (one create
  operation per order, 3 containers per order, distinct names), and the containers removed.

BENCH_BURST_ROUNDS (default 1) repeats the round; the rows give the median ratio and every round's figures.
The worker runs under :func:`worker_main` (``python -m bench.burst worker OUT``), which counts engine API calls
and SQL statements by calling function and, with BENCH_BURST_PROFILE=1, samples every thread's stack every
BENCH_BURST_SAMPLE_MS (default 10) ms; what it found is written to OUT as JSON when the worker stops.
"""
from __future__ import annotations

import collections
import json
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BURST = int(os.environ.get("BENCH_BURST", "50"))
ROUNDS = int(os.environ.get("BENCH_BURST_ROUNDS", "1"))
PROFILE = os.environ.get("BENCH_BURST_PROFILE", "") not in ("", "0")
# BENCH_BURST_BASELINE=window: the compose stacks in a sliding window of the worker's concurrency instead of batches.
WINDOW = os.environ.get("BENCH_BURST_BASELINE", "batches") == "window"
SAMPLE_SECONDS = float(os.environ.get("BENCH_BURST_SAMPLE_MS", "10")) / 1000
APP_DIR = str(Path(__file__).resolve().parent.parent / "app") + os.sep


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- the bench ------------------------------------------------------------------
def figure5(bench) -> None:
    """Run ROUNDS rounds (baseline then bridge) and add figure 5's rows to ``bench``."""
    rounds = []
    for number in range(ROUNDS):
        base = baseline(bench, number)
        bridge = bridge_burst(bench, number)
        rounds.append({"baseline": base, "bridge": bridge, "ratio": round(bridge["all_active_s"] / base["all_healthy_s"], 3)})
        log(f"burst round {number + 1}/{ROUNDS}: bridge {bridge['all_active_s']:.1f} s, compose {base['all_healthy_s']:.1f} s, "
            f"ratio {rounds[-1]['ratio']}")
    bench.raw["figure5"] = rounds
    ratios = [r["ratio"] for r in rounds]
    median = statistics.median(ratios)
    chosen = min(rounds, key=lambda r: abs(r["ratio"] - median))
    concurrency = chosen["baseline"]["concurrency"]
    spread = ", ".join(f"{r['bridge']['all_active_s']:.1f}/{r['baseline']['all_healthy_s']:.1f}" for r in rounds)
    active = min(r["bridge"]["active"] for r in rounds)
    bench.row(f"5 burst {BURST} creates: all active", round(chosen["bridge"]["all_active_s"], 1),
              round(chosen["baseline"]["all_healthy_s"], 1), "ratio <= 1.5", median <= 1.5 and active == BURST, "s",
              f"{active}/{BURST} active; baseline measured: docker-compose up -d of the same stacks in parallel "
              f"{chosen['baseline']['mode']} of {concurrency} -> all healthy; median ratio of {len(rounds)} round(s), bridge/compose s: {spread}")
    lost = max(r["bridge"]["lost_or_duplicated"] for r in rounds)
    bridge = chosen["bridge"]
    bench.row("5 burst: lost or duplicated operations", lost, None, "0", lost == 0, "",
              f"{bridge['containers']} containers, {bridge['distinct_names']} distinct names, "
              f"create operations per order {sorted(set(bridge['create_operations_per_order']))}")
    bench.row("5 burst: engine API calls per create", bridge["engine_calls_per_create"], None, "-", None, "calls",
              "DockerEngine.api uses in the worker / creates (whole burst, incl. the worker's own jobs)")
    bench.row("5 burst: SQL statements per create", bridge["sql_per_create"], None, "-", None, "statements",
              "peewee execute_sql in the worker / creates (autocommit: each write is a commit)")


def baseline(bench, number: int) -> dict:
    """The same stacks by `docker-compose up -d` in parallel batches of the worker's concurrency; removed after."""
    concurrency = int(os.environ.get("LIVE_WORKER_CONCURRENCY", "4"))
    prefix = f"{bench.ns}bu{number}x"
    paths = [bench.compose_file(1000 + number * 1000 + i) for i in range(BURST)]
    projects = [(f"{prefix}{i}", path) for i, path in enumerate(paths)]
    per_stack: list[float] = [0.0] * BURST

    def deploy(index: int) -> None:
        project, path = projects[index]
        t0 = time.monotonic()
        bench.compose(project, path, "up", "-d")
        wait_stack(bench.docker, f"com.docker.compose.project={project}")
        per_stack[index] = time.monotonic() - t0

    log(f"burst baseline: {BURST} compose stacks, {'a window' if WINDOW else 'batches'} of {concurrency}")
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            if WINDOW:  # as the worker's slots: the next stack as soon as one is up
                list(pool.map(deploy, range(BURST)))
            else:
                for first in range(0, BURST, concurrency):
                    list(pool.map(deploy, range(first, min(first + concurrency, BURST))))
        elapsed = time.monotonic() - started
    finally:
        remove_by_label(bench.docker, "com.docker.compose.project", lambda value: value.startswith(prefix))
    return {"all_healthy_s": round(elapsed, 2), "concurrency": concurrency, "mode": "window" if WINDOW else "batches",
            "stack_s_median": round(statistics.median(per_stack), 2), "stack_s_max": round(max(per_stack), 2)}


def wait_stack(client, label: str, services: int = 3, timeout: float = 300) -> None:
    """Until the ``services`` containers with ``label`` run, none starting or unhealthy (looked at every 0.1 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = client.api.containers(all=True, filters={"label": label})
        if len(found) == services and all(c["State"] == "running" and "starting" not in c["Status"]
                                          and "unhealthy" not in c["Status"] for c in found):
            return
        time.sleep(0.1)
    raise TimeoutError(f"stack {label} not up in {timeout}s")


def bridge_burst(bench, number: int) -> dict:
    """BURST creates at once through a fresh bridge (gunicorn + the profiled worker); removed after."""
    from tests.support.live_service import Service

    ns = f"{bench.ns}u{number}"
    name = f"fig5r{number}"
    logs = bench.tmp / name
    logs.mkdir()
    settings = bench.settings(name, deployment=ns)
    service = Service(settings, logs)
    service.env["LIVE_LOG_LEVEL"] = "WARNING"
    if os.environ.get("BENCH_WORKER_POLL_SECONDS"):  # the tests' 0.1 s otherwise (production default: 1 s)
        service.env["LIVE_WORKER_POLL_SECONDS"] = os.environ["BENCH_WORKER_POLL_SECONDS"]
    bench.services.append(service)
    profile_path = logs / "worker-profile.json"
    try:
        service.start(worker=False)
        service.flask("products", "sync")
        service.spawn("worker", sys.executable, "-m", "bench.burst", "worker", str(profile_path))
        service.wait_for_worker()
        ids = [2000 + n for n in range(BURST)]
        connection = _connect(settings.database_url)
        cursor = connection.cursor()
        epoch = ("(julianday({}) - 2440587.5) * 86400.0" if settings.database_url.startswith("sqlite")
                 else "extract(epoch from {})")
        log(f"burst bridge: {BURST} creates at once")
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=BURST) as pool:
            answers = list(pool.map(lambda i: service.post(f"/whmcs/v1/services/{i}/create", {
                "client": {"id": i, "email": f"burst{i}@example.org"}, "product": "busybox-demo", "plan": "small"}), ids))
        accepted = time.monotonic() - started
        refused = [a.text[:200] for a in answers if a.status_code not in (200, 202)]
        deadline = time.monotonic() + 900
        statuses: dict[str, int] = {}
        while time.monotonic() < deadline:
            cursor.execute("SELECT status, count(*) FROM live_order GROUP BY status")
            statuses = dict(cursor.fetchall())
            if statuses.get("active", 0) + statuses.get("failed", 0) >= BURST - len(refused):
                break
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        cursor.execute("SELECT order_id, count(*) FROM operation WHERE kind = 'create' GROUP BY order_id")
        per_order = [count for _, count in cursor.fetchall()]
        cursor.execute(f"SELECT {epoch.format('created_at')}, {epoch.format('started_at')}, "
                       f"{epoch.format('finished_at')} FROM operation WHERE kind = 'create'")
        timeline = cursor.fetchall()
        cursor.execute("SELECT last_error FROM live_order WHERE status <> 'active' LIMIT 5")
        failures = [row[0] for row in cursor.fetchall()]
        connection.close()
    finally:
        service.stop()
    containers = bench.docker.api.containers(all=True, filters={"label": f"live.deployment={ns}"})
    names = [c["Names"][0] for c in containers]
    lost_or_dup = (len(refused) + sum(1 for n in per_order if n != 1) + (BURST - len(per_order))
                   + (len(names) - len(set(names))) + abs(len(containers) - 3 * BURST))
    remove_by_label(bench.docker, "live.deployment", lambda value: value == ns)
    profile = json.loads(profile_path.read_text()) if profile_path.exists() else {}
    durations = [float(f - s) for _, s, f in timeline if s and f]
    first_created = min((float(c) for c, _, _ in timeline), default=0.0)
    last_finished = max((float(f) for _, _, f in timeline if f), default=0.0)
    busy = sum(float(d) for d in durations)
    # A slot's turnover: the j-th create to finish frees the slot the (concurrency + j)-th create to start takes.
    concurrency = int(service.env.get("LIVE_WORKER_CONCURRENCY", "4"))
    starts = sorted(float(s) for _, s, _ in timeline if s)
    finishes = sorted(float(f) for _, _, f in timeline if f)
    gaps = [starts[concurrency + j] - finishes[j] for j in range(min(len(starts) - concurrency, len(finishes)))]
    result = {
        "all_active_s": round(elapsed, 2), "accept_s": round(accepted, 2), "active": statuses.get("active", 0),
        "failures": failures, "refused_calls": refused[:5], "create_operations_per_order": per_order,
        "containers": len(containers), "distinct_names": len(set(names)), "lost_or_duplicated": lost_or_dup,
        "operation_s_median": round(float(statistics.median(durations)), 2) if durations else None,
        "operation_s_max": round(float(max(durations)), 2) if durations else None,
        # Average number of creates running at once over the burst (the worker's concurrency is the most).
        "mean_parallel": round(busy / (last_finished - first_created), 2) if last_finished > first_created else None,
        # Seconds from an operation's finished_at to the start of the operation that takes its slot.
        "slot_gap_s_median": round(statistics.median(gaps), 3) if gaps else None,
        "slot_gap_s_mean": round(statistics.mean(gaps), 3) if gaps else None,
        "engine_calls_per_create": round(sum(profile.get("engine_calls", {}).values()) / BURST, 1),
        "sql_per_create": round(sum(profile.get("sql", {}).values()) / BURST, 1),
        "profile": summarise(profile),
    }
    log(f"burst bridge: {result['active']}/{BURST} active in {elapsed:.1f} s; operation median "
        f"{result['operation_s_median']} s, mean parallel {result['mean_parallel']}, slot gap median "
        f"{result['slot_gap_s_median']} s (mean {result['slot_gap_s_mean']}), engine calls/create "
        f"{result['engine_calls_per_create']}, SQL/create {result['sql_per_create']}")
    for line in report_lines(result["profile"]):
        log("  " + line)
    return result


def _connect(url: str):
    """A DB-API connection in autocommit mode to the bridge's database (PostgreSQL, or the bench's SQLite fallback)."""
    if url.startswith("sqlite:///"):
        import sqlite3

        return sqlite3.connect(url[len("sqlite:///"):], isolation_level=None)
    import psycopg2

    connection = psycopg2.connect(url)
    connection.autocommit = True
    return connection


def remove_by_label(client, key: str, wanted) -> None:
    """Remove the containers, then networks and volumes, whose label ``key`` has a value ``wanted(value)`` accepts."""
    import docker

    def matching(objects):
        return [o for o in objects if wanted(((o.get("Labels") or {}).get(key)) or "")]

    def quietly(fn, *args, **kwargs):
        try:
            fn(*args, **kwargs)
        except docker.errors.APIError as exc:
            if exc.status_code not in (404, 409):
                log(f"clean-up: {exc}")

    containers = matching(client.api.containers(all=True, filters={"label": key}))
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda c: quietly(client.api.remove_container, c["Id"], force=True, v=True), containers))
        list(pool.map(lambda n: quietly(client.api.remove_network, n["Id"]),
                      matching(client.api.networks(filters={"label": key}))))
        list(pool.map(lambda v: quietly(client.api.remove_volume, v["Name"], force=True),
                      matching(client.api.volumes(filters={"label": key}).get("Volumes") or [])))


# -- the profile ----------------------------------------------------------------
def summarise(profile: dict, top: int = 12) -> dict:
    """The profile's largest entries: operation threads' waits (share of their samples) and call counts."""
    if not profile:
        return {}
    found = {}
    for group in ("operation", "stack"):
        samples = profile.get("samples", {}).get(group, {})
        total = sum(samples.values()) or 1
        found[group] = [(key, round(count / total, 3)) for key, count in
                        sorted(samples.items(), key=lambda kv: -kv[1])[:top]]
    for counter in ("engine_calls", "sql"):
        found[counter] = sorted(profile.get(counter, {}).items(), key=lambda kv: -kv[1])[:top]
    found["seconds"] = profile.get("seconds")
    return found


def report_lines(summary: dict) -> list[str]:
    lines = []
    for group in ("operation", "stack"):
        if summary.get(group):
            lines.append(f"{group} threads, share of samples:")
            lines += [f"  {share:6.1%}  {key}" for key, share in summary[group]]
    for counter in ("engine_calls", "sql"):
        if summary.get(counter):
            lines.append(f"{counter} by caller: " + ", ".join(f"{k} {v}" for k, v in summary[counter]))
    return lines


class Sampler:
    """Counts engine API calls and SQL statements by calling function, and (``sample``) samples the stacks of the
    worker's threads every ``interval`` seconds into ``{thread group: {"where": samples}}``.

    "where" is the innermost frame of the bridge's own code (``app/``: file, function, line) and, when the thread
    is deeper in a library, the innermost frame there ("socket.py:readinto" under a Docker call, "peewee.py:
    execute_sql" under a query): what the thread waits on.
    """

    def __init__(self, path: Path, interval: float, sample: bool):
        self.path = path
        self.interval = interval
        self.samples: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.engine_calls: collections.Counter = collections.Counter()
        self.sql: collections.Counter = collections.Counter()
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True) if sample else None

    def install(self) -> None:
        import peewee

        from app.stacks.docker_engine import DockerEngine

        sampler = self
        api = DockerEngine.api.fget

        def counted_api(engine):
            sampler.engine_calls[_caller(sys._getframe(1))] += 1
            return api(engine)

        DockerEngine.api = property(counted_api)
        execute_sql = peewee.Database.execute_sql

        def counted_sql(db, sql, *args, **kwargs):
            sampler.sql[_app_caller(sys._getframe(1))] += 1
            return execute_sql(db, sql, *args, **kwargs)

        peewee.Database.execute_sql = counted_sql
        if self._thread is not None:
            self._thread.start()

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self.interval):
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                group = names.get(ident, "?").split("_")[0].split("-")[0]
                self.samples[group][_where(frame)] += 1

    def dump(self) -> None:
        self._stop.set()
        self.path.write_text(json.dumps({
            "seconds": round(time.monotonic() - self.started, 1), "interval": self.interval,
            "samples": {group: dict(counter) for group, counter in self.samples.items()},
            "engine_calls": dict(self.engine_calls), "sql": dict(self.sql)}, indent=1))


def _short(frame) -> str:
    code = frame.f_code
    return f"{Path(code.co_filename).name}:{code.co_name}"


def _caller(frame) -> str:
    return f"{Path(frame.f_code.co_filename).stem}.{frame.f_code.co_name}"


def _app_caller(frame) -> str:
    """The innermost caller in app/ outside app/db.py and app/models.py (who asked for the statement)."""
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(APP_DIR) and not name.endswith(("db.py", "models.py")):
            return _caller(frame)
        frame = frame.f_back
    return "?"


def _where(frame) -> str:
    leaf = frame
    while frame is not None and not frame.f_code.co_filename.startswith(APP_DIR):
        frame = frame.f_back
    if frame is None:
        return f"(library) {_short(leaf)}"
    app = f"{Path(frame.f_code.co_filename).stem}.{frame.f_code.co_name}:{frame.f_lineno}"
    return app if leaf is frame else f"{app} > {_short(leaf)}"


def worker_main(out: str) -> None:
    """``live worker`` with a :class:`Sampler` (BENCH_BURST_PROFILE, BENCH_BURST_SAMPLE_MS); writes ``out`` at exit."""
    sampler = Sampler(Path(out), SAMPLE_SECONDS, PROFILE)
    sampler.install()
    from flask.cli import main

    sys.argv = ["flask", "--app", "wsgi", "live", "worker"]
    try:
        main()
    finally:
        sampler.dump()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "worker":
        worker_main(sys.argv[2])
    else:
        sys.exit("usage: python -m bench.burst worker PROFILE.json")
