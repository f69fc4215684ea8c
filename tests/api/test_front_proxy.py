"""The buffering proxy in front (docs/OPERATIONS.md): real Caddy with config/Caddyfile before real gunicorn.

Caddy reads a request's whole body before it passes the request on, so slow clients hold
Caddy goroutines, never gunicorn threads. Needs the ``caddy`` binary (``apt-get install
caddy``): skipped without it locally, a failure in CI.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import requests

from app.config import PROJECT_ROOT
from tests.conftest import write_product
from tests.support.caddy import CaddyProcess, answers_ok
from tests.support.hostile import HealthProbe, SlowBody
from tests.support.live_service import MINI_COMPOSE, MINI_MANIFEST, Service, free_port

CADDYFILE = PROJECT_ROOT / "config" / "Caddyfile"
CREATE = "/whmcs/v1/services/{}/create"
ON_POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def service(settings, config_repo, tmp_path):
    """The real service, started without the operation worker."""
    write_product(config_repo, "mini", MINI_MANIFEST, MINI_COMPOSE)
    running = Service(settings, tmp_path)
    running.env["GUNICORN_THREADS"] = "8"  # fewer threads than slow clients: only the proxy can save them
    running.start(worker=False)
    yield running
    running.stop()


@dataclass(frozen=True)
class FrontProxy:
    """config/Caddyfile run by Caddy on ``port`` (``url``), proxying to the service, admin API off."""

    port: int
    url: str


@pytest.fixture
def caddy(service, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"LIVE_PROXY_SITE": url, "LIVE_PROXY_BIND": "127.0.0.1", "LIVE_PROXY_ADMIN": "off",
           "LIVE_PROXY_UPSTREAM": f"127.0.0.1:{service.port}"}
    proxy = CaddyProcess(tmp_path / "caddy").start(config=CADDYFILE, adapter="caddyfile", env=env,
                                                   ready=lambda: answers_ok(f"{url}/healthz"))
    yield FrontProxy(port, url)
    proxy.stop()


def requests_seen_by_gunicorn(service: Service, path: str) -> int:
    return sum(f'"path": "{path}"' in line for line in (service.logs / "gunicorn.log").read_text().splitlines())


@ON_POSTGRESQL
def test_slow_bodies_stay_in_the_buffering_proxy(service, caddy):
    path = CREATE.format(7)
    with HealthProbe(caddy.url) as probe, ThreadPoolExecutor(max_workers=20) as pool:
        # Twenty clients sending a JSON body at a byte a second, through Caddy, for 10 s.
        clients = [pool.submit(SlowBody(caddy.port, path).run, 10) for _ in range(20)]
        time.sleep(5)
        still_sending = sum(not client.done() for client in clients)
        seen_meanwhile = requests_seen_by_gunicorn(service, path)
    probe.assert_healthy(at_least=5)
    assert still_sending == 20
    assert seen_meanwhile == 0, "no incomplete body reached gunicorn"
    assert all(client.result().status is None for client in clients), "Caddy waits for the whole body"

    # A normal, authenticated call goes through as before; too large a body stops at the proxy.
    service.flask("products", "sync")
    body = {"client": {"id": 9, "email": "c9@example.org"}, "product": "mini", "plan": "basic", "username": "proxied"}
    created = requests.post(f"{caddy.url}{CREATE.format(901)}", json=body, timeout=30,
                            headers={"Authorization": f"Bearer {service.token}"})
    assert created.status_code == 202, created.text
    assert created.json()["result"] == "queued" and created.json()["order"]["instance"] == "proxied"
    huge = requests.post(f"{caddy.url}/hooks/gitlab", data=b"[" * 3_000_000, timeout=30,
                         headers={"Content-Type": "application/json"})
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "payload_too_large"
    assert requests_seen_by_gunicorn(service, "/hooks/gitlab") == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_ask_endpoint_is_not_served_through_the_front_proxy(service, caddy):
    """GET /ingress/v1/ask is for the ingress Caddy on the loopback (docs/OPERATIONS.md): the front proxy answers 404."""
    asked = requests.get(f"{caddy.url}/ingress/v1/ask", params={"domain": "acme.example.org"}, timeout=30)
    assert asked.status_code == 404 and asked.json()["error"]["code"] == "not_found"
    assert requests_seen_by_gunicorn(service, "/ingress/v1/ask") == 0
    assert requests.get(f"{caddy.url}/healthz", timeout=30).status_code == 200, "every other path still goes through"
