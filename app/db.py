"""The database handle and the migration runner.

Models bind to ``database`` (a proxy); :func:`connect_database` points it at
SQLite or PostgreSQL from a URL. Migrations are ``playhouse.migrations``
scripts in ``migrations/``.
"""
from __future__ import annotations

import itertools
import json
import logging
import random
import re
import time
import weakref
from pathlib import Path
from typing import Any, Callable, TypeVar
from urllib.parse import unquote

import peewee
from playhouse.db_url import parse
from playhouse.pool import PooledPostgresqlDatabase
from playhouse.migrations import MigrationError, Runner

from app.config import PROJECT_ROOT
from app.errors import ConfigError, LiveError

log = logging.getLogger(__name__)

database = peewee.DatabaseProxy()
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
MAX_ID = 2**31 - 1  # the largest id (and WHMCS service id) a row can have: ids are 32-bit in the database
POOL_SIZE = 32  # per process: gunicorn threads, worker threads and the scheduler together
#: A pooled connection idle for longer than this (seconds) is checked with a round trip (SELECT 1) when taken
#: from the pool; one returned more recently is taken as it is (see :class:`PostgresPool`).
POOL_VERIFY_IDLE_SECONDS = 1.0
SQLITE_BUSY_TIMEOUT_MS = 30_000
# PostgreSQL SQLSTATEs that mean "run the transaction again" (PostgreSQL docs, Appendix A):
# serialization_failure and deadlock_detected.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
#: A prepared statement the server no longer has (26000), whose cached plan a schema change made unusable (0A000,
#: "cached plan must not change result type"), or that the server has although this process forgot it after an
#: error inside a transaction (42P05): deallocate it if needed and prepare it again.
_STALE_PREPARED_SQLSTATES = frozenset({"26000", "0A000", "42P05"})
TRANSACTION_ATTEMPTS = 8

T = TypeVar("T")


class JSONField(peewee.TextField):
    """JSON stored as text: portable across SQLite and PostgreSQL."""

    def db_value(self, value):
        return None if value is None else json.dumps(value, sort_keys=True)

    def python_value(self, value):
        return None if value is None else json.loads(value)


class PostgresPool(PooledPostgresqlDatabase):
    """peewee's PostgreSQL pool, without a round trip per checkout for connections in steady use.

    peewee checks every connection it takes from the pool with ``SELECT 1``, holding the pool's lock: one
    network round trip per request, during which no other thread of the process can take a connection. Here
    a connection returned less than :data:`POOL_VERIFY_IDLE_SECONDS` ago, idle (no transaction open) and not
    marked closed by the driver, is taken as it is; an older one is still checked. A database restart is thus
    still noticed on the first checkout after an idle second; under steady load, a request that gets a
    connection the restart broke fails (peewee's OperationalError, a 503), and the driver marks that
    connection closed so it is not pooled again.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._returned_at: dict[int, float] = {}  # conn_key -> time.monotonic() of its last check-in
        # connection -> names of the statements prepared on it. Weak keys: peewee's pool drops a connection it finds
        # closed without telling us, and a new connection may then get the same id().
        self._prepared: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()

    def execute_prepared(self, name: str, sql: str, params: list):
        """Run ``sql`` (peewee's, ``%s`` placeholders) with ``params`` as the server-side prepared statement ``name``
        of this thread's connection: prepared (parsed and planned, ``PREPARE``) on the connection's first use of it,
        then only ``EXECUTE``d, so PostgreSQL plans a hot query once per connection instead of at every request
        (PostgreSQL docs, "PREPARE": after five runs the server may keep one generic plan). A prepared statement
        lives as long as its connection (a rollback keeps it); it is forgotten with the connection. ``name`` must
        be unique to ``sql`` in this process. Returns the cursor; raises peewee's errors.

        When the server no longer has the statement (SQLSTATE 26000) or refuses its cached plan because a
        migration changed a column it returns (0A000, "cached plan must not change result type"), the statement
        is prepared again and run once more, unless a transaction is open (it is aborted: the error is raised and
        the next use prepares anew). Not for a pooler that hands one client several server sessions (PgBouncer in
        transaction mode): see docs/SCALING.md."""
        conn = self.connection()
        prepared = self._prepared.setdefault(conn, set())
        try:
            return self._run_prepared(prepared, name, sql, params)
        except (peewee.ProgrammingError, peewee.NotSupportedError, peewee.InternalError) as exc:
            if sqlstate(exc) not in _STALE_PREPARED_SQLSTATES:
                raise
            prepared.discard(name)
            if self.in_transaction():
                raise
            if name in self._server_statements():
                self.execute_sql(f"DEALLOCATE {name}")
            return self._run_prepared(prepared, name, sql, params)

    def _run_prepared(self, prepared: set[str], name: str, sql: str, params: list):
        if name not in prepared:
            numbered = iter(range(1, len(params) + 1))
            body = "%".join(re.sub(r"%s", lambda _m: f"${next(numbered)}", part) for part in sql.split("%%"))
            self.execute_sql(f"PREPARE {name} AS {body}")
            prepared.add(name)
        placeholders = ", ".join(["%s"] * len(params))
        return self.execute_sql(f"EXECUTE {name} ({placeholders})" if params else f"EXECUTE {name}", params)

    def _server_statements(self) -> set[str]:
        """The names of the statements the server holds for this session (``pg_prepared_statements``)."""
        return {row[0] for row in self.execute_sql("SELECT name FROM pg_prepared_statements").fetchall()}

    def _is_closed(self, conn) -> bool:
        if conn.closed:
            self._prepared.pop(conn, None)
            return True
        returned = self._returned_at.get(self.conn_key(conn))
        if (returned is not None and time.monotonic() - returned < POOL_VERIFY_IDLE_SECONDS
                and self._adapter.txn_status(conn) == self._adapter.txn_idle):
            return False
        return super()._is_closed(conn)

    def _close(self, conn, close_conn=False):
        self._returned_at[self.conn_key(conn)] = time.monotonic()
        super()._close(conn, close_conn)

    def _close_raw(self, conn):
        self._returned_at.pop(self.conn_key(conn), None)
        self._prepared.pop(conn, None)
        super()._close_raw(conn)


def connect_database(url: str) -> peewee.Database:
    """Open ``url`` and bind the models' proxy to it.

    ``sqlite:///<path>`` or ``postgresql://user:password@host:port/database`` (``postgres://`` too). User,
    password and database name are percent-decoded as RFC 3986 URLs are (``p%40ss`` is ``p@ss``): a password
    holding ``@``, ``:`` or ``/`` must be written encoded. Raises ConfigError naming LIVE_DATABASE_URL for a
    URL that cannot be read.
    """
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        # WAL lets the API read while the worker writes; busy_timeout waits for
        # the writer instead of failing with "database is locked". Transactions
        # take the write lock up front (BEGIN IMMEDIATE): in WAL mode one that
        # reads first and writes later fails at once, without waiting, when
        # another process wrote meanwhile. The same holds outside transactions:
        # rows of a query still being iterated keep a read snapshot open, so code
        # that writes while looping over a query reads it in full first (list()).
        db = peewee.SqliteDatabase(
            str(path),
            pragmas={"journal_mode": "wal", "busy_timeout": SQLITE_BUSY_TIMEOUT_MS, "foreign_keys": 1},
            check_same_thread=False,
            lock_type="IMMEDIATE",
        )
    else:
        # Pooled: opening a PostgreSQL connection costs ~30 ms, more than the request itself.
        # Connections broken by a database restart are detected and dropped (see PostgresPool).
        try:
            params = parse(url.replace("postgres://", "postgresql://", 1))
            for key in ("user", "password", "database"):  # playhouse leaves them percent-encoded
                if isinstance(params.get(key), str):
                    params[key] = unquote(params[key])
            params.setdefault("max_connections", POOL_SIZE)
            params.setdefault("stale_timeout", 300)
            params.setdefault("timeout", 10)  # wait for a free connection rather than fail at once
            db = PostgresPool(**params)
        except Exception as exc:  # peewee raises plain errors for malformed URLs
            raise ConfigError(f"cannot use LIVE_DATABASE_URL: {exc}") from exc
    database.initialize(db)
    return db


class Slot:
    """A parameter of a :class:`PreparedSelect`, named; its value is given at each run."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"Slot({self.name!r})"


class PreparedSelect:
    """A peewee SELECT built and compiled to SQL once per database, then run with new parameter values.

    peewee builds the SQL of a query anew at every execution (about 0.5-0.8 ms of Python for a join of four
    tables here, more than PostgreSQL takes to answer it); a hot read compiles it once. ``build(**slots)``
    returns the query, using ``slots[name]`` (a ``peewee.Value`` of a :class:`Slot`) wherever a parameter
    goes; the values are passed to :meth:`rows` as keyword arguments, already in their database form (ints,
    strings: no field conversion is applied to them). Rows come back as the query would give them (models
    with their joined relations, tuples...), through peewee's own cursor wrapper, so conversions of the
    columns (dates, JSON) are the same. Compiled again when the models' database changes (tests switch
    between SQLite and PostgreSQL). On PostgreSQL (:class:`PostgresPool`) the statement is also prepared on the
    server, once per connection (:meth:`PostgresPool.execute_prepared`): planning a join of six tables costs
    PostgreSQL about 1 ms, running it 0.07 ms. Thread-safe (a race compiles twice, harmlessly; each compiled
    form has its own statement name). Raises peewee's errors.
    """

    _names_made = itertools.count(1)

    def __init__(self, build: Callable[..., peewee.SelectBase], *names: str):
        self._build = build
        self._names = names
        self._compiled: tuple[Any, peewee.SelectBase, str, list, str] | None = None

    def _compile(self) -> tuple[Any, peewee.SelectBase, str, list, str]:
        db = database.obj
        compiled = self._compiled
        if compiled is None or compiled[0] is not db:
            query = self._build(**{name: peewee.Value(Slot(name), converter=False) for name in self._names})
            sql, params = query.sql()
            compiled = self._compiled = (db, query, sql, list(params), f"live_select_{next(self._names_made)}")
        return compiled

    def rows(self, **values: Any) -> list:
        """Every row of the query with these parameter values (one statement)."""
        db, query, sql, params, name = self._compile()
        args = [values[p.name] if isinstance(p, Slot) else p for p in params]
        if isinstance(db, PostgresPool):
            cursor = db.execute_prepared(name, sql, args)
        else:
            cursor = database.execute_sql(sql, args)
        return list(query._get_cursor_wrapper(cursor))

    def first(self, **values: Any):
        """The first row, None when there is none (the query should carry its own LIMIT 1)."""
        found = self.rows(**values)
        return found[0] if found else None


def sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE of a database error (``"40001"``...), None when it has none (SQLite's, a lost
    connection). peewee re-raises the driver's error as its own class with the message only; the driver's error,
    which carries ``pgcode``, is its context."""
    seen = 0
    while exc is not None and seen < 5:
        code = getattr(exc, "pgcode", None)
        if code:
            return code
        if exc.args and isinstance(exc.args[0], BaseException):
            exc = exc.args[0]
        else:
            exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def is_transient_conflict(exc: BaseException) -> bool:
    """Whether running the same transaction again may succeed: a lock or serialization conflict.

    SQLite answers "database is locked" / "database is busy" when its busy timeout ran out or a
    read transaction could not be upgraded to a write; PostgreSQL reports serialization failures
    and deadlocks by SQLSTATE (40001, 40P01). Anything else (a dropped connection, a syntax error)
    is not a conflict.
    """
    if not isinstance(exc, peewee.OperationalError):
        return False
    if sqlstate(exc) in RETRYABLE_SQLSTATES:
        return True
    text = str(exc).lower()
    return "database is locked" in text or "database is busy" in text or "database table is locked" in text


def transaction(work: Callable[[], T], *, retry_on_integrity_error: bool = False,
                attempts: int = TRANSACTION_ATTEMPTS) -> T:
    """Run ``work()`` in one transaction; run it again from the start on a transient conflict.

    The one place where the bridge retries database work. A conflict (see
    :func:`is_transient_conflict`) rolls the transaction back and repeats it after a short,
    jittered backoff (10 ms doubling to 0.5 s), at most ``attempts`` times. With
    ``retry_on_integrity_error`` a unique-constraint violation is retried too: that is how an
    insert-if-missing ("upsert") survives a concurrent insert of the same row, since the next
    attempt reads the row the other transaction committed. ``work`` must therefore only touch
    the database (no engine calls, no I/O that cannot be repeated).

    Inside an enclosing transaction ``work`` runs in a savepoint without retries: only the
    outermost transaction can be repeated.

    Raises the last error when every attempt failed, or at once for any other error.
    """
    if database.in_transaction():
        with database.atomic():
            return work()
    for attempt in range(1, attempts + 1):
        try:
            with database.atomic():
                return work()
        except peewee.IntegrityError:
            if not retry_on_integrity_error or attempt == attempts:
                raise
        except peewee.OperationalError as exc:
            if not is_transient_conflict(exc) or attempt == attempts:
                raise
        delay = min(0.5, 0.01 * 2 ** (attempt - 1))
        log.debug("transaction conflict, attempt %d/%d, retrying in %.3fs", attempt, attempts, delay)
        time.sleep(delay * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")  # the loop returns or raises


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
