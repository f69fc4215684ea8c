"""A create is ONE transaction (customer upsert, order, operation, events), idempotent; and the prepared hot reads
(app.db.PreparedSelect) give the rows peewee's own queries give."""
from __future__ import annotations

import pytest

from app.db import PreparedSelect
from app.models import Customer, Event, Operation, Order, ProductRevision
from app.orders import service as order_service
from app.orders.service import CustomerInfo

PRODUCT = "busybox-demo"


def _counts() -> tuple[int, int, int, int]:
    return Customer.select().count(), Order.select().count(), Operation.select().count(), Event.select().count()


def _create(live, service_id: int, client_id: int):
    return live.orders.create(service_id=service_id, customer=CustomerInfo(email=f"c{client_id}@example.org",
                                                                           whmcs_client_id=client_id),
                              product=PRODUCT, plan="small", requested_by="key:test")


@pytest.mark.parametrize("failing_event", ["operation.requested", "order.created"])
def test_a_failure_mid_create_leaves_nothing(fake_live, monkeypatch, failing_event):
    before = _counts()
    real = order_service.record_event

    def record_event(kind, *args, **kwargs):
        if kind == failing_event:
            raise RuntimeError("the database went away mid-create")
        return real(kind, *args, **kwargs)

    monkeypatch.setattr(order_service, "record_event", record_event)
    with pytest.raises(RuntimeError, match="mid-create"):
        _create(fake_live, 41, 41)
    assert _counts() == before  # not even the new customer
    monkeypatch.setattr(order_service, "record_event", real)
    outcome = _create(fake_live, 41, 41)
    assert outcome.created and _counts() == (before[0] + 1, before[1] + 1, before[2] + 1, before[3] + 2)


def test_a_create_writes_customer_order_operation_and_events_together(fake_live):
    outcome = _create(fake_live, 42, 7)
    order = Order.get_by_id(outcome.order.id)
    assert order.customer.whmcs_client_id == 7 and order.customer.email == "c7@example.org"
    assert [op.id for op in Operation.select().where(Operation.order == order)] == [outcome.operation.id]
    assert sorted(e.kind for e in Event.select().where(Event.order == order)) == ["operation.requested",
                                                                                   "order.created"]
    assert {e.operation_id for e in Event.select().where(Event.order == order)} == {outcome.operation.id}


def test_a_retried_create_returns_the_same_order_and_operation(fake_live):
    first = _create(fake_live, 43, 8)
    counts = _counts()
    again = _create(fake_live, 43, 8)
    assert not again.created
    assert (again.order.id, again.operation.id) == (first.order.id, first.operation.id)
    assert _counts() == counts


def test_an_existing_customer_is_reused_in_the_create_transaction(fake_live):
    _create(fake_live, 44, 9)
    customers = Customer.select().count()
    second = _create(fake_live, 45, 9)
    assert Customer.select().count() == customers
    assert second.order.customer_id == Order.get(Order.whmcs_service_id == 44).customer_id


def test_prepared_select_gives_what_the_query_gives(fake_live):
    for service_id in (51, 52):
        _create(fake_live, service_id, service_id)
    prepared = PreparedSelect(lambda service_id: Order.with_relations().where(Order.whmcs_service_id == service_id)
                              .limit(1), "service_id")
    for service_id in (51, 52):
        got = prepared.first(service_id=service_id)
        want = Order.with_relations().where(Order.whmcs_service_id == service_id).first()
        assert got.__data__ == want.__data__
        assert (got.product.slug, got.revision.label, got.customer.email) == (
            want.product.slug, want.revision.label, want.customer.email)
        assert isinstance(got.created_at, type(want.created_at)) and got.secrets == want.secrets
    assert prepared.first(service_id=999) is None


def test_prepared_select_with_several_parameters(fake_live):
    orders = [_create(fake_live, service_id, 60).order for service_id in (61, 62, 63)]
    between = PreparedSelect(lambda low, high: Order.select(Order.id).where(Order.whmcs_service_id.between(low, high))
                             .order_by(Order.id).tuples(), "low", "high")
    assert between.rows(low=62, high=63) == [(orders[1].id,), (orders[2].id,)]
    assert between.rows(low=61, high=61) == [(orders[0].id,)]


def test_the_current_revision_read_loads_its_product(fake_live):
    revision = fake_live.catalog.deployable_revision(PRODUCT)
    assert isinstance(revision, ProductRevision) and revision.product.slug == PRODUCT
    assert revision.id == revision.product.current_revision_id
