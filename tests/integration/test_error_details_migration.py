"""Migration 0005: error texts recorded before it move to the private detail columns, on SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt

from app.db import connect_database, migration_runner, upgrade

RAW = "internal error (KeyError): 'postgresql://live:s3cret@db.internal/live'"
NOW = dt.datetime(2024, 5, 1, 12, 0, 0)


def insert(db, table: str, **values) -> None:
    columns = ", ".join(values)
    marks = ", ".join([db.param] * len(values))
    db.execute_sql(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(values.values()))


def test_old_error_texts_become_private_and_down_restores_them(database_url):
    db = connect_database(database_url)
    try:
        runner = migration_runner(db)
        runner.up("0003_catalog_sync")  # the schema before error details
        insert(db, "customer", id=1, email="a@example.org", first_name="", last_name="", company="",
               created_at=NOW, updated_at=NOW)
        insert(db, "product", id=1, slug="demo", name="Demo", description="", valid=True, errors="[]", updated_at=NOW)
        insert(db, "product_revision", id=1, product_id=1, content_hash="a" * 64, manifest="", compose="", valid=True,
               errors="[]", created_at=NOW)
        insert(db, "live_order", id=1, whmcs_service_id=9, customer_id=1, product_id=1, revision_id=1, plan="basic",
               instance="demo", hostname="demo.test.local", status="failed", secrets="{}", published_ports="{}",
               last_error=RAW, created_at=NOW, updated_at=NOW)
        for ident, error in ((7, RAW), (8, None)):
            insert(db, "operation", id=ident, order_id=1, kind="create", state="failed" if error else "succeeded",
                   params="{}", attempts=1, max_attempts=5, steps="[]", error=error, requested_by="test",
                   created_at=NOW, next_attempt_at=NOW)

        assert "0005_error_details" in upgrade(db)
        rows = db.execute_sql("SELECT id, error, error_detail FROM operation ORDER BY id").fetchall()
        assert [tuple(row) for row in rows] == [
            (7, "the operation failed; the operators have the details (operation 7)", RAW), (8, None, None)]
        order = db.execute_sql("SELECT last_error, last_error_detail FROM live_order").fetchone()
        assert tuple(order) == ("the last operation failed; the operators have the details", RAW)

        runner.down("0005_error_details")
        assert [tuple(row) for row in db.execute_sql("SELECT id, error FROM operation ORDER BY id").fetchall()] == [
            (7, RAW), (8, None)]
        assert tuple(db.execute_sql("SELECT last_error FROM live_order").fetchone()) == (RAW,)
        assert "error_detail" not in {c.name for c in db.get_columns("operation")}
    finally:
        db.close()
