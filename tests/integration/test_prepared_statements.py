"""PreparedSelect on a real database of each kind: on PostgreSQL the statement is prepared on the server once per
connection (PREPARE, then EXECUTE), survives rollbacks, and is prepared again on a new connection; on SQLite it is
the plain statement. Rows are those the query itself gives either way."""
from __future__ import annotations

import threading
import time

import peewee
import pytest

from app.db import POOL_VERIFY_IDLE_SECONDS, PostgresPool, PreparedSelect, connect_database, database, upgrade
from app.models import Customer


@pytest.fixture
def db(database_url):
    db = connect_database(database_url)
    upgrade(db)
    for n in range(3):
        Customer.create(email=f"c{n}@example.org", whmcs_client_id=100 + n)
    yield db
    db.close_all() if isinstance(db, PostgresPool) else db.close()


def statements(db, monkeypatch) -> list[str]:
    """The SQL text of every statement ``db`` sends from now on."""
    sent: list[str] = []
    original = db.execute_sql

    def recording(sql, params=None, *args, **kwargs):
        sent.append(sql)
        return original(sql, params, *args, **kwargs)

    monkeypatch.setattr(db, "execute_sql", recording)
    return sent


BY_CLIENT = PreparedSelect(lambda low, pattern: Customer.select(Customer.email)
                           .where((Customer.whmcs_client_id >= low) & Customer.email.contains(pattern))
                           .order_by(Customer.id).tuples(), "low", "pattern")


def test_rows_are_the_query_s_and_postgresql_prepares_once_per_connection(db, monkeypatch):
    want = list(Customer.select(Customer.email).where((Customer.whmcs_client_id >= 101)
                                                       & Customer.email.contains("@example"))
                .order_by(Customer.id).tuples())
    sent = statements(db, monkeypatch)
    for _ in range(3):
        assert BY_CLIENT.rows(low=101, pattern="%@example%") == want == [("c1@example.org",), ("c2@example.org",)]
    assert BY_CLIENT.rows(low=102, pattern="%@example%") == [("c2@example.org",)]
    if isinstance(db, PostgresPool):
        assert [s.split()[0] for s in sent] == ["PREPARE", "EXECUTE", "EXECUTE", "EXECUTE", "EXECUTE"]
    else:
        assert len(sent) == 4 and all(s.startswith("SELECT") for s in sent)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # server-side statements are PostgreSQL's
def test_a_prepared_statement_outlives_a_rollback_and_is_made_again_on_a_new_connection(db, monkeypatch):
    assert isinstance(db, PostgresPool)
    with pytest.raises(peewee.DataError):
        with database.atomic():
            assert len(BY_CLIENT.rows(low=100, pattern="%")) == 3  # prepared inside the transaction
            database.execute_sql("SELECT 1 / 0")  # the transaction fails and is rolled back
    sent = statements(db, monkeypatch)
    assert len(BY_CLIENT.rows(low=100, pattern="%")) == 3
    assert [s.split()[0] for s in sent] == ["EXECUTE"]  # still prepared on that connection
    db.close_all()  # the pool's connections are closed: a new one knows no prepared statement
    db.connect(reuse_if_open=True)
    assert len(BY_CLIENT.rows(low=100, pattern="%")) == 3
    assert [s.split()[0] for s in sent] == ["EXECUTE", "PREPARE", "EXECUTE"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_sessions_ended_by_the_server_leave_no_stale_record_of_prepared_statements(db, database_url):
    """A restart, failover or idle kill ends the pool's sessions: the pool drops those connections, and a new one
    (which may get a dropped one's id()) prepares the statement again."""
    import psycopg2

    barrier = threading.Barrier(3)

    def use():
        with db.connection_context():
            BY_CLIENT.rows(low=100, pattern="%")
            barrier.wait()
            barrier.wait()

    threads = [threading.Thread(target=use) for _ in range(2)]
    for thread in threads:
        thread.start()
    barrier.wait()
    barrier.wait()
    for thread in threads:
        thread.join()
    db.close()  # this thread's connection goes back to the pool too
    admin = psycopg2.connect(database_url)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    admin.close()
    time.sleep(POOL_VERIFY_IDLE_SECONDS + 0.2)  # idle long enough to be checked (and found dead) at checkout
    for _ in range(3):
        with db.connection_context():
            assert len(BY_CLIENT.rows(low=100, pattern="%")) == 3


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_migration_that_changes_a_returned_column_is_survived(db, monkeypatch):
    """PostgreSQL refuses a cached plan whose result type a schema change altered (0A000): prepared again, run once
    more; inside a transaction the error is raised and the next use prepares anew."""
    assert len(BY_CLIENT.rows(low=100, pattern="%")) == 3
    database.execute_sql("ALTER TABLE customer ALTER COLUMN email TYPE varchar(400)")
    sent = statements(db, monkeypatch)
    assert len(BY_CLIENT.rows(low=100, pattern="%")) == 3
    assert [s.split()[0] for s in sent] == ["EXECUTE", "SELECT", "DEALLOCATE", "PREPARE", "EXECUTE"]
    database.execute_sql("ALTER TABLE customer ALTER COLUMN email TYPE varchar(500)")
    with pytest.raises(peewee.NotSupportedError):
        with database.atomic():
            BY_CLIENT.rows(low=100, pattern="%")
    assert len(BY_CLIENT.rows(low=100, pattern="%")) == 3


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_sqlstate_of_postgresql_errors_is_read_through_peewee_s_own_classes(db):
    """peewee re-raises the driver's error with its message only: the SQLSTATE (which decides a retry) is read
    from the driver's error it chains."""
    from app.db import is_transient_conflict, sqlstate

    with pytest.raises(peewee.DataError) as division:
        database.execute_sql("SELECT 1 / 0")
    assert sqlstate(division.value) == "22012" and not is_transient_conflict(division.value)
    with pytest.raises(peewee.OperationalError) as conflict:
        database.execute_sql("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure'; END $$")
    assert sqlstate(conflict.value) == "40001" and is_transient_conflict(conflict.value)
    assert sqlstate(peewee.OperationalError("database is locked")) is None
    assert is_transient_conflict(peewee.OperationalError("database is locked"))
