"""Issue 15: the engine mirror remembers a kill across worker restarts (``app/stacks/mirror.py``).

``observed_container.killed_at``: the engine time (naive UTC) of the last ``kill`` event of the container since it
last started or died, NULL otherwise. The ``die`` that follows within :data:`app.stacks.mirror.KILL_SECONDS` is a
stop, not a death, even when another worker (the next one after a restart) sees it.
"""
from peewee import DateTimeField


def up(migrator, db):
    migrator.migrate(migrator.add_column("observed_container", "killed_at", DateTimeField(null=True)))


def down(migrator, db):
    migrator.migrate(migrator.drop_column("observed_container", "killed_at"))
