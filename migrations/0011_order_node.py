"""Docker Swarm (issue 14): the node an order is placed on.

``node`` is the swarm node's id, ``node_name`` its hostname when the order was placed (shown in views without
asking the swarm). Both stay NULL on one engine (LIVE_ORCHESTRATOR=docker) and for orders made before.
"""
from peewee import CharField


def up(migrator, db):
    migrator.migrate(migrator.add_column("live_order", "node", CharField(max_length=64, null=True)),
                     migrator.add_column("live_order", "node_name", CharField(max_length=253, null=True)))


def down(migrator, db):
    migrator.migrate(migrator.drop_column("live_order", "node_name"),
                     migrator.drop_column("live_order", "node"))
