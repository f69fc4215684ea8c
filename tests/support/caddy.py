"""Real Caddy processes for tests (``apt-get install caddy``; Caddy 2.6 on Debian 12).

:class:`CaddyProcess` runs ``caddy run`` as a child process with its data and configuration under one
folder (``XDG_DATA_HOME``, ``XDG_CONFIG_HOME``), never the system service, never ports 80/443/2019:

- by default with a boot config that only sets the admin API to ``127.0.0.1:<free port>``
  (``{"admin": {"listen": ...}}``; Caddy 2.6 ignores ``CADDY_ADMIN``), ready once that API answers;
- or with any config file and adapter (the Caddyfile of ``tests/api/test_front_proxy.py``), ready once
  the given check passes.

It can be SIGKILLed and restarted *empty* (a fresh boot config, the same admin port and data folder, so
the internal CA's root stays the same), and it fetches ``https://<hostname>:<port><path>`` from
127.0.0.1 with that hostname as SNI and Host, verifying the certificate against Caddy's internal CA
(:meth:`CaddyProcess.https_get`), or over plain HTTP (:meth:`CaddyProcess.http_get`).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import requests
import urllib3

from app.ingress.caddy import INTERNAL_CA
from tests.support.live_service import free_port
from tests.support.waiting import wait_for

log = logging.getLogger(__name__)


def caddy_binary() -> str:
    """The ``caddy`` executable's path; skips the test locally (fails it with CI=true) when it is missing."""
    from tests.conftest import unavailable

    binary = shutil.which("caddy")
    if binary is None:
        unavailable("caddy is not installed (apt-get install caddy)")
    return binary


def answers_ok(url: str) -> bool:
    """Whether a GET of ``url`` answers 200 within a second (False when refused or slower)."""
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:  # refused: not listening yet
        return False


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status code, headers (case-insensitive) and the body decoded as UTF-8."""

    status: int
    headers: Mapping[str, str]
    text: str


class CaddyProcess:
    """One ``caddy run`` child process with everything under ``folder``.

    ``admin_url`` is ``http://127.0.0.1:<admin_port>`` (fixed for the object's life, also across restarts);
    ``data_dir`` is its ``XDG_DATA_HOME``; ``log_path`` collects stdout and stderr of every run.
    """

    def __init__(self, folder: Path, binary: str | None = None):
        self.binary = binary or caddy_binary()
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.folder / "data"
        self.config_dir = self.folder / "config"
        self.log_path = self.folder / "caddy.log"
        self.admin_port = free_port()
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        self.process: subprocess.Popen | None = None

    # -- process life -------------------------------------------------------------------------------------

    def start(self, config: Path | None = None, adapter: str | None = None, env: Mapping[str, str] | None = None,
              ready: Callable[[], bool] | None = None, timeout: float = 30.0) -> "CaddyProcess":
        """Run Caddy and wait until it is ready; returns self.

        Without ``config``, a fresh boot config (admin API on ``admin_url``, nothing else) is written and
        readiness is the admin API answering. With ``config`` (and ``adapter``, e.g. ``"caddyfile"``),
        ``ready`` decides (default: the admin API answers). ``env`` is added to this process's environment.
        Raises AssertionError with the log's tail when Caddy exits or is not ready within ``timeout`` s.
        """
        assert self.process is None or self.process.poll() is not None, "caddy is already running"
        if config is None:
            config = self.folder / "boot.json"
            config.write_text(json.dumps({"admin": {"listen": f"127.0.0.1:{self.admin_port}"}}))
        command = [self.binary, "run", "--config", str(config)] + (["--adapter", adapter] if adapter else [])
        # PATH is an empty folder: Caddy installs a CA root whose install_trust is not false (the default CA
        # "local" an internal issuer uses) into the host's trust store with `tee` and `update-ca-certificates`
        # (smallstep/truststore); without them it only logs a warning, and the host's trust store stays as it is.
        no_tools = self.folder / "no-tools"
        no_tools.mkdir(exist_ok=True)
        environment = {**os.environ, "XDG_DATA_HOME": str(self.data_dir), "XDG_CONFIG_HOME": str(self.config_dir),
                       "PATH": str(no_tools), **(env or {})}
        with open(self.log_path, "ab") as output:
            self.process = subprocess.Popen(command, env=environment, stdout=output, stderr=subprocess.STDOUT)
        check = ready or self.admin_answers

        def started() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"caddy exited with {self.process.returncode}: {self.log_tail()}")
            return check()

        try:
            wait_for(started, timeout=timeout, interval=0.1, what="caddy ready")
        except AssertionError:
            self.stop()
            raise AssertionError(f"caddy did not start: {self.log_tail()}") from None
        log.info("caddy %s started (admin %s)", self.process.pid, self.admin_url)
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing is saved on the way out."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def restart_empty(self) -> None:
        """Kill (if running), then start again from a fresh boot config: same admin port, same data folder."""
        self.kill()
        self.start()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, characters: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-characters:] if self.log_path.exists() else ""

    # -- admin API ----------------------------------------------------------------------------------------

    def admin_answers(self) -> bool:
        return answers_ok(f"{self.admin_url}/config/")

    def config(self, path: str = "") -> object:
        """``GET /config/<path>`` as JSON (``None`` for a missing path)."""
        answer = requests.get(f"{self.admin_url}/config/{path}", timeout=10)
        answer.raise_for_status()
        return answer.json()

    def load(self, config: dict) -> None:
        """``POST /load``: replaces the whole configuration (keep ``admin`` in it to keep the admin port)."""
        answer = requests.post(f"{self.admin_url}/load", json=config, timeout=30)
        assert answer.status_code == 200, answer.text

    # -- requests through Caddy ---------------------------------------------------------------------------

    @property
    def root_cert(self) -> Path:
        """The internal CA's root certificate (exists once a config using that CA was loaded)."""
        return self.data_dir / "caddy" / "pki" / "authorities" / INTERNAL_CA / "root.crt"

    def https_get(self, hostname: str, port: int, path: str, headers: Mapping[str, str] | None = None,
                  host: str | None = None, ca_certs: str | None = None, timeout: float = 10.0) -> Answer:
        """GET ``https://<hostname>:<port><path>`` from 127.0.0.1: SNI ``hostname``, the certificate verified
        against the internal CA (``ca_certs`` another bundle) for ``hostname``.

        The Host header is ``host`` or, as a browser sends it, ``hostname[:port]`` (no port for 443).
        No redirects are followed and nothing is retried, with one exception: Caddy 2.6's internal issuer
        dates a certificate from the instant it signs it (no backdating), and OpenSSL checks that date against
        ``time()``, the kernel's coarse clock, which can still be a tick behind. A certificate issued this very
        second can thus be "not yet valid" for a moment: that one error is retried for up to 3 s.
        Raises urllib3's errors (SSLError for a certificate that does not verify, a failed handshake)."""
        pool = urllib3.HTTPSConnectionPool("127.0.0.1", port, server_hostname=hostname, assert_hostname=hostname,
                                           cert_reqs="CERT_REQUIRED", ca_certs=ca_certs or str(self.root_cert),
                                           retries=False, timeout=timeout)
        host = host or (hostname if port == 443 else f"{hostname}:{port}")

        def attempt() -> Answer | None:
            try:
                return self._get(pool, path, headers, host)
            except urllib3.exceptions.SSLError as exc:
                if "certificate is not yet valid" not in str(exc):
                    raise
                return None

        with pool:
            return wait_for(attempt, timeout=3, interval=0.05, what="a certificate issued this second to be valid")

    def http_get(self, hostname: str, port: int, path: str, headers: Mapping[str, str] | None = None,
                 host: str | None = None, timeout: float = 10.0) -> Answer:
        """GET ``http://<hostname>:<port><path>`` from 127.0.0.1 (Host as in :meth:`https_get`, default port 80)."""
        with urllib3.HTTPConnectionPool("127.0.0.1", port, retries=False, timeout=timeout) as pool:
            return self._get(pool, path, headers, host or (hostname if port == 80 else f"{hostname}:{port}"))

    @staticmethod
    def _get(pool: urllib3.HTTPConnectionPool, path: str, headers: Mapping[str, str] | None, host: str) -> Answer:
        answer = pool.request("GET", path, headers={**(headers or {}), "Host": host}, redirect=False,
                              preload_content=True)
        return Answer(status=answer.status, headers=answer.headers, text=answer.data.decode("utf-8", "replace"))
