"""PreparedSelect on a real database of each kind: on PostgreSQL the statement is prepared on the server once per
connection (PREPARE, then EXECUTE), survives rollbacks, and is prepared again on a new connection; on SQLite it is
the plain statement. Rows are those the query itself gives either way."""
from __future__ import annotations

import peewee
import pytest

from app.db import PostgresPool, PreparedSelect, connect_database, database, upgrade
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
