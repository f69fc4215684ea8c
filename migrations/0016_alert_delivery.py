"""Issue 16: outbound webhooks (``app/alerts.py``): one row per alert and target URL, with every attempt.

``alert_delivery``: queued in the transaction that records the event needing a person (operation failed, backup
failed, drift detected or failing, operation stuck); the worker delivers it, retries it with backoff, and
records each attempt. See :class:`app.models.AlertDelivery` for the columns.
"""
from peewee import CharField, DateTimeField, ForeignKeyField, IntegerField, Model, TextField

from app.db import JSONField


def up(migrator, db):
    class Event(Model):
        class Meta:
            database = db
            table_name = "event"

    class AlertDelivery(Model):
        event = ForeignKeyField(Event, null=True, on_delete="SET NULL")
        alert = CharField(max_length=32)
        url = TextField()
        body = TextField()
        state = CharField(max_length=16, default="pending", index=True)
        attempts = IntegerField(default=0)
        max_attempts = IntegerField()
        next_attempt_at = DateTimeField(index=True)
        created_at = DateTimeField()
        finished_at = DateTimeField(null=True)
        last_status = IntegerField(null=True)
        last_error = TextField(null=True)
        history = JSONField(default=list)

        class Meta:
            database = db
            table_name = "alert_delivery"

    db.create_tables([AlertDelivery])


def down(migrator, db):
    db.execute_sql("DROP TABLE IF EXISTS alert_delivery")
