"""API keys for the HTTP API: only a hash of each token is stored."""
import datetime

from peewee import CharField, DateTimeField, Model


def up(migrator, db):
    class ApiKey(Model):
        name = CharField(max_length=100, unique=True)
        scope = CharField(max_length=16)
        token_prefix = CharField(max_length=16, unique=True)
        token_hash = CharField(max_length=64)
        created_at = DateTimeField(default=datetime.datetime.now)
        last_used_at = DateTimeField(null=True)
        revoked_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "api_key"

    db.create_tables([ApiKey])


def down(migrator, db):
    db.execute_sql("DROP TABLE IF EXISTS api_key")
