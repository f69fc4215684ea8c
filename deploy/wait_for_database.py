"""Waits until the bridge's database accepts connections; run before the migration, the worker and gunicorn.

A container, or a systemd unit at boot, may start before PostgreSQL accepts connections. Instead of failing
its first start, the process waits up to ``LIVE_DB_WAIT_SECONDS`` (default 60) and then exits 1 with the
database's last error. A bad setting exits 2 with the same one line as the service. SQLite needs no wait.

    python deploy/wait_for_database.py          (from the checkout, or /opt/live in the image)
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config import load_settings  # noqa: E402 (the checkout is put on the path first)
from app.errors import ConfigError  # noqa: E402

ATTEMPT_TIMEOUT_SECONDS = 5
PEEWEE_OPTIONS = {"max_connections", "stale_timeout", "timeout", "autoconnect", "autorollback", "thread_safe",
                  "isolation_level", "register_unicode", "server_side_cursors", "field_types", "operations"}


def wait_seconds(env) -> float:
    raw = env.get("LIVE_DB_WAIT_SECONDS") or "60"
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"LIVE_DB_WAIT_SECONDS must be a number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"LIVE_DB_WAIT_SECONDS must be at least 0, got {value}")
    return value


def main() -> int:
    try:
        settings = load_settings()
        patience = wait_seconds(os.environ)
    except ConfigError as exc:
        sys.stderr.write(f"GeoCat Live: configuration error: {exc}\n")
        return 2
    if settings.database_url.startswith("sqlite"):
        return 0

    import psycopg2
    from playhouse.db_url import parse

    # Read the URL the way app/db.py does, then drop the options that are peewee's pool's, not libpq's.
    params = parse(settings.database_url.replace("postgres://", "postgresql://", 1))
    params = {k: v for k, v in params.items() if k not in PEEWEE_OPTIONS}
    params.setdefault("connect_timeout", ATTEMPT_TIMEOUT_SECONDS)
    deadline = time.monotonic() + patience
    announced = False
    while True:
        try:
            psycopg2.connect(**params).close()
            if announced:
                print("database is up", file=sys.stderr)
            return 0
        except psycopg2.OperationalError as exc:
            error = " ".join(str(exc).split())
        if time.monotonic() >= deadline:
            where = f"{params.get('host') or 'local socket'}:{params.get('port') or 5432}/{params.get('database')}"
            sys.stderr.write(f"GeoCat Live: the database at {where} did not answer within {patience:g} s: {error}\n")
            return 1
        if not announced:
            print(f"waiting for the database (up to {patience:g} s): {error}", file=sys.stderr)
            announced = True
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
