"""Desired routes (app/ingress/routes.py) and their Caddy JSON (app/ingress/caddy.py, no Caddy needed)."""
from __future__ import annotations

import pytest

from app.compose.model import Endpoint
from app.ingress.caddy import INTERNAL_CA, CaddyIngress, CaddySettings
from app.ingress.pages import PREPARING_RETRY_AFTER
from app.ingress.routes import PathRoute, Route, RouteMode, desired_route, route_mode
from app.orders.lifecycle import OperationKind, OrderStatus


@pytest.mark.parametrize("status, kinds, mode", [
    ("active", [], RouteMode.PROXY),
    ("active", ["suspend"], RouteMode.SUSPENDED),  # before its containers stop: never a proxy error
    ("active", ["terminate"], RouteMode.SUSPENDED),
    ("active", ["suspend", "unsuspend"], RouteMode.SUSPENDED),  # the oldest unfinished one runs: it decides
    ("active", ["upgrade", "suspend"], RouteMode.PREPARING),
    ("failed", ["terminate"], RouteMode.SUSPENDED),
    ("active", ["upgrade"], RouteMode.PREPARING),
    ("active", ["restart"], RouteMode.PREPARING),
    ("active", ["change_plan"], RouteMode.PREPARING),
    ("pending", ["create"], RouteMode.PREPARING),
    ("pending", [], RouteMode.PREPARING),
    ("failed", [], RouteMode.PREPARING),
    ("suspended", [], RouteMode.SUSPENDED),
    ("suspended", ["change_plan"], RouteMode.SUSPENDED),  # recorded only: applies when resumed
    ("suspended", ["upgrade", "redeploy"], RouteMode.SUSPENDED),
    ("suspended", ["unsuspend"], RouteMode.PREPARING),
    ("terminated", [], None),
    ("terminated", ["create"], None),
])
def test_the_mode_follows_the_order_life(status, kinds, mode):
    assert route_mode(status, kinds) == mode


def test_every_kind_and_status_has_a_mode():
    for status in OrderStatus:
        for kind in OperationKind:
            mode = route_mode(status, [kind])
            assert (mode is None) == (status == OrderStatus.TERMINATED)


def route(status="active", kinds=(), endpoints=(Endpoint("viewer", "web", 8080, "/maps/"),), ports=None):
    return desired_route(order_id=7, instance="acme", hostname="acme.geocat.live", status=status,
                         unfinished_kinds=kinds, endpoints=endpoints,
                         published_ports={"web:8080": 20007} if ports is None else ports)


def test_an_active_order_proxies_each_path_longest_first_to_its_published_port():
    endpoints = (Endpoint("site", "web", 8080, "/"), Endpoint("viewer", "web", 8080, "/maps/"),
                 Endpoint("deep", "api", 9000, "/maps/api"))
    got = route(endpoints=endpoints, ports={"web:8080": 20007, "api:9000": 20008})
    assert got == Route(7, "acme", "acme.geocat.live", RouteMode.PROXY, (
        PathRoute("/maps/api", "127.0.0.1:20008"), PathRoute("/maps", "127.0.0.1:20007"),
        PathRoute("/", "127.0.0.1:20007")))


def test_a_path_whose_port_is_not_recorded_yet_has_no_upstream():
    assert route(ports={}).paths == (PathRoute("/maps", None),)


def test_other_modes_carry_no_paths_and_terminated_has_no_route():
    assert route(status="suspended").paths == ()
    assert route(status="pending", kinds=["create"]).mode is RouteMode.PREPARING
    assert route(status="terminated") is None


# -- the Caddy JSON of those routes ---------------------------------------------------------------------------
def caddy(**overrides) -> CaddyIngress:
    settings = dict(admin_url="http://127.0.0.1:2019", deployment="prod", base_domain="geocat.live", tls="acme",
                    acme_email="ops@example.org", billing_url="https://billing.example.org/clientarea.php")
    settings.update(overrides)
    return CaddyIngress(CaddySettings(**settings))


def test_a_proxy_route_matches_the_hostname_then_each_path_prefix_and_404s_other_paths():
    got = caddy().route_json(route())
    assert got["@id"] == "live-prod-order-7" and got["terminal"] is True
    assert got["match"] == [{"host": ["acme.geocat.live", "acme.geocat.live."]}]
    [subroute] = got["handle"]
    assert subroute["handler"] == "subroute"
    maps, other = subroute["routes"]
    assert maps["match"] == [{"path": ["/maps", "/maps/*"]}]
    assert maps["handle"] == [{"handler": "reverse_proxy", "upstreams": [{"dial": "127.0.0.1:20007"}]}]
    assert other["handle"][0]["status_code"] == 404 and "match" not in other


def test_a_root_endpoint_catches_every_path_of_its_host():
    got = caddy().route_json(route(endpoints=(Endpoint("site", "web", 8080, "/"),)))
    [only] = got["handle"][0]["routes"]
    assert "match" not in only and only["handle"][0]["handler"] == "reverse_proxy"


def test_the_preparing_and_suspended_pages_are_503s():
    preparing = caddy().route_json(route(status="pending", kinds=["create"]))["handle"][0]
    assert preparing["status_code"] == 503
    assert preparing["headers"]["Retry-After"] == [str(PREPARING_RETRY_AFTER)]
    assert "being prepared" in preparing["body"] and "acme.geocat.live" in preparing["body"]
    suspended = caddy().route_json(route(status="suspended"))["handle"][0]
    assert suspended["status_code"] == 503 and "suspended" in suspended["body"]
    assert 'href="https://billing.example.org/clientarea.php"' in suspended["body"]
    assert "href" not in caddy(billing_url="").route_json(route(status="suspended"))["handle"][0]["body"]
    for page in (preparing, suspended):  # Caddy would read {...} as a placeholder
        assert "{" not in page["body"] and "}" not in page["body"]


def test_a_hostname_is_never_written_unescaped_into_a_page():
    got = caddy().route_json(Route(1, "x", "a<b>.example.org", RouteMode.SUSPENDED))
    assert "a&lt;b&gt;.example.org" in got["handle"][0]["body"] and "<b>" not in got["handle"][0]["body"]


def test_the_server_with_tls_listens_on_the_https_port_and_redirects_from_the_http_port():
    ingress = caddy(bind="127.0.0.1", http_port=8080, https_port=8443)
    server = ingress.server_json([route()])
    assert server["listen"] == ["127.0.0.1:8443"]
    assert server["tls_connection_policies"] == [{}] and server["strict_sni_host"] is True
    # Certificates only from the bridge's on-demand policy, never Caddy's automatic ones (CA "local").
    assert server["automatic_https"] == {"disable_redirects": True, "disable_certificates": True}
    assert server["routes"][-1] == ingress.fallback_json() and server["routes"][-1]["handle"][0]["status_code"] == 404
    redirect = ingress.redirect_server_json()
    assert redirect["listen"] == ["127.0.0.1:8080"]
    assert redirect["routes"][0]["handle"][0]["headers"]["Location"] == [
        "https://{http.request.host}:8443{http.request.uri}"]
    assert caddy().redirect_server_json()["routes"][0]["handle"][0]["headers"]["Location"] == [
        "https://{http.request.host}{http.request.uri}"]


def test_without_tls_the_server_listens_on_the_http_port_and_never_asks_for_certificates():
    server = caddy(tls="off", http_port=8080).server_json([])
    assert server["listen"] == [":8080"] and server["automatic_https"] == {"disable": True}
    assert "tls_connection_policies" not in server


def test_an_ipv6_bind_address_is_bracketed():
    assert caddy(bind="::1").server_json([])["listen"] == ["[::1]:443"]


def test_the_tls_policy_covers_the_base_domain_and_custom_domains_on_demand():
    policy = caddy().policy_json(["maps.example.org", "a.example.com", "maps.example.org"])
    assert policy == {"@id": "live-prod-tls", "subjects": ["*.geocat.live", "a.example.com", "maps.example.org"],
                      "issuers": [{"module": "acme", "email": "ops@example.org"}], "on_demand": True}
    assert caddy(tls="internal").policy_json([])["issuers"] == [{"module": "internal", "ca": INTERNAL_CA}]
    assert caddy(acme_email="").policy_json([])["issuers"] == [{"module": "acme"}]


def test_two_installations_own_different_objects():
    a, b = caddy(deployment="prod"), caddy(deployment="staging")
    assert {a.server_name, a.redirect_server_name, a.fallback_id, a.policy_id, a.route_id(1)}.isdisjoint(
        {b.server_name, b.redirect_server_name, b.fallback_id, b.policy_id, b.route_id(1)})
