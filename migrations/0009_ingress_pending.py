"""Ingress (issue 12): whether an order's route may differ from what the proxy holds.

Every existing order starts pending: the worker's first resync applies its route and clears the flag.
"""
from peewee import BooleanField


def up(migrator, db):
    migrator.migrate(migrator.add_column("live_order", "ingress_pending", BooleanField(default=True)),
                     migrator.add_index("live_order", ("ingress_pending",)))


def down(migrator, db):
    migrator.migrate(migrator.drop_index("live_order", "live_order_ingress_pending"),
                     migrator.drop_column("live_order", "ingress_pending"))
