"""Migrations build the schema the models expect, on empty SQLite and PostgreSQL databases."""
from __future__ import annotations

import pytest

from app.db import MIGRATIONS_DIR, connect_database, pending_migrations, upgrade
from app.models import ALL_MODELS

# Every script in migrations/, in the order they apply (numbered file names).
MIGRATIONS = sorted(path.stem for path in MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.py"))


def test_migrations_are_numbered_without_gaps_or_repeats():
    numbers = [int(name[:4]) for name in MIGRATIONS]
    assert MIGRATIONS[:3] == ["0001_initial", "0002_api_keys", "0003_catalog_sync"]
    assert numbers == list(range(1, len(numbers) + 1))


def test_migrations_apply_to_an_empty_database_and_match_the_models(database_url):
    db = connect_database(database_url)
    try:
        assert pending_migrations(db) == MIGRATIONS
        assert upgrade(db) == MIGRATIONS
        assert upgrade(db) == [], "a second upgrade is a no-op"
        assert pending_migrations(db) == []
        for model in ALL_MODELS:
            table = model._meta.table_name
            columns = {c.name for c in db.get_columns(table)}
            expected = {field.column_name for field in model._meta.sorted_fields}
            assert columns == expected, f"{table}: migration and model differ"
        unique_indexes = {tuple(i.columns) for i in db.get_indexes("live_order") if i.unique}
        assert ("whmcs_service_id",) in unique_indexes and ("instance",) in unique_indexes
        assert ("hostname",) in unique_indexes, "a hostname belongs to one live order (migration 0006)"
    finally:
        db.close()


def test_downgrade_removes_the_schema(database_url):
    from app.db import migration_runner

    db = connect_database(database_url)
    try:
        upgrade(db)
        assert migration_runner(db).down("0001_initial") == MIGRATIONS[::-1]
        assert not any(db.table_exists(model._meta.table_name) for model in ALL_MODELS)
    finally:
        db.close()


def test_hostname_migration_names_shared_hostnames_and_changes_nothing(database_url):
    """Installations that already have two live orders on one hostname must resolve them first."""
    from playhouse.migrations import MigrationError

    from app.db import migration_runner

    hostnames = "0006_hostnames_and_detached_volumes"
    db = connect_database(database_url)
    try:
        runner = migration_runner(db)
        runner.up(MIGRATIONS[MIGRATIONS.index(hostnames) - 1])
        now = "2026-01-01 00:00:00"
        db.execute_sql("INSERT INTO customer (email, first_name, last_name, company, created_at, updated_at) "
                       f"VALUES ('a@example.org', '', '', '', '{now}', '{now}')")
        db.execute_sql("INSERT INTO product (slug, name, description, valid, errors, updated_at) "
                       f"VALUES ('p', 'P', '', true, '[]', '{now}')")
        db.execute_sql("INSERT INTO product_revision (product_id, content_hash, manifest, compose, valid, errors, "
                       f"created_at) VALUES (1, 'h', 'm', 'c', true, '[]', '{now}')")
        for number, status in ((1, "active"), (2, "suspended"), (3, "terminated")):
            db.execute_sql(
                "INSERT INTO live_order (whmcs_service_id, customer_id, product_id, revision_id, plan, instance, "
                "hostname, status, secrets, published_ports, created_at, updated_at) VALUES "
                f"({number}, 1, 1, 1, 'small', 'o{number}', 'maps.example.org', '{status}', '{{}}', '{{}}', "
                f"'{now}', '{now}')")
        with pytest.raises(MigrationError, match=r"maps\.example\.org \(2 orders\)"):
            runner.up()
        assert hostnames in pending_migrations(db), "the failed migration is not recorded"
        db.execute_sql("UPDATE live_order SET status = 'terminated' WHERE id = 2")
        assert hostnames in runner.up(), "once resolved, it applies (a terminated order keeps its hostname)"
    finally:
        db.close()
