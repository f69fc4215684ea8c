"""`make bench`: the figures of docs/BENCHMARKS.md, each against a baseline measured in the same run.

Everything runs on 127.0.0.1 in its own LIVE_DEPLOYMENT namespace and is removed at the end.
Results: a table on stdout and var/bench/latest.json.
"""
from __future__ import annotations

import json
import math
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import requests
import yaml

from app.config import PROJECT_ROOT, load_settings
from tests.support.live_service import BIN, MINI_COMPOSE, MINI_MANIFEST, Service, free_port

POSTGRES_ADMIN_URL = os.environ.get("LIVE_TEST_POSTGRES_URL", "postgresql://live:live@127.0.0.1:5432/postgres")
RESULTS = PROJECT_ROOT / "var" / "bench" / "latest.json"
HERE = Path(__file__).parent
WRK_SECONDS = int(os.environ.get("BENCH_WRK_SECONDS", "10"))
SCALES = [int(n) for n in os.environ.get("BENCH_SCALES", "10,100,300").split(",")]
BURST = int(os.environ.get("BENCH_BURST", "50"))
REPEATS = 3


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Bench:
    def __init__(self):
        self.ns = "b" + secrets.token_hex(4)
        self.tmp = Path(tempfile.mkdtemp(prefix="live-bench-"))
        self.docker = docker.from_env(timeout=120)
        self.databases: list[str] = []
        self.services: list[Service] = []
        self.projects: list[tuple[str, Path]] = []
        self.rows: list[dict] = []
        self.notes: list[str] = []
        self.config_repo = self.tmp / "config-repo"
        shutil.copytree(PROJECT_ROOT / "examples" / "config-repo", self.config_repo)
        folder = self.config_repo / "products" / "mini"
        folder.mkdir(parents=True)
        (folder / "product.yml").write_text(MINI_MANIFEST)
        (folder / "docker-compose.yml").write_text(MINI_COMPOSE)

    # -- environment --------------------------------------------------------
    def database(self, name: str) -> str:
        try:
            import psycopg2

            admin = psycopg2.connect(POSTGRES_ADMIN_URL, connect_timeout=3)
            admin.autocommit = True
            db = f"live_bench_{uuid.uuid4().hex[:10]}"
            with admin.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {db}")
            admin.close()
            self.databases.append(db)
            return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{db}"
        except Exception as exc:  # no PostgreSQL: SQLite, and say so
            self.notes.append(f"{name}: PostgreSQL unavailable ({exc}); SQLite used")
            return f"sqlite:///{self.tmp / (name + '.db')}"

    def settings(self, name: str, deployment: str | None = None, url: str | None = None):
        return load_settings({
            "LIVE_DATABASE_URL": url or self.database(name), "LIVE_CONFIG_REPO": str(self.config_repo),
            "LIVE_BASE_DOMAIN": "bench.local", "LIVE_BACKUP_DIR": str(self.tmp / "backups"),
            "LIVE_DEPLOYMENT": deployment or self.ns, "LIVE_LOG_LEVEL": "WARNING",
        })

    def service(self, name: str, worker: bool) -> Service:
        logs = self.tmp / name
        logs.mkdir()
        service = Service(self.settings(name), logs)
        service.env["LIVE_LOG_LEVEL"] = "WARNING"
        self.services.append(service)
        service.start(worker=worker)
        service.flask("products", "sync")
        return service

    def row(self, figure, measured, baseline, target, met, unit="", note=""):
        ratio = (measured / baseline) if isinstance(measured, (int, float)) and baseline else None
        self.rows.append({"figure": figure, "measured": measured, "baseline": baseline, "unit": unit,
                          "ratio": round(ratio, 3) if ratio is not None else None, "target": target, "met": met,
                          "note": note})
        log(f"{figure}: {measured} {unit} (baseline {baseline}) ratio {ratio and round(ratio, 3)} target {target} met {met}")

    # -- figure 1 -----------------------------------------------------------
    def wrk(self, url: str, script: str | None = None, args: list[str] = ()) -> dict:
        command = ["wrk", "-t2", "-c64", f"-d{WRK_SECONDS}s", "--latency", "--timeout", "10s"]
        if script:
            command += ["-s", str(HERE / script)]
        command.append(url)
        if args:
            command += ["--", *args]
        out = subprocess.run(command, capture_output=True, text=True, timeout=WRK_SECONDS + 60).stdout
        def latency(p):
            m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
            return round(float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)], 2) if m else None
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = re.search(r"Socket errors: (.*)", out)
        return {"rps": round(rps, 1), "p50_ms": latency(50), "p99_ms": latency(99),
                "non_2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errors.group(1) if errors else ""}

    def ensure_wrk(self) -> None:
        if shutil.which("wrk"):
            return
        log("wrk is missing: apt-get install -y wrk")
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True, timeout=300)

    def figure1(self) -> None:
        self.ensure_wrk()
        port = free_port()
        env = dict(os.environ, GUNICORN_BIND=f"127.0.0.1:{port}", GUNICORN_WORKERS="2")
        with open(self.tmp / "hello.log", "ab") as out:
            hello = subprocess.Popen([str(BIN / "gunicorn"), "-c", "config/gunicorn.conf.py", "bench.hello:app"],
                                     cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_http(f"http://127.0.0.1:{port}/")
            self.wrk(f"http://127.0.0.1:{port}/")  # warm-up
            base = self.wrk(f"http://127.0.0.1:{port}/")
        finally:
            hello.terminate()
            hello.wait(timeout=30)
        service = self.service("fig1", worker=False)
        created = service.post("/whmcs/v1/services/1/create", {"client": {"id": 1, "email": "c1@example.org"},
                                                               "product": "mini", "plan": "basic"})
        assert created.status_code in (200, 202), created.text
        status = self.wrk(f"{service.url}/whmcs/v1/services/1", "auth.lua", [service.token])
        create = self.wrk(f"{service.url}/whmcs/v1/services/0/create", "create.lua", [service.token, "100000"])
        self.raw["figure1"] = {"hello": base, "status": status, "create": create}
        self.row("1 status rps (64 conns)", status["rps"], base["rps"], "ratio >= 0.5", status["rps"] >= base["rps"] / 2,
                 "req/s", f"non-2xx {status['non_2xx']}")
        self.row("1 status p50", status["p50_ms"], base["p50_ms"], "-", None, "ms")
        self.row("1 status p99", status["p99_ms"], base["p99_ms"], "-", None, "ms")
        self.row("1 create rps (no wait)", create["rps"], base["rps"], "-", None, "req/s", f"non-2xx {create['non_2xx']}")
        self.row("1 create p50", create["p50_ms"], base["p50_ms"], "-", None, "ms")
        self.row("1 create p99", create["p99_ms"], base["p99_ms"], "< 50 ms", (create["p99_ms"] or 1e9) < 50, "ms")
        service.stop()

    # -- figures 2, 3 and 5 -------------------------------------------------
    def compose_file(self, index: int) -> Path:
        from app.catalog.product import load_product_folder, sample_builtins

        definition = load_product_folder(self.config_repo / "products" / "busybox-demo")
        rendered = definition.render("small", sample_builtins("busybox-demo", "small"), definition.generate_secrets())
        path = self.tmp / f"compose-{index}.yml"
        path.write_text(yaml.safe_dump(rendered, sort_keys=False))
        return path

    def compose(self, project: str, path: Path, *args: str) -> None:
        subprocess.run(["docker-compose", "-p", project, "-f", str(path), *args], check=True, capture_output=True,
                       timeout=300, cwd=self.tmp)

    def stack_up(self, labels: str, services: int = 3, timeout: float = 120) -> None:
        """Every service running, and healthy where it has a healthcheck."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.docker.api.containers(all=True, filters={"label": labels})
            if len(found) == services and all(c["State"] == "running" and "starting" not in c["Status"]
                                              and "unhealthy" not in c["Status"] for c in found):
                return
            time.sleep(0.05)
        raise TimeoutError(f"stack {labels} not up in {timeout}s")

    def wait_operation(self, service: Service, operation_id: int, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = service.get(f"/api/v1/operations/{operation_id}").json()["state"]
            if state in ("succeeded", "failed"):
                assert state == "succeeded", service.get(f"/api/v1/operations/{operation_id}").text
                return time.monotonic()
            time.sleep(0.05)
        raise TimeoutError(f"operation {operation_id}")

    def lifecycle(self, service: Service, service_id: int, call: str, body: dict | None = None) -> float:
        started = time.monotonic()
        answer = service.post(f"/whmcs/v1/services/{service_id}/{call}", body or {})
        assert answer.status_code in (200, 202), answer.text
        return self.wait_operation(service, answer.json()["operation"]["id"]) - started

    def figures235(self) -> None:
        service = self.service("fig235", worker=True)
        bridge, dc = [], []
        for n in range(REPEATS):
            bridge.append(self.lifecycle(service, 101 + n, "create", {"client": {"id": 101 + n, "email": f"d{n}@example.org"},
                                                                     "product": "busybox-demo", "plan": "small"}))
            project = f"{self.ns}dc{n}"
            path = self.compose_file(n)
            self.projects.append((project, path))
            started = time.monotonic()
            self.compose(project, path, "up", "-d")
            self.stack_up(f"com.docker.compose.project={project}")
            dc.append(time.monotonic() - started)
        deploy, baseline = statistics.median(bridge), statistics.median(dc)
        self.raw["figure2"] = {"bridge_s": bridge, "compose_s": dc}
        self.row("2 deploy busybox-demo (3 svc)", round(deploy, 2), round(baseline, 2), "ratio <= 1.0",
                 deploy <= baseline, "s", "create call -> active (all healthy) vs docker-compose up -d -> all healthy")

        suspend, unsuspend, stop, start = [], [], [], []
        project, path = self.projects[0]
        for _ in range(REPEATS):
            suspend.append(self.lifecycle(service, 101, "suspend"))
            unsuspend.append(self.lifecycle(service, 101, "unsuspend"))
            started = time.monotonic()
            self.compose(project, path, "stop")
            stop.append(time.monotonic() - started)
            started = time.monotonic()
            self.compose(project, path, "start")
            self.stack_up(f"com.docker.compose.project={project}")
            start.append(time.monotonic() - started)
        self.raw["figure3"] = {"suspend_s": suspend, "unsuspend_s": unsuspend, "compose_stop_s": stop,
                               "compose_start_s": start}
        self.row("3 suspend", round(statistics.median(suspend), 2), round(statistics.median(stop), 2), "-", None, "s",
                 "vs docker-compose stop")
        self.row("3 unsuspend", round(statistics.median(unsuspend), 2), round(statistics.median(start), 2), "-", None,
                 "s", "until healthy, vs docker-compose start")

        # Figure 5: a burst of creates at once.
        ids = [2000 + n for n in range(BURST)]
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=BURST) as pool:
            answers = list(pool.map(lambda i: service.post(f"/whmcs/v1/services/{i}/create", {
                "client": {"id": i, "email": f"burst{i}@example.org"}, "product": "busybox-demo", "plan": "small"}), ids))
        accepted = time.monotonic() - started
        bad = [a.text[:200] for a in answers if a.status_code not in (200, 202)]
        statuses = {}
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline:
            statuses = {i: service.get(f"/whmcs/v1/services/{i}").json()["status"] for i in ids}
            if all(s in ("active", "failed") for s in statuses.values()):
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        containers = [c for c in self.docker.api.containers(all=True, filters={"label": f"live.deployment={self.ns}"})
                      if c["Labels"].get("live.order") and int(service.get(f"/whmcs/v1/services/{ids[0]}").json()["id"]) <= int(c["Labels"]["live.order"])]
        operations = []
        for i in ids:
            order_id = service.get(f"/whmcs/v1/services/{i}").json()["id"]
            operations.append(len([o for o in service.get(f"/api/v1/orders/{order_id}/operations").json()["items"]
                                   if o["kind"] == "create"]))
        active = sum(1 for s in statuses.values() if s == "active")
        failures = [service.get(f"/whmcs/v1/services/{i}").json().get("last_error") for i, s in statuses.items() if s != "active"]
        names = [c["Names"][0] for c in containers]
        lost_or_dup = (len(bad) + sum(1 for n in operations if n != 1) + (len(names) - len(set(names)))
                       + abs(len(containers) - 3 * BURST))
        concurrency = int(service.env.get("LIVE_WORKER_CONCURRENCY", "4"))
        ideal = math.ceil(BURST / concurrency) * baseline
        self.raw["figure5"] = {"accept_s": accepted, "all_active_s": elapsed, "active": active, "failures": failures[:5],
                               "refused_calls": bad[:5], "create_operations_per_order": operations,
                               "containers": len(containers)}
        self.row(f"5 burst {BURST} creates: all active", round(elapsed, 1), round(ideal, 1), "-", active == BURST, "s",
                 f"{active}/{BURST} active; baseline derived: ceil({BURST}/{concurrency} workers) x compose deploy")
        self.row("5 burst: lost or duplicated operations", lost_or_dup, None, "0", lost_or_dup == 0, "",
                 f"{len(containers)} containers, {len(set(names))} distinct names")
        service.stop()

    # -- figure 4 -----------------------------------------------------------
    def figure4(self) -> None:
        from app.bootstrap import bootstrap
        from app.db import upgrade
        from app.models import Order
        from app.orders.service import CustomerInfo
        from app.orders.usage import collect_usage

        ns = self.ns + "s"
        self.scale_ns = ns
        live = bootstrap(self.settings("fig4", deployment=ns))
        upgrade(live.db)
        live.catalog.sync()
        worker = live.worker()
        worker.concurrency = 8
        worker._pool = ThreadPoolExecutor(max_workers=8)
        engine = live.engine
        results = {}
        made = 0
        for scale in SCALES:
            started = time.monotonic()
            while made < scale:
                live.orders.create(service_id=50000 + made, customer=CustomerInfo(email=f"s{made}@example.org"),
                                   product="mini", plan="basic")
                made += 1
            worker.run_until_idle(timeout=900)
            orders = list(Order.select().where(Order.status != "terminated"))
            active = sum(1 for o in orders if o.status == "active")
            log(f"scale {scale}: {active} active orders ready in {time.monotonic() - started:.0f}s")

            def measure(fn):
                times, calls = [], []
                for _ in range(REPEATS):
                    before, t0 = engine.api_calls, time.perf_counter()
                    fn()
                    times.append(time.perf_counter() - t0)
                    calls.append(engine.api_calls - before)
                return {"s": round(statistics.median(times), 4), "calls": max(calls)}

            selector = {"live.deployment": ns}
            results[scale] = {
                "active": active,
                "usage_full": measure(lambda: collect_usage(engine, ns, orders, {})),
                "usage_listing": measure(lambda: (engine.volume_usage(selector), engine.list_containers(selector))),
                "status_per_order": measure(lambda: [engine.list_containers({**selector, "live.order": str(o.id)})
                                                     for o in orders]),
                "plan_per_order": measure(lambda: [live.deployer.plan(live.runner.project(o)) for o in orders]),
            }
            log(f"scale {scale}: {results[scale]}")
        self.raw["figure4"] = results
        low, high = SCALES[0], SCALES[-1]
        growth = high / low
        labels = {"usage_full": "usage pass (df + list + stats)", "usage_listing": "usage listing only (df + list)",
                  "status_per_order": "status per order (GeoCat Live)", "plan_per_order": "Deployer.plan per order"}
        for key, label in labels.items():
            a, b = results[low][key], results[high][key]
            self.row(f"4 {label}: API calls @{high}", b["calls"], a["calls"], "ratio 1.0 (constant)",
                     b["calls"] == a["calls"], "calls", f"baseline = @{low} orders")
            self.row(f"4 {label}: time @{high}", round(b["s"] * 1000, 1), round(a["s"] * 1000, 1),
                     f"ratio <= {growth:.0f} (linear)", b["s"] <= a["s"] * growth, "ms", f"baseline = @{low} orders")
        live.db.close()

    # -- bad input ----------------------------------------------------------
    def bad_input(self) -> None:
        from app.catalog.product import load_product
        from tests.reliability.corpus import CASES

        refused = sum(1 for name, manifest, compose, expected in CASES
                      if any(expected in e for e in load_product(f"bad-{name}", manifest, compose).errors))
        self.row("bad products refused (named error)", refused, len(CASES), "all", refused == len(CASES), "cases")
        service = self.service("fuzz", worker=False)
        try:
            result = subprocess.run(
                [str(BIN / "st"), "run", f"{service.url}/api/v1/openapi.json", "--checks", "not_a_server_error",
                 "--max-examples", os.environ.get("BENCH_FUZZ_EXAMPLES", "25"), "--seed", "1",
                 "--header", f"Authorization: Bearer {service.token}", "--request-timeout", "30"],
                cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=480)
            out = result.stdout
            generated = sum(int(n) for n in re.findall(r"(\d+) generated", out))
            server_errors = len([l for l in (service.logs / "gunicorn.log").read_text().splitlines() if '"status": 5' in l])
            self.raw["schemathesis"] = {"returncode": result.returncode, "tail": out[-1500:]}
            self.row("schemathesis cases (whole OpenAPI)", generated, None, "-", None, "cases")
            self.row("schemathesis 5xx answers", server_errors, None, "0", server_errors == 0 and result.returncode == 0,
                     "", f"st exit {result.returncode}")
        except subprocess.TimeoutExpired:
            self.row("schemathesis", "timeout", None, "0 5xx", False)
        service.stop()

    # -- cleanup and report -------------------------------------------------
    def cleanup(self) -> None:
        for service in self.services:
            try:
                service.stop()
            except Exception:  # already stopped
                pass
        for project, path in self.projects:
            subprocess.run(["docker-compose", "-p", project, "-f", str(path), "down", "-v", "-t", "1"],
                           capture_output=True, timeout=300, cwd=self.tmp)
        for ns in (self.ns, self.ns + "s"):
            selector = {"label": f"live.deployment={ns}"}
            found = self.docker.api.containers(all=True, filters=selector)
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda c: self.docker.api.remove_container(c["Id"], force=True), found))
                list(pool.map(lambda n: n.remove(), self.docker.networks.list(filters=selector)))
            for volume in self.docker.volumes.list(filters=selector):
                volume.remove(force=True)
        if self.databases:
            import psycopg2

            admin = psycopg2.connect(POSTGRES_ADMIN_URL)
            admin.autocommit = True
            with admin.cursor() as cursor:
                for db in self.databases:
                    cursor.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            admin.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def machine(self) -> dict:
        memory = next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))
        return {"nproc": os.cpu_count(), "memory_gib": round(int(memory.split()[1]) / 1024 / 1024, 1),
                "docker": self.docker.version()["Version"], "os": platform.platform(), "python": platform.python_version(),
                "cpu": next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                             if l.startswith("model name")), "?"),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}

    def report(self) -> None:
        head = ("figure", "measured", "baseline", "ratio", "target", "met?")
        lines = [(r["figure"], f"{r['measured']} {r['unit']}".strip(), "" if r["baseline"] is None else f"{r['baseline']} {r['unit']}".strip(),
                  "" if r["ratio"] is None else f"{r['ratio']:.2f}", r["target"],
                  {True: "yes", False: "NO", None: "-"}[r["met"]]) for r in self.rows]
        widths = [max(len(str(x[i])) for x in [head, *lines]) for i in range(len(head))]
        print()
        for line in [head, tuple("-" * w for w in widths), *lines]:
            print("  ".join(str(v).ljust(w) for v, w in zip(line, widths)))
        for note in self.notes:
            print("note:", note)


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise TimeoutError(url)


def main() -> int:
    bench = Bench()
    bench.raw = {}
    started = time.monotonic()
    only = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))
    steps = [("1", bench.figure1), ("235", bench.figures235), ("4", bench.figure4), ("bad", bench.bad_input)]
    try:
        log(f"namespace {bench.ns}, work dir {bench.tmp}")
        for name, step in steps:
            if only and name not in only:
                continue
            try:
                step()
            except Exception as exc:  # report it and go on with the other figures
                log(f"figure {name} failed: {type(exc).__name__}: {exc}")
                bench.row(f"{name} (failed)", f"error: {type(exc).__name__}: {str(exc)[:200]}", None, "-", False)
    finally:
        log("cleaning up")
        bench.cleanup()
    bench.report()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": bench.machine(), "seconds": round(time.monotonic() - started),
                                   "rows": bench.rows, "raw": bench.raw, "notes": bench.notes}, indent=2, default=str))
    print(f"\nresults: {RESULTS.relative_to(PROJECT_ROOT)} ({time.monotonic() - started:.0f}s)")
    return 0
