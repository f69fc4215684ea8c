"""Routes follow the order's life through the worker (app/ingress/service.py) on the in-memory engine and proxy."""
from __future__ import annotations

import pytest

from app.ingress.routes import RouteMode
from app.models import Order
from app.orders.service import CustomerInfo
from tests.fakes import FakeRouteTable
from tests.unit.test_operations_fake import again, create, run


@pytest.fixture
def proxy(fake_live) -> FakeRouteTable:
    table = FakeRouteTable()
    fake_live.ingress.table = table  # the worker and the queries share this service
    return table


@pytest.fixture
def live(fake_live, proxy):
    return fake_live


def modes(proxy: FakeRouteTable, order: Order) -> list[RouteMode]:
    return [route.mode for route in proxy.history if route.order_id == order.id]


def test_a_create_is_prepared_then_proxied_to_the_recorded_port(live, proxy):
    order = create(live)
    assert modes(proxy, order) == [RouteMode.PREPARING, RouteMode.PROXY]
    route = proxy.routes[order.id]
    assert route.hostname == "acme.test.local"
    assert {path.upstream for path in route.paths} == {f"127.0.0.1:{order.published_ports['web:8080']}"}
    assert again(order).ingress_pending is False
    assert live.queries.order_view(again(order))["ingress"] == "applied"


def test_suspend_unsuspend_and_terminate(live, proxy):
    order = create(live)
    live.orders.suspend(order, requested_by="test")
    run(live)
    assert proxy.routes[order.id].mode is RouteMode.SUSPENDED
    live.orders.unsuspend(again(order), requested_by="test")
    run(live)
    assert modes(proxy, order)[-2:] == [RouteMode.PREPARING, RouteMode.PROXY]
    live.orders.terminate(again(order), requested_by="test")
    run(live)
    assert order.id not in proxy.routes


def test_the_proxy_down_never_fails_an_operation_and_the_resync_applies_the_route(live, proxy):
    order = create(live)
    proxy.down = True
    live.orders.suspend(order, requested_by="test")
    run(live)
    order = again(order)
    assert order.status == "suspended" and order.ingress_pending is True
    assert live.queries.order_view(order)["ingress"] == "pending"
    status = live.queries.ingress_status()
    assert (status.enabled, status.reachable, status.pending) == (True, False, 1)
    assert live.ingress.resync() is None  # still down: nothing changes, nothing raises
    proxy.down = False
    live.ingress.resync()
    assert proxy.routes[order.id].mode is RouteMode.SUSPENDED
    assert again(order).ingress_pending is False
    assert live.queries.ingress_status().pending == 0


def test_the_resync_puts_back_every_route_a_restarted_proxy_lost(live, proxy):
    first, second = create(live, "one", 1), create(live, "two", 2)
    live.orders.suspend(second, requested_by="test")
    run(live)
    proxy.routes.clear()  # Caddy restarted with an empty configuration
    report = live.ingress.resync()
    assert report.changed
    assert {order_id: route.mode for order_id, route in proxy.routes.items()} == {
        first.id: RouteMode.PROXY, second.id: RouteMode.SUSPENDED}
    assert not live.ingress.resync().changed  # nothing left to repair


def test_custom_domains_get_certificates_only_while_their_order_lives(live, proxy):
    outcome = live.orders.create(service_id=5, customer=CustomerInfo(email="ops@example.org"), product="busybox-demo",
                                 plan="small", username="shop", domain="Maps.Example.org")
    run(live)
    order = again(outcome.order)
    assert proxy.routes[order.id].hostname == "maps.example.org"
    assert proxy.custom_domains == ["maps.example.org"]
    live.orders.terminate(order, requested_by="test")
    run(live)
    assert proxy.custom_domains == [] and order.id not in proxy.routes


def test_the_ask_question_knows_live_hostnames_only(live, proxy):
    order = create(live)
    queries = live.queries
    assert queries.serves_hostname("acme.test.local")
    assert queries.serves_hostname("ACME.test.local.")
    assert not queries.serves_hostname("other.test.local")
    assert not queries.serves_hostname("")
    live.orders.terminate(order, requested_by="test")
    run(live)
    assert not queries.serves_hostname("acme.test.local")


def test_without_a_proxy_nothing_is_applied_and_views_say_off(fake_live):
    order = create(fake_live)
    assert fake_live.queries.order_view(order)["ingress"] == "off"
    assert fake_live.queries.ingress_status().enabled is False
    assert fake_live.ingress.resync() is None


def test_an_order_whose_revision_cannot_be_read_is_prepared_and_the_others_still_route(live, proxy, monkeypatch):
    good, broken = create(live, "good", 1), create(live, "broken", 2)
    real, calls = live.catalog.definition, []

    def definition(revision):  # the resync reads the orders oldest first: the second read is broken's
        calls.append(revision.id)
        if len(calls) == 2:
            raise ValueError("a stored revision that no longer parses")
        return real(revision)

    monkeypatch.setattr(live.catalog, "definition", definition)
    proxy.routes.clear()
    assert live.ingress.resync() is not None
    assert proxy.routes[good.id].mode is RouteMode.PROXY
    assert proxy.routes[broken.id].mode is RouteMode.PREPARING


def test_the_route_of_a_success_is_applied_before_the_operation_is_recorded_as_succeeded(live, proxy):
    seen = []
    put = proxy.put_route

    def recording(route):
        from app.models import Operation
        seen.append((route.mode, [op.state for op in Operation.select().where(Operation.order == route.order_id)]))
        put(route)

    proxy.put_route = recording
    create(live)
    assert seen == [(RouteMode.PREPARING, ["running"]), (RouteMode.PROXY, ["running"])]
