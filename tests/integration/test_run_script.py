"""scripts/run.sh (`make run`) supervises the worker and gunicorn: when one dies, it says so and stops the other."""
from __future__ import annotations

import os
import re
import signal
import subprocess

import pytest
import requests

from app.config import PROJECT_ROOT
from app.db import connect_database
from app.orders.heartbeat import worker_status
from tests.support.live_service import BIN, free_port, settings_env
from tests.support.waiting import wait_for

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


class RunScript:
    """scripts/run.sh with the test's settings on a free port, its output in ``log``."""

    def __init__(self, settings, tmp_path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "run.log"
        self.env = settings_env(settings, LIVE_WORKER_POLL_SECONDS="0.1", GUNICORN_BIND=f"127.0.0.1:{self.port}",
                                GUNICORN_WORKERS="1", VENV=str(BIN.parent))
        subprocess.run([str(BIN / "flask"), "--app", "wsgi", "live", "db", "upgrade"], cwd=PROJECT_ROOT, env=self.env,
                       check=True, capture_output=True, timeout=120)
        with open(self.log, "wb") as log:
            # A session of its own: the clean-up can stop whatever the script left.
            self.process = subprocess.Popen(["bash", "scripts/run.sh"], cwd=PROJECT_ROOT, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        found = wait_for(lambda: re.search(r"worker pid (\d+), gunicorn pid (\d+)", self.output()))
        self.worker, self.gunicorn = int(found.group(1)), int(found.group(2))
        wait_for(self.worker_ready)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def worker_ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/readyz", timeout=5).json()["checks"]["worker"]["ok"]
        except (requests.RequestException, ValueError, KeyError):
            return False

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


@pytest.fixture
def run_script(settings, tmp_path):
    script = RunScript(settings, tmp_path)
    yield script
    script.close()


def test_a_killed_worker_stops_gunicorn_and_the_script_says_so(run_script):
    os.kill(run_script.worker, signal.SIGKILL)
    assert run_script.process.wait(timeout=60) == 1, run_script.output()
    output = run_script.output()
    assert (f"run.sh: the worker (pid {run_script.worker}) was killed by signal 9 (KILL); stopping gunicorn, since no "
            "operation would run") in output
    assert f"run.sh: stopping gunicorn (pid {run_script.gunicorn})" in output
    assert gone(run_script.gunicorn)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{run_script.url}/healthz", timeout=5)


def test_a_killed_gunicorn_stops_the_worker_which_removes_its_heartbeat(run_script, settings):
    os.kill(run_script.gunicorn, signal.SIGKILL)
    assert run_script.process.wait(timeout=60) == 1, run_script.output()
    output = run_script.output()
    assert f"run.sh: gunicorn (pid {run_script.gunicorn}) was killed by signal 9 (KILL); stopping the worker" in output
    assert gone(run_script.worker)
    db = connect_database(settings.database_url)
    try:
        assert worker_status().age_seconds is None, "a worker stopped with SIGTERM deletes its heartbeat"
    finally:
        db.close()


def test_sigterm_stops_both_and_exits_zero(run_script):
    run_script.process.send_signal(signal.SIGTERM)
    assert run_script.process.wait(timeout=60) == 0, run_script.output()
    assert "run.sh: SIGTERM: stopping gunicorn and the worker" in run_script.output()
    assert gone(run_script.worker) and gone(run_script.gunicorn)
