"""Issue 15: the worker's mirror of the engine's state (``app/stacks/mirror.py``).

``observed_container``: one row per container of this installation as the engine last reported it (in swarm
mode one row per swarm service, whose state comes from its newest task), keyed by the engine's id.
``engine_mirror``: one row per deployment saying whether the worker follows the engine's event stream and
when it last did, so views can tell how fresh ``observed_container`` is.
"""
from peewee import BooleanField, CharField, DateTimeField, IntegerField, Model, TextField


def up(migrator, db):
    class ObservedContainer(Model):
        container_id = CharField(max_length=64, unique=True)
        order_id = IntegerField(index=True)
        service = CharField(max_length=100, null=True)
        name = CharField(max_length=255)
        state = CharField(max_length=16)
        health = CharField(max_length=16, null=True)
        exit_code = IntegerField(null=True)
        config_hash = CharField(max_length=64, null=True)
        node = CharField(max_length=64, null=True)
        error = TextField(null=True)
        deaths = IntegerField(default=0)
        last_died_at = DateTimeField(null=True)
        changed_at = DateTimeField()
        observed_at = DateTimeField()

        class Meta:
            database = db
            table_name = "observed_container"

    class EngineMirror(Model):
        deployment = CharField(max_length=64, unique=True)
        follower = CharField(max_length=255)
        connected = BooleanField(default=False)
        started_at = DateTimeField()
        beat_at = DateTimeField()
        last_listing_at = DateTimeField(null=True)
        last_event_at = DateTimeField(null=True)
        error = TextField(null=True)

        class Meta:
            database = db
            table_name = "engine_mirror"

    db.create_tables([ObservedContainer, EngineMirror])


def down(migrator, db):
    db.execute_sql("DROP TABLE IF EXISTS engine_mirror")
    db.execute_sql("DROP TABLE IF EXISTS observed_container")
