"""product.slug holds up to 255 characters: folder names that are not valid slugs are listed too.

A valid slug has at most 63 characters; a folder named otherwise (too long,
not UTF-8, ...) is still recorded as an invalid product under its printable
name (app/catalog/files.py), which may be up to 255 characters.

SQLite does not enforce VARCHAR lengths, so there is nothing to change there
(rebuilding the table would also run the ON DELETE CASCADE of its revisions).
"""
from peewee import CharField, PostgresqlDatabase


def up(migrator, db):
    if isinstance(db, PostgresqlDatabase):
        # Widening a varchar is a catalog-only change in PostgreSQL: no table rewrite, the index stays.
        migrator.migrate(migrator.alter_column_type("product", "slug", CharField(max_length=255)))


def down(migrator, db):
    if not isinstance(db, PostgresqlDatabase):
        return
    cursor = db.execute_sql("SELECT slug FROM product WHERE length(slug) > 64 ORDER BY slug LIMIT 5")
    longer = [row[0] for row in cursor.fetchall()]
    if longer:
        raise ValueError("cannot narrow product.slug to 64 characters: these products have longer names "
                         f"(remove them first): {', '.join(longer)}")
    migrator.migrate(migrator.alter_column_type("product", "slug", CharField(max_length=64)))
