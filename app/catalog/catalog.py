"""The product catalog: a source's products recorded as revisions in the database.

A sync reads the source, validates every product and records one revision
per distinct content. A product's ``current_revision`` only ever moves to a
valid revision: an invalid change is listed with its errors and is never
deployed, while orders keep the revision they were created with.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field
from typing import Sequence

import peewee

from app.catalog.product import ProductDefinition, load_product
from app.catalog.source import CatalogSource, SourceProduct
from app.db import PreparedSelect, database
from app.errors import LiveError, NotFound, ProductError
from app.models import CatalogSync, Product, ProductRevision, WebhookDelivery, record_event, utcnow

log = logging.getLogger(__name__)

REMOVED = "removed from the catalog source"
#: How many valid products an "unknown product" message lists at most.
LISTED_CHOICES = 20
#: How long a webhook delivery's ids are kept to recognise its replays (see Catalog.request_sync).
KEEP_DELIVERIES = dt.timedelta(days=7)


@dataclass
class SyncReport:
    source: str
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    invalid: dict[str, list[str]] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    # Invalid products that not even the database would take (also in ``invalid``, with the reason).
    unrecorded: list[str] = field(default_factory=list)


# The database is down or the connection broke: the sync stops (the worker tries again later).
# Any other database error while recording one product is about that product's content.
DATABASE_DOWN = (peewee.OperationalError, peewee.InterfaceError)


#: A product's current revision with the product, by slug (the create call's read; app.db.PreparedSelect).
_CURRENT_REVISION = PreparedSelect(
    lambda slug: ProductRevision.select(ProductRevision, Product)
    .join(Product, on=(Product.current_revision == ProductRevision.id), attr="product")
    .where(Product.slug == slug).limit(1), "slug")


class Catalog:
    def __init__(self, source: CatalogSource, orchestrator: str = "docker"):
        self.source = source
        # LIVE_ORCHESTRATOR: products are validated for what it can run (a swarm refuses more than one engine).
        self.orchestrator = orchestrator
        self._definitions: dict[str, ProductDefinition] = {}
        self._lock = threading.Lock()
        self._seeded = False

    def sync(self) -> SyncReport:
        """Read the source and record what changed; a failed read leaves the catalog as it was.

        Raises the source's :class:`LiveError` (e.g. ``CatalogSourceError``) when it
        cannot be read, and the database's errors of :data:`DATABASE_DOWN`. Never
        raises because of one product's content: a product that cannot be read,
        validated or recorded is listed invalid (or, when even that is refused,
        in ``report.unrecorded``), and every other product syncs.
        """
        report = SyncReport(source=self.source.describe())
        state = self._state()
        state.source, state.last_attempt_at = report.source, utcnow()
        self._seed_blob_cache()
        try:
            items = self.source.read()
        except Exception as exc:  # recorded for /readyz and GET /api/v1/catalog, then raised as it came
            known = isinstance(exc, LiveError)
            state.last_error = str(exc) if known else f"reading the source failed: {type(exc).__name__}: {exc}"
            state.save()
            log.warning("catalog sync from %s failed, keeping the last catalog: %s", report.source, state.last_error)
            raise
        seen = set()
        for item in items:
            seen.add(item.slug)
            self._record_safely(self._load(item), item, report)
        with database.atomic():
            # Read in full before writing (SQLite read snapshots, see app/db.py).
            for product in list(Product.select()):
                # An invalid product that leaves the source is removed too: its old errors are nothing to fix.
                if product.slug not in seen and product.errors != [REMOVED]:
                    # Existing orders keep their revision; new orders are refused.
                    report.removed.append(product.slug)
                    product.valid, product.errors = False, [REMOVED]
                    product.save()
        state.last_success_at, state.last_error = utcnow(), None
        state.commit = next((item.commit for item in items if item.commit), None)
        state.save()
        log.info("catalog sync from %s: %d added, %d changed, %d unchanged, %d invalid",
                 report.source, len(report.added), len(report.changed), len(report.unchanged), len(report.invalid))
        return report

    @staticmethod
    def _state() -> CatalogSync:
        state = CatalogSync.get_or_none()
        return state if state is not None else CatalogSync.create()

    def status(self) -> CatalogSync:
        return self._state()

    def request_sync(self, delivery_ids: Sequence[str] = ()) -> bool:
        """Ask the worker to sync soon (the webhook's way: it must answer fast), once per delivery.

        ``delivery_ids`` name the webhook delivery asking (GitLab's ``Idempotency-Key`` and
        ``X-Gitlab-Event-UUID``, see :mod:`app.web.gitlab_hook`). When one of them was recorded
        before, the delivery is a replay: nothing is asked and the answer is False. Recording and
        asking are one transaction.
        """
        with database.atomic():
            if not self._record_delivery(delivery_ids):
                return False
            state = self._state()
            state.requested_at = utcnow()
            state.save()
        return True

    @staticmethod
    def _record_delivery(ids: Sequence[str]) -> bool:
        """Record the delivery's ids; False when one of them was recorded before (a replay).

        Insert-or-ignore (``INSERT OR IGNORE`` on SQLite, ``ON CONFLICT DO NOTHING`` on
        PostgreSQL), so two concurrent copies of one delivery cannot both be new. Deletes the
        records older than KEEP_DELIVERIES on the way (an indexed range delete).
        """
        if not ids:
            return True
        now = utcnow()
        fresh = True
        for delivery_id in ids:
            inserted = (WebhookDelivery.insert(delivery_id=delivery_id, received_at=now)
                        .on_conflict_ignore().as_rowcount().execute())
            fresh = fresh and inserted == 1
        WebhookDelivery.delete().where(WebhookDelivery.received_at < now - KEEP_DELIVERIES).execute()
        return fresh

    def sync_requested(self) -> bool:
        state = self._state()
        return state.requested_at is not None and (state.last_attempt_at is None or state.requested_at > state.last_attempt_at)

    def _seed_blob_cache(self) -> None:
        """Files already stored need not be fetched again after a restart."""
        remember = getattr(self.source, "remember", None)
        if remember is None or self._seeded:
            return
        query = ProductRevision.select(ProductRevision.manifest_blob, ProductRevision.manifest,
                                       ProductRevision.compose_blob, ProductRevision.compose)
        for revision in query:
            if revision.manifest_blob:
                remember(revision.manifest_blob, revision.manifest)
            if revision.compose_blob:
                remember(revision.compose_blob, revision.compose)
        self._seeded = True

    def _load(self, item: SourceProduct) -> ProductDefinition:
        """Validate one product; a crash on its content makes that product invalid, never the sync fail."""
        try:
            return item.load(self.orchestrator)
        except Exception as exc:  # a bug met by this product's content: log it for the operators, go on
            log.exception("product %s: validation crashed", item.slug)
            return ProductDefinition(
                slug=item.slug, manifest_text=item.manifest_text, compose_text=item.compose_text, name=item.slug[:200],
                errors=[*item.problems, f"product {item.slug}: could not be validated: internal error "
                                        f"({type(exc).__name__}); the log has the details"],
                read_problems=item.problems)

    def _record_safely(self, definition: ProductDefinition, item: SourceProduct, report: SyncReport) -> None:
        """Record one product; when the database refuses its content, record it invalid without the content.

        Errors of :data:`DATABASE_DOWN` propagate (the whole sync stops, to be
        retried); anything else the database refuses concerns this product only.
        """
        try:
            self._record(definition, item, report)
            return
        except DATABASE_DOWN:
            raise
        except (peewee.PeeweeException, ValueError) as exc:  # e.g. DataError, IntegrityError, NUL, surrogates
            detail = " ".join(str(exc).split())  # database messages span lines
            reason = f"product {definition.slug}: could not be recorded: {type(exc).__name__}: {detail}"
            log.error("product %s could not be recorded as read (%s); recording it invalid without its files",
                      definition.slug, exc)
        for bucket in (report.added, report.changed, report.unchanged):
            if definition.slug in bucket:
                bucket.remove(definition.slug)
        fallback = ProductDefinition(
            slug=definition.slug, manifest_text="", compose_text="", name=definition.slug[:200],
            errors=[*definition.errors, reason], read_problems=(*definition.read_problems, reason))
        try:
            self._record(fallback, SourceProduct(item.slug, "", "", item.commit), report)
        except DATABASE_DOWN:
            raise
        except (peewee.PeeweeException, ValueError) as exc:
            log.error("product %s cannot be recorded at all: %s", definition.slug, exc)
            report.invalid[definition.slug] = fallback.errors
            report.unrecorded.append(definition.slug)

    def _record(self, definition: ProductDefinition, item: SourceProduct, report: SyncReport) -> None:
        commit = item.commit
        with database.atomic():
            product, created = Product.get_or_create(
                slug=definition.slug, defaults={"name": definition.name[:200], "description": definition.description}
            )
            # get_or_create tolerates a concurrent sync inserting the same revision.
            revision, _ = ProductRevision.get_or_create(
                product=product, content_hash=definition.content_hash,
                defaults={"commit": commit, "manifest": definition.manifest_text, "compose": definition.compose_text,
                          "valid": definition.valid, "errors": definition.errors,
                          "manifest_blob": item.manifest_blob, "compose_blob": item.compose_blob},
            )
            is_current = product.current_revision_id == revision.id
            if definition.valid:
                if not is_current:
                    (report.added if product.current_revision_id is None else report.changed).append(definition.slug)
                    record_event("product.revision", f"product {definition.slug} now at revision {revision.label}",
                                 product=definition.slug, revision=revision.content_hash, commit=commit)
                else:
                    report.unchanged.append(definition.slug)
                product.current_revision = revision
                product.name, product.description = definition.name, definition.description
                product.valid, product.errors = True, []
            else:
                report.invalid[definition.slug] = definition.errors
                if product.errors != definition.errors:
                    log.warning("product %s is invalid: %s", definition.slug, "; ".join(definition.errors))
                product.valid, product.errors = False, definition.errors
                if created:
                    product.name = definition.name[:200]
            product.updated_at = utcnow()
            product.save()

    def product(self, slug: str) -> Product:
        """The product ``slug`` (valid or not).

        Raises:
            NotFound: no such product; the message lists the products that take orders (valid ones with a
                revision, at most :data:`LISTED_CHOICES`), never invalid folders.
        """
        product = Product.get_or_none(Product.slug == slug)
        if product is None:
            choices = [p.slug for p in Product.select(Product.slug).where(
                (Product.valid == True) & Product.current_revision.is_null(False))  # noqa: E712 (SQL)
                .order_by(Product.slug).limit(LISTED_CHOICES + 1)]
            known = ", ".join(choices[:LISTED_CHOICES]) + (", ..." if len(choices) > LISTED_CHOICES else "")
            raise NotFound(f"unknown product {slug!r} (products: {known or 'none'})")
        return product

    def deployable_revision(self, slug: str) -> ProductRevision:
        """The revision new orders of ``slug`` get: the newest valid one (its ``product`` loaded with it).

        A product not seen yet triggers one sync first, so a fresh installation
        does not depend on the worker having synced before the first order.
        """
        found = _CURRENT_REVISION.first(slug=slug)  # the usual case: one prepared query
        if found is not None and found.product.errors != [REMOVED]:
            return found
        if not Product.select().where(Product.slug == slug).exists():
            try:
                self.sync()
            except LiveError:
                pass  # the source is down: answer with what the catalog knows
        product = self.product(slug)
        if product.errors == [REMOVED]:
            raise NotFound(f"product {slug!r} was {REMOVED}; it takes no new orders")
        if product.current_revision_id is None:
            raise ProductError(slug, product.errors or ["has no valid revision"])
        return product.current_revision

    def definition(self, revision: ProductRevision) -> ProductDefinition:
        """The parsed definition of a stored revision (what an order was created with)."""
        key = f"{revision.product_id}:{revision.content_hash}"
        with self._lock:
            cached = self._definitions.get(key)
        if cached is None:
            cached = load_product(revision.product.slug, revision.manifest, revision.compose,
                                  orchestrator=self.orchestrator)
            with self._lock:
                self._definitions[key] = cached
        return cached
