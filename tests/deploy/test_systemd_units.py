"""The systemd units of config/systemd/ pass `systemd-analyze verify` and keep their hardening.

`verify` loads the units as systemd would, with their dependencies, and checks that each command exists
and is executable. It runs against a throwaway root (``--root``) holding the units, the layout they name
(/opt/live/venv/bin/{python,flask,gunicorn}, /bin/kill) and the host's own unit library (for
sysinit.target, network-online.target...), so the host needs no /opt/live. `verify` only *logs* an
unknown key or a bad value and still exits 0, so any output at all is a failure here.
"""
from __future__ import annotations

import configparser
import json
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from app.config import PROJECT_ROOT
from tests.conftest import unavailable

UNITS_DIR = PROJECT_ROOT / "config" / "systemd"
UNITS = ("live-migrate.service", "live-worker.service", "live-web.service")
HOST_UNIT_LIBRARY = next((p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir()),
                         None)
# systemd-analyze security's overall exposure, 0 (locked down) to 10 (unprotected); the units score 1.9.
MAX_EXPOSURE = 2.5


@pytest.fixture(scope="module")
def analyze():
    path = shutil.which("systemd-analyze")
    if not path or HOST_UNIT_LIBRARY is None:
        unavailable("systemd-analyze is not installed (apt-get install systemd)")
    return path


@pytest.fixture
def root(tmp_path):
    """A file system root with the units installed and every command they run present."""
    shutil.copytree(HOST_UNIT_LIBRARY, tmp_path / "usr/lib/systemd/system", symlinks=True)
    system = tmp_path / "etc/systemd/system"
    system.mkdir(parents=True)
    commands = set()
    for unit in UNITS:
        shutil.copy(UNITS_DIR / unit, system / unit)
        for line in (UNITS_DIR / unit).read_text().splitlines():
            if re.match(r"^Exec\w+=", line):
                commands.add(line.split("=", 1)[1].lstrip("-@:+!").split()[0])
    for command in commands:
        stub = tmp_path / command.lstrip("/")
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
    return tmp_path


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(UNITS_DIR / name)
    return parser


def test_the_three_units_verify_without_a_word(analyze, root):
    result = subprocess.run([analyze, "verify", f"--root={root}", *UNITS], capture_output=True, text=True,
                            timeout=60)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not output, output


def test_verify_would_catch_a_misspelt_key(analyze, root):
    """The check above means something: a typo in a unit makes verify speak (and exit 0)."""
    path = root / "etc/systemd/system/live-web.service"
    path.write_text(path.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict"))
    result = subprocess.run([analyze, "verify", f"--root={root}", "live-web.service"], capture_output=True,
                            text=True, timeout=60)
    assert "Unknown key" in result.stdout + result.stderr


@pytest.mark.parametrize("name", UNITS)
def test_hardening_keeps_exposure_low(analyze, root, name):
    result = subprocess.run([analyze, "security", "--offline=yes", f"--root={root}",
                             f"--threshold={int(MAX_EXPOSURE * 10)}", "--no-pager", name],
                            capture_output=True, text=True, timeout=60)
    score = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert score, result.stdout + result.stderr
    assert result.returncode == 0 and float(score.group(1)) <= MAX_EXPOSURE, result.stdout[-2000:]


def test_web_and_worker_start_after_the_migration_and_require_it():
    for name in ("live-web.service", "live-worker.service"):
        section = unit(name)["Unit"]
        assert "live-migrate.service" in section["Requires"].split(), name
        assert "live-migrate.service" in section["After"].split(), name
    migrate = unit("live-migrate.service")["Service"]
    # Active after one run: a restart of the worker or the web service does not migrate again.
    assert (migrate["Type"], migrate["RemainAfterExit"]) == ("oneshot", "yes")
    assert migrate["ExecStart"].endswith("live db upgrade")


def test_the_worker_restarts_always_and_gets_time_to_finish_operations():
    service = unit("live-worker.service")["Service"]
    assert service["Restart"] == "always"
    assert service["KillMode"] == "mixed" and service["KillSignal"] == "SIGTERM"
    # Longer than a deploy may wait for a service to become healthy (LIVE_HEALTH_TIMEOUT_SECONDS, 300 s).
    assert service["TimeoutStopSec"] == "6min"
    assert service["ExecStart"].endswith("live worker")


def test_every_unit_runs_as_the_service_user_with_the_shared_environment_file():
    for name in UNITS:
        service = unit(name)["Service"]
        assert (service["User"], service["Group"]) == ("live", "live"), name
        assert service["EnvironmentFile"] == "/etc/live/live.env", name
        assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict", name
        assert service["StateDirectory"] == "live", name


# -- the units for real: systemd as PID 1 in a container -------------------------------------------------------
SYSTEMD_IMAGE = "live-test/systemd-host:bookworm"


def _exec(container: str, *command: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", container, *command], capture_output=True, text=True, timeout=timeout)


def _wait(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {seconds:.0f} s")
        time.sleep(0.5)


@pytest.fixture
def systemd_host(bridge_image, postgres_image, tmp_path):
    """A container booted with systemd, the bridge in /opt/live, the units installed, PostgreSQL beside it.

    systemd needs CAP_SYS_ADMIN (namespaces, mounts for ProtectSystem=...) and the host's cgroups; the
    container gets those, no more (no --privileged)."""
    from tests.deploy.conftest import docker_socket_gid, run_script

    run_script("-c", f"docker build -q --build-arg BRIDGE_IMAGE={bridge_image} "
                     f"--build-arg DOCKER_GID={docker_socket_gid()} -t {SYSTEMD_IMAGE} tests/images/systemd",
               timeout=600)
    suffix = secrets.token_hex(4)
    network, database, host = f"livesd{suffix}", f"livesd{suffix}-db", f"livesd{suffix}-host"
    password = secrets.token_hex(12)
    env_file = tmp_path / "live.env"
    env_file.write_text(f"LIVE_DATABASE_URL=postgresql://live:{password}@{database}:5432/live\n"
                        f"LIVE_DEPLOYMENT=t{suffix}\nLIVE_BACKUP_DIR=/var/lib/live/backups\n")
    env_file.chmod(0o600)
    docker = ["docker"]
    try:
        subprocess.run([*docker, "network", "create", network], check=True, capture_output=True)
        subprocess.run([*docker, "run", "-d", "--name", database, "--network", network, "-e", "POSTGRES_USER=live",
                        "-e", f"POSTGRES_PASSWORD={password}", "-e", "POSTGRES_DB=live", postgres_image],
                       check=True, capture_output=True)
        units = [arg for name in UNITS for arg in ("-v", f"{UNITS_DIR / name}:/etc/systemd/system/{name}:ro")]
        subprocess.run([*docker, "run", "-d", "--name", host, "--network", network, "--cap-add", "SYS_ADMIN",
                        "--security-opt", "seccomp=unconfined", "--tmpfs", "/run", "--tmpfs", "/run/lock",
                        "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro", "-v", "/var/run/docker.sock:/var/run/docker.sock",
                        "-v", f"{env_file}:/etc/live/live.env:ro", *units, SYSTEMD_IMAGE],
                       check=True, capture_output=True)
        state = ""

        def booted():
            nonlocal state
            state = _exec(host, "systemctl", "is-system-running").stdout.strip()
            return state in ("running", "degraded")

        try:
            _wait(booted, 60, "systemd did not finish booting")
        except AssertionError:
            unavailable(f"systemd does not boot in a container on this machine (state {state!r})")
        yield host
    finally:
        subprocess.run([*docker, "rm", "-f", "-v", host, database], capture_output=True)
        subprocess.run([*docker, "network", "rm", network], capture_output=True)


@pytest.mark.image_build
@pytest.mark.timeout(1200)
def test_the_units_run_hardened_under_systemd_and_deploy_in_order(systemd_host):
    host = systemd_host
    start = _exec(host, "systemctl", "start", "live-worker.service", "live-web.service", timeout=180)
    assert start.returncode == 0, start.stderr + _exec(host, "journalctl", "--no-pager", "-n", "60").stdout

    def ready():
        probe = _exec(host, "/opt/live/venv/bin/python", "-c", "import urllib.request; print(urllib.request.urlopen("
                      "'http://127.0.0.1:8000/readyz', timeout=3).read().decode())")
        return probe.returncode == 0 and json.loads(probe.stdout)

    checks = _wait(ready, 60, "/readyz did not answer 200")["checks"]
    # The database, and the engine through the socket: the service user's `docker` group works under the hardening.
    assert checks["database"]["ok"] and checks["docker"]["ok"], checks
    assert _exec(host, "journalctl", "-u", "live-migrate", "--no-pager").stdout.count("applied: 0001_initial") == 1

    # The hardening is in force for the running processes: read-only root, private /tmp, a seccomp filter.
    for unit_name in ("live-web", "live-worker"):
        pid = _exec(host, "systemctl", "show", "-p", "MainPID", "--value", unit_name).stdout.strip()
        status = _exec(host, "cat", f"/proc/{pid}/status").stdout
        assert re.search(r"^NoNewPrivs:\s+1$", status, re.M) and re.search(r"^Seccomp:\s+2$", status, re.M)
        mounts = [line.split() for line in _exec(host, "cat", f"/proc/{pid}/mountinfo").stdout.splitlines()]
        options = {fields[4]: fields[5].split(",") for fields in mounts}
        assert "ro" in options["/"] and "rw" in options["/var/lib/live"], (unit_name, options)

    # A crashed worker comes back (Restart=always) without migrating again.
    worker_pid = _exec(host, "systemctl", "show", "-p", "MainPID", "--value", "live-worker").stdout.strip()
    _exec(host, "sh", "-c", f"kill -KILL {worker_pid}")
    _wait(lambda: _exec(host, "systemctl", "show", "-p", "NRestarts", "--value", "live-worker").stdout.strip() == "1"
          and _exec(host, "systemctl", "is-active", "live-worker").stdout.strip() == "active", 30,
          "the worker was not restarted")
    assert _exec(host, "journalctl", "-u", "live-migrate", "--no-pager").stdout.count("Starting live-migrate") == 1

    # A deploy: `systemctl restart live-migrate` stops web and worker, migrates, then starts the worker, then web.
    cursor = _exec(host, "journalctl", "-n", "0", "--show-cursor", "--no-pager").stdout.split("cursor: ")[-1].strip()
    restart = _exec(host, "systemctl", "restart", "live-migrate.service", timeout=180)
    assert restart.returncode == 0, restart.stderr
    # systemctl returns once the migration finished; the worker and web start jobs follow it.
    _wait(lambda: _exec(host, "systemctl", "is-active", "live-migrate", "live-worker", "live-web").stdout.split()
          == ["active"] * 3, 60, "the three units were not active again")
    log = _exec(host, "journalctl", "_PID=1", "-o", "cat", "--no-pager", f"--after-cursor={cursor}").stdout.splitlines()

    def at(prefix: str) -> int:
        found = [i for i, line in enumerate(log) if line.startswith(prefix)]
        assert found, f"systemd did not log {prefix!r}: {log}"
        return found[0]

    assert at("Stopped live-web.service") < at("Finished live-migrate.service"), log
    assert at("Stopped live-worker.service") < at("Finished live-migrate.service"), log
    assert at("Finished live-migrate.service") < at("Started live-worker.service") < at("Started live-web.service"), log
