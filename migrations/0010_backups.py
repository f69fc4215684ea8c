"""Backups (issue 13): one row per backup the bridge took or tried to take (``app/backups/service.py``).

The store (LIVE_BACKUP_STORE) holds the backups themselves and is the truth about what can be restored;
these rows are the bridge's record of each attempt: schedules, failures, metrics and retention read them.
"""
from peewee import BigIntegerField, CharField, DateTimeField, ForeignKeyField, IntegerField, Model, TextField


def up(migrator, db):
    class Order(Model):
        class Meta:
            database = db
            table_name = "live_order"

    class Operation(Model):
        class Meta:
            database = db
            table_name = "operation"

    class Backup(Model):
        order = ForeignKeyField(Order, on_delete="CASCADE", index=True)
        operation = ForeignKeyField(Operation, null=True, on_delete="SET NULL")
        kind = CharField(max_length=16)
        state = CharField(max_length=16, index=True)
        backup_id = CharField(max_length=40, null=True, unique=True)
        started_at = DateTimeField(index=True)
        finished_at = DateTimeField(null=True)
        size = BigIntegerField(null=True)
        artefacts = IntegerField(null=True)
        error = TextField(null=True)
        error_detail = TextField(null=True)
        deleted_at = DateTimeField(null=True)
        verified_at = DateTimeField(null=True)
        verify_error = TextField(null=True)

        class Meta:
            database = db
            table_name = "backup"

    db.create_tables([Backup])


def down(migrator, db):
    db.execute_sql("DROP TABLE IF EXISTS backup")
