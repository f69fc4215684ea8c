"""A Caddy process of the bench's own (``apt-get install caddy``; Caddy 2.6 on Debian 12).

Never the system service and never ports 80/443/2019: ``caddy run --config boot.json`` with a boot config
that sets the admin API to ``127.0.0.1:<free port>`` (Caddy 2.6 ignores ``CADDY_ADMIN``) and keeps Caddy's
default CA out of the system's trust store (:data:`SAFE_APPS`); data and configuration under one folder
(``XDG_DATA_HOME``, ``XDG_CONFIG_HOME``). It can be SIGKILLed and started again *empty* (same admin port
and folder), as after a crash.

A small copy of what the tests' helper does (the bench runs without pytest); when
``tests/support/caddy.py`` is on main, the bench may use that one instead.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import requests

from tests.support.live_service import free_port


#: Part of every boot config: Caddy's default CA ``local`` never installs its root into the system's trust store.
#: Caddy 2.6 does that (as root: a file in /usr/local/share/ca-certificates and update-ca-certificates, on every
#: configuration change) whenever its automatic HTTPS issues an internal certificate without an explicit CA,
#: which the bridge's TLS server with LIVE_TLS=internal and a base domain like *.local makes it do.
SAFE_APPS = {"apps": {"pki": {"certificate_authorities": {"local": {"install_trust": False}}}}}


class BenchCaddy:
    """One ``caddy run`` child process with everything under ``folder``; ``admin_url`` stays the same
    across restarts; stdout and stderr of every run go to ``folder/caddy.log``."""

    def __init__(self, folder: Path):
        binary = shutil.which("caddy")
        if binary is None:
            raise RuntimeError("caddy is not installed (apt-get install caddy)")
        self.binary = binary
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.admin_port = free_port()
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        self.log_path = self.folder / "caddy.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "BenchCaddy":
        """Run Caddy from a fresh boot config (the admin API, :data:`SAFE_APPS`) and wait until the API answers.

        Raises RuntimeError with the log's tail when Caddy exits or does not answer within ``timeout`` s.
        """
        boot = self.folder / "boot.json"
        boot.write_text(json.dumps({"admin": {"listen": f"127.0.0.1:{self.admin_port}"}, **SAFE_APPS}))
        env = {**os.environ, "XDG_DATA_HOME": str(self.folder / "data"), "XDG_CONFIG_HOME": str(self.folder / "config")}
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen([self.binary, "run", "--config", str(boot)], env=env, stdout=out,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"caddy exited with {self.process.returncode}: {self.log_tail()}")
            try:
                if requests.get(f"{self.admin_url}/config/", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:  # not listening yet
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"caddy did not answer in {timeout}s: {self.log_tail()}")

    def restart_empty(self) -> None:
        """SIGKILL (a crash: nothing saved), then start again from the boot config: none of the bridge's
        configuration is left (only :data:`SAFE_APPS`, as an operator's own configuration would be)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.start()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; nothing to do when it is not running."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, characters: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-characters:] if self.log_path.exists() else ""
