"""Order use cases: what the CLI and the HTTP API call.

Each call records intent (an Operation row) and returns at once; the worker
executes operations. Every call is idempotent: repeating it returns the same
order and the same unfinished operation instead of making new ones.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import peewee

from app.catalog.catalog import Catalog
from app.db import database
from app.errors import Conflict, InvalidRequest, NotFound
from app.models import Customer, Operation, Order, ProductRevision, record_event, utcnow
from app.naming import derive_instance, hostname_for, validate_instance

log = logging.getLogger(__name__)

UNFINISHED = ("pending", "running")
KINDS = ("create", "suspend", "unsuspend", "change_plan", "terminate", "redeploy", "restart", "upgrade")


@dataclass(frozen=True)
class CustomerInfo:
    email: str
    whmcs_client_id: int | None = None
    first_name: str = ""
    last_name: str = ""
    company: str = ""


@dataclass
class Outcome:
    """What a lifecycle call did: the order, the operation (None when nothing was needed), and whether it is new."""

    order: Order
    operation: Operation | None
    created: bool
    message: str


class OrderService:
    def __init__(self, catalog: Catalog, base_domain: str, max_attempts: int = 5):
        self.catalog = catalog
        self.base_domain = base_domain
        self.max_attempts = max_attempts

    # -- customers ----------------------------------------------------------
    def upsert_customer(self, info: CustomerInfo) -> Customer:
        email = (info.email or "").strip().lower()
        if "@" not in email or len(email) > 254:
            raise InvalidRequest(f"customer email {info.email!r} is not a valid address")
        with database.atomic():
            customer = None
            if info.whmcs_client_id is not None:
                customer = Customer.get_or_none(Customer.whmcs_client_id == info.whmcs_client_id)
            if customer is None:
                customer = Customer.get_or_none((Customer.email == email) & (Customer.whmcs_client_id.is_null(True) | (Customer.whmcs_client_id == info.whmcs_client_id)))
            if customer is None:
                return Customer.create(whmcs_client_id=info.whmcs_client_id, email=email, first_name=info.first_name,
                                       last_name=info.last_name, company=info.company)
            customer.email = email
            customer.whmcs_client_id = info.whmcs_client_id if info.whmcs_client_id is not None else customer.whmcs_client_id
            for attr in ("first_name", "last_name", "company"):
                if getattr(info, attr):
                    setattr(customer, attr, getattr(info, attr))
            customer.updated_at = utcnow()
            customer.save()
            return customer

    # -- lookups ------------------------------------------------------------
    def get(self, reference: str | int) -> Order:
        """An order by id, instance identifier or ``service:<WHMCS service id>``."""
        text = str(reference).strip()
        if text.startswith("service:") and text[8:].isdigit():
            order = Order.get_or_none(Order.whmcs_service_id == int(text[8:]))
        elif text.isdigit():
            order = Order.get_or_none(Order.id == int(text))
        else:
            order = Order.get_or_none(Order.instance == text)
        if order is None:
            raise NotFound(f"no order {text!r}")
        return order

    def by_service_id(self, service_id: int) -> Order | None:
        return Order.get_or_none(Order.whmcs_service_id == service_id)

    # -- lifecycle ----------------------------------------------------------
    def create(self, *, service_id: int, customer: CustomerInfo, product: str, plan: str,
               username: str | None = None, domain: str | None = None, instance: str | None = None,
               requested_by: str = "system") -> Outcome:
        if not isinstance(service_id, int) or service_id <= 0:
            raise InvalidRequest(f"service id must be a positive integer, got {service_id!r}")
        existing = self.by_service_id(service_id)
        if existing is not None:
            return self._repeat_create(existing, product, plan, requested_by)

        revision = self.catalog.deployable_revision(product)
        definition = self.catalog.definition(revision)
        definition.require_valid()
        if plan not in definition.plans:
            raise InvalidRequest(f"product {product} has no plan {plan!r} (plans: {', '.join(sorted(definition.plans))})")
        owner = self.upsert_customer(customer)
        if instance:
            instance = validate_instance(instance)
        for attempt in range(5):
            try:
                order, operation = self._insert_order(service_id, owner, revision, definition, plan,
                                                      username, domain, instance, requested_by)
                break
            except peewee.IntegrityError:
                existing = self.by_service_id(service_id)
                if existing is not None:
                    # A concurrent create for the same service id won the race: answer as a repeat.
                    return self._repeat_create(existing, product, plan, requested_by)
                if instance or attempt == 4:
                    raise Conflict(f"instance identifier for service {service_id} is already taken; try again") from None
                # Another order took the same derived identifier meanwhile: derive again.
        return Outcome(order, operation, True, f"order {order.instance} accepted")

    def _insert_order(self, service_id, owner, revision, definition, plan, username, domain, instance, requested_by):
        with database.atomic():
            if instance and Order.get_or_none(Order.instance == instance):
                raise Conflict(f"instance identifier {instance!r} is already used by another order")
            chosen = instance or derive_instance(
                [username, domain], lambda name: Order.select().where(Order.instance == name).exists(),
                fallback=f"order-{service_id}",
            )
            order = Order.create(
                whmcs_service_id=service_id, customer=owner, product=revision.product, revision=revision,
                plan=plan, instance=chosen, hostname=hostname_for(chosen, domain, self.base_domain),
                status="pending", secrets=definition.generate_secrets(),
            )
            operation = self._enqueue(order, "create", {}, requested_by)
            record_event("order.created", f"order {order.instance} created for service {service_id}",
                         order=order, operation=operation, actor=requested_by,
                         product=revision.product.slug, plan=plan)
        return order, operation

    def _repeat_create(self, order: Order, product: str, plan: str, requested_by: str) -> Outcome:
        if order.product.slug != product:
            raise Conflict(f"service {order.whmcs_service_id} already has an order for product {order.product.slug}, not {product}")
        if order.status == "terminated":
            raise Conflict(f"service {order.whmcs_service_id} was terminated; create a new service to order again")
        pending = self._unfinished(order, "create")
        if pending is not None:
            return Outcome(order, pending, False, "provisioning is already under way")
        if order.status == "failed":
            # A retry from billing after a failed create: provision again, same order.
            operation = self._enqueue(order, "create", {}, requested_by)
            return Outcome(order, operation, False, "provisioning retried")
        return Outcome(order, None, False, f"order already {order.status}")

    def suspend(self, order: Order, requested_by: str = "system") -> Outcome:
        return self._transition(order, "suspend", {}, requested_by, done_when="suspended")

    def unsuspend(self, order: Order, requested_by: str = "system") -> Outcome:
        return self._transition(order, "unsuspend", {}, requested_by, done_when="active")

    def redeploy(self, order: Order, requested_by: str = "system") -> Outcome:
        return self._transition(order, "redeploy", {}, requested_by, done_when=None)

    def restart(self, order: Order, requested_by: str = "system") -> Outcome:
        if order.status == "suspended":
            raise Conflict(f"order {order.instance} is suspended; unsuspend it instead of restarting")
        return self._transition(order, "restart", {}, requested_by, done_when=None)

    def terminate(self, order: Order | None, requested_by: str = "system") -> Outcome | None:
        if order is None:
            return None  # terminating an unknown service is a success: nothing to remove
        return self._transition(order, "terminate", {}, requested_by, done_when="terminated")

    def change_plan(self, order: Order, plan: str, product: str | None = None, requested_by: str = "system") -> Outcome:
        product = product or order.product.slug
        if product == order.product.slug:
            definition = self.catalog.definition(order.revision)
        else:
            definition = self.catalog.definition(self.catalog.deployable_revision(product))
        if plan not in definition.plans:
            raise InvalidRequest(f"product {product} has no plan {plan!r} (plans: {', '.join(sorted(definition.plans))})")
        params = {"plan": plan, "product": product}
        queued = self._unfinished(order, "change_plan")
        if queued is not None and queued.params == params:
            return Outcome(order, queued, False, "plan change already under way")
        if order.plan == plan and order.product.slug == product and self._unfinished(order) is None:
            return Outcome(order, None, False, f"order already on plan {plan}")
        return self._transition(order, "change_plan", params, requested_by, done_when=None)

    def resolve_revision(self, order: Order, revision: str | None) -> ProductRevision:
        """A valid revision of the order's product: the current one, or one named by hash/commit prefix."""
        if revision is None:
            return self.catalog.deployable_revision(order.product.slug)
        text = revision.strip().lower()
        if len(text) < 7:
            raise InvalidRequest(f"revision {revision!r} is too short: give at least 7 characters of its hash or commit")
        matches = [r for r in ProductRevision.select().where(ProductRevision.product == order.product)
                   if r.content_hash.startswith(text) or (r.commit or "").startswith(text)]
        if not matches:
            raise NotFound(f"product {order.product.slug} has no revision {revision!r}")
        if len(matches) > 1:
            raise InvalidRequest(f"revision {revision!r} is ambiguous: give more characters")
        if not matches[0].valid:
            raise InvalidRequest(f"revision {matches[0].label} of {order.product.slug} is invalid and cannot be deployed")
        return matches[0]

    def upgrade(self, order: Order, revision: str | None = None, requested_by: str = "system") -> Outcome:
        """Move the order to another revision of its product (newer, or back to an older one)."""
        target = self.resolve_revision(order, revision)
        params = {"revision": target.content_hash}
        queued = self._unfinished(order, "upgrade")
        if queued is not None and queued.params == params:
            return Outcome(order, queued, False, "upgrade already under way")
        if order.revision_id == target.id and self._unfinished(order) is None:
            return Outcome(order, None, False, f"order already at revision {target.label}")
        return self._transition(order, "upgrade", params, requested_by, done_when=None)

    def _transition(self, order: Order, kind: str, params: dict, requested_by: str, done_when: str | None) -> Outcome:
        if order.status == "terminated":
            if kind == "terminate":
                return Outcome(order, None, False, "order already terminated")
            raise Conflict(f"order {order.instance} is terminated")
        queued = self._unfinished(order, kind)
        if queued is not None and queued.params == params:
            return Outcome(order, queued, False, f"{kind} already under way")
        # Already there, with nothing queued that could change it: nothing to do.
        if done_when is not None and order.status == done_when and self._unfinished(order) is None:
            return Outcome(order, None, False, f"order already {done_when}")
        with database.atomic():
            operation = self._enqueue(order, kind, params, requested_by)
        return Outcome(order, operation, False, f"{kind} accepted")

    def _enqueue(self, order: Order, kind: str, params: dict, requested_by: str) -> Operation:
        operation = Operation.create(order=order, kind=kind, params=params, requested_by=requested_by,
                                     max_attempts=self.max_attempts)
        record_event("operation.requested", f"{kind} requested", order=order, operation=operation,
                     actor=requested_by, operation_kind=kind, params=params)
        log.info("order %s: %s requested by %s (operation %s)", order.instance, kind, requested_by, operation.id)
        return operation

    def _unfinished(self, order: Order, kind: str | None = None) -> Operation | None:
        query = Operation.select().where((Operation.order == order) & Operation.state.in_(UNFINISHED))
        if kind is not None:
            query = query.where(Operation.kind == kind)
        return query.order_by(Operation.id.desc()).first()
