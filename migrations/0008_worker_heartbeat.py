"""The worker's heartbeat: one row per running worker process, read by /readyz, lifecycle answers,
``/metrics`` and ``live doctor`` (see ``app/orders/heartbeat.py``).
"""
from peewee import CharField, DateTimeField, FloatField, IntegerField, Model


def up(migrator, db):
    class WorkerHeartbeat(Model):
        worker = CharField(max_length=255, unique=True)  # <host>:<pid>
        started_at = DateTimeField()
        beat_at = DateTimeField()
        poll_seconds = FloatField()
        concurrency = IntegerField()

        class Meta:
            database = db
            table_name = "worker_heartbeat"

    db.create_tables([WorkerHeartbeat])


def down(migrator, db):
    db.execute_sql("DROP TABLE IF EXISTS worker_heartbeat")
