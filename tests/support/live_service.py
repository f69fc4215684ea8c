"""Runs the real bridge for tests: gunicorn and (optionally) the worker as processes."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from app.config import PROJECT_ROOT

def settings_env(settings, **tuning: str) -> dict[str, str]:
    """The environment that makes a child process (worker, gunicorn, CLI) use the test's settings."""
    env = dict(os.environ)
    env.update({
        "LIVE_DATABASE_URL": settings.database_url, "LIVE_CONFIG_REPO": str(settings.config_repo),
        "LIVE_BASE_DOMAIN": settings.base_domain, "LIVE_BACKUP_DIR": str(settings.backup_dir),
        # The test's store (by default file://<its LIVE_BACKUP_DIR>), never one the calling shell names.
        "LIVE_BACKUP_STORE": settings.backup_store,
        "LIVE_DEPLOYMENT": settings.deployment,
        "LIVE_ORCHESTRATOR": settings.orchestrator,
    })
    if settings.orchestrator == "swarm":
        env.update({"LIVE_SWARM_POOL": settings.swarm_pool,
                    "LIVE_SWARM_ENCRYPT_NETWORKS": "true" if settings.swarm_encrypt_networks else "false"})
    if settings.s3_endpoint_url:
        env["LIVE_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    else:
        env.pop("LIVE_S3_ENDPOINT_URL", None)
    env.update(tuning)
    return env


BIN = Path(sys.executable).parent
MINI_MANIFEST = "name: Mini\nplans: {basic: {}}\nendpoints:\n  - {application: web, service: web, port: 8080}\n"
MINI_COMPOSE = """
services:
  web:
    image: live-test/busybox:latest
    init: true
    command: ["httpd", "-f", "-p", "8080", "-h", "/tmp"]
    stop_grace_period: 1s
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Service:
    def __init__(self, settings, tmp_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = settings_env(settings, **{
            "LIVE_WORKER_POLL_SECONDS": "0.1", "LIVE_WORKER_CONCURRENCY": "4", "LIVE_HEALTH_TIMEOUT_SECONDS": "60",
            "GUNICORN_BIND": f"127.0.0.1:{self.port}", "GUNICORN_WORKERS": "2",
        })
        self.logs = tmp_path
        self.processes: list[subprocess.Popen] = []

    def flask(self, *args: str) -> str:
        result = subprocess.run([str(BIN / "flask"), "--app", "wsgi", "live", *args], cwd=PROJECT_ROOT, env=self.env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def spawn(self, name: str, *command: str) -> None:
        with open(self.logs / f"{name}.log", "ab") as log:
            self.processes.append(subprocess.Popen(list(command), cwd=PROJECT_ROOT, env=self.env, stdout=log,
                                                   stderr=subprocess.STDOUT))

    def start(self, worker: bool) -> None:
        self.flask("db", "upgrade")
        self.token = self.flask("apikey", "create", "whmcs-test", "--scope", "admin").strip().splitlines()[-1]
        self.spawn("gunicorn", str(BIN / "gunicorn"), "-c", "config/gunicorn.conf.py", "wsgi:app")
        if worker:
            self.spawn("worker", str(BIN / "flask"), "--app", "wsgi", "live", "worker")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:  # refused, or too slow to answer yet
                time.sleep(0.2)
        else:
            raise AssertionError("gunicorn did not start: " + (self.logs / "gunicorn.log").read_text()[-2000:])
        if worker:
            self.wait_for_worker(deadline - time.monotonic())

    def wait_for_worker(self, timeout: float = 60.0) -> None:
        """Until /readyz says a worker beats: lifecycle answers then report ``worker.alive``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/readyz", timeout=5).json()["checks"]["worker"]["ok"]:
                    return
            except (requests.RequestException, ValueError, KeyError):  # not answering JSON yet
                pass
            time.sleep(0.2)
        raise AssertionError("the worker did not start: " + (self.logs / "worker.log").read_text()[-2000:])

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

    def post(self, path: str, body: dict) -> requests.Response:
        return requests.post(f"{self.url}{path}", json=body, timeout=120,
                             headers={"Authorization": f"Bearer {self.token}"})

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.url}{path}", timeout=30, headers={"Authorization": f"Bearer {self.token}"})


