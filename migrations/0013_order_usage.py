"""Issue 15: resource usage per order, sampled in the background by the worker (``app/orders/usage.py``).

``order_usage``: one row per order; the usage answers (``GET /whmcs/v1/usage``) read it and never the engine.
A row exists once either sample (memory/CPU, or disk) has run for the order; each half has its own time
(``sampled_at``, ``disk_sampled_at``), NULL until that half was sampled.
"""
from peewee import BigIntegerField, DateTimeField, FloatField, ForeignKeyField, IntegerField, Model


def up(migrator, db):
    class LiveOrder(Model):
        class Meta:
            database = db
            table_name = "live_order"

    class OrderUsage(Model):
        order = ForeignKeyField(LiveOrder, unique=True, on_delete="CASCADE")
        sampled_at = DateTimeField(null=True)
        memory_bytes = BigIntegerField(null=True)
        memory_limit_bytes = BigIntegerField(null=True)
        cpu_seconds = FloatField(null=True)
        containers_running = IntegerField(null=True)
        containers_total = IntegerField(null=True)
        disk_bytes = BigIntegerField(null=True)
        disk_sampled_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "order_usage"

    db.create_tables([OrderUsage])


def down(migrator, db):
    db.execute_sql("DROP TABLE IF EXISTS order_usage")
