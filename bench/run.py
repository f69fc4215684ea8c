"""`make bench`: the figures of docs/BENCHMARKS.md, each against a baseline measured in the same run.

Everything runs on 127.0.0.1 in its own LIVE_DEPLOYMENT namespace and is removed at the end.
Results: a table on stdout and var/bench/latest.json.
"""
from __future__ import annotations

import json
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
import urllib3
import yaml

from app.config import PROJECT_ROOT, load_settings
from bench import burst, metrics_scrape, usage_sampler
from bench import mirror as mirror_bench
from bench import accounts as accounts_bench
from tests.support.caddy import CaddyProcess
from tests.support.live_service import BIN, MINI_COMPOSE, MINI_MANIFEST, Service, free_port

POSTGRES_ADMIN_URL = os.environ.get("LIVE_TEST_POSTGRES_URL", "postgresql://live:live@127.0.0.1:5432/postgres")
RESULTS = PROJECT_ROOT / "var" / "bench" / "latest.json"
HERE = Path(__file__).parent
WRK_SECONDS = int(os.environ.get("BENCH_WRK_SECONDS", "10"))
SCALES = [int(n) for n in os.environ.get("BENCH_SCALES", "10,100,300").split(",")]
# Swarm (issue 14): orders of the one-service `mini` product on a single-node swarm at each scale.
SWARM_SCALES = [int(n) for n in os.environ.get("BENCH_SWARM_SCALES", "10,300").split(",")]
REPEATS = 3
# Ingress (issue 12): routes held by Caddy when one route update is timed, and how many updates are timed.
INGRESS_SCALES = [int(n) for n in os.environ.get("BENCH_INGRESS_SCALES", "10,1000").split(",")]
INGRESS_UPDATES = int(os.environ.get("BENCH_INGRESS_UPDATES", "20"))
# The static page of the `page` product (the `mini` product's busybox httpd, with an index page).
PAGE_HTML = "<!doctype html><title>bench</title><p>GeoCat Live bridge ingress bench page.</p>\n"
PAGE_MANIFEST = "name: Page\nplans: {basic: {}}\nendpoints:\n  - {application: web, service: web, port: 8080}\n"
PAGE_COMPOSE = f"""
services:
  web:
    image: live-test/busybox:latest
    init: true
    stop_grace_period: 1s
    environment:
      PAGE: '{PAGE_HTML.strip()}'
    command: ["sh", "-c", "mkdir -p /www && echo \\"$$PAGE\\" > /www/index.html && exec httpd -f -p 8080 -h /www"]
"""
# Backups (issue 13): the `vol` product (the `mini` product's busybox with a named volume at /data), whose volume
# is filled with BENCH_BACKUP_MIB MiB of random bytes (incompressible) in BENCH_BACKUP_FILES files.
BACKUP_MIB = int(os.environ.get("BENCH_BACKUP_MIB", "1024"))
BACKUP_FILES = int(os.environ.get("BENCH_BACKUP_FILES", "8"))
VOL_MANIFEST = "name: Vol\nplans: {basic: {}}\nendpoints:\n  - {application: web, service: web, port: 8080}\n"
VOL_COMPOSE = """
services:
  web:
    image: live-test/busybox:latest
    init: true
    stop_grace_period: 1s
    command: ["httpd", "-f", "-p", "8080", "-h", "/data"]
    volumes:
      - data:/data
volumes:
  data: {}
"""


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
        folder = self.config_repo / "products" / "page"
        folder.mkdir(parents=True)
        (folder / "product.yml").write_text(PAGE_MANIFEST)
        (folder / "docker-compose.yml").write_text(PAGE_COMPOSE)
        folder = self.config_repo / "products" / "vol"
        folder.mkdir(parents=True)
        (folder / "product.yml").write_text(VOL_MANIFEST)
        (folder / "docker-compose.yml").write_text(VOL_COMPOSE)
        self.caddies: list[CaddyProcess] = []

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

    def settings(self, name: str, deployment: str | None = None, url: str | None = None, **extra: str):
        return load_settings({
            "LIVE_DATABASE_URL": url or self.database(name), "LIVE_CONFIG_REPO": str(self.config_repo),
            "LIVE_BASE_DOMAIN": "bench.local", "LIVE_BACKUP_DIR": str(self.tmp / "backups"),
            "LIVE_DEPLOYMENT": deployment or self.ns, "LIVE_LOG_LEVEL": "WARNING", **extra,
        })

    def service(self, name: str, worker: bool, env: dict[str, str] | None = None) -> Service:
        logs = self.tmp / name
        logs.mkdir()
        service = Service(self.settings(name), logs)
        service.env["LIVE_LOG_LEVEL"] = "WARNING"
        service.env.update(env or {})
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
    def wrk(self, url: str, script: str | None = None, args: list[str] = (), headers: dict[str, str] | None = None,
            seconds: int = WRK_SECONDS) -> dict:
        """``wrk -t2 -c64`` for ``seconds`` against ``url`` (``script`` from bench/, its ``args``, extra
        ``headers``): ``{"rps", "requests", "p50_ms", "p99_ms", "non_2xx", "socket_errors"}``."""
        command = ["wrk", "-t2", "-c64", f"-d{seconds}s", "--latency", "--timeout", "10s"]
        if script:
            command += ["-s", str(HERE / script)]
        for name, value in (headers or {}).items():
            command += ["-H", f"{name}: {value}"]
        command.append(url)
        if args:
            command += ["--", *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
        out = result.stdout
        if "Requests/sec" not in out:
            raise RuntimeError(f"wrk {url} failed: {result.stderr.strip()[:300]} {out[-300:]}")
        def latency(p):
            m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
            return round(float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)], 2) if m else None
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = re.search(r"Socket errors: (.*)", out)
        done = re.search(r"(\d+) requests in", out)
        return {"rps": round(rps, 1), "requests": int(done.group(1)) if done else None,
                "p50_ms": latency(50), "p99_ms": latency(99),
                "non_2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errors.group(1) if errors else ""}

    def ensure_wrk(self) -> None:
        if shutil.which("wrk"):
            return
        log("wrk is missing: apt-get install -y wrk")
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True, timeout=300)

    def gunicorn(self, name: str, target: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
        """``gunicorn -c config/gunicorn.conf.py <target>`` (a ``module:app``) with ``env`` plus 2 workers bound to a
        free port of 127.0.0.1, its output in ``<tmp>/<name>.log``, once it answers ``/`` (any status). Returns the
        process (the caller terminates it) and its base URL ``http://127.0.0.1:<port>``."""
        url = f"http://127.0.0.1:{free_port()}"
        env = dict(env, GUNICORN_BIND=url.removeprefix("http://"), GUNICORN_WORKERS="2")
        with open(self.tmp / f"{name}.log", "ab") as out:
            process = subprocess.Popen([str(BIN / "gunicorn"), "-c", "config/gunicorn.conf.py", target],
                                       cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_http(f"{url}/")
        except BaseException:
            process.terminate()
            raise
        return process, url

    def ceiling(self, service: Service) -> dict:
        """wrk's figures for ``GET /bench/ceiling`` of bench/ceiling.py (the bridge's app, authentication, a constant
        answer, no query) served with ``service``'s settings and database and authenticated with its key."""
        process, url = self.gunicorn("ceiling", "bench.ceiling:app", service.env)
        try:
            answer = requests.get(f"{url}/bench/ceiling", timeout=30,
                                  headers={"Authorization": f"Bearer {service.token}"})
            assert answer.status_code == 200, answer.text
            return self.wrk(f"{url}/bench/ceiling", "auth.lua", [service.token])
        finally:
            process.terminate()
            process.wait(timeout=30)

    def figure1(self) -> None:
        self.ensure_wrk()
        hello, url = self.gunicorn("hello", "bench.hello:app", os.environ)
        try:
            self.wrk(f"{url}/")  # warm-up
            base = self.wrk(f"{url}/")
        finally:
            hello.terminate()
            hello.wait(timeout=30)
        service = self.service("fig1", worker=False)
        ceiling = self.ceiling(service)
        created = service.post("/whmcs/v1/services/1/create", {"client": {"id": 1, "email": "c1@example.org"},
                                                               "product": "mini", "plan": "basic"})
        assert created.status_code in (200, 202), created.text
        status = self.wrk(f"{service.url}/whmcs/v1/services/1", "auth.lua", [service.token])
        create = self.wrk(f"{service.url}/whmcs/v1/services/0/create", "create.lua", [service.token, "100000"])
        self.raw["figure1"] = {"hello": base, "ceiling": ceiling, "status": status, "create": create}
        self.row("1 ceiling rps (auth, no DB)", ceiling["rps"], base["rps"], "-", None, "req/s",
                 f"bench/ceiling.py: the bridge's app, whmcs-key auth, constant JSON; non-2xx {ceiling['non_2xx']}")
        self.row("1 status rps (64 conns)", status["rps"], base["rps"], "ratio >= 0.5", status["rps"] >= base["rps"] / 2,
                 "req/s", f"non-2xx {status['non_2xx']}")
        self.row("1 status rps vs ceiling", status["rps"], ceiling["rps"], "-", None, "req/s",
                 "baseline = the ceiling (auth + framework, no DB): what the status query and its answer cost")
        self.row("1 status p50", status["p50_ms"], base["p50_ms"], "-", None, "ms")
        self.row("1 status p99", status["p99_ms"], base["p99_ms"], "-", None, "ms")
        self.row("1 create rps (no wait)", create["rps"], base["rps"], "-", None, "req/s", f"non-2xx {create['non_2xx']}")
        self.row("1 create p50", create["p50_ms"], base["p50_ms"], "-", None, "ms")
        self.row("1 create p99", create["p99_ms"], base["p99_ms"], "< 50 ms", (create["p99_ms"] or 1e9) < 50, "ms")
        service.stop()

    def fast_profile(self) -> None:
        """Issue 15's in-process profile of the status and create calls (bench/fast.py; ``BENCH_ONLY=fast``)."""
        from bench import fast

        found = fast.main(self)
        self.raw["fast"] = found
        for call in ("status", "create"):
            self.row(f"fast: {call} in-process (test client, PostgreSQL)", found[f"{call}_cpu_ms"], None, "-", None,
                     "ms CPU", f"{found[f'{call}_ms']} ms wall, {found[f'{call}_statements']} statements per call")

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

        service.stop()

    # -- figure 4 -----------------------------------------------------------
    def figure4(self) -> None:
        from app.bootstrap import bootstrap
        from app.db import upgrade
        from app.models import Order

        ns = self.ns + "s"
        self.scale_ns = ns
        live = bootstrap(self.settings("fig4", deployment=ns))
        upgrade(live.db)
        live.catalog.sync()
        worker = bench_worker(live)
        engine = live.engine
        results = {}
        made = 0
        for scale in SCALES:
            started = time.monotonic()
            made = grow_orders(live, worker, made, scale, 50000, "s", timeout=900)
            orders = list(Order.select().where(Order.status != "terminated"))
            active = sum(1 for o in orders if o.status == "active")
            log(f"scale {scale}: {active} active orders ready in {time.monotonic() - started:.0f}s")

            def measure(fn):
                return _measure_calls(engine, fn)

            selector = {"live.deployment": ns}
            results[scale] = {
                "active": active,
                "status_per_order": measure(lambda: [engine.list_containers({**selector, "live.order": str(o.id)})
                                                     for o in orders]),
                "plan_per_order": measure(lambda: [live.deployer.plan(live.runner.project(o)) for o in orders]),
            }
            log(f"scale {scale}: {results[scale]}")
        self.raw["figure4"] = results
        low, high = SCALES[0], SCALES[-1]
        growth = high / low
        # The usage pass is bench/usage_sampler.py's (BENCH_ONLY=usage).
        labels = {"status_per_order": "status per order (GeoCat Live)", "plan_per_order": "Deployer.plan per order"}
        for key, label in labels.items():
            a, b = results[low][key], results[high][key]
            self.row(f"4 {label}: API calls @{high}", b["calls"], a["calls"], "ratio 1.0 (constant)",
                     b["calls"] == a["calls"], "calls", f"baseline = @{low} orders")
            self.row(f"4 {label}: time @{high}", round(b["s"] * 1000, 1), round(a["s"] * 1000, 1),
                     f"ratio <= {growth:.0f} (linear)", b["s"] <= a["s"] * growth, "ms", f"baseline = @{low} orders")
        live.db.close()

    # -- swarm (issue 14) ------------------------------------------------------
    def swarm_reads(self) -> None:
        """Status passes on a single-node swarm (LIVE_ORCHESTRATOR=swarm) at each of SWARM_SCALES orders of the
        `mini` product (one service each), created through the bridge: manager API calls and time of one pass
        over every order (SwarmEngine.list_containers by the deployment's label) against the same two raw
        calls (GET /services and GET /tasks by label, nothing done with the answers), and of one placement
        look (SwarmEngine.nodes)."""
        from app.bootstrap import bootstrap
        from app.db import upgrade

        swarm = self.docker.info().get("Swarm") or {}
        if not swarm.get("ControlAvailable"):
            self.row("swarm (skipped)", "the engine is not a swarm manager", None, "-", None)
            return
        ns = self.ns + "w"
        self.swarm_ns = ns
        live = bootstrap(self.settings("swarm", deployment=ns, LIVE_ORCHESTRATOR="swarm"))
        upgrade(live.db)
        live.catalog.sync()
        worker = bench_worker(live)
        engine = live.engine
        selector = {"live.deployment": ns}
        filters = {"label": [f"live.deployment={ns}"]}
        results, made = {}, 0
        for scale in SWARM_SCALES:
            started = time.monotonic()
            made = grow_orders(live, worker, made, scale, 70000, "w")
            listed = engine.list_containers(selector)
            running = sum(1 for c in listed if c.running)
            log(f"swarm scale {scale}: {running} services running, ready in {time.monotonic() - started:.0f}s")

            def measure(fn):
                return _measure_calls(engine, fn)

            raw_times = []
            for _ in range(REPEATS):
                t0 = time.perf_counter()
                answers = (self.docker.api.services(filters=filters), self.docker.api.tasks(filters=filters))
                raw_times.append(time.perf_counter() - t0)
            results[scale] = {"running": running, "status_pass": measure(lambda: engine.list_containers(selector)),
                              "raw_two_calls_s": round(statistics.median(raw_times), 4),
                              "answer_bytes": sum(len(json.dumps(answer)) for answer in answers),
                              "placement": measure(engine.nodes), **_manager_footprint()}
            log(f"swarm scale {scale}: {results[scale]}")
        self.raw["swarm"] = results
        low, high = SWARM_SCALES[0], SWARM_SCALES[-1]
        a, b = results[low], results[high]
        self.row(f"swarm status pass: API calls @{high} services", b["status_pass"]["calls"], a["status_pass"]["calls"],
                 "ratio 1.0 (constant)", b["status_pass"]["calls"] == a["status_pass"]["calls"], "calls",
                 f"baseline = @{low} services")
        self.row(f"swarm status pass: time @{high} services", round(b["status_pass"]["s"] * 1000, 1),
                 round(b["raw_two_calls_s"] * 1000, 1), "ratio <= 1.5", b["status_pass"]["s"] <= 1.5 * b["raw_two_calls_s"],
                 "ms", "baseline = the same two raw API calls (services, tasks) in the same run")
        self.row(f"swarm status pass: time @{high} vs @{low}", round(b["status_pass"]["s"] * 1000, 1),
                 round(a["status_pass"]["s"] * 1000, 1), f"ratio <= {high / low:.0f} (linear)",
                 b["status_pass"]["s"] <= a["status_pass"]["s"] * high / low, "ms")
        self.row(f"swarm placement look: API calls @{high}", b["placement"]["calls"], a["placement"]["calls"],
                 "ratio 1.0 (constant)", b["placement"]["calls"] == a["placement"]["calls"], "calls")
        live.db.close()

    def drift(self) -> None:
        """A container removed by hand: seconds until its order shows drift and until it is repaired (bench/drift.py)."""
        from bench.drift import run

        run(self)

    def swarm_lifecycle(self) -> None:
        """Create, suspend, unsuspend and terminate of one busybox-demo order (3 services, a healthcheck, two
        volumes) on a single-node swarm, against the same on the one engine in the same run (REPEATS each,
        median)."""
        from app.bootstrap import bootstrap
        from app.db import upgrade
        from app.models import Order
        from app.orders.service import CustomerInfo

        if not (self.docker.info().get("Swarm") or {}).get("ControlAvailable"):
            self.row("swarm lifecycle (skipped)", "the engine is not a swarm manager", None, "-", None)
            return
        timings: dict[str, dict[str, list[float]]] = {}
        for mode in ("docker", "swarm"):
            ns = self.ns + ("w" if mode == "swarm" else "s")
            live = bootstrap(self.settings(f"life-{mode}", deployment=ns, LIVE_ORCHESTRATOR=mode))
            upgrade(live.db)
            live.catalog.sync()
            worker = live.worker()
            steps = timings[mode] = {"create": [], "suspend": [], "unsuspend": [], "terminate": []}
            for attempt in range(REPEATS):
                outcome = live.orders.create(service_id=90000 + attempt, product="busybox-demo", plan="small",
                                             customer=CustomerInfo(email=f"l{attempt}@example.org"))
                order_id = outcome.order.id
                for step, call in (("create", None), ("suspend", live.orders.suspend),
                                   ("unsuspend", live.orders.unsuspend), ("terminate", live.orders.terminate)):
                    started = time.monotonic()
                    if call is not None:
                        call(Order.get_by_id(order_id))
                    worker.run_until_idle(timeout=300)
                    steps[step].append(time.monotonic() - started)
                    status = Order.get_by_id(order_id).status
                    assert status in ("active", "suspended", "terminated"), f"{mode} {step}: {status}"
            live.db.close()
        self.raw["swarm_lifecycle"] = timings
        for step in ("create", "suspend", "unsuspend", "terminate"):
            swarm, one = statistics.median(timings["swarm"][step]), statistics.median(timings["docker"][step])
            self.row(f"swarm {step} (busybox-demo, 3 services)", round(swarm, 2), round(one, 2), "-", None, "s",
                     "baseline = the same operation on the one engine, same run")

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

    # -- ingress (issue 12) --------------------------------------------------
    def caddy(self, name: str) -> CaddyProcess:
        """A Caddy of the bench's own (admin API on a free loopback port, data under the work dir), stopped
        by :meth:`cleanup`."""
        binary = shutil.which("caddy")
        if binary is None:
            raise RuntimeError("caddy is not installed (apt-get install caddy)")
        caddy = CaddyProcess(self.tmp / name, binary=binary)
        self.caddies.append(caddy)
        return caddy.start()

    def ingress_throughput(self) -> None:
        """Requests per second of one order's page through Caddy (plain HTTP, and HTTPS with the internal CA)
        against the same container's published port directly, interleaved in one run."""
        from app.ingress.caddy import CaddyIngress, CaddySettings
        from app.ingress.routes import PathRoute, Route, RouteMode

        self.ensure_wrk()
        caddy = self.caddy("caddy-rps")
        http_port, tls_http_port, tls_port = free_port(), free_port(), free_port()
        # The bridge (gunicorn + worker) programs its plain-HTTP server in Caddy as an operator would run it.
        service = self.service("ingress", worker=True, env={
            "LIVE_CADDY_ADMIN_URL": caddy.admin_url, "LIVE_TLS": "off", "LIVE_INGRESS_BIND": "127.0.0.1",
            "LIVE_INGRESS_HTTP_PORT": str(http_port), "LIVE_INGRESS_RESYNC_SECONDS": "5"})
        created = service.post("/whmcs/v1/services/7001/create", {
            "client": {"id": 7001, "email": "ingress@example.org"}, "product": "page", "plan": "basic", "wait": 120})
        assert created.status_code == 200 and created.json().get("result") == "succeeded", created.text
        order_id = service.get("/whmcs/v1/services/7001").json()["id"]
        seen = []

        def active() -> dict | None:
            # The page through Caddy (polled below) is what tells that the route is applied.
            seen[:] = [service.get(f"/api/v1/orders/{order_id}").json()]
            return seen[0] if seen[0].get("status") == "active" else None

        try:
            view = poll(active, 60, "order active")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}: {json.dumps(seen)[:600]}") from None
        hostname, endpoint = view["hostname"], view["endpoints"][0]
        direct = endpoint["local_url"].rstrip("/") + "/"
        upstream = direct.split("//", 1)[1].split("/", 1)[0]
        plain = f"http://127.0.0.1:{http_port}/"
        assert endpoint["url"].startswith(f"http://{hostname}:{http_port}"), endpoint
        # The same route in a TLS server of the same Caddy (LIVE_TLS=internal), programmed by the adapter as the
        # bridge would (its on-demand policy asks the bridge's ask endpoint before issuing a certificate).
        tls_table = CaddyIngress(CaddySettings(
            admin_url=caddy.admin_url, deployment=f"{self.ns}tls", base_domain="bench.local", tls="internal",
            bind="127.0.0.1", http_port=tls_http_port, https_port=tls_port,
            ask_url=f"{service.url}/ingress/v1/ask"))
        tls_table.sync([Route(order_id, view["instance"], hostname, RouteMode.PROXY, (PathRoute("/", upstream),))], [])
        https = f"https://{hostname}:{tls_port}/"  # wrk connects to 127.0.0.1 (bench/sni.lua), SNI = hostname
        authorities = caddy.folder / "data" / "caddy" / "pki" / "authorities"
        issued_by: list[str] = []
        last: list[str] = [""]

        def page(fetch) -> bool:
            try:
                answer = fetch()
            except (OSError, urllib3.exceptions.HTTPError) as exc:  # not serving yet
                last[0] = repr(exc)
                return False
            last[0] = f"HTTP {answer.status}: {answer.data[:200]!r}"
            return answer.status == 200 and PAGE_HTML.strip() in answer.data.decode()

        def verified_page() -> bool:
            # The bridge's CA `live`; Caddy 2.6 may use its default CA `local` instead (noted in the row).
            for ca in ("live", "local"):
                root = authorities / ca / "root.crt"
                if root.exists() and page(lambda: https_get(root, hostname, tls_port)):
                    issued_by[:] = [ca]
                    return True
            return False

        checks = {
            "the page, directly": lambda: page(lambda: urllib3.request("GET", direct, retries=False, timeout=5)),
            "the page through Caddy (http)": lambda: page(lambda: urllib3.request(
                "GET", plain, headers={"Host": hostname}, retries=False, timeout=5)),
            "the page through Caddy (https, certificate verified against Caddy's internal CA)": verified_page,
        }
        for what, check in checks.items():
            try:
                poll(check, 60, what)
            except TimeoutError as exc:
                raise TimeoutError(f"{exc}; last: {last[0]}; caddy: {caddy.log_tail(600)}") from None

        runs = {"direct": (direct, {}, None), "caddy_http": (plain, {"Host": hostname}, None),
                "caddy_https": (https, {"Host": hostname}, "sni.lua")}
        for url, headers, script in runs.values():
            self.wrk(url, script, headers=headers, seconds=2)  # warm-up (connections, certificate cache)
        measured: dict[str, list[dict]] = {key: [] for key in runs}
        # CPU seconds of Caddy and of the engine's docker-proxy for the published port, per run: where the
        # two shared cores go.
        processes = {"caddy": caddy.process.pid, "docker_proxy": docker_proxy_pid(int(upstream.rsplit(":", 1)[1]))}
        for _ in range(REPEATS):  # interleaved, so drift on the shared machine hits each side alike
            for key, (url, headers, script) in runs.items():
                before = {name: cpu_seconds(pid) for name, pid in processes.items()}
                result = self.wrk(url, script, headers=headers)
                done = max(result["requests"] or result["rps"] * WRK_SECONDS, 1)
                result.update({f"{name}_cpu_us_per_request": round((cpu_seconds(pid) - before[name]) / done * 1e6, 1)
                               for name, pid in processes.items() if pid})
                measured[key].append(result)
        self.raw["ingress_rps"] = {"hostname": hostname, "upstream": upstream, "certificate_ca": issued_by[0],
                                   "runs": measured}

        def median(key: str, field: str) -> float:
            return round(statistics.median(r[field] for r in measured[key]), 2)

        def errors(key: str) -> str:
            return (f"non-2xx {sum(r['non_2xx'] for r in measured[key])}"
                    + "".join(f"; socket errors {r['socket_errors']}" for r in measured[key] if r["socket_errors"]))

        def cpu(key: str) -> str:
            names = [name for name, pid in processes.items() if pid and not (key == "direct" and name == "caddy")]
            return "CPU us per request: " + ", ".join(
                f"{name.replace('_', '-')} {median(key, f'{name}_cpu_us_per_request'):g}" for name in names)

        base = median("direct", "rps")
        for key, label in (("caddy_http", "http"), ("caddy_https", "https, internal CA")):
            rps = median(key, "rps")
            cert = f"; certificate from Caddy's CA `{issued_by[0]}`" if key == "caddy_https" else ""
            self.row(f"ingress rps via Caddy ({label}), 64 conns", rps, base, "ratio >= 0.8", rps >= 0.8 * base,
                     "req/s", f"median of {REPEATS} interleaved wrk runs; direct = the container's published port; "
                              f"{errors(key)} (direct: {errors('direct')}){cert}; {cpu(key)} (direct: {cpu('direct')})")
            self.row(f"ingress p50 via Caddy ({label})", median(key, "p50_ms"), median("direct", "p50_ms"), "-", None, "ms")
            self.row(f"ingress p99 via Caddy ({label})", median(key, "p99_ms"), median("direct", "p99_ms"), "-", None, "ms")
        service.stop()
        caddy.stop()

    def ingress_updates(self) -> None:
        """One route update (``CaddyIngress.put_route``) with 10 and with 1,000 routes in Caddy: time, admin
        calls and bytes sent; and the cost of a ``sync()`` that changes nothing and of one that rebuilds
        everything after Caddy restarted empty. Plain HTTP (``LIVE_TLS=off``) in full, then the times again
        with TLS (``internal``), where Caddy also manages the hostnames' certificates on every change."""
        low, high = INGRESS_SCALES[0], INGRESS_SCALES[-1]
        a, b = self.route_updates("off")
        self.row(f"ingress route update (put_route) @{high}: time", b["update_ms"], a["update_ms"], "-", None, "ms",
                 f"median of {INGRESS_UPDATES}; baseline = @{low} routes; Caddy re-provisions its whole config "
                 f"on every admin change")
        self.row(f"ingress route update @{high}: admin calls", b["update_calls"], a["update_calls"], "1 (constant)",
                 a["update_calls"] == b["update_calls"] == 1, "calls", " / ".join(b["update_requests"]))
        self.row(f"ingress route update @{high}: bytes sent", b["update_bytes"], a["update_bytes"],
                 "ratio 1.0 (constant)", b["update_bytes"] == a["update_bytes"], "B", "request body")
        self.row(f"ingress sync(), nothing to change @{high}: time", b["resync_ms"], a["resync_ms"], "-", None, "ms",
                 f"the periodic resync; {b['resync_calls']} call(s), {b['resync_bytes_sent']} B sent, "
                 f"{b['resync_bytes_read']} B read (@{low}: {a['resync_bytes_read']} B)")
        self.row(f"ingress sync() after Caddy restarted empty @{high}: time", b["rebuild_ms"], a["rebuild_ms"], "-",
                 None, "ms", f"{b['rebuild_calls']} calls, {b['rebuild_bytes_sent']} B sent "
                             f"(@{low}: {a['rebuild_calls']} calls, {a['rebuild_bytes_sent']} B)")
        a, b = self.route_updates("internal")
        self.row(f"ingress route update @{high}, TLS internal: time", b["update_ms"], a["update_ms"], "-", None, "ms",
                 f"median of {INGRESS_UPDATES}; {b['update_calls']} call, {b['update_bytes']} B "
                 f"(@{low}: {a['update_calls']}, {a['update_bytes']} B)")
        self.row(f"ingress sync() after Caddy restarted empty @{high}, TLS internal: time", b["rebuild_ms"],
                 a["rebuild_ms"], "-", None, "ms", f"{b['rebuild_calls']} calls, {b['rebuild_bytes_sent']} B sent")

    def route_updates(self, tls: str) -> tuple[dict, dict]:
        """The measurements of :meth:`ingress_updates` with ``LIVE_TLS=tls`` in a Caddy of their own:
        the results at the lowest and at the highest of INGRESS_SCALES (all in ``raw``)."""
        from app.ingress.caddy import CaddyIngress, CaddySettings
        from app.ingress.routes import PathRoute, Route, RouteMode

        caddy = self.caddy(f"caddy-updates-{tls}")
        recorder = RecordingSession()
        port = free_port()
        deployment = f"{self.ns}u{tls[:3]}"
        table = CaddyIngress(CaddySettings(admin_url=caddy.admin_url, deployment=deployment, base_domain="bench.local",
                                           tls=tls, bind="127.0.0.1", http_port=port, https_port=free_port(),
                                           ask_url=f"http://127.0.0.1:{free_port()}/ask"),
                             session=recorder, timeout=(5.0, 300.0))
        dead = f"127.0.0.1:{free_port()}"  # nothing listens there: a proxied request answers 502

        def synthetic(i: int, mode: RouteMode = RouteMode.PROXY) -> Route:
            """Order ``i`` (100001 on: every id has as many digits, so request sizes compare exactly)."""
            paths = (PathRoute("/geoserver", dead), PathRoute("/", dead)) if mode is RouteMode.PROXY else ()
            return Route(i, f"o{i}", f"o{i}.bench.local", mode, paths)

        def status_of(hostname: str) -> int | None:
            """What ``hostname`` answers through Caddy (None with TLS: no request is made, no certificate asked)."""
            if tls != "off":
                return None
            return urllib3.request("GET", f"http://127.0.0.1:{port}/", headers={"Host": hostname}, retries=False,
                                   timeout=10).status

        def held() -> int:
            return len(requests.get(f"{caddy.admin_url}/config/apps/http/servers/live-{deployment}/routes",
                                    timeout=60).json())

        results: dict[int, dict] = {}
        for n in INGRESS_SCALES:
            routes = [synthetic(100000 + i) for i in range(1, n + 1)]
            started = time.perf_counter()
            table.sync(routes, [])
            fill = time.perf_counter() - started
            assert held() == n + 1, f"Caddy holds {held()} routes, not {n} + the 404 route"
            target = routes[n // 2]
            update = {"s": [], "calls": [], "bytes_sent": []}
            for k in range(INGRESS_UPDATES):  # suspended, active, suspended, ... (ends as it began when even)
                route = synthetic(target.order_id, RouteMode.SUSPENDED if k % 2 == 0 else RouteMode.PROXY)
                recorder.reset()
                started = time.perf_counter()
                table.put_route(route)
                update["s"].append(time.perf_counter() - started)
                update["calls"].append(len(recorder.calls))
                update["bytes_sent"].append(recorder.sent)
                update.setdefault("requests", [f"{m} {path}" for m, path, _, _ in recorder.calls])
            # The update took effect (and the order's neighbours did not change).
            table.put_route(synthetic(target.order_id, RouteMode.SUSPENDED))
            assert (status_of(target.hostname), status_of(routes[0].hostname)) in ((503, 502), (None, None))
            table.put_route(target)
            assert status_of(target.hostname) in (502, None)
            resync = {"s": [], "calls": [], "bytes_sent": [], "bytes_read": []}
            for _ in range(5):  # the periodic resync when Caddy already holds everything
                recorder.reset()
                started = time.perf_counter()
                report = table.sync(routes, [])
                resync["s"].append(time.perf_counter() - started)
                assert not report.changed, report
                resync["calls"].append(len(recorder.calls))
                resync["bytes_sent"].append(recorder.sent)
                resync["bytes_read"].append(recorder.read)
            caddy.restart_empty()
            recorder.reset()
            started = time.perf_counter()
            report = table.sync(routes, [])
            rebuild = {"s": time.perf_counter() - started, "calls": len(recorder.calls), "bytes_sent": recorder.sent,
                       "report": str(report)}
            assert held() == n + 1 and status_of(routes[-1].hostname) in (502, None)
            results[n] = {
                "fill_s": round(fill, 3),
                "update_ms": round(statistics.median(update["s"]) * 1000, 1),
                "update_calls": max(update["calls"]), "update_bytes": max(update["bytes_sent"]),
                "update_requests": update["requests"],
                "resync_ms": round(statistics.median(resync["s"]) * 1000, 1), "resync_calls": max(resync["calls"]),
                "resync_bytes_sent": max(resync["bytes_sent"]), "resync_bytes_read": max(resync["bytes_read"]),
                "rebuild_ms": round(rebuild["s"] * 1000, 1), "rebuild_calls": rebuild["calls"],
                "rebuild_bytes_sent": rebuild["bytes_sent"], "rebuild_report": rebuild["report"],
                "update_all_ms": [round(t * 1000, 2) for t in update["s"]],
            }
            log(f"ingress tls={tls}, {n} routes: {results[n]}")
        self.raw.setdefault("ingress_updates", {})[tls] = results
        caddy.stop()
        return results[INGRESS_SCALES[0]], results[INGRESS_SCALES[-1]]

    # -- backups (issue 13) --------------------------------------------------
    def backups(self) -> None:
        """One order of the `vol` product (created through the WHMCS API, run by the real worker) with
        BACKUP_MIB MiB of random bytes in its volume: a ``backup`` and a ``restore`` operation against
        ``docker run --rm -v VOL:/v <helper> tar -c|-x`` on the same volume and disk, REPEATS times each,
        interleaved. Each operation runs in a fresh worker process, whose VmHWM/VmRSS (/proc) give its peak
        memory. Then the same code in this process, timed from its progress steps, splits the figures into
        their parts (volume export and store write, the store's read-back; the volume replacement)."""
        from app.backups.service import BackupKind
        from app.backups.store import CHUNK_SIZE
        from app.bootstrap import bootstrap
        from app.models import Backup, Operation, Order

        service = self.service("backups", worker=False)
        live = bootstrap(self.settings("backups", url=service.env["LIVE_DATABASE_URL"]))
        helper = live.settings.helper_image
        store_root = Path(live.settings.backup_dir)
        baseline_dir = self.tmp / "baseline"  # the same file system as the store (both under the bench's work dir)
        baseline_dir.mkdir()
        if os.stat(baseline_dir).st_dev != os.stat(store_root.parent).st_dev:
            self.notes.append("backups: the baseline's file and the store are on different file systems")
        archive = baseline_dir / "volume.tar"
        raw: dict = {"mib": BACKUP_MIB, "files": BACKUP_FILES, "helper_image": helper, "store": str(store_root),
                     "loadavg_before": os.getloadavg()}
        self.raw["backups"] = raw

        worker = self.start_worker(service, "create")
        try:
            created = service.post("/whmcs/v1/services/13001/create", {
                "client": {"id": 13001, "email": "backups@example.org"}, "product": "vol", "plan": "basic", "wait": 120})
            assert created.status_code == 200 and created.json().get("result") == "succeeded", created.text
        finally:
            self.stop_worker(worker)
        order_id = service.get("/whmcs/v1/services/13001").json()["id"]
        selector = [f"live.deployment={self.ns}", f"live.order={order_id}"]
        (container,) = self.docker.containers.list(filters={"label": selector})
        (volume,) = self.docker.volumes.list(filters={"label": selector})
        per_file = BACKUP_MIB // BACKUP_FILES
        fill = (f"i=0; while [ $i -lt {BACKUP_FILES} ]; do i=$((i+1)); "
                f"dd if=/dev/urandom of=/data/random-$i bs=1M count={per_file} 2>/dev/null || exit 1; done; "
                "sync; du -sk /data")
        started = time.monotonic()
        code, out = container.exec_run(["sh", "-c", fill])
        assert code == 0, out.decode(errors="replace")[-500:]
        volume_bytes = BACKUP_FILES * per_file * 1024 * 1024
        raw["fill"] = {"s": round(time.monotonic() - started, 1), "du": out.decode().strip(), "bytes": volume_bytes}
        log(f"backups: volume {volume.name} filled with {volume_bytes} random bytes ({raw['fill']})")
        mib = volume_bytes / 2 ** 20

        def fsynced(path: Path) -> float:
            started = time.monotonic()
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            return time.monotonic() - started

        def wait_state(operation_id: int, timeout: float) -> float:
            """When the operation succeeded (time.monotonic()), read from the database every 50 ms: polling the
            API instead would cost gunicorn's CPU (request, API key check, view) on the cores the worker uses."""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                state = Operation.select(Operation.state).where(Operation.id == operation_id).scalar()
                if state in ("succeeded", "failed"):
                    assert state == "succeeded", service.get(f"/api/v1/operations/{operation_id}").text
                    return time.monotonic()
                time.sleep(0.05)
            raise TimeoutError(f"operation {operation_id}")

        def operation(call) -> dict:
            """Run ``call()`` (queues one operation) in a fresh worker: times, memory, steps, Backup rows."""
            worker = self.start_worker(service, "op")
            try:
                idle = proc_status(worker.pid)
                started = time.monotonic()
                outcome = call()
                done = wait_state(outcome.operation.id, timeout=900)
                peak = proc_status(worker.pid)
            finally:
                self.stop_worker(worker)
            load = os.getloadavg()[0]
            op = Operation.get_by_id(outcome.operation.id)
            rows = [{"kind": str(b.kind), "backup_id": b.backup_id, "size": b.size,
                     "s": round((b.finished_at - b.started_at).total_seconds(), 3)}
                    for b in Backup.select().where(Backup.operation == op.id).order_by(Backup.id)]
            return {"wall_s": round(done - started, 3), "operation_s": round((op.finished_at - op.started_at).total_seconds(), 3),
                    "queued_s": round((op.started_at - op.created_at).total_seconds(), 3),
                    "idle_rss_mib": round(idle["VmRSS"] / 1024, 1), "idle_hwm_mib": round(idle["VmHWM"] / 1024, 1),
                    "hwm_mib": round(peak["VmHWM"] / 1024, 1), "rss_after_mib": round(peak["VmRSS"] / 1024, 1),
                    "peak_growth_mib": round((peak["VmHWM"] - idle["VmRSS"]) / 1024, 1),
                    "loadavg_1min_after": load, "backups": rows, "steps": [f"{s['at']} {s['message']}" for s in op.steps or []],
                    "params": {k: v for k, v in (op.params or {}).items()}}

        # Context for the baselines: a `docker run --rm` of the helper that does nothing (its fixed cost), and tar
        # on the host straight from the volume's folder (no container, no stream through the engine: the floor;
        # only when this process may read the engine's folders).
        mountpoint = Path(volume.attrs["Mountpoint"])
        host = os.access(mountpoint, os.R_OK | os.X_OK)
        host_archive = baseline_dir / "volume-host.tar"
        noop = []
        for _ in range(REPEATS):
            started = time.monotonic()
            subprocess.run(["docker", "run", "--rm", "-v", f"{volume.name}:/v", helper, "true"], check=True, timeout=120)
            noop.append(time.monotonic() - started)
        raw["docker_run_noop_s"] = noop

        def tar_c(*options: str) -> float:
            """``docker run --rm <options> -v VOL:/v <helper> tar -c -C /v . > archive``: seconds."""
            started = time.monotonic()
            with open(archive, "wb") as out:
                subprocess.run(["docker", "run", "--rm", *options, "-v", f"{volume.name}:/v", helper,
                                "tar", "-c", "-C", "/v", "."], stdout=out, check=True, timeout=900)
            return time.monotonic() - started

        # Backup: tar -c of the volume into a file vs the `backup` operation; interleaved. The engine's default
        # log driver (json-file) would also write the container's 1 GiB of stdout, JSON-escaped, into the
        # container's log: the baseline runs without it (--log-driver none); the command as written is timed
        # afterwards, for the record. Every measurement starts with no dirty pages (os.sync, not timed): the
        # writeback of the one before would slow it down.
        base_c, base_c_fsync, host_c, logged_c, backups = [], [], [], [], []
        for n in range(REPEATS):
            os.sync()
            base_c.append(tar_c("--log-driver", "none"))
            base_c_fsync.append(base_c[-1] + fsynced(archive))
            if host:
                os.sync()
                started = time.monotonic()
                subprocess.run(["tar", "-c", "-f", str(host_archive), "-C", str(mountpoint), "."], check=True, timeout=900)
                host_c.append(time.monotonic() - started + fsynced(host_archive))
                host_archive.unlink()
            os.sync()
            result = operation(lambda: live.orders.back_up(Order.get_by_id(order_id), requested_by="bench"))
            backups.append(result)
            log(f"backups: backup {n + 1}: tar -c {base_c[-1]:.2f}s (+fsync {base_c_fsync[-1]:.2f}s); operation "
                f"{result['operation_s']}s, wall {result['wall_s']}s, peak +{result['peak_growth_mib']} MiB")
        for n in range(REPEATS):
            os.sync()
            logged_c.append(tar_c())
            log(f"backups: tar -c with the engine's default log driver {n + 1}: {logged_c[-1]:.2f}s")
        raw["backup"] = {"tar_c_s": base_c, "tar_c_fsync_s": base_c_fsync, "host_tar_c_fsync_s": host_c,
                         "tar_c_default_log_driver_s": logged_c, "archive_bytes": archive.stat().st_size, "runs": backups}
        backup_id = backups[-1]["params"]["_backup"]
        manifest = live.backups.find(backup_id)

        # Restore: tar -x of that file into the volume vs the `restore` operation of the last backup; interleaved.
        base_x, host_x, restores = [], [], []
        for n in range(REPEATS):
            os.sync()
            started = time.monotonic()
            with open(archive, "rb") as source:
                subprocess.run(["docker", "run", "--rm", "-i", "-v", f"{volume.name}:/v", helper, "tar", "-x", "-C", "/v"],
                               stdin=source, check=True, timeout=900, capture_output=False)
            base_x.append(time.monotonic() - started)
            if host:
                started = time.monotonic()
                subprocess.run(["tar", "-x", "-f", str(archive), "-C", str(mountpoint)], check=True, timeout=900)
                host_x.append(time.monotonic() - started)
            os.sync()
            result = operation(lambda: live.orders.restore(Order.get_by_id(order_id), backup_id, product=manifest.product,
                                                           source_order_id=manifest.order_id, requested_by="bench"))
            restores.append(result)
            log(f"backups: restore {n + 1}: tar -x {base_x[-1]:.2f}s; operation {result['operation_s']}s, "
                f"wall {result['wall_s']}s, peak +{result['peak_growth_mib']} MiB")
        raw["restore"] = {"tar_x_s": base_x, "host_tar_x_s": host_x, "runs": restores}
        for result in restores:  # the safety backups: not needed once measured
            for row in result["backups"]:
                live.backups.store.delete(row["backup_id"], instance=manifest.instance)

        # The parts, timed in this process from the same code's progress steps (the operations' own steps are
        # stamped to the second only).
        order = Order.get_by_id(order_id)
        project = live.runner.project(order)
        services = live.runner.policy(order).services
        takes, replaces = [], []
        for n in range(REPEATS):
            marks: list[tuple[float, str]] = []
            os.sync()
            started = time.monotonic()
            taken = live.backups.take(order, project, services, BackupKind.ON_DEMAND,
                                      lambda message: marks.append((time.monotonic(), message)))
            ended = time.monotonic()
            export = next(t for t, m in marks if m.startswith("archive volume"))
            check = next(t for t, m in marks if m.startswith("read the backup back"))
            takes.append({"total_s": ended - started, "before_s": export - started, "export_write_s": check - export,
                          "read_back_commit_s": ended - check})
            live.backups.store.delete(taken.backup_id, instance=order.instance)
            started = time.monotonic()  # the engine's archive stream alone, read and thrown away
            with live.engine.export_volume(volume.name, helper, project.archive_helper_name,
                                           project.archive_helper_labels()) as stream:
                while stream.read(CHUNK_SIZE):
                    pass
            takes[-1]["export_only_s"] = time.monotonic() - started
            marks = []
            os.sync()
            started = time.monotonic()
            live.backups.restore_data(project, manifest, lambda message: marks.append((time.monotonic(), message)))
            ended = time.monotonic()
            restore = next(t for t, m in marks if m.startswith("restore volume"))
            replaces.append({"total_s": ended - started, "stop_s": restore - started, "replace_s": ended - restore})
            log(f"backups: in-process {n + 1}: take {takes[-1]}; restore_data {replaces[-1]}")
        raw["in_process"] = {"take": takes, "restore_data": replaces}
        raw["loadavg_after"] = os.getloadavg()
        self.notes.append(f"backups: load average (1, 5, 15 min) {raw['loadavg_before']} before, "
                          f"{raw['loadavg_after']} after")

        def med(values) -> float:
            return round(statistics.median(values), 2)

        size = f"{mib:.0f} MiB of random bytes in {BACKUP_FILES} files"
        tar_c, tar_c_fsync, tar_x = med(base_c), med(base_c_fsync), med(base_x)
        op_backup = med(r["operation_s"] for r in backups)
        self.row("backups: backup operation (started -> finished)", op_backup, tar_c, "ratio <= 1.2",
                 op_backup <= 1.2 * tar_c, "s",
                 f"{size}; median of {REPEATS}; baseline docker run --rm --log-driver none -v VOL:/v {helper} tar -c "
                 f"-C /v . > file (no fsync, no hash); the operation: export, sha256, write + fsync, read-back + sha256, "
                 f"manifest, prune")
        self.row("backups: backup operation vs tar -c with the default log driver", op_backup, med(logged_c), "-", None,
                 "s", "the same docker run without --log-driver none: the engine also writes the 1 GiB of stdout, "
                      "JSON-escaped, into the container's json-file log")
        self.row("backups: backup, request -> succeeded", med(r["wall_s"] for r in backups), tar_c, "-", None, "s",
                 "queued in-process (live.orders.back_up), its state read from the database every 50 ms")
        self.row("backups: backup operation vs tar -c + fsync", op_backup, tar_c_fsync, "-", None, "s",
                 "the baseline's file fsynced too (the store fsyncs every artefact)")
        if host_c:
            self.row("backups: backup operation vs host tar -c + fsync", op_backup, med(host_c), "-", None, "s",
                     "the floor: tar on the host from the volume's folder into a file, fsynced (no container, no "
                     f"stream through the engine); docker run --rm of the helper alone takes {med(noop)} s")
        self.row("backups: backup, export + sha256 + write + fsync part", med(t["export_write_s"] for t in takes),
                 tar_c_fsync, "-", None, "s", "in-process BackupService.take, from its progress steps; baseline tar -c + fsync")
        self.row("backups: backup, the engine's archive stream alone", med(t["export_only_s"] for t in takes),
                 med(host_c) if host_c else None, "-", None, "s",
                 "Engine.export_volume read to its end and thrown away (no hash, no file); baseline host tar -c + fsync")
        self.row("backups: backup, read-back + sha256 before commit part", med(t["read_back_commit_s"] for t in takes),
                 None, "-", None, "s", "BackupWriter.commit: every artefact read back from the store and hashed (the "
                                       "baseline has no such step); the file is in the page cache")
        op_restore = med(r["operation_s"] for r in restores)
        self.row("backups: restore operation (started -> finished)", op_restore, tar_x, "-", None, "s",
                 "check of the backup (read + sha256), safety backup (as a backup operation), stop, replace the volume, "
                 "redeploy; baseline docker run --rm -i -v VOL:/v helper tar -x -C /v < file")
        self.row("backups: restore, request -> succeeded", med(r["wall_s"] for r in restores), tar_x, "-", None, "s")
        self.row("backups: restore, safety backup part", med(r["backups"][0]["s"] for r in restores), tar_c, "-", None,
                 "s", "the pre_restore Backup row's started_at -> finished_at; baseline tar -c")
        replace = med(t["replace_s"] for t in replaces)
        self.row("backups: restore, volume replacement part", replace, tar_x, "ratio <= 1.2", replace <= 1.2 * tar_x, "s",
                 "in-process BackupService.restore_data after its stop step: empty the volume, stream the artefact "
                 "through the engine's archive API, sha256 on the way; the baseline extracts over the existing files")
        if host_x:
            self.row("backups: restore, volume replacement vs host tar -x", replace, med(host_x), "-", None, "s",
                     "the floor: tar -x on the host into the volume's folder (over the existing files)")
        for what, runs in (("backup", backups), ("restore", restores)):
            growth = max(r["peak_growth_mib"] for r in runs)
            self.row(f"backups: worker peak memory growth during a {what}", growth, round(mib), "< 100 MiB (flat)",
                     growth < 100, "MiB",
                     f"fresh worker per run: VmHWM after - VmRSS idle (max of {REPEATS}); idle RSS "
                     f"{max(r['idle_rss_mib'] for r in runs)} MiB; baseline = the volume's size")
        live.db.close()
        service.stop()

    def start_worker(self, service: Service, name: str) -> subprocess.Popen:
        """A fresh ``live worker`` process for ``service``, once it has written its heartbeat row (it holds the
        single-instance lock then) and had a second to settle; stop it with :meth:`stop_worker`."""
        from app.models import WorkerHeartbeat

        env = dict(service.env)
        if os.environ.get("BENCH_WORKER_POLL_SECONDS"):  # the tests' 0.1 s otherwise (production default: 1 s)
            env["LIVE_WORKER_POLL_SECONDS"] = os.environ["BENCH_WORKER_POLL_SECONDS"]
        with open(service.logs / f"worker-{name}.log", "ab") as out:
            process = subprocess.Popen([str(BIN / "flask"), "--app", "wsgi", "live", "worker"], cwd=PROJECT_ROOT,
                                       env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            poll(lambda: process.poll() is not None or WorkerHeartbeat.select().where(
                WorkerHeartbeat.worker.endswith(f":{process.pid}")).exists(), 60, "worker heartbeat")
            assert process.poll() is None, (service.logs / f"worker-{name}.log").read_text()[-2000:]
            time.sleep(1.0)  # the scheduler's first ticks: the idle RSS is read after them
        except BaseException:
            self.stop_worker(process)
            raise
        return process

    @staticmethod
    def stop_worker(process: subprocess.Popen) -> None:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)

    # -- cleanup and report -------------------------------------------------
    def cleanup(self) -> None:
        for service in self.services:
            try:
                service.stop()
            except Exception:  # already stopped
                pass
        for caddy in self.caddies:
            caddy.stop()
        for project, path in self.projects:
            subprocess.run(["docker-compose", "-p", project, "-f", str(path), "down", "-v", "-t", "1"],
                           capture_output=True, timeout=300, cwd=self.tmp)
        for ns in (self.ns, self.ns + "s", self.ns + "w", usage_sampler.namespace(self)):
            selector = {"label": f"live.deployment={ns}"}
            if (self.docker.info().get("Swarm") or {}).get("ControlAvailable"):
                for service in self.docker.services.list(filters=selector):
                    service.remove()
            found = self.docker.api.containers(all=True, filters=selector)
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda c: _remove_quietly(self.docker, c["Id"]), found))
                list(pool.map(lambda n: n.remove(), self.docker.networks.list(filters=selector)))
            for volume in self.docker.volumes.list(filters=selector):
                try:
                    volume.remove(force=True)
                except docker.errors.APIError as exc:  # a swarm task's container is still being removed
                    log(f"volume {volume.name} not removed: {exc}")
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


class Figures:
    """Bench's table without its environment (no Docker, no databases of its own): ``row``, ``report``, ``raw`` and
    ``notes``, for a bench module run on its own (``python -m bench.accounts``, ``python -m bench.metrics_scrape``)."""
    row, report = Bench.row, Bench.report

    def __init__(self):
        self.rows, self.raw, self.notes = [], {}, []


class RecordingSession(requests.Session):
    """A requests session that records each request it sends: ``calls`` (method, path, bytes of the body
    sent, bytes of the answer read); ``sent`` and ``read`` add them up since :meth:`reset`."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[str, str, int, int]] = []

    def reset(self) -> None:
        self.calls = []

    @property
    def sent(self) -> int:
        return sum(call[2] for call in self.calls)

    @property
    def read(self) -> int:
        return sum(call[3] for call in self.calls)

    def send(self, request, **kwargs):
        response = super().send(request, **kwargs)
        body = request.body or b""
        self.calls.append((request.method, request.path_url, len(body), len(response.content)))
        return response


def https_get(root: Path, hostname: str, port: int) -> urllib3.BaseHTTPResponse:
    """GET ``https://<hostname>:<port>/`` from 127.0.0.1 with ``hostname`` as SNI and Host, the certificate
    verified against ``root`` (Caddy's internal CA)."""
    with urllib3.HTTPSConnectionPool("127.0.0.1", port, server_hostname=hostname, assert_hostname=hostname,
                                     cert_reqs="CERT_REQUIRED", ca_certs=str(root), retries=False, timeout=5) as pool:
        return pool.request("GET", "/", headers={"Host": hostname})


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds process ``pid`` has used (0.0 when it is gone or None)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def docker_proxy_pid(port: int) -> int | None:
    """The engine's userland proxy for 127.0.0.1:``port`` (None when the engine publishes without one)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if args and args[0].endswith(b"docker-proxy") and b"-host-port" in args:
            if args[args.index(b"-host-port") + 1] == str(port).encode():
                return int(entry.name)
    return None


def proc_status(pid: int) -> dict[str, int]:
    """The ``Vm*`` lines of /proc/``pid``/status in KiB (``VmHWM``: peak resident set; ``VmRSS``: now)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Vm"):
            key, value = line.split(":", 1)
            values[key] = int(value.split()[0])
    return values


def poll(check, timeout: float, what: str):
    """``check()``'s first true value, tried every 0.2 s; TimeoutError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"{what}: not within {timeout}s")


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise TimeoutError(url)


def _remove_quietly(client, container_id: str) -> None:
    """Remove a container; one swarm is removing already (its service was removed) or that is gone is fine."""
    try:
        client.api.remove_container(container_id, force=True)
    except docker.errors.APIError as exc:
        if exc.status_code not in (404, 409):
            raise


def in_process_app(settings, key_name: str):
    """The bridge's app for in-process calls through Flask's test client: ``create_app(settings)``, its database
    upgraded, the catalog synced, and a new ``whmcs``-scope API key named ``key_name``.

    Returns ``(app, live, client, headers)``: the APIFlask app; its ``app.extensions["live"]`` (the bootstrap's
    services: ``db``, ``catalog``, ``engine``...); ``app.test_client()``; and ``{"Authorization": "Bearer <token>"}``
    carrying the new key. The caller closes ``live.db`` when done."""
    from app import create_app
    from app.apikeys import create_key
    from app.db import upgrade

    app = create_app(settings)
    live = app.extensions["live"]
    upgrade(live.db)
    live.catalog.sync()
    token = create_key(key_name, "whmcs")[1]
    return app, live, app.test_client(), {"Authorization": f"Bearer {token}"}


def bench_worker(live, slots: int = 8):
    """The bridge's worker, run in-process by the bench with ``slots`` operations at a time (more than the
    default 4: the bench only needs many orders made quickly)."""
    worker = live.worker()
    worker.concurrency = slots
    worker._pool = ThreadPoolExecutor(max_workers=slots)
    return worker


def grow_orders(live, worker, made: int, scale: int, service_base: int, tag: str, timeout: float = 1800) -> int:
    """Create orders of the one-service ``mini`` product until ``scale`` exist (``made`` exist already; WHMCS
    service ids from ``service_base``, e-mails ``<tag><n>@example.org``), then run ``worker`` until no operation
    is left. Returns the number made (``scale``)."""
    from app.orders.service import CustomerInfo

    while made < scale:
        live.orders.create(service_id=service_base + made, customer=CustomerInfo(email=f"{tag}{made}@example.org"),
                           product="mini", plan="basic")
        made += 1
    worker.run_until_idle(timeout=timeout)
    return made


def _measure_calls(engine, fn) -> dict[str, float]:
    """``fn()`` run REPEATS times: the median seconds and the most engine API calls of one run."""
    times, calls = [], []
    for _ in range(REPEATS):
        before, t0 = engine.api_calls, time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        calls.append(engine.api_calls - before)
    return {"s": round(statistics.median(times), 4), "calls": max(calls)}


def _manager_footprint() -> dict[str, int]:
    """The local manager's Raft folder size and dockerd's resident memory (bytes), when this machine runs it."""
    raft = Path("/var/lib/docker/swarm/raft")
    found = {}
    if raft.is_dir():
        found["raft_bytes"] = sum(f.stat().st_size for f in raft.rglob("*") if f.is_file())
    pids = subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True).stdout.split()
    if pids:
        status = Path(f"/proc/{pids[0]}/status").read_text()
        found["dockerd_rss_bytes"] = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024
    return found


def main() -> int:
    bench = Bench()
    bench.raw = {}
    started = time.monotonic()
    only = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))
    steps = [("1", bench.figure1), ("235", bench.figures235), ("5", lambda: burst.figure5(bench)), ("4", bench.figure4), ("bad", bench.bad_input),
             ("ingress", bench.ingress_throughput), ("ingress", bench.ingress_updates), ("backups", bench.backups),
             ("swarm", bench.swarm_lifecycle), ("swarm", bench.swarm_reads),
             ("usage", lambda: usage_sampler.run(bench)), ("mirror", lambda: mirror_bench.run(bench)),
             ("drift", bench.drift), ("metrics", lambda: metrics_scrape.run(bench)),
             ("fast", bench.fast_profile),
             ("accounts", lambda: accounts_bench.run(bench))]
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
