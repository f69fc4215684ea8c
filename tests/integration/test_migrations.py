"""Migrations build the schema the models expect, on empty SQLite and PostgreSQL databases."""
from __future__ import annotations

from app.db import connect_database, pending_migrations, upgrade
from app.models import ALL_MODELS


def test_migrations_apply_to_an_empty_database_and_match_the_models(database_url):
    db = connect_database(database_url)
    try:
        assert pending_migrations(db) == ["0001_initial", "0002_api_keys", "0003_catalog_sync"]
        assert upgrade(db) == ["0001_initial", "0002_api_keys", "0003_catalog_sync"]
        assert upgrade(db) == [], "a second upgrade is a no-op"
        assert pending_migrations(db) == []
        for model in ALL_MODELS:
            table = model._meta.table_name
            columns = {c.name for c in db.get_columns(table)}
            expected = {field.column_name for field in model._meta.sorted_fields}
            assert columns == expected, f"{table}: migration and model differ"
        unique_indexes = {tuple(i.columns) for i in db.get_indexes("live_order") if i.unique}
        assert ("whmcs_service_id",) in unique_indexes and ("instance",) in unique_indexes
    finally:
        db.close()


def test_downgrade_removes_the_schema(database_url):
    from app.db import migration_runner

    db = connect_database(database_url)
    try:
        upgrade(db)
        assert migration_runner(db).down("0001_initial") == ["0003_catalog_sync", "0002_api_keys", "0001_initial"]
        assert not any(db.table_exists(model._meta.table_name) for model in ALL_MODELS)
    finally:
        db.close()
