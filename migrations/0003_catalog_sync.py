"""Catalog sync state (shared by the worker and the web service) and the blob ids of revisions."""
from peewee import CharField, DateTimeField, Model, TextField


def up(migrator, db):
    class CatalogSync(Model):
        source = CharField(max_length=300, default="")
        commit = CharField(max_length=64, null=True)
        requested_at = DateTimeField(null=True)
        last_attempt_at = DateTimeField(null=True)
        last_success_at = DateTimeField(null=True)
        last_error = TextField(null=True)

        class Meta:
            database = db
            table_name = "catalog_sync"

    db.create_tables([CatalogSync])
    # Git blob ids of the two files: a sync fetches a file only when its blob id changed.
    migrator.migrate(
        migrator.add_column("product_revision", "manifest_blob", CharField(max_length=64, null=True)),
        migrator.add_column("product_revision", "compose_blob", CharField(max_length=64, null=True)),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column("product_revision", "manifest_blob"),
        migrator.drop_column("product_revision", "compose_blob"),
    )
    db.execute_sql("DROP TABLE IF EXISTS catalog_sync")
