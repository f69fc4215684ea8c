"""The bridge image and deploy/compose.yml, for real: built from the local base, started with Compose.

The stack is the production one (deploy/compose.yml unchanged): PostgreSQL, the migration, the worker and
the web service from the bridge image, the host's Docker socket mounted. Only the images differ from
production: the bridge is built on live-base:bookworm instead of python:3.11-slim-bookworm, and the
database is live-test/postgres:15 (Debian's PostgreSQL 15 behind the official image's variables) instead of
postgres:15, because nothing can be pulled here. Each run has its own Compose project, port and
LIVE_DEPLOYMENT, and removes its containers and volumes.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time

import pytest
import requests

from app.config import PROJECT_ROOT
from tests.conftest import unavailable
from tests.deploy.conftest import docker_socket_gid
from tests.support.live_service import free_port

COMPOSE_FILE = PROJECT_ROOT / "deploy" / "compose.yml"
pytestmark = [pytest.mark.image_build, pytest.mark.timeout(1200)]


def compose_command() -> list[str]:
    """`docker compose` (v2) when the CLI has it, else docker-compose 1.29 (Debian 12's package)."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    unavailable("neither `docker compose` nor docker-compose is installed (apt-get install docker-compose)")


class Stack:
    def __init__(self, env: dict[str, str]):
        self.project = "livetest" + secrets.token_hex(4)
        self.base = [*compose_command(), "-p", self.project, "-f", str(COMPOSE_FILE)]
        self.env = env

    def __call__(self, *args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([*self.base, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check:
            assert result.returncode == 0, f"compose {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result

    def container(self, service: str) -> dict:
        ids = self("ps", "-q", service).stdout.split()  # 1.29 lists exited containers too
        assert len(ids) == 1, f"{service}: {ids}"
        return json.loads(subprocess.run(["docker", "inspect", ids[0]], capture_output=True, text=True,
                                         check=True).stdout)[0]

    def logs(self, service: str) -> str:
        return self("logs", "--no-color", service).stdout


@pytest.fixture
def stack(bridge_image, postgres_image, tmp_path):
    port = free_port()
    env_file = tmp_path / "live.env"
    # What an operator's deploy/live.env holds; the database URL comes from the compose file itself.
    env_file.write_text(f"LIVE_DEPLOYMENT=t{secrets.token_hex(4)}\nLIVE_BASE_DOMAIN=test.local\nLIVE_LOG_LEVEL=INFO\n")
    env = {**os.environ, "LIVE_IMAGE": bridge_image, "LIVE_POSTGRES_IMAGE": postgres_image,
           "LIVE_DB_PASSWORD": secrets.token_hex(16), "DOCKER_GID": str(docker_socket_gid()),
           "LIVE_HTTP_BIND": f"127.0.0.1:{port}", "LIVE_ENV_FILE": str(env_file)}
    stack = Stack(env)
    stack.url = f"http://127.0.0.1:{port}"
    try:
        stack("up", "-d", "--no-build", timeout=300)
        yield stack
    finally:
        print(stack("logs", "--no-color", "--tail", "40", check=False).stdout[-6000:])  # shown when a test fails
        stack("down", "-v", "--remove-orphans", "-t", "10", check=False, timeout=300)


def wait_for(url: str, seconds: float = 90) -> requests.Response:
    deadline = time.monotonic() + seconds
    while True:
        try:
            response = requests.get(url, timeout=3)
            if response.status_code == 200:
                return response
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer 200 within {seconds:.0f} s")
        time.sleep(0.5)


def test_the_image_runs_as_the_service_user_with_one_entrypoint(bridge_image, image_tools):
    config = image_tools.images.get(bridge_image).attrs["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["/opt/live/deploy/entrypoint.sh"] and config["Cmd"] == ["web"]
    assert config["Healthcheck"]["Test"] == ["CMD", "python", "/opt/live/deploy/healthcheck.py"]
    # Any `live` command through the entrypoint (here on the image's own SQLite default, in a throwaway volume).
    result = subprocess.run(["docker", "run", "--rm", "--tmpfs", "/var/lib/live:uid=10001,gid=10001", bridge_image,
                             "live", "db", "status"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "pending: 0001_initial" in result.stdout, result.stdout + result.stderr


def test_a_bad_setting_stops_every_role_with_one_line(bridge_image):
    for role in ("migrate", "worker", "web"):
        result = subprocess.run(["docker", "run", "--rm", "-e", "LIVE_PUBLIC_SCHEME=gopher", bridge_image, role],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, (role, result.stdout, result.stderr)
        assert result.stderr.strip() == ("GeoCat Live: configuration error: LIVE_PUBLIC_SCHEME must be http or "
                                         "https, got 'gopher'"), (role, result.stderr)


def test_the_compose_stack_migrates_once_serves_and_stops_cleanly(stack):
    wait_for(f"{stack.url}/healthz")
    ready = wait_for(f"{stack.url}/readyz").json()
    assert ready["checks"]["database"]["ok"] and ready["checks"]["docker"]["ok"], ready

    # The migration ran once, in its own container, before the others; it exited 0 and is not restarted.
    migrate = stack.container("migrate")
    assert (migrate["State"]["Status"], migrate["State"]["ExitCode"], migrate["RestartCount"]) == ("exited", 0, 0)
    assert stack.logs("migrate").count("applied: 0001_initial") == 1
    for service in ("web", "worker"):
        assert "applied migration" not in stack.logs(service), service
        container = stack.container(service)
        assert container["State"]["Running"] and container["Config"]["User"] == "10001:10001", service
        assert container["HostConfig"]["ReadonlyRootfs"], service
        # The image's HEALTHCHECK: /healthz for web, "running" for the worker.
        check = subprocess.run(["docker", "exec", container["Id"], "python", "/opt/live/deploy/healthcheck.py"],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, (service, check.stderr)
    assert "started (concurrency" in stack.logs("worker")

    # An operator's one-off command, in a container of its own with the same settings.
    created = stack("run", "--rm", "migrate", "live", "apikey", "create", "compose-test", "--scope", "whmcs")
    token = created.stdout.strip().splitlines()[-1]
    answer = requests.post(f"{stack.url}/whmcs/v1/test-connection", headers={"Authorization": f"Bearer {token}"},
                           timeout=10)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["ok"] is True and body["key"] == "compose-test" and body["docker"] == "ok", body

    # SIGTERM reaches gunicorn and the worker themselves (the entrypoint execs them): both exit 0, in time.
    stack("stop", "-t", "60", "web", "worker", timeout=120)
    for service in ("web", "worker"):
        state = stack.container(service)["State"]
        assert (state["Status"], state["ExitCode"]) == ("exited", 0), (service, state)
    assert "stopped" in stack.logs("worker").splitlines()[-1]
