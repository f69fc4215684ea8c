"""Initial schema: customers, products, revisions, orders, operations, events.

Models are frozen here on purpose: later changes to app/models.py must come
with a new migration, never by editing this one.
"""
import datetime

from peewee import (
    BooleanField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)


def up(migrator, db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Customer(Base):
        whmcs_client_id = IntegerField(null=True, unique=True)
        email = CharField(max_length=254, index=True)
        first_name = CharField(max_length=100, default="")
        last_name = CharField(max_length=100, default="")
        company = CharField(max_length=200, default="")
        created_at = DateTimeField(default=datetime.datetime.now)
        updated_at = DateTimeField(default=datetime.datetime.now)

    class Product(Base):
        slug = CharField(max_length=64, unique=True)
        name = CharField(max_length=200)
        description = TextField(default="")
        # Points at product_revision; no constraint because the two tables reference each other.
        current_revision_id = IntegerField(null=True)
        valid = BooleanField(default=True)
        errors = TextField(default="[]")
        updated_at = DateTimeField(default=datetime.datetime.now)

    class ProductRevision(Base):
        product = ForeignKeyField(Product, on_delete="CASCADE")
        content_hash = CharField(max_length=64)
        commit = CharField(max_length=64, null=True)
        manifest = TextField()
        compose = TextField()
        valid = BooleanField()
        errors = TextField(default="[]")
        created_at = DateTimeField(default=datetime.datetime.now)

        class Meta:
            indexes = ((("product", "content_hash"), True),)

    class Order(Base):
        whmcs_service_id = IntegerField(unique=True)
        customer = ForeignKeyField(Customer, on_delete="RESTRICT")
        product = ForeignKeyField(Product, on_delete="RESTRICT")
        revision = ForeignKeyField(ProductRevision, on_delete="RESTRICT")
        plan = CharField(max_length=64)
        instance = CharField(max_length=40, unique=True)
        hostname = CharField(max_length=253)
        status = CharField(max_length=16, default="pending", index=True)
        secrets = TextField(default="{}")
        published_ports = TextField(default="{}")
        last_error = TextField(null=True)
        created_at = DateTimeField(default=datetime.datetime.now)
        updated_at = DateTimeField(default=datetime.datetime.now)
        terminated_at = DateTimeField(null=True)

        class Meta:
            table_name = "live_order"

    class Operation(Base):
        order = ForeignKeyField(Order, on_delete="CASCADE")
        kind = CharField(max_length=32)
        state = CharField(max_length=16, default="pending", index=True)
        params = TextField(default="{}")
        attempts = IntegerField(default=0)
        max_attempts = IntegerField(default=5)
        steps = TextField(default="[]")
        error = TextField(null=True)
        requested_by = CharField(max_length=100, default="system")
        created_at = DateTimeField(default=datetime.datetime.now)
        started_at = DateTimeField(null=True)
        finished_at = DateTimeField(null=True)
        next_attempt_at = DateTimeField(default=datetime.datetime.now)
        lease_owner = CharField(max_length=100, null=True)
        lease_expires_at = DateTimeField(null=True)

    class Event(Base):
        order = ForeignKeyField(Order, null=True, on_delete="CASCADE")
        operation = ForeignKeyField(Operation, null=True, on_delete="SET NULL")
        kind = CharField(max_length=64)
        message = TextField()
        data = TextField(default="{}")
        actor = CharField(max_length=100, default="system")
        created_at = DateTimeField(default=datetime.datetime.now, index=True)

    db.create_tables([Customer, Product, ProductRevision, Order, Operation, Event])


def down(migrator, db):
    for table in ("event", "operation", "live_order", "product_revision", "product", "customer"):
        db.execute_sql(f"DROP TABLE IF EXISTS {table}")
