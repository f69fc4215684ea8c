"""GitLab webhook deliveries already handled, by id: a replayed delivery is ignored.

One row per delivery id (``Idempotency-Key`` and ``X-Gitlab-Event-UUID``); rows older
than a week are deleted when a new delivery is recorded.
"""
from peewee import CharField, DateTimeField, Model


def up(migrator, db):
    class WebhookDelivery(Model):
        delivery_id = CharField(max_length=160, unique=True)
        received_at = DateTimeField(index=True)

        class Meta:
            database = db
            table_name = "webhook_delivery"

    db.create_tables([WebhookDelivery])


def down(migrator, db):
    db.execute_sql("DROP TABLE IF EXISTS webhook_delivery")
