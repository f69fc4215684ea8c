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


def test_a_new_order_gets_its_page_before_its_create_runs(live, proxy):
    order = create(live, run_it=False)
    assert live.ingress.apply_pending() == 1
    assert proxy.routes[order.id].mode is RouteMode.PREPARING
    assert live.ingress.apply_pending() == 0  # nothing pending any more


def test_once_the_proxy_is_unreachable_operations_stop_calling_it_until_a_resync_reaches_it(live, proxy):
    first, second = create(live, "one", 1), create(live, "two", 2)
    proxy.down = True
    live.orders.suspend(first, requested_by="test")
    run(live)
    calls = proxy.calls
    assert calls > 0  # the first write found it down
    live.orders.suspend(second, requested_by="test")
    run(live)
    assert again(second).status == "suspended" and again(second).ingress_pending is True
    assert live.ingress.apply_pending() == 0
    assert proxy.calls == calls, "nothing sent while the proxy is known to be unreachable"
    proxy.down = False
    live.ingress.resync()
    assert {proxy.routes[o.id].mode for o in (first, second)} == {RouteMode.SUSPENDED}
    live.orders.unsuspend(again(first), requested_by="test")
    run(live)
    assert proxy.routes[first.id].mode is RouteMode.PROXY  # writes resumed after the resync


def test_a_terminated_orders_port_is_not_reused_while_the_proxy_may_still_route_there(live, proxy):
    old = create(live, "old", 1)
    port = old.published_ports["web:8080"]
    proxy.down = True
    live.orders.terminate(old, requested_by="test")
    run(live)
    assert again(old).status == "terminated" and again(old).ingress_pending is True
    assert live.ingress.ports_still_routed() == {port}
    new = create(live, "new", 2)
    assert port not in new.published_ports.values()
    proxy.down = False
    live.ingress.resync()
    assert old.id not in proxy.routes and live.ingress.ports_still_routed() == set()


def test_a_suspend_shows_the_suspended_page_before_the_containers_stop(live, proxy, fake_engine):
    order = create(live)
    stopped_with = []
    stop = fake_engine.stop_container

    def recording(*args, **kwargs):
        stopped_with.append(proxy.routes[order.id].mode)
        return stop(*args, **kwargs)

    fake_engine.stop_container = recording
    live.orders.suspend(order, requested_by="test")
    run(live)
    assert stopped_with and set(stopped_with) == {RouteMode.SUSPENDED}


@pytest.mark.parametrize("domain", ["test.local", "bob.test.local", "Shop.Test.Local.", "a.b.test.local"])
def test_a_customer_cannot_take_a_name_of_the_base_domain(live, domain):
    from app.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match="under the base domain test.local") as refused:
        live.orders.create(service_id=9, customer=CustomerInfo(email="m@example.org"), product="busybox-demo",
                           plan="small", username="mallory", domain=domain)
    assert "leave the domain empty to use mallory.test.local" in str(refused.value)
    assert not Order.select().where(Order.whmcs_service_id == 9).exists()


def test_an_orders_own_generated_name_as_its_domain_is_accepted(live):
    outcome = live.orders.create(service_id=9, customer=CustomerInfo(email="b@example.org"), product="busybox-demo",
                                 plan="small", username="bob", domain="bob.test.local")
    assert outcome.order.hostname == "bob.test.local"
    # WHMCS sends the domain field with every change-package: the same name is no move.
    live.orders.change_plan(again(outcome.order), "small", domain="bob.test.local", requested_by="test")
    from app.errors import InvalidRequest
    with pytest.raises(InvalidRequest, match="under the base domain"):
        live.orders.change_plan(again(outcome.order), "large", domain="alice.test.local", requested_by="test")


def test_a_change_made_while_a_slow_resync_runs_stays_pending_and_is_applied_after_it(live, proxy, monkeypatch):
    import threading

    order = create(live)
    live.ingress.lock_wait_seconds = 0.05
    release, started = threading.Event(), threading.Event()
    sync = proxy.sync

    def slow_sync(routes, custom):  # the resync read the order active, then Caddy hangs
        started.set()
        release.wait(5)
        return sync(routes, custom)

    monkeypatch.setattr(proxy, "sync", slow_sync)
    resync = threading.Thread(target=live.ingress.resync)
    resync.start()
    assert started.wait(5)
    live.orders.suspend(order, requested_by="test")
    run(live)  # the operation is not held by the resync: its route writes give up after lock_wait_seconds
    assert again(order).status == "suspended"
    release.set()
    resync.join(5)
    assert proxy.routes[order.id].mode is RouteMode.PROXY  # what the resync read: stale
    assert again(order).ingress_pending is True, "the resync must not call a route it read before the change applied"
    assert live.ingress.apply_pending() == 1
    assert proxy.routes[order.id].mode is RouteMode.SUSPENDED and again(order).ingress_pending is False
