"""Fixtures of the reliability suite: a worker process to kill, engine and PostgreSQL helpers.

Disruptive tests (engine restart, PostgreSQL stop) always leave the service running again,
even when they fail: every disruption is undone in a ``finally`` that waits until it answers.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.live_service import settings_env

from app.config import PROJECT_ROOT, load_settings
from tests.support.waiting import wait_for

DOCKERD = "/usr/sbin/dockerd"
DOCKERD_LOG = "/tmp/dockerd-restart.log"


@pytest.fixture
def database_url(tmp_path):
    """SQLite only: these tests are long, one database kind is enough (the outage test makes its own PostgreSQL)."""
    return f"sqlite:///{tmp_path / 'live.db'}"


@pytest.fixture
def settings(database_url, config_repo, tmp_path):
    return load_settings({
        "LIVE_DATABASE_URL": database_url,
        "LIVE_CONFIG_REPO": str(config_repo),
        "LIVE_BASE_DOMAIN": "test.local",
        "LIVE_BACKUP_DIR": str(tmp_path / "backups"),
        "LIVE_HEALTH_TIMEOUT_SECONDS": "30",
        "LIVE_RETRY_BASE_SECONDS": "0.5",
        "LIVE_WORKER_POLL_SECONDS": "0.1",
        # Random kills may hit the same operation several times: allow for it.
        "LIVE_OPERATION_MAX_ATTEMPTS": "12",
        "LIVE_DEPLOYMENT": "r" + secrets.token_hex(4),
    })


def worker_env(settings) -> dict[str, str]:
    return settings_env(settings, **{
        "LIVE_WORKER_POLL_SECONDS": "0.1", "LIVE_RETRY_BASE_SECONDS": str(settings.retry_base_seconds),
        "LIVE_HEALTH_TIMEOUT_SECONDS": "30", "LIVE_OPERATION_MAX_ATTEMPTS": str(settings.operation_max_attempts),
        "LIVE_WORKER_CONCURRENCY": "4",
    })


def start_worker(settings, log_path: Path) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "live", "worker"], cwd=PROJECT_ROOT,
                                env=worker_env(settings), stdout=log, stderr=subprocess.STDOUT)


def stop_process(process: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


# -- the Docker engine ------------------------------------------------------
def docker_answers() -> bool:
    """Whether the engine answers now; a slow answer (an engine still starting on a busy machine) is a no."""
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def dockerd_pid() -> int | None:
    result = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True)
    pids = result.stdout.split()
    return int(pids[0]) if pids else None


def start_dockerd() -> None:
    """Start the engine the way .ci/run does, detached from the test process."""
    # Through a shell that exits at once: the engine is re-parented and outlives the tests.
    subprocess.run(["sh", "-c", f"DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 nohup {DOCKERD} >>{DOCKERD_LOG} 2>&1 </dev/null &"],
                   check=True, start_new_session=True)
    wait_for(docker_answers, timeout=90, interval=0.5, what="docker info after starting dockerd")


def stop_dockerd(timeout: float = 60) -> None:
    pid = dockerd_pid()
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), timeout=timeout, interval=0.2, what="dockerd exit")


def ensure_dockerd() -> None:
    """Whatever happened, leave an engine that answers."""
    if docker_answers():
        return
    if dockerd_pid() is None:
        start_dockerd()
    else:
        wait_for(docker_answers, timeout=90, interval=0.5, what="docker info")


def dockerd_restartable() -> str | None:
    """Why this machine's engine cannot be restarted by a test (None when it can)."""
    if os.geteuid() != 0:
        return "restarting dockerd needs root"
    if not os.path.exists(DOCKERD) or shutil.which("pidof") is None:
        return f"{DOCKERD} or pidof is missing"
    if dockerd_pid() is None:
        return "no dockerd process to restart (engine not run as a plain dockerd here)"
    return None
