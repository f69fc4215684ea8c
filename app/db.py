"""The database handle and the migration runner.

Models bind to ``database`` (a proxy); :func:`connect_database` points it at
SQLite or PostgreSQL from a URL. Migrations are ``playhouse.migrations``
scripts in ``migrations/``.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import peewee
from playhouse.db_url import parse
from playhouse.pool import PooledPostgresqlDatabase
from playhouse.migrations import MigrationError, Runner

from app.config import PROJECT_ROOT
from app.errors import ConfigError, LiveError

log = logging.getLogger(__name__)

database = peewee.DatabaseProxy()
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
POOL_SIZE = 32  # per process: gunicorn threads, worker threads and the scheduler together


class JSONField(peewee.TextField):
    """JSON stored as text: portable across SQLite and PostgreSQL."""

    def db_value(self, value):
        return None if value is None else json.dumps(value, sort_keys=True)

    def python_value(self, value):
        return None if value is None else json.loads(value)


def connect_database(url: str) -> peewee.Database:
    """Open ``url`` and bind the models' proxy to it."""
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        # WAL lets the API read while the worker writes; busy_timeout waits for
        # the writer instead of failing with "database is locked". Transactions
        # take the write lock up front (BEGIN IMMEDIATE): in WAL mode one that
        # reads first and writes later fails at once, without waiting, when
        # another process wrote meanwhile.
        db = peewee.SqliteDatabase(
            str(path),
            pragmas={"journal_mode": "wal", "busy_timeout": 10000, "foreign_keys": 1},
            check_same_thread=False,
            lock_type="IMMEDIATE",
        )
    else:
        # Pooled: opening a PostgreSQL connection costs ~30 ms, more than the request itself.
        # Connections broken by a database restart are detected and dropped on check-in.
        try:
            params = parse(url.replace("postgres://", "postgresql://", 1))
            params.setdefault("max_connections", POOL_SIZE)
            params.setdefault("stale_timeout", 300)
            params.setdefault("timeout", 10)  # wait for a free connection rather than fail at once
            db = PooledPostgresqlDatabase(**params)
        except Exception as exc:  # peewee raises plain errors for malformed URLs
            raise ConfigError(f"cannot use LIVE_DATABASE_URL: {exc}") from exc
    database.initialize(db)
    return db


def migration_runner(db: peewee.Database) -> Runner:
    return Runner(db, directory=str(MIGRATIONS_DIR), table_name="schema_migration")


def upgrade(db: peewee.Database) -> list[str]:
    """Apply every pending migration; returns the names applied."""
    runner = migration_runner(db)
    try:
        applied = runner.up()
    except MigrationError as exc:
        raise LiveError(f"migration failed: {exc}") from exc
    except peewee.OperationalError as exc:
        raise LiveError(f"cannot reach the database to migrate: {exc}") from exc
    for name in applied or []:
        log.info("applied migration %s", name)
    return list(applied or [])


def pending_migrations(db: peewee.Database) -> list[str]:
    return [m.name for m in migration_runner(db).status() if not m.applied]
