"""Issue 15: drift (``app/orders/drift.py``): what should run on each order, and the drift checker's state.

``order_drift``: one row per order, written at the end of every successful deploy and at suspend
(:func:`app.orders.drift.record_expected`) and by the worker's drift checker. See
:class:`app.models.OrderDrift` for the columns.
"""
from peewee import CharField, DateTimeField, ForeignKeyField, Model, TextField

from app.db import JSONField


def up(migrator, db):
    class Order(Model):
        class Meta:
            database = db
            table_name = "live_order"

    class OrderDrift(Model):
        order = ForeignKeyField(Order, unique=True, on_delete="CASCADE")
        expected = JSONField(default=dict)
        expected_at = DateTimeField()
        baseline = JSONField(default=dict)
        state = CharField(max_length=16, default="ok", index=True)
        problems = JSONField(default=list)
        detected_at = DateTimeField(null=True)
        repairs = JSONField(default=list)
        failing_since = DateTimeField(null=True)
        failing_reason = TextField(null=True)

        class Meta:
            database = db
            table_name = "order_drift"

    db.create_tables([OrderDrift])


def down(migrator, db):
    db.execute_sql("DROP TABLE IF EXISTS order_drift")
