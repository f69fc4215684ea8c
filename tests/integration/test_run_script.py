"""scripts/run.sh (`make run`) supervises the worker, gunicorn and the embedded Caddy: when one dies, it says so and
stops the others. With `caddy` installed it starts a Caddy of its own as the ingress and points the bridge at it.

Every port is the test's own (free ports: the embedded Caddy's admin API and the ingress port are overridden), and
the embedded Caddy's folder is under the test's tmp_path, so the script runs next to other tests and never touches
127.0.0.1:2080, 8080 or var/caddy. Tests that need Caddy fail in CI without it (tests/conftest.py ``unavailable``).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import requests

from app.config import PROJECT_ROOT
from app.db import connect_database
from app.orders.heartbeat import worker_status
from tests.conftest import unavailable
from tests.support.live_service import BIN, settings_env
from tests.support.waiting import wait_for

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago (all held at once while chosen)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def environment_of(pid: int) -> dict[str, str]:
    """The environment process ``pid`` was started with (/proc/<pid>/environ)."""
    entries = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)


def commands_in_session(session: int) -> list[str]:
    """The command names (``comm``) of the live processes of one session (the script's: it leads its own)."""
    names = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        comm, fields = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
        if int(fields[3]) == session and fields[0] != "Z":
            names.append(comm)
    return names


def caddy_binary() -> str:
    binary = shutil.which("caddy")
    if binary is None:
        unavailable("caddy is not installed (apt-get install caddy)")
    return binary


def answers(url: str, **kwargs) -> requests.Response | None:
    """The answer to a GET of ``url``, or None when nothing answers. (A Response is false for 4xx and 5xx.)"""
    try:
        return requests.get(url, timeout=5, **kwargs)
    except requests.RequestException:
        return None


def status_of(url: str, **kwargs) -> int | None:
    """The status of a GET of ``url``, or None when nothing answers."""
    response = answers(url, **kwargs)
    return None if response is None else response.status_code


class RunScript:
    """scripts/run.sh with the test's settings on free ports, its output in ``log``.

    ``overrides`` change the environment; a value of None removes the variable (then the script's default applies).
    ``start`` False only prepares: :meth:`run_to_end` runs the script and waits for it to exit.
    """

    def __init__(self, settings, tmp_path: Path, start: bool = True, **overrides: str | None):
        self.port, admin_port, self.ingress_port = free_ports(3)
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin = f"127.0.0.1:{admin_port}"
        self.caddy_dir = tmp_path / "caddy"
        self.log = tmp_path / "run.log"
        self.env = settings_env(settings, LIVE_WORKER_POLL_SECONDS="0.1", GUNICORN_BIND=f"127.0.0.1:{self.port}",
                                GUNICORN_WORKERS="1", VENV=str(BIN.parent), LIVE_EMBEDDED_CADDY_ADMIN=self.admin,
                                LIVE_INGRESS_HTTP_PORT=str(self.ingress_port), LIVE_EMBEDDED_CADDY_DIR=str(self.caddy_dir))
        for name, value in overrides.items():
            if value is None:
                self.env.pop(name, None)
            else:
                self.env[name] = value
        self.process: subprocess.Popen | None = None
        if start:
            self.start()

    def start(self) -> None:
        subprocess.run([str(BIN / "flask"), "--app", "wsgi", "live", "db", "upgrade"], cwd=PROJECT_ROOT, env=self.env,
                       check=True, capture_output=True, timeout=120)
        with open(self.log, "wb") as log:
            # A session of its own: the clean-up can stop whatever the script left.
            self.process = subprocess.Popen(["bash", "scripts/run.sh"], cwd=PROJECT_ROOT, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        found = wait_for(lambda: re.search(r"worker pid (\d+), gunicorn pid (\d+)(?:, caddy pid (\d+))?\)",
                                           self.output()), what="run.sh's line with the pids")
        self.worker, self.gunicorn = int(found.group(1)), int(found.group(2))
        self.caddy = int(found.group(3)) if found.group(3) else None
        wait_for(self.worker_ready, what="a worker heartbeat in /readyz")

    def run_to_end(self) -> int:
        """Runs the script until it exits on its own (it must, within a minute); its exit status."""
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(["bash", "scripts/run.sh"], cwd=PROJECT_ROOT, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        return self.process.wait(timeout=60)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def readyz(self) -> dict:
        response = answers(f"{self.url}/readyz")
        try:
            return response.json()["checks"] if response is not None else {}
        except ValueError:
            return {}

    def worker_ready(self) -> bool:
        return self.readyz().get("worker", {}).get("ok", False)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


@pytest.fixture
def start_script(settings, tmp_path):
    """``start_script(**overrides)`` starts scripts/run.sh (see :class:`RunScript`); killed at the end."""
    scripts: list[RunScript] = []

    def start(**overrides: str | None) -> RunScript:
        scripts.append(RunScript(settings, tmp_path, **overrides))
        return scripts[-1]

    yield start
    for script in scripts:
        script.close()


@pytest.fixture
def run_script(start_script):
    return start_script()


def also_caddy(names: str, script: RunScript) -> str:
    """What the script says it stops: ``names``, and Caddy when it started one (caddy installed)."""
    return f"{names} and Caddy" if script.caddy else names


def test_a_killed_worker_stops_gunicorn_and_the_script_says_so(run_script):
    os.kill(run_script.worker, signal.SIGKILL)
    assert run_script.process.wait(timeout=60) == 1, run_script.output()
    output = run_script.output()
    assert (f"run.sh: the worker (pid {run_script.worker}) was killed by signal 9 (KILL); stopping "
            f"{also_caddy('gunicorn', run_script)}, since no operation would run") in output
    assert f"run.sh: stopping gunicorn (pid {run_script.gunicorn})" in output
    assert gone(run_script.gunicorn)
    assert run_script.caddy is None or gone(run_script.caddy)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{run_script.url}/healthz", timeout=5)


def test_a_killed_gunicorn_stops_the_worker_which_removes_its_heartbeat(run_script, settings):
    os.kill(run_script.gunicorn, signal.SIGKILL)
    assert run_script.process.wait(timeout=60) == 1, run_script.output()
    output = run_script.output()
    assert (f"run.sh: gunicorn (pid {run_script.gunicorn}) was killed by signal 9 (KILL); stopping "
            f"{also_caddy('the worker', run_script)}") in output
    assert gone(run_script.worker)
    assert run_script.caddy is None or gone(run_script.caddy)
    db = connect_database(settings.database_url)
    try:
        assert worker_status().age_seconds is None, "a worker stopped with SIGTERM deletes its heartbeat"
    finally:
        db.close()


def test_sigterm_stops_both_and_exits_zero(run_script):
    run_script.process.send_signal(signal.SIGTERM)
    assert run_script.process.wait(timeout=60) == 0, run_script.output()
    stopping = "gunicorn, the worker and Caddy" if run_script.caddy else "gunicorn and the worker"
    assert f"run.sh: SIGTERM: stopping {stopping}" in run_script.output()
    assert gone(run_script.worker) and gone(run_script.gunicorn)
    assert run_script.caddy is None or gone(run_script.caddy)


# -- the embedded Caddy ------------------------------------------------------------------------------------------

def test_the_embedded_caddy_is_the_ingress_the_worker_programs(start_script, settings):
    caddy_binary()
    # LIVE_BASE_DOMAIN unset: the script's default, localhost. A fast resync: the worker programs Caddy sooner.
    script = start_script(LIVE_BASE_DOMAIN=None, LIVE_INGRESS_RESYNC_SECONDS="1")
    assert script.caddy, script.output()
    assert f"customer URLs: http://<instance>.localhost:{script.ingress_port}/<app>" in script.output()
    # Its admin API answers on the loopback address it was given, booted from the file the script wrote there.
    assert json.loads((script.caddy_dir / "boot.json").read_text()) == {"admin": {"listen": script.admin}}
    config = requests.get(f"http://{script.admin}/config/", timeout=5)
    assert config.status_code == 200, config.text
    assert (script.caddy_dir / "data").is_dir() and (script.caddy_dir / "config").is_dir()
    # The worker and gunicorn got the ingress settings; the ones the test set are kept.
    expected = {"LIVE_CADDY_ADMIN_URL": f"http://{script.admin}", "LIVE_TLS": "off", "LIVE_BASE_DOMAIN": "localhost",
                "LIVE_INGRESS_BIND": "127.0.0.1", "LIVE_INGRESS_HTTP_PORT": str(script.ingress_port),
                "LIVE_INGRESS_ASK_URL": f"http://127.0.0.1:{script.port}/ingress/v1/ask"}
    for pid in (script.worker, script.gunicorn):
        environment = environment_of(pid)
        assert {name: environment.get(name) for name in expected} == expected
    # ... and the line for the CLI in another terminal names them all.
    export = re.search(r"^For the CLI in another terminal to print these URLs: export (.*)$", script.output(), re.M)
    assert export, script.output()
    assert expected.items() <= dict(item.split("=", 1) for item in export.group(1).split()).items()
    # The worker programs that Caddy: the bridge's server listens on the ingress port, where a Host no order holds
    # gets the bridge's 404; /readyz sees Caddy; the ask URL Caddy was given answers (404 for that name).
    def bridge_server() -> dict | None:
        server = requests.get(f"http://{script.admin}/config/apps/http/servers/live-{settings.deployment}",
                              timeout=5).json()  # null until the worker wrote it
        return server if isinstance(server, dict) and "listen" in server else None

    server = wait_for(bridge_server, what="the bridge's server in Caddy")
    assert server["listen"] == [f"127.0.0.1:{script.ingress_port}"], server
    unknown = wait_for(lambda: status_of(f"http://127.0.0.1:{script.ingress_port}/geoserver",
                                         headers={"Host": "nobody.localhost"}), what="the ingress port answering")
    assert unknown == 404
    wait_for(lambda: script.readyz().get("ingress", {}).get("ok"), what="/readyz: ingress ok")
    ask = requests.get(expected["LIVE_INGRESS_ASK_URL"], params={"domain": "nobody.localhost"}, timeout=5)
    assert ask.status_code == 404


def test_a_killed_caddy_stops_the_worker_and_gunicorn(start_script):
    caddy_binary()
    script = start_script()
    os.kill(script.caddy, signal.SIGKILL)
    assert script.process.wait(timeout=60) == 1, script.output()
    output = script.output()
    assert (f"run.sh: Caddy (pid {script.caddy}) was killed by signal 9 (KILL); stopping gunicorn and the worker, "
            "since no customer URL would open") in output
    assert f"run.sh: the end of its log ({script.caddy_dir / 'caddy.log'}):" in output
    assert f"run.sh: stopping gunicorn (pid {script.gunicorn})" in output
    assert f"run.sh: stopping worker (pid {script.worker})" in output
    assert gone(script.gunicorn) and gone(script.worker)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{script.url}/healthz", timeout=5)


def test_a_caddy_admin_url_of_the_users_starts_no_embedded_caddy(start_script):
    caddy_binary()  # without caddy no Caddy would start anyway, and this would prove nothing
    users = f"http://127.0.0.1:{free_ports(1)[0]}"
    script = start_script(LIVE_CADDY_ADMIN_URL=users)
    assert script.caddy is None
    assert f"Ingress: the Caddy at {users} (LIVE_CADDY_ADMIN_URL; no embedded Caddy)" in script.output()
    assert "caddy" not in commands_in_session(script.process.pid)
    assert status_of(f"http://{script.admin}/config/") is None, "nothing listens on the embedded admin address"
    assert not (script.caddy_dir / "boot.json").exists()
    # The bridge uses the user's Caddy, with the bridge's own defaults for the rest (none of the script's).
    environment = environment_of(script.worker)
    assert environment["LIVE_CADDY_ADMIN_URL"] == users
    assert "LIVE_TLS" not in environment and "LIVE_INGRESS_ASK_URL" not in environment


def test_without_caddy_the_script_says_so_and_runs_without_ingress(start_script):
    script = start_script(CADDY="/nonexistent/caddy")
    assert script.caddy is None
    assert ("note: caddy is not installed, so there is no ingress: orders get only their 127.0.0.1 ports "
            "(apt-get install caddy, then make run again)") in script.output()
    assert "LIVE_CADDY_ADMIN_URL" not in environment_of(script.worker)
    ingress = script.readyz()["ingress"]
    assert ingress["ok"] and ingress["detail"].startswith("off"), ingress


@pytest.mark.parametrize("taken", ["LIVE_EMBEDDED_CADDY_ADMIN", "LIVE_INGRESS_HTTP_PORT"])
def test_a_taken_port_stops_the_script_before_anything_starts(settings, tmp_path, taken):
    caddy_binary()
    script = RunScript(settings, tmp_path, start=False)
    port = int(script.admin.rsplit(":", 1)[1]) if taken == "LIVE_EMBEDDED_CADDY_ADMIN" else script.ingress_port
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        try:
            assert script.run_to_end() == 1, script.output()
        finally:
            script.close()
    output = script.output()
    assert (f"run.sh: cannot start the embedded Caddy: port {port} of 127.0.0.1 is not available "
            "(Address already in use)") in output
    assert f"run.sh: set {taken} to a free port" in output
    assert "worker pid" not in output and not (script.caddy_dir / "boot.json").exists()
