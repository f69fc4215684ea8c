"""The image's start-up helpers on their own, without Docker: deploy/wait_for_database.py and deploy/healthcheck.py."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time

import pytest

from app.config import PROJECT_ROOT
from tests.support.live_service import free_port

WAIT = PROJECT_ROOT / "deploy" / "wait_for_database.py"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / "deploy" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_wait(tmp_path, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LIVE_")}
    environment.update(env)
    return subprocess.run([sys.executable, str(WAIT)], env=environment, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("bind, url", [
    ("0.0.0.0:8000", "http://127.0.0.1:8000/healthz"),
    ("[::]:8000", "http://127.0.0.1:8000/healthz"),
    (":9000", "http://127.0.0.1:9000/healthz"),
    ("10.1.2.3:8080", "http://10.1.2.3:8080/healthz"),
    ("[fd00::1]:8000", "http://[fd00::1]:8000/healthz"),
])
def test_the_healthcheck_asks_where_gunicorn_listens(bind, url):
    assert load("healthcheck").healthz_url(bind) == url


def fake_proc(root, *commands: list[str]):
    (root / "self").mkdir(parents=True)  # not a process: skipped
    for pid, argv in enumerate(commands, start=1):
        (root / str(pid)).mkdir()
        (root / str(pid) / "cmdline").write_bytes(b"\0".join(arg.encode() for arg in argv) + b"\0")
    return root


def test_the_healthcheck_finds_gunicorn_under_an_init_or_as_pid_1(tmp_path):
    healthcheck = load("healthcheck")
    gunicorn = ["/opt/live/venv/bin/python3", "/opt/live/venv/bin/gunicorn", "-c", "config/gunicorn.conf.py",
                "wsgi:app"]
    worker = ["/opt/live/venv/bin/python3", "/opt/live/venv/bin/flask", "--app", "wsgi", "live", "worker"]
    assert healthcheck.runs_gunicorn(fake_proc(tmp_path / "web", gunicorn))
    assert healthcheck.runs_gunicorn(fake_proc(tmp_path / "init", ["/sbin/docker-init", "--", "x"], gunicorn))
    # The worker's container: no gunicorn, so healthy while it runs (an argument naming gunicorn does not count).
    assert not healthcheck.runs_gunicorn(fake_proc(tmp_path / "worker", worker, ["sh", "-c", "echo gunicorn"]))


def test_sqlite_needs_no_wait(tmp_path):
    result = run_wait(tmp_path, LIVE_DATABASE_URL=f"sqlite:///{tmp_path / 'live.db'}")
    assert (result.returncode, result.stderr) == (0, "")


def test_an_unreachable_database_is_waited_for_then_named(tmp_path):
    port = free_port()  # nothing listens there
    started = time.monotonic()
    result = run_wait(tmp_path, LIVE_DATABASE_URL=f"postgresql://live:secret@127.0.0.1:{port}/live",
                      LIVE_DB_WAIT_SECONDS="2")
    assert result.returncode == 1
    assert 2 <= time.monotonic() - started < 30
    assert f"the database at 127.0.0.1:{port}/live did not answer within 2 s" in result.stderr
    assert "secret" not in result.stderr


def test_a_bad_setting_exits_2_with_one_line(tmp_path):
    result = run_wait(tmp_path, LIVE_DB_WAIT_SECONDS="soon")
    assert result.returncode == 2
    assert result.stderr == "GeoCat Live: configuration error: LIVE_DB_WAIT_SECONDS must be a number, got 'soon'\n"
