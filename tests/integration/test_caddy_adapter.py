"""The Caddy adapter (app/ingress/caddy.py) against a real Caddy: what sync and one route change write.

The order life through the whole bridge is tests/integration/test_ingress_caddy.py's; here the adapter's own
promises: a sync that finds nothing to change writes nothing, a broken part of the bridge's configuration
(a lost route, a duplicate @id, the 404 route not last, a changed TLS policy) is repaired, one route change
is one call, and nothing of the operator's is touched.
"""
from __future__ import annotations

import pytest
import requests

from app.errors import IngressUnavailable
from app.ingress.caddy import CaddyIngress, CaddySettings
from app.ingress.routes import PathRoute, Route, RouteMode
from tests.support.caddy import CaddyProcess
from tests.support.live_service import free_port

BASE = "live.test"


@pytest.fixture
def caddy(tmp_path):
    process = CaddyProcess(tmp_path / "caddy").start()
    yield process
    process.stop()


class CountingSession(requests.Session):
    """requests' Session that counts the admin API's writes (every method but GET)."""

    def __init__(self):
        super().__init__()
        self.writes: list[tuple[str, str]] = []

    def request(self, method, url, *args, **kwargs):
        if method != "GET":
            self.writes.append((method, url.split("/", 3)[-1]))
        return super().request(method, url, *args, **kwargs)


def adapter(caddy: CaddyProcess, session=None, **overrides) -> CaddyIngress:
    settings = dict(admin_url=caddy.admin_url, deployment="t", base_domain=BASE, tls="internal", bind="127.0.0.1",
                    http_port=free_port(), https_port=free_port(), ask_url="http://127.0.0.1:9/ask")
    settings.update(overrides)
    return CaddyIngress(CaddySettings(**settings), session=session)


def routes(count: int, mode: RouteMode = RouteMode.PROXY) -> list[Route]:
    return [Route(i, f"o{i}", f"o{i}.{BASE}", mode, (PathRoute("/app", "127.0.0.1:9"),)) for i in range(1, count + 1)]


def by_id(caddy: CaddyProcess, path: str):
    """``GET /id/<path>``: an object of the configuration by its @id."""
    answer = requests.get(f"{caddy.admin_url}/id/{path}", timeout=10)
    answer.raise_for_status()
    return answer.json()


def route_ids(caddy: CaddyProcess) -> list[str]:
    return [route.get("@id") for route in caddy.config("apps/http/servers/live-t/routes")]


def test_a_sync_that_finds_nothing_to_change_writes_nothing(caddy):
    session = CountingSession()
    ingress = adapter(caddy, session)
    first = ingress.sync(routes(3), ["maps.example.org"])
    assert first.created == 3 and "server" in first.others
    session.writes.clear()
    again = ingress.sync(routes(3), ["maps.example.org"])
    assert not again.changed and again.unchanged == 3
    assert session.writes == []
    assert route_ids(caddy) == ["live-t-order-1", "live-t-order-2", "live-t-order-3", "live-t-unknown-host"]


def test_one_route_change_is_one_small_call(caddy):
    session = CountingSession()
    ingress = adapter(caddy, session)
    ingress.sync(routes(50), [])
    session.writes.clear()
    ingress.put_route(Route(7, "o7", f"o7.{BASE}", RouteMode.SUSPENDED))
    assert session.writes == [("PATCH", "id/live-t-order-7")]
    assert by_id(caddy, "live-t-order-7")["handle"][0]["status_code"] == 503
    session.writes.clear()
    ingress.put_route(Route(99, "new", f"new.{BASE}", RouteMode.PREPARING))  # a new order: inserted first
    assert [method for method, _ in session.writes] == ["PATCH", "PUT"]  # and one small GET: is the server there
    assert route_ids(caddy)[0] == "live-t-order-99" and route_ids(caddy)[-1] == "live-t-unknown-host"
    session.writes.clear()
    ingress.remove_route(99)
    ingress.remove_route(99)  # twice: nothing to do the second time
    assert session.writes == [("DELETE", "id/live-t-order-99"), ("DELETE", "id/live-t-order-99")]
    assert "live-t-order-99" not in route_ids(caddy)


def test_sync_repairs_lost_duplicated_and_misplaced_routes(caddy):
    ingress = adapter(caddy)
    ingress.sync(routes(3), [])
    server = f"{caddy.admin_url}/config/apps/http/servers/live-t/routes"
    live = caddy.config("apps/http/servers/live-t/routes")
    # Someone moved the 404 route first, dropped order 2 and added order 1 twice.
    broken = [live[-1], live[0], live[0], live[2]]
    assert requests.patch(server, json=broken, timeout=10).status_code == 200
    report = ingress.sync(routes(3), [])
    assert "routes rewritten" in report.others
    assert route_ids(caddy) == ["live-t-order-1", "live-t-order-2", "live-t-order-3", "live-t-unknown-host"]
    # A route changed by hand is put back as the bridge wants it.
    assert requests.patch(f"{caddy.admin_url}/id/live-t-order-3/terminal", json=False, timeout=10).status_code == 200
    assert ingress.sync(routes(3), []).updated == 1
    assert not ingress.sync(routes(3), []).changed


def test_the_tls_policy_goes_first_and_the_operators_own_stay(caddy):
    caddy.load({"admin": {"listen": f"127.0.0.1:{caddy.admin_port}"}, "apps": {
        "http": {"servers": {"operator": {"listen": [f"127.0.0.1:{free_port()}"], "automatic_https": {"disable": True},
                                          "routes": [{"handle": [{"handler": "static_response", "body": "mine"}]}]}}},
        "tls": {"automation": {"policies": [{"@id": "mine", "subjects": ["intranet.example"]}],
                               "on_demand": {"rate_limit": {"interval": "1m", "burst": 5}}}}}})
    ingress = adapter(caddy)
    ingress.sync(routes(1), ["shop.example.org"])
    policies = caddy.config("apps/tls/automation/policies")
    assert [policy.get("@id") for policy in policies] == ["live-t-tls", "mine"]
    assert policies[0]["subjects"] == [f"*.{BASE}", "shop.example.org"]
    on_demand = caddy.config("apps/tls/automation/on_demand")
    assert on_demand == {"ask": "http://127.0.0.1:9/ask", "rate_limit": {"interval": "1m", "burst": 5}}
    assert caddy.config("apps/http/servers/operator/routes")[0]["handle"][0]["body"] == "mine"
    assert caddy.config("apps/pki/certificate_authorities/live") == {"install_trust": False}
    ingress.set_custom_domains([])
    assert by_id(caddy, "live-t-tls/subjects") == [f"*.{BASE}"]
    assert ingress.sync(routes(1), []).changed is False


def test_switching_tls_off_removes_the_redirect_server(caddy):
    adapter(caddy).sync(routes(1), [])
    assert caddy.config("apps/http/servers/live-t-redirect") is not None
    plain = adapter(caddy, tls="off")
    report = plain.sync(routes(1), [])
    assert "redirect server removed" in report.others
    assert caddy.config("apps/http/servers/live-t-redirect") is None
    assert caddy.config("apps/http/servers/live-t")["automatic_https"] == {"disable": True}


def test_caddy_down_or_refusing_is_ingress_unavailable(caddy, tmp_path):
    ingress = adapter(caddy)
    with pytest.raises(IngressUnavailable, match="has no server live-t yet"):
        ingress.put_route(routes(1)[0])  # Caddy answers, but holds nothing of the bridge yet
    caddy.kill()
    with pytest.raises(IngressUnavailable, match="is unreachable"):
        ingress.check()
    with pytest.raises(IngressUnavailable):
        ingress.sync(routes(1), [])
