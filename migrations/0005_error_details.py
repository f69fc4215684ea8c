"""Private error detail next to the public error text of operations and orders.

``operation.error`` and ``live_order.last_error`` keep the public text (the
WHMCS client area shows it); the new ``*_detail`` columns hold the full text
for operators (CLI, admin API keys). Texts recorded before this migration may
hold internal detail (the worker stored raw exception text): they move to the
detail columns and the public columns get a neutral sentence; ``down``
restores them.
"""
from peewee import TextField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("operation", "error_detail", TextField(null=True)),
        migrator.add_column("live_order", "last_error_detail", TextField(null=True)),
    )
    db.execute_sql("UPDATE operation SET error_detail = error, "
                   "error = 'the operation failed; the operators have the details (operation ' || id || ')' "
                   "WHERE error IS NOT NULL")
    db.execute_sql("UPDATE live_order SET last_error_detail = last_error, "
                   "last_error = 'the last operation failed; the operators have the details' "
                   "WHERE last_error IS NOT NULL")


def down(migrator, db):
    db.execute_sql("UPDATE operation SET error = error_detail WHERE error_detail IS NOT NULL")
    db.execute_sql("UPDATE live_order SET last_error = last_error_detail WHERE last_error_detail IS NOT NULL")
    migrator.migrate(
        migrator.drop_column("operation", "error_detail"),
        migrator.drop_column("live_order", "last_error_detail"),
    )
