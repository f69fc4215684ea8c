"""A hostname belongs to one order until that order is terminated (issue 9, item 4), on SQLite and PostgreSQL."""
from __future__ import annotations

import threading

import peewee
import pytest

from app.errors import Conflict, InvalidRequest, NamingError
from app.models import Order


def create(live, customer, service_id: int, **fields):
    fields.setdefault("product", "busybox-demo")
    fields.setdefault("plan", "small")
    return live.orders.create(service_id=service_id, customer=customer, **fields)


def test_two_orders_cannot_share_a_custom_domain(live, make_customer):
    first = create(live, make_customer("a@river.example", 1), 1, domain="maps.river.example")
    assert first.order.hostname == "maps.river.example"
    with pytest.raises(Conflict) as refused:
        create(live, make_customer("b@other.example", 2), 2, domain="maps.river.example")
    message = str(refused.value)
    assert "maps.river.example" in message and "already used by another order" in message
    assert first.order.instance not in message and "a@river.example" not in message, "never names the other order"
    assert Order.select().count() == 1, "nothing of the refused order was written"


@pytest.mark.parametrize("spelling", ["MAPS.River.Example", "maps.river.example.", " https://maps.river.example/x "])
def test_hostnames_are_compared_after_normalisation(live, make_customer, spelling):
    create(live, make_customer("a@river.example", 1), 1, domain="maps.river.example")
    with pytest.raises(Conflict):
        create(live, make_customer("b@other.example", 2), 2, domain=spelling)


def test_unicode_and_punycode_spellings_are_one_hostname(live, make_customer):
    create(live, make_customer("a@river.example", 1), 1, domain="bücher.example")
    with pytest.raises(Conflict):
        create(live, make_customer("b@other.example", 2), 2, domain="xn--bcher-kva.example")


def test_a_custom_domain_cannot_take_a_generated_hostname(live, make_customer, settings):
    generated = create(live, make_customer("a@river.example", 1), 1, username="river")
    assert generated.order.hostname == f"river.{settings.base_domain}"
    # Since issue 12 no customer domain may lie under the base domain at all (those are generated hostnames).
    for domain in (f"River.{settings.base_domain}", f"free.{settings.base_domain}", settings.base_domain):
        with pytest.raises(InvalidRequest, match=f"is under the base domain {settings.base_domain}"):
            create(live, make_customer("b@other.example", 2), 2, domain=domain)
    assert Order.select().count() == 1


def test_a_generated_hostname_never_takes_a_custom_domain(live, make_customer, settings):
    # An order recorded before issue 12 may hold a domain under the base domain: generated names skip it.
    held = create(live, make_customer("a@river.example", 1), 1, domain="maps.river.example").order
    Order.update(hostname=f"acme.{settings.base_domain}").where(Order.id == held.id).execute()
    derived = create(live, make_customer("b@other.example", 2), 2, username="acme")
    assert derived.order.instance == "acme-2", "the identifier whose hostname a domain holds is skipped"
    assert derived.order.hostname == f"acme-2.{settings.base_domain}"
    with pytest.raises(Conflict, match=f"hostname acme.{settings.base_domain} is already used"):
        create(live, make_customer("c@third.example", 3), 3, instance="acme")


@pytest.mark.parametrize("domain", ["192.0.2.10", "[2001:db8::1]", "192.0.2.10:8080"])
def test_an_ip_address_is_not_a_domain(live, make_customer, domain):
    with pytest.raises(NamingError, match="an IP address is not a hostname"):
        create(live, make_customer(), 1, domain=domain)
    assert Order.select().count() == 0


def test_the_database_enforces_the_rule(live, make_customer):
    first = create(live, make_customer(), 1, domain="maps.river.example").order
    with pytest.raises(peewee.IntegrityError):
        Order.create(whmcs_service_id=2, customer=first.customer, product=first.product, revision=first.revision,
                     plan="small", instance="intruder", hostname="maps.river.example", status="active")


def test_a_terminated_order_frees_its_hostname(live, make_customer):
    first = create(live, make_customer(), 1, domain="maps.river.example").order
    live.orders.terminate(first)
    live.worker().run_until_idle(timeout=120)
    assert Order.get_by_id(first.id).status == "terminated"
    second = create(live, make_customer("b@other.example", 2), 2, domain="maps.river.example")
    assert second.order.hostname == "maps.river.example"


def test_concurrent_creates_with_one_domain_give_it_to_exactly_one(live, make_customer):
    results: dict[int, object] = {}

    def attempt(service_id: int) -> None:
        with live.db.connection_context():
            try:
                results[service_id] = create(live, make_customer(f"c{service_id}@x.example", service_id), service_id,
                                             domain="maps.river.example").order.id
            except Conflict as exc:
                results[service_id] = exc

    threads = [threading.Thread(target=attempt, args=(10 + n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    winners = [value for value in results.values() if isinstance(value, int)]
    assert len(results) == 8 and len(winners) == 1, results
    assert all("already used by another order" in str(v) for v in results.values() if not isinstance(v, int))
    assert Order.select().where(Order.hostname == "maps.river.example").count() == 1


def test_change_package_moves_the_order_to_a_free_hostname_only(live, make_customer):
    first = create(live, make_customer("a@river.example", 1), 1, domain="maps.river.example").order
    second = create(live, make_customer("b@other.example", 2), 2, username="other").order
    with pytest.raises(Conflict, match="hostname maps.river.example is already used"):
        live.orders.change_plan(second, "small", domain="Maps.River.Example")
    assert Order.get_by_id(second.id).hostname == second.hostname, "a refused change changes nothing"

    moved = live.orders.change_plan(second, "small", domain="atlas.other.example")
    assert moved.operation is not None and moved.operation.params["hostname"] == "atlas.other.example"
    assert Order.get_by_id(second.id).hostname == "atlas.other.example", "reserved at once"
    repeated = live.orders.change_plan(Order.get_by_id(second.id), "small", domain="ATLAS.other.example.")
    assert repeated.operation.id == moved.operation.id, "a repeat gets the same operation"
    own = live.orders.change_plan(Order.get_by_id(first.id), "small", domain="maps.river.example.")
    assert own.operation.params["hostname"] == "maps.river.example", "its own hostname is no conflict"


def test_plans_and_products_match_without_case_or_spaces(live, make_customer):
    outcome = create(live, make_customer(), 1, product="  Busybox-Demo ", plan=" SMALL ")
    assert outcome.order.product.slug == "busybox-demo" and outcome.order.plan == "small"
    with pytest.raises(InvalidRequest) as refused:
        create(live, make_customer(), 2, plan="Gold")
    assert "'Gold'" in str(refused.value) and "plans: large, small" in str(refused.value)
    with pytest.raises(InvalidRequest, match="unknown product 'nope'"):
        create(live, make_customer(), 3, product="Nope")


def test_concurrent_creates_with_one_username_all_succeed_with_distinct_names(live, make_customer, settings):
    """A derived identifier that a concurrent create takes is derived again, never a 409 (QA finding)."""
    results: dict[int, object] = {}

    def attempt(service_id: int) -> None:
        with live.db.connection_context():
            try:
                results[service_id] = create(live, make_customer(f"r{service_id}@x.example", service_id), service_id,
                                             username="race").order.instance
            except Exception as exc:  # noqa: BLE001 (reported by the assertion below)
                results[service_id] = exc

    threads = [threading.Thread(target=attempt, args=(100 + n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(map(str, results.values())) == sorted(["race"] + [f"race-{n}" for n in range(2, 17)]), results
    hostnames = [o.hostname for o in Order.select()]
    assert len(set(hostnames)) == 16 and all(h.endswith(f".{settings.base_domain}") for h in hostnames)
