"""A hostname belongs to one order that is not terminated; volumes a change left behind are listed on the order.

The unique index is partial (``WHERE status <> 'terminated'``), which SQLite (3.8+) and PostgreSQL
both support: a terminated order's hostname is free again. Installations that already hold two
live orders with the same hostname (possible before this migration) must resolve that first: the
migration names them and changes nothing.
"""
from peewee import TextField
from playhouse.migrations import MigrationError

INDEX = "live_order_hostname_live"


def up(migrator, db):
    duplicates = db.execute_sql(
        "SELECT hostname, COUNT(*) FROM live_order WHERE status <> 'terminated' "
        "GROUP BY hostname HAVING COUNT(*) > 1 ORDER BY hostname").fetchall()
    if duplicates:
        listed = ", ".join(f"{hostname} ({count} orders)" for hostname, count in duplicates)
        raise MigrationError(
            f"hostnames shared by orders that are not terminated: {listed}. Give all but one of them another "
            "domain (WHMCS ChangePackage with the new domain, or terminate them), then migrate again")
    db.execute_sql(f"CREATE UNIQUE INDEX {INDEX} ON live_order (hostname) WHERE status <> 'terminated'")
    # Volumes an upgrade or a product change no longer mounts: kept, listed, archived at terminate.
    migrator.migrate(migrator.add_column("live_order", "detached_volumes", TextField(default="[]")))


def down(migrator, db):
    migrator.migrate(migrator.drop_column("live_order", "detached_volumes"))
    db.execute_sql(f"DROP INDEX IF EXISTS {INDEX}")
