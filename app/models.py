"""The data model: customers, products and revisions, orders, operations, events.

The schema itself is created by the scripts in ``migrations/``; these classes
must stay in step with them (a test compares both).
"""
from __future__ import annotations

import datetime as dt

import peewee

from app.db import JSONField, database
from app.orders.lifecycle import INITIAL_STATUS, OperationState


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


class Customer(BaseModel):
    whmcs_client_id = peewee.IntegerField(null=True, unique=True)
    email = peewee.CharField(max_length=254, index=True)
    first_name = peewee.CharField(max_length=100, default="")
    last_name = peewee.CharField(max_length=100, default="")
    company = peewee.CharField(max_length=200, default="")
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)


class Product(BaseModel):
    # The folder name as printable text (app/catalog/files.py): a valid slug has at most 63 characters,
    # an invalid name is stored (escaped, at most 255) so it can be listed with its errors (migration 0004).
    slug = peewee.CharField(max_length=255, unique=True)
    name = peewee.CharField(max_length=200)
    description = peewee.TextField(default="")
    # The newest valid revision; an invalid newer definition never replaces it.
    current_revision = peewee.DeferredForeignKey("ProductRevision", null=True, on_delete="SET NULL")
    valid = peewee.BooleanField(default=True)
    errors = JSONField(default=list)
    updated_at = peewee.DateTimeField(default=utcnow)


class ProductRevision(BaseModel):
    product = peewee.ForeignKeyField(Product, backref="revisions", on_delete="CASCADE")
    # Content hash of manifest + compose file; a commit SHA when the source is git.
    content_hash = peewee.CharField(max_length=64)
    commit = peewee.CharField(max_length=64, null=True)
    manifest = peewee.TextField()
    compose = peewee.TextField()
    valid = peewee.BooleanField()
    errors = JSONField(default=list)
    created_at = peewee.DateTimeField(default=utcnow)
    # Git blob ids of product.yml and docker-compose.yml (GitLab source): unchanged blobs are not fetched again.
    manifest_blob = peewee.CharField(max_length=64, null=True)
    compose_blob = peewee.CharField(max_length=64, null=True)

    class Meta:
        indexes = ((("product", "content_hash"), True),)

    @property
    def label(self) -> str:
        """Short identifier used in container labels and listings."""
        return self.content_hash[:12]


class Order(BaseModel):
    whmcs_service_id = peewee.IntegerField(unique=True)
    customer = peewee.ForeignKeyField(Customer, backref="orders", on_delete="RESTRICT")
    product = peewee.ForeignKeyField(Product, backref="orders", on_delete="RESTRICT")
    revision = peewee.ForeignKeyField(ProductRevision, on_delete="RESTRICT")
    plan = peewee.CharField(max_length=64)
    instance = peewee.CharField(max_length=40, unique=True)
    hostname = peewee.CharField(max_length=253)
    # An OrderStatus, stored as its text; what may change it: app/orders/lifecycle.py (TRANSITIONS).
    status = peewee.CharField(max_length=16, default=INITIAL_STATUS, index=True)
    secrets = JSONField(default=dict)
    # {"<service>:<port>": host_port} of endpoints published on 127.0.0.1
    published_ports = JSONField(default=dict)
    # Volumes a change (upgrade, product or plan change) no longer mounts: kept on the engine, archived at
    # terminate. [{"volume": logical name, "revision": label it was last used by, "at": ISO time}]
    detached_volumes = JSONField(default=list)
    # Why the last operation failed: public text (customers, WHMCS) and private detail (operators, admin keys).
    last_error = peewee.TextField(null=True)
    last_error_detail = peewee.TextField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)
    terminated_at = peewee.DateTimeField(null=True)
    # The proxy may not hold this order's route as the order is now (app/ingress/service.py): set until
    # the worker has written it, and again when a write failed; the resync clears it.
    ingress_pending = peewee.BooleanField(default=True, index=True)
    # Docker Swarm: the node (id) every container and volume of the order is placed on, and its hostname then
    # (app/stacks/placement.py); NULL on one engine.
    node = peewee.CharField(max_length=64, null=True)
    node_name = peewee.CharField(max_length=253, null=True)

    class Meta:
        table_name = "live_order"  # ORDER is an SQL keyword
        # Also: a partial unique index on hostname WHERE status <> 'terminated' (migration 0006).

    @classmethod
    def with_relations(cls):
        """Orders with product, revision and customer loaded in the same query."""
        return (cls.select(cls, Product, ProductRevision, Customer)
                .join(Product).switch(cls).join(ProductRevision).switch(cls).join(Customer))


class Operation(BaseModel):
    order = peewee.ForeignKeyField(Order, backref="operations", on_delete="CASCADE")
    kind = peewee.CharField(max_length=32)  # an OperationKind, stored as its text
    # An OperationState, stored as its text: pending -> running -> succeeded | failed; running -> pending on a retry
    state = peewee.CharField(max_length=16, default=OperationState.PENDING, index=True)
    params = JSONField(default=dict)
    attempts = peewee.IntegerField(default=0)
    max_attempts = peewee.IntegerField(default=5)
    steps = JSONField(default=list)
    # Public text (customers, WHMCS) and private detail (operators, admin keys) of the last failure.
    error = peewee.TextField(null=True)
    error_detail = peewee.TextField(null=True)
    requested_by = peewee.CharField(max_length=100, default="system")
    created_at = peewee.DateTimeField(default=utcnow)
    started_at = peewee.DateTimeField(null=True)
    finished_at = peewee.DateTimeField(null=True)
    next_attempt_at = peewee.DateTimeField(default=utcnow)
    lease_owner = peewee.CharField(max_length=100, null=True)
    lease_expires_at = peewee.DateTimeField(null=True)


class Event(BaseModel):
    order = peewee.ForeignKeyField(Order, null=True, backref="events", on_delete="CASCADE")
    operation = peewee.ForeignKeyField(Operation, null=True, on_delete="SET NULL")
    kind = peewee.CharField(max_length=64)
    message = peewee.TextField()
    data = JSONField(default=dict)
    actor = peewee.CharField(max_length=100, default="system")
    created_at = peewee.DateTimeField(default=utcnow, index=True)


class ApiKey(BaseModel):
    name = peewee.CharField(max_length=100, unique=True)
    scope = peewee.CharField(max_length=16)
    # The token is shown once at creation; the prefix finds the row, the hash proves the secret.
    token_prefix = peewee.CharField(max_length=16, unique=True)
    token_hash = peewee.CharField(max_length=64)
    created_at = peewee.DateTimeField(default=utcnow)
    last_used_at = peewee.DateTimeField(null=True)
    revoked_at = peewee.DateTimeField(null=True)


class CatalogSync(BaseModel):
    """One row: how the last catalog sync went, and whether one was requested (webhook)."""

    source = peewee.CharField(max_length=300, default="")
    commit = peewee.CharField(max_length=64, null=True)
    requested_at = peewee.DateTimeField(null=True)
    last_attempt_at = peewee.DateTimeField(null=True)
    last_success_at = peewee.DateTimeField(null=True)
    last_error = peewee.TextField(null=True)


class WebhookDelivery(BaseModel):
    """A GitLab webhook delivery already handled (migration 0007): a replay of it is ignored.

    ``delivery_id`` is ``idempotency:<Idempotency-Key>`` or ``event:<X-Gitlab-Event-UUID>``;
    rows older than a week are pruned when a new delivery is recorded.
    """

    delivery_id = peewee.CharField(max_length=160, unique=True)
    received_at = peewee.DateTimeField(default=utcnow, index=True)


class WorkerHeartbeat(BaseModel):
    """A running worker process (migration 0008), seen by the web side: see ``app/orders/heartbeat.py``.

    ``worker`` is ``<host>:<pid>``. The worker writes its row at start, moves ``beat_at`` (UTC) on
    its dispatch ticks and deletes the row on a clean shutdown; a worker killed with SIGKILL leaves
    its row, which the next worker deletes when it starts. ``poll_seconds`` is the worker's
    LIVE_WORKER_POLL_SECONDS: how old its beat may get before it counts as gone depends on it.
    """

    worker = peewee.CharField(max_length=255, unique=True)
    started_at = peewee.DateTimeField(default=utcnow)
    beat_at = peewee.DateTimeField(default=utcnow)
    poll_seconds = peewee.FloatField()
    concurrency = peewee.IntegerField()


class Backup(BaseModel):
    """One backup the bridge took or tried to take (migration 0010; ``app/backups/service.py``).

    The store holds the backup itself (its manifest and artefacts) and is the truth about what can be
    restored; this row records the attempt. ``kind`` is a :class:`app.backups.service.BackupKind`, ``state``
    ``running``, ``succeeded``, ``failed`` or ``deleted`` (pruned or removed with its order's retention);
    ``backup_id`` is the store's id (set once the upload began); ``size`` is bytes of all artefacts.
    ``verified_at``/``verify_error`` record the last restore drill of this backup.
    """

    order = peewee.ForeignKeyField(Order, backref="backups", on_delete="CASCADE", index=True)
    operation = peewee.ForeignKeyField(Operation, null=True, on_delete="SET NULL")
    kind = peewee.CharField(max_length=16)
    state = peewee.CharField(max_length=16, index=True)
    backup_id = peewee.CharField(max_length=40, null=True, unique=True)
    started_at = peewee.DateTimeField(default=utcnow, index=True)
    finished_at = peewee.DateTimeField(null=True)
    size = peewee.BigIntegerField(null=True)
    artefacts = peewee.IntegerField(null=True)
    error = peewee.TextField(null=True)
    error_detail = peewee.TextField(null=True)
    deleted_at = peewee.DateTimeField(null=True)
    verified_at = peewee.DateTimeField(null=True)
    verify_error = peewee.TextField(null=True)


class ObservedContainer(BaseModel):
    """One container of this installation as the engine last reported it (migration 0012; written only by the
    worker's mirror, ``app/stacks/mirror.py``; read by the views, usage and drift).

    In swarm mode a row is one swarm service (Live's "container"), its state that of its newest task.
    ``order_id`` is the ``live.order`` label (not a foreign key: a container may outlive or predate its row);
    ``state``/``health``/``exit_code``/``node``/``error`` are :class:`~app.stacks.engine.ContainerState`'s;
    ``config_hash`` the ``live.config-hash`` label; ``deaths`` how often the mirror saw it die (``die``
    events, or a task that failed) since the row was made, ``last_died_at`` the last time (UTC);
    ``changed_at`` when state or health last changed, ``observed_at`` when the engine last confirmed the row;
    ``killed_at`` (migration 0015) the engine time (UTC) of its last ``kill`` event not yet followed by a ``die`` or
    a ``start``: the ``die`` it causes is a stop, not a death, whichever worker sees it.
    """

    container_id = peewee.CharField(max_length=64, unique=True)
    order_id = peewee.IntegerField(index=True)
    service = peewee.CharField(max_length=100, null=True)
    name = peewee.CharField(max_length=255)
    state = peewee.CharField(max_length=16)
    health = peewee.CharField(max_length=16, null=True)
    exit_code = peewee.IntegerField(null=True)
    config_hash = peewee.CharField(max_length=64, null=True)
    node = peewee.CharField(max_length=64, null=True)
    error = peewee.TextField(null=True)
    deaths = peewee.IntegerField(default=0)
    last_died_at = peewee.DateTimeField(null=True)
    changed_at = peewee.DateTimeField(default=utcnow)
    observed_at = peewee.DateTimeField(default=utcnow)
    killed_at = peewee.DateTimeField(null=True)


class EngineMirror(BaseModel):
    """Whether the worker follows the engine's event stream, per deployment (migration 0012).

    ``follower`` is the worker (``<host>:<pid>``); ``connected`` whether its stream is open now; ``beat_at``
    moves every few seconds while it is; ``last_listing_at`` the last full listing by label;
    ``last_event_at`` the engine time of the last event applied (the ``since`` of a reconnection);
    ``error`` why the stream is down (private text). The views' freshness rule is in ``app/stacks/mirror.py``.
    """

    deployment = peewee.CharField(max_length=64, unique=True)
    follower = peewee.CharField(max_length=255)
    connected = peewee.BooleanField(default=False)
    started_at = peewee.DateTimeField(default=utcnow)
    beat_at = peewee.DateTimeField(default=utcnow)
    last_listing_at = peewee.DateTimeField(null=True)
    last_event_at = peewee.DateTimeField(null=True)
    error = peewee.TextField(null=True)


class OrderUsage(BaseModel):
    """What the order's containers use, as the worker's usage sampler last measured it (migration 0013; written
    only by ``app/orders/usage.py``, read by every usage answer, which never asks the engine).

    One row per order. ``sampled_at`` (UTC) is when memory, CPU and the container counts were sampled, NULL until
    they were: ``memory_bytes`` in use by its running containers (page cache excluded, as ``docker stats``),
    ``cpu_seconds`` the CPU time they used since each started, ``containers_running``/``containers_total``, and
    ``memory_limit_bytes`` the sum of its services' memory limits (NULL: one is unlimited, or not sampled yet).
    ``disk_sampled_at`` is when ``disk_bytes`` (its named volumes, from one ``docker system df``) was sampled.
    """

    order = peewee.ForeignKeyField(Order, unique=True, on_delete="CASCADE")
    sampled_at = peewee.DateTimeField(null=True)
    memory_bytes = peewee.BigIntegerField(null=True)
    memory_limit_bytes = peewee.BigIntegerField(null=True)
    cpu_seconds = peewee.FloatField(null=True)
    containers_running = peewee.IntegerField(null=True)
    containers_total = peewee.IntegerField(null=True)
    disk_bytes = peewee.BigIntegerField(null=True)
    disk_sampled_at = peewee.DateTimeField(null=True)



class OrderDrift(BaseModel):
    """What should run on an order, and what the drift checker made of what runs (migration 0014;
    ``app/orders/drift.py`` owns the rules).

    ``expected`` is ``{service: {"config_hash": str, "one_shot": bool}}`` as the last successful deploy made it
    (``{}``: nothing should run, as after a suspend), ``expected_at`` when it was recorded (UTC);
    ``baseline`` ``{container_id: deaths}`` the mirror's death counters the checker counts crashes from.
    ``state`` is a :class:`app.orders.drift.DriftState` (``ok``, ``drifted``, ``repairing``, ``failing``);
    ``problems`` ``[{"service", "kind", "detail"}]`` the drift last detected (``kind``: missing, exited, dead,
    paused, created, unhealthy, config_changed, crash_loop), ``detected_at`` when it was first seen;
    ``repairs`` the ISO times of the redeploys the checker queued within the repair window;
    ``failing_since``/``failing_reason`` set while the order counts as failing (private text: may quote logs,
    masked).
    """

    order = peewee.ForeignKeyField(Order, unique=True, backref="drift_rows", on_delete="CASCADE")
    expected = JSONField(default=dict)
    expected_at = peewee.DateTimeField(default=utcnow)
    baseline = JSONField(default=dict)
    state = peewee.CharField(max_length=16, default="ok", index=True)
    problems = JSONField(default=list)
    detected_at = peewee.DateTimeField(null=True)
    repairs = JSONField(default=list)
    failing_since = peewee.DateTimeField(null=True)
    failing_reason = peewee.TextField(null=True)

    class Meta:
        table_name = "order_drift"


class AlertDelivery(BaseModel):
    """One alert (an event that needs a person) to one webhook URL, and every attempt to deliver it (migration
    0016; ``app/alerts.py`` owns the rules).

    ``alert`` is the alert's type (``operation_failed``, ``backup_failed``, ``drift_detected``, ``drift_failing``,
    ``operation_stuck``); ``body`` the exact JSON bytes (UTF-8 text) every attempt sends; ``state`` an
    :class:`app.alerts.DeliveryState` (``pending``, ``delivered``, ``failed``: attempts exhausted); ``attempts`` the
    attempts made of ``max_attempts``; ``next_attempt_at`` when the worker tries next (UTC); ``last_status`` the
    last HTTP status (NULL: no answer) and ``last_error`` a short reason (never the secret); ``history``
    ``[{"at": ISO UTC, "status": int|None, "error": str|None, "seconds": float}]`` one entry per attempt.
    """

    event = peewee.ForeignKeyField(Event, null=True, on_delete="SET NULL")
    alert = peewee.CharField(max_length=32)
    url = peewee.TextField()
    body = peewee.TextField()
    state = peewee.CharField(max_length=16, default="pending", index=True)
    attempts = peewee.IntegerField(default=0)
    max_attempts = peewee.IntegerField()
    next_attempt_at = peewee.DateTimeField(default=utcnow, index=True)
    created_at = peewee.DateTimeField(default=utcnow)
    finished_at = peewee.DateTimeField(null=True)
    last_status = peewee.IntegerField(null=True)
    last_error = peewee.TextField(null=True)
    history = JSONField(default=list)

    class Meta:
        table_name = "alert_delivery"


ALL_MODELS = [Customer, Product, ProductRevision, Order, Operation, Event, ApiKey, CatalogSync, WebhookDelivery,
              WorkerHeartbeat, Backup, ObservedContainer, EngineMirror, OrderUsage, OrderDrift, AlertDelivery]


def record_event(kind: str, message: str, *, order=None, operation=None, actor: str = "system", **data) -> Event:
    """Record an event; one that needs a person (``app.alerts.ALERT_EVENTS``) also queues its webhook deliveries
    in the same transaction, so an alert is never lost nor sent for an event that was not recorded."""
    from app import alerts  # app.alerts reads these models

    if not alerts.wanted(kind):
        return Event.create(kind=kind, message=message, order=order, operation=operation, actor=actor, data=data)
    with database.atomic():
        event = Event.create(kind=kind, message=message, order=order, operation=operation, actor=actor, data=data)
        alerts.queue(event)
    return event
