"""HEALTHCHECK of the bridge image, for every role the image runs (deploy/entrypoint.sh).

A container running gunicorn (the ``web`` role) is healthy when ``GET /healthz`` answers 200 on the port of
``GUNICORN_BIND``. The worker and the migration have no HTTP port; they are healthy while they run (the
engine already reports a container whose process exited). Exit 0 healthy, 1 unhealthy, as Docker expects.
"""
from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path


def runs_gunicorn(proc: Path = Path("/proc")) -> bool:
    """True when a process of this container is gunicorn (PID 1 after the entrypoint's exec, or under an init)."""
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # the process ended meanwhile, or is not ours to read
            continue
        if any(Path(arg.decode(errors="replace")).name == "gunicorn" for arg in argv[:2]):
            return True
    return False


def healthz_url(bind: str) -> str:
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def main() -> int:
    if not runs_gunicorn():
        return 0
    url = healthz_url(os.environ.get("GUNICORN_BIND", "127.0.0.1:8000"))
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
