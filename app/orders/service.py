"""Order use cases: what the CLI and the HTTP API call.

Each call records intent (an Operation row) and returns at once; the worker
executes operations. Every call is idempotent: repeating it returns the same
order and the same unfinished operation instead of making new ones.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import peewee

from app.catalog.catalog import Catalog
from app.catalog.product import ProductDefinition
from app.db import PreparedSelect, database, transaction
from app.errors import Conflict, DataRiskError, HostnameTaken, InvalidRequest, LiveError, NotFound
from app.models import Customer, Operation, Order, ProductRevision, record_event, utcnow
from app.orders.lifecycle import (INITIAL_STATUS, UNFINISHED_STATES, OperationKind, OperationState, OrderStatus,
                                  public_params, transition)
from app.stacks.data_risk import DataRiskReport
from app.stacks.engine import NodeState
from app.naming import derive_instance, hostname_for, normalize_hostname, validate_instance

log = logging.getLogger(__name__)

# A create that derives its identifier loses the race to every concurrent create of the same name at most
# once each: enough attempts for a burst of same-name orders, each cheap (a few indexed queries).
CREATE_ATTEMPTS = 40


#: The reads of a create, compiled once (app.db.PreparedSelect): a create is the call billing repeats most.
_ORDER_BY_SERVICE = PreparedSelect(
    lambda service_id: Order.select().where(Order.whmcs_service_id == service_id).limit(1), "service_id")
_ORDER_WITH_INSTANCE = PreparedSelect(
    lambda instance: Order.select(Order.id).where(Order.instance == instance).limit(1).tuples(), "instance")
_ORDER_WITH_HOSTNAME = PreparedSelect(
    lambda hostname: Order.select(Order.id).where((Order.hostname == hostname) & (Order.status != OrderStatus.TERMINATED))
    .limit(1).tuples(), "hostname")
_CUSTOMER_BY_CLIENT = PreparedSelect(
    lambda client_id: Customer.select().where(Customer.whmcs_client_id == client_id).limit(1), "client_id")
# A customer of another WHMCS client id is never taken by email (NULL never equals: the IS NULL test covers it).
_CUSTOMER_BY_EMAIL = PreparedSelect(
    lambda email, client_id: Customer.select().where(
        (Customer.email == email) & (Customer.whmcs_client_id.is_null(True) | (Customer.whmcs_client_id == client_id)))
    .limit(1), "email", "client_id")


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
    """The order use cases. ``data_risks(order, revision=, plan=)`` compares the order's stack with the one a
    change would give it (``OperationRunner.data_risks``); without it, changes are not checked for data risks.
    ``preview(order, revision, plan)`` tells what a change would do (``OperationRunner.preview``), for
    :meth:`preview_change_plan` and :meth:`preview_upgrade`. ``move_target(order, node, check=)`` resolves and
    checks the swarm node an order moves to (``OperationRunner.move_target``); without it, :meth:`move` is refused."""

    def __init__(self, catalog: Catalog, base_domain: str, max_attempts: int = 5,
                 data_risks: Callable[..., DataRiskReport] | None = None,
                 preview: Callable[[Order, ProductRevision, str | None], dict] | None = None,
                 move_target: Callable[..., NodeState] | None = None):
        self.catalog = catalog
        self.base_domain = base_domain
        self.max_attempts = max_attempts
        self.data_risks = data_risks
        self.preview = preview
        self.move_target = move_target

    # -- customers ----------------------------------------------------------
    def upsert_customer(self, info: CustomerInfo) -> Customer:
        """The customer for ``info``: found by WHMCS client id (else by email), created or updated.

        Safe under concurrency: two calls for the same new client insert it once; the loser of the
        race sees a unique violation, and its transaction is run again and finds the winner's row.
        """
        email = _customer_email(info)
        return transaction(lambda: self._upsert_customer(info, email), retry_on_integrity_error=True)

    @staticmethod
    def _upsert_customer(info: CustomerInfo, email: str) -> Customer:
        customer = None
        if info.whmcs_client_id is not None:
            customer = _CUSTOMER_BY_CLIENT.first(client_id=info.whmcs_client_id)
        if customer is None:
            customer = _CUSTOMER_BY_EMAIL.first(email=email, client_id=info.whmcs_client_id)
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
    def by_service_id(self, service_id: int) -> Order | None:
        return _ORDER_BY_SERVICE.first(service_id=service_id)

    # -- lifecycle ----------------------------------------------------------
    def create(self, *, service_id: int, customer: CustomerInfo, product: str, plan: str,
               username: str | None = None, domain: str | None = None, instance: str | None = None,
               password: str | None = None, requested_by: str = "system") -> Outcome:
        """Record a new order and its ``create`` operation; a repeat returns the existing order.

        ``product`` and ``plan`` are matched without regard to case and surrounding spaces (WHMCS
        admins type them). The hostname (``domain``, else ``<instance>.<base domain>``) must not be
        held by another order that is not terminated. The customer (upserted), the order, its operation and
        their events are written in ONE transaction: all of them or nothing.

        ``password`` (WHMCS's) becomes the value of the product's credential variable (product.yml ``credential``)
        instead of a generated one; a product without a credential ignores it, an empty one is generated. A
        repeated create keeps the stored value (a change is ChangePassword's), except when it provisions a
        failed order again: that stack is made anew, with the password the repeat sends.

        Raises:
            InvalidRequest: unknown product or plan, invalid service id, email, domain or password.
            Conflict: the service already has an order for another product, or the hostname or
                the explicit instance identifier is taken.
        """
        if not isinstance(service_id, int) or service_id <= 0:
            raise InvalidRequest(f"service id must be a positive integer, got {service_id!r}")
        product = _product_slug(product)
        existing = self.by_service_id(service_id)
        if existing is not None:
            return self._repeat_create(existing, product, requested_by, password)

        revision = self._deployable_revision(product)
        definition = self.catalog.definition(revision)
        definition.require_valid()
        plan = match_plan(definition, plan)
        chosen_secrets = _password_secrets(definition, password)
        if instance:
            instance = validate_instance(instance)
        if domain and domain.strip():
            normalize_hostname(domain)  # an invalid domain is refused before anything is written
        email = _customer_email(customer)

        def insert() -> Outcome:
            existing = self.by_service_id(service_id)
            if existing is not None:
                # A concurrent create for the same service id won the race: answer as a repeat.
                return self._repeat_create(existing, product, requested_by, password)
            # The customer is written in the same transaction as the order, its operation and their events:
            # one commit, and a failure anywhere leaves none of them (a concurrent insert of the same new
            # customer is a unique violation: the transaction runs again and finds the other's row).
            owner = self._upsert_customer(customer, email)
            if instance and Order.select().where(Order.instance == instance).exists():
                raise Conflict(f"instance identifier {instance!r} is already used by another order")
            chosen = instance or derive_instance([username, domain], self._instance_taken,
                                                 fallback=f"order-{service_id}")
            order_hostname = hostname_for(chosen, domain, self.base_domain)
            if domain and domain.strip():
                self._require_own_domain(order_hostname, chosen)
            if instance or (domain and domain.strip()):
                # A hostname the caller chose (a domain, or an explicit identifier's generated name).
                self._require_free_hostname(order_hostname)
            # A derived identifier skipped taken hostnames already; if a concurrent create takes this one
            # meanwhile, the unique index refuses the insert and the transaction derives again.
            order = Order.create(
                whmcs_service_id=service_id, customer=owner, product=revision.product, revision=revision,
                plan=plan, instance=chosen, hostname=order_hostname, status=INITIAL_STATUS,
                secrets=definition.generate_secrets(chosen_secrets),
            )
            operation = self._enqueue(order, OperationKind.CREATE, {}, requested_by)
            record_event("order.created", f"order {order.instance} created for service {service_id}",
                         order=order, operation=operation, actor=requested_by,
                         product=revision.product.slug, plan=plan)
            return Outcome(order, operation, True, f"order {order.instance} accepted")

        try:
            # A unique violation means another create took the service id, the identifier or the
            # hostname meanwhile: the transaction runs again and sees what the other one committed.
            return transaction(insert, retry_on_integrity_error=True, attempts=CREATE_ATTEMPTS)
        except peewee.IntegrityError:
            raise Conflict(f"the order for service {service_id} conflicts with orders created at the same time; "
                           "try again") from None

    def _instance_taken(self, name: str) -> bool:
        """An identifier is taken by any order ever made, or when its generated hostname is in use."""
        return (_ORDER_WITH_INSTANCE.first(instance=name) is not None
                or self._hostname_in_use(f"{name}.{self.base_domain}"))

    @staticmethod
    def _hostname_in_use(hostname: str, exclude: int | None = None) -> bool:
        if exclude is None:
            return _ORDER_WITH_HOSTNAME.first(hostname=hostname) is not None
        return Order.select().where((Order.hostname == hostname) & (Order.status != OrderStatus.TERMINATED)
                                    & (Order.id != exclude)).exists()

    def _require_own_domain(self, hostname: str, instance: str) -> None:
        """A customer's domain is their own: the base domain and the names under it are the orders' generated
        hostnames (and the operator's), never a customer's pick, except the order's own ``<instance>.<base>``.

        Raises InvalidRequest naming the domain and the base domain.
        """
        base = self.base_domain
        if (hostname == base or hostname.endswith("." + base)) and hostname != f"{instance}.{base}":
            raise InvalidRequest(f"domain {hostname!r} is under the base domain {base}, whose names are the orders' "
                                 f"generated hostnames; leave the domain empty to use {instance}.{base}, or give a "
                                 "domain of the customer's own")

    def _require_free_hostname(self, hostname: str, exclude: int | None = None) -> None:
        # The message never names the other order or its customer.
        if self._hostname_in_use(hostname, exclude):
            raise HostnameTaken(f"hostname {hostname} is already used by another order; a hostname belongs to one "
                                "order until that order is terminated")

    def _deployable_revision(self, product: str) -> ProductRevision:
        """The revision a new order of ``product`` gets; an unknown product is a 422, not a 404."""
        try:
            return self.catalog.deployable_revision(product)
        except NotFound as exc:
            raise InvalidRequest(exc.message) from exc

    def _repeat_create(self, order: Order, product: str, requested_by: str, password: str | None = None) -> Outcome:
        def repeat() -> Outcome:
            current = self._lock(order)
            credential = self.catalog.definition(current.revision).credential
            kept = ""
            if credential is not None and password and (current.secrets or {}).get(credential.variable) != password:
                kept = "; the stored password is kept (ChangePassword changes it)"
            if current.product.slug != product:
                raise Conflict(f"service {current.whmcs_service_id} already has an order for product "
                               f"{current.product.slug}, not {product}")
            if OrderStatus(current.status).final:
                raise Conflict(f"service {current.whmcs_service_id} was terminated; create a new service to order again")
            pending = self._unfinished(current, OperationKind.CREATE)
            if pending is not None:
                return Outcome(current, pending, False, "provisioning is already under way" + kept)
            if current.status in transition(OperationKind.CREATE).allowed_from:
                # A retry from billing after a failed create: provision again, same order, on the product's
                # current revision (a fixed product is what the retry is for; a failed create holds no data, so
                # the stack is made anew with the password this repeat sends).
                self._move_to_current_revision(current, requested_by)
                if kept:
                    current.secrets = {**(current.secrets or {}),
                                       **_password_secrets(self.catalog.definition(current.revision), password)}
                    current.save()
                operation = self._enqueue(current, OperationKind.CREATE, {}, requested_by)
                return Outcome(current, operation, False, "provisioning retried")
            return Outcome(current, None, False, f"order already {current.status}" + kept)

        return transaction(repeat)

    def _move_to_current_revision(self, order: Order, requested_by: str) -> None:
        """Point a failed order at its product's current revision, when that one still has the order's plan."""
        try:
            revision = self.catalog.deployable_revision(order.product.slug)
        except LiveError:
            return  # the product takes no orders now: the retry runs (and reports) on the order's revision
        definition = self.catalog.definition(revision)
        if revision.id == order.revision_id or order.plan not in definition.plans:
            return
        previous, order.revision = order.revision.label, revision
        order.secrets = definition.generate_secrets(order.secrets)
        order.updated_at = utcnow()
        order.save()
        record_event("order.upgraded", f"revision {previous} -> {revision.label} for the retried create",
                     order=order, actor=requested_by, previous=previous, revision=revision.label)

    def suspend(self, order: Order, requested_by: str = "system") -> Outcome:
        return self._transition(order, OperationKind.SUSPEND, {}, requested_by)

    def unsuspend(self, order: Order, requested_by: str = "system") -> Outcome:
        return self._transition(order, OperationKind.UNSUSPEND, {}, requested_by)

    def redeploy(self, order: Order, requested_by: str = "system", *, only_if_idle: bool = False) -> Outcome:
        """Queue a redeploy. ``only_if_idle`` (the drift checker's repairs, app/orders/drift.py): nothing is queued
        (``operation`` None) unless the order is ``active`` with no unfinished operation, checked in its lock."""
        def idle(current: Order) -> str | None:
            if current.status != OrderStatus.ACTIVE:
                return f"order is {current.status}: not redeployed"
            return "another operation is under way: not redeployed" if self._unfinished(current) else None

        return self._transition(order, OperationKind.REDEPLOY, {}, requested_by, check=idle if only_if_idle else None)

    def restart(self, order: Order, requested_by: str = "system") -> Outcome:
        return self._transition(order, OperationKind.RESTART, {}, requested_by)

    def back_up(self, order: Order, kind: str = "on_demand", requested_by: str = "system") -> Outcome:
        """Queue a backup of the order (``kind``: ``on_demand`` or ``scheduled``); a backup of the same kind
        already queued or running is returned instead of a second one. Conflict when the order has no data
        to back up (pending, terminated)."""
        if kind not in ("on_demand", "scheduled"):
            raise InvalidRequest(f"backup kind must be on_demand or scheduled, got {kind!r}")
        return self._transition(order, OperationKind.BACKUP, {"kind": kind}, requested_by)

    def restore(self, order: Order, backup_id: str, *, product: str, source_order_id: int,
                requested_by: str = "system") -> Outcome:
        """Queue the restore of backup ``backup_id`` (of product ``product``, taken of order ``source_order_id``:
        the manifest's) into ``order``. A backup of another order is accepted only when that order is terminated
        and of the same customer and product (staff restoring a late payer's final backup into a new order). The
        same restore already queued or running is returned. Raises NotFound (another customer's backup: the same
        answer as an unknown id), InvalidRequest (another product, or an order that is not terminated) and
        Conflict (the order is not active)."""
        if source_order_id != order.id:
            source = Order.get_or_none(Order.id == source_order_id)
            if source is None or source.customer_id != order.customer_id:
                # Another customer's backup answers as one that does not exist: its id says nothing.
                raise NotFound(f"no backup {backup_id!r}")
            if source.status != OrderStatus.TERMINATED:
                raise InvalidRequest(f"backup {backup_id} is of order {source.instance}, which is not terminated: "
                                     "only a terminated order's backups restore into another order")
        if product != order.product.slug:
            raise InvalidRequest(f"backup {backup_id} is of product {product}, order {order.instance} of "
                                 f"{order.product.slug}")
        return self._transition(order, OperationKind.RESTORE, {"backup_id": backup_id}, requested_by)

    def move(self, order: Order, node: str, requested_by: str = "system") -> Outcome:
        """Queue the move of the order to swarm node ``node`` (its id or hostname): its data is backed up, restored
        there, and its services run there (``OperationRunner._do_move``). The same move already queued or running
        is returned.

        Raises Conflict (the order is neither active nor suspended), InvalidRequest (one engine, an unknown node,
        the order's own node), NoCapacity (the node is not ready, active and reachable, or has no room for the
        order) and EngineUnavailable; nothing is recorded then.
        """
        refusal = transition(OperationKind.MOVE).refusal(order.status, order.instance)
        if refusal is not None:
            raise Conflict(refusal)
        if self.move_target is None:
            raise InvalidRequest("moving orders between nodes is not available here")
        target = self.move_target(order, node, check=False)
        queued = self._unfinished(order, OperationKind.MOVE)
        if queued is None or public_params(queued.params) != {"node": target.id}:
            self.move_target(order, node)
        return self._transition(order, OperationKind.MOVE, {"node": target.id}, requested_by)

    def change_password(self, order: Order, password: str, requested_by: str = "system") -> Outcome:
        """Store ``password`` as the value of the order's credential variable (product.yml ``credential``) and queue
        the ``change_password`` operation that applies it to the running stack (WHMCS ChangePassword).

        The value is written to ``Order.secrets`` in the transaction that queues the operation, which reads it
        from there: the operation's params (``{"variable": <name>}``) and events never hold it. A repeat with the
        stored value returns the unfinished operation, or is ``unchanged`` once applied (the create's value, or
        a change that succeeded); after a change that failed for good it queues a new one. Another value while
        one is queued is stored and queued again: operations of an order run one after the other, the last one
        applies the last value.

        Raises:
            Conflict: the order's product declares no credential (nothing recorded), or the order is not active
                (``unsuspend it first``; terminated).
            InvalidRequest: the password breaks the product's rules (the message names them, never the value).
        """
        kind = OperationKind.CHANGE_PASSWORD
        credential = self.catalog.definition(order.revision).credential
        if credential is None:
            raise Conflict(f"product {order.product.slug} declares no customer password (product.yml credential): "
                           f"the password of order {order.instance} cannot be changed; nothing was recorded")
        problem = credential.problem(password)
        if problem is not None:
            raise InvalidRequest(f"{problem}; nothing was changed", parameter="password")
        rule = transition(kind)

        def work() -> Outcome:
            current = self._lock(order)
            refusal = rule.refusal(current.status, current.instance)
            if refusal is not None:
                raise Conflict(refusal)
            queued = self._unfinished(current, kind)
            if (current.secrets or {}).get(credential.variable) == password:
                if queued is not None:
                    return Outcome(current, queued, False, f"{kind} already under way")
                last = (Operation.select().where((Operation.order == current) & (Operation.kind == kind))
                        .order_by(Operation.id.desc()).first())
                if last is None or last.state != OperationState.FAILED:
                    return Outcome(current, None, False, "the password is already set")
            else:
                # The values it replaces stay masked (log lines written before, a service's environment until it is
                # recreated): kept under ``<variable>.previous[.N]``, never answered (app.presenters.answered_secrets).
                current.secrets = credential.with_value(current.secrets, password)
                current.updated_at = utcnow()
                current.save()
            operation = self._enqueue(current, kind, {"variable": credential.variable}, requested_by)
            return Outcome(current, operation, False, f"{kind} accepted")

        return transaction(work)

    def terminate(self, order: Order | None, requested_by: str = "system") -> Outcome | None:
        if order is None:
            return None  # terminating an unknown service is a success: nothing to remove
        return self._transition(order, OperationKind.TERMINATE, {}, requested_by)

    def change_plan(self, order: Order, plan: str, product: str | None = None, requested_by: str = "system",
                    domain: str | None = None, allow_data_risk: bool = False) -> Outcome:
        """Move the order to another plan, product or hostname (WHMCS ChangePackage).

        ``plan`` and ``product`` are matched without regard to case and surrounding spaces. A
        ``domain`` that differs from the order's hostname moves it there; the new hostname is
        reserved at once (another order cannot take it meanwhile) and the stack converges when the
        operation runs.

        A change that would leave data behind (see :mod:`app.stacks.data_risk`) is refused unless
        ``allow_data_risk`` (operators only: the CLI and admin API pass it, WHMCS never does).

        Raises:
            InvalidRequest: unknown product or plan, invalid domain.
            Conflict: terminated order, or the hostname is taken.
            DataRiskError: the change detaches data and ``allow_data_risk`` is false.
        """
        revision, plan = self.resolve_change(order, plan, product)
        product = revision.product.slug
        hostname = normalize_hostname(domain) if domain and domain.strip() else None
        params = {"plan": plan, "product": product}
        if hostname is not None:
            params["hostname"] = hostname  # also when unchanged: a repeat must find the same operation
        if self._check_data(order, f"moving order {order.instance} to {product} plan {plan}", revision, plan,
                            allow_data_risk, how="live orders change-plan ... --allow-data-risk",
                            api="POST /api/v1/orders/{id}/change-plan"):
            params["allow_data_risk"] = True

        def unchanged(current: Order) -> str | None:
            if hostname is not None and hostname != current.hostname:
                return None
            if current.plan == plan and current.product.slug == product and self._unfinished(current) is None:
                return f"order already on plan {plan}"
            return None

        def move_hostname(current: Order) -> None:
            if hostname is None or hostname == current.hostname:
                return
            self._require_own_domain(hostname, current.instance)
            self._require_free_hostname(hostname, exclude=current.id)
            previous, current.hostname = current.hostname, hostname
            current.updated_at = utcnow()
            current.save()
            record_event("order.hostname_changed", f"hostname {previous} -> {hostname}", order=current,
                         previous=previous, hostname=hostname)

        try:
            return self._transition(order, OperationKind.CHANGE_PLAN, params, requested_by, check=unchanged,
                                    before_enqueue=move_hostname, retry_on_integrity_error=hostname is not None)
        except peewee.IntegrityError:
            raise HostnameTaken(f"hostname {hostname} is already used by another order") from None

    def resolve_change(self, order: Order, plan: str, product: str | None = None) -> tuple[ProductRevision, str]:
        """The revision and the exact plan name a change of plan (and product) moves the order to.

        The order's own revision when the product stays, else the new product's current one; names are
        matched without regard to case and surrounding spaces. Raises InvalidRequest naming the value
        and the valid choices.
        """
        product = _product_slug(product) if product and product.strip() else order.product.slug
        revision = order.revision if product == order.product.slug else self._deployable_revision(product)
        return revision, match_plan(self.catalog.definition(revision), plan)

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

    def preview_change_plan(self, order: Order, plan: str, product: str | None = None) -> tuple[str, dict]:
        """What :meth:`change_plan` to ``plan`` (and ``product``) would do, changing nothing.

        Returns the exact plan name and the preview (``OperationRunner.preview``: the action per service,
        the services removed, the data left behind). Raises InvalidRequest as :meth:`resolve_change` does.
        """
        revision, plan = self.resolve_change(order, plan, product)
        return plan, self.preview(order, revision, plan)

    def preview_upgrade(self, order: Order, revision: str | None = None) -> dict:
        """What :meth:`upgrade` to ``revision`` would do, changing nothing (see :meth:`preview_change_plan`).

        Raises as :meth:`resolve_revision` does.
        """
        return self.preview(order, self.resolve_revision(order, revision), None)

    def upgrade(self, order: Order, revision: str | None = None, requested_by: str = "system",
                allow_data_risk: bool = False) -> Outcome:
        """Move the order to another revision of its product (newer, or back to an older one).

        Raises:
            DataRiskError: the revision would leave data behind and ``allow_data_risk`` is false.
        """
        target = self.resolve_revision(order, revision)
        params = {"revision": target.content_hash}
        if self._check_data(order, f"upgrading order {order.instance} to revision {target.label}", target, order.plan,
                            allow_data_risk, how="live orders upgrade ... --allow-data-risk",
                            api="POST /api/v1/orders/{id}/upgrade"):
            params["allow_data_risk"] = True

        def unchanged(current: Order) -> str | None:
            if current.revision_id == target.id and self._unfinished(current) is None:
                return f"order already at revision {target.label}"
            return None

        return self._transition(order, OperationKind.UPGRADE, params, requested_by, check=unchanged)

    def _check_data(self, order: Order, what: str, revision: ProductRevision, plan: str, allow: bool,
                    how: str, api: str) -> bool:
        """True when the change detaches data and the operator accepted it; raises when not accepted."""
        if self.data_risks is None or (revision.id == order.revision_id and plan == order.plan):
            return False
        report = self.data_risks(order, revision=revision, plan=plan)
        if not report.detaches_data:
            return False
        if not allow:
            raise DataRiskError(what, report, how_to_allow=f"Nothing was changed. An operator can accept the risk with "
                                f"`{how}` or allow_data_risk in {api} (admin key; never from WHMCS).")
        return True

    def _transition(self, order: Order, kind: OperationKind, params: dict, requested_by: str, check=None,
                    before_enqueue=None, retry_on_integrity_error: bool = False) -> Outcome:
        """Record ``kind`` for the order unless the same operation is queued or nothing is to be done.

        Whether ``kind`` may follow the order's status, and when it has nothing to do, is the
        transition table's (:data:`app.orders.lifecycle.TRANSITIONS`); a refusal is a Conflict.
        Runs in one transaction holding the order's row lock (PostgreSQL ``FOR UPDATE``; SQLite
        transactions take the write lock up front), so concurrent identical calls get the same
        operation instead of two. ``check(order)`` may raise, or return a message meaning "nothing
        to do"; ``before_enqueue(order)`` runs in the same transaction before the operation is made.
        """
        rule = transition(kind)

        def work() -> Outcome:
            current = self._lock(order)
            status = OrderStatus(current.status)
            if status.final:  # whatever is queued: nothing may follow
                if status == rule.done_when:
                    return Outcome(current, None, False, f"order already {status}")
                raise Conflict(rule.refusal(status, current.instance))
            queued = self._unfinished(current, kind)
            if queued is not None and public_params(queued.params) == params:
                return Outcome(current, queued, False, f"{kind} already under way")
            refusal = rule.refusal(status, current.instance)
            if refusal is not None:
                raise Conflict(refusal)
            nothing = check(current) if check is not None else None
            if nothing:
                return Outcome(current, None, False, nothing)
            # Already there, with nothing queued that could change it: nothing to do.
            if status == rule.done_when and self._unfinished(current) is None:
                return Outcome(current, None, False, f"order already {status}")
            if before_enqueue is not None:
                before_enqueue(current)
            operation = self._enqueue(current, kind, params, requested_by)
            return Outcome(current, operation, False, f"{kind} accepted")

        return transaction(work, retry_on_integrity_error=retry_on_integrity_error)

    @staticmethod
    def _lock(order: Order) -> Order:
        """The order re-read inside the current transaction, locked against concurrent lifecycle calls."""
        query = Order.select().where(Order.id == order.id)
        if isinstance(database.obj, peewee.PostgresqlDatabase):
            query = query.for_update()
        current = query.get_or_none()
        if current is None:
            raise NotFound(f"no order {order.id}")
        return current

    def _enqueue(self, order: Order, kind: OperationKind, params: dict, requested_by: str) -> Operation:
        operation = Operation.create(order=order, kind=kind, params=params, requested_by=requested_by,
                                     max_attempts=self.max_attempts)
        record_event("operation.requested", f"{kind} requested", order=order, operation=operation,
                     actor=requested_by, operation_kind=kind, params=params)
        log.info("order %s: %s requested by %s (operation %s)", order.instance, kind, requested_by, operation.id)
        return operation

    def _unfinished(self, order: Order, kind: OperationKind | None = None) -> Operation | None:
        query = Operation.select().where((Operation.order == order) & Operation.state.in_(UNFINISHED_STATES))
        if kind is not None:
            query = query.where(Operation.kind == kind)
        return query.order_by(Operation.id.desc()).first()


def _customer_email(info: CustomerInfo) -> str:
    """The customer's email as stored (trimmed, lower case); raises InvalidRequest for one that is not an address."""
    email = (info.email or "").strip().lower()
    if "@" not in email or len(email) > 254:
        raise InvalidRequest(f"customer email {info.email!r} is not a valid address")
    return email


def _password_secrets(definition: ProductDefinition, password: str | None) -> dict[str, str]:
    """The secrets WHMCS's ``password`` sets at create: ``{<credential variable>: password}``; nothing when the
    product declares no credential or no password came. Raises InvalidRequest when it breaks the product's rules
    (the message never holds the value)."""
    credential = definition.credential
    if credential is None or not password:
        return {}
    problem = credential.problem(password)
    if problem is not None:
        raise InvalidRequest(f"product {definition.slug}: {problem}; nothing was created", parameter="password")
    return {credential.variable: password}


def _product_slug(product: str) -> str:
    """A product slug as WHMCS admins may type it: surrounding spaces and case do not matter."""
    return (product or "").strip().lower()


def match_plan(definition: ProductDefinition, requested: str) -> str:
    """The product's plan named by ``requested``, without regard to case and surrounding spaces.

    Plan names are lowercase (docs/PRODUCTS.md), so at most one plan matches.

    Raises:
        InvalidRequest: no plan matches; the message names the value and the valid plans.
    """
    text = (requested or "").strip()
    by_folded = {name.casefold(): name for name in definition.plans}
    if text in definition.plans:
        return text
    if text.casefold() in by_folded:
        return by_folded[text.casefold()]
    raise InvalidRequest(f"product {definition.slug} has no plan {requested!r} "
                         f"(plans: {', '.join(sorted(definition.plans))})")
