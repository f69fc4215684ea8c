"""Ingress through a real Caddy (issue 12, tests 1-5): every URL the bridge hands out works, over TLS.

Black box: the real bridge (gunicorn and the worker as processes, SQLite) programs a real Caddy through its
admin API, orders are made through the WHMCS API and deploy real containers. Every page is fetched from
127.0.0.1 over HTTPS with the order's hostname as SNI and Host, and the certificate is verified against
Caddy's internal CA (LIVE_TLS=internal). One bridge and one Caddy serve the whole module; the test that
kills Caddy runs last and leaves it serving again.

The test product's page names its own instance (``page of <instance>``), under the endpoint path ``/app``,
and ``/app/headers.cgi`` shows the request path and the X-Forwarded-* headers the container received.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import requests
import urllib3

from app.config import load_settings
from tests.conftest import remove_deployment_objects, write_product
from tests.support.caddy import Answer, CaddyProcess
from tests.support.live_service import Service, free_port
from tests.support.waiting import wait_for

BASE_DOMAIN = "live.test"
BILLING_URL = "https://billing.example.org/clientarea.php?action=services"
CUSTOM_DOMAIN = "maps.river.example"
ENDPOINT_PATH = "/app"
SETTLE_SECONDS = 30  # deadline for a route change to show (the resync runs every second here)


def manifest(name: str) -> str:
    return (f"name: {name}\nplans: {{basic: {{}}}}\nendpoints:\n"
            f"  - {{application: site, service: web, port: 8080, path: {ENDPOINT_PATH}}}\n")


# busybox httpd serves /www; *.cgi files run as CGI scripts anywhere (httpd.conf), with every request
# header in an HTTP_* variable. ``$$`` is a literal ``$`` after interpolation.
COMPOSE = """
services:
  web:
    image: live-test/busybox:latest
    init: true
    stop_grace_period: 1s
    environment:
      INSTANCE: ${LIVE_INSTANCE}
      CGI: |
        #!/bin/sh
        printf 'Content-Type: text/plain\\r\\n\\r\\n'
        echo "uri=$$REQUEST_URI"
        env | grep '^HTTP_X_FORWARDED_' | sort
    command:
      - sh
      - -c
      - |
        mkdir -p /www/app
        echo "page of $$INSTANCE" > /www/app/index.html
        printf '%s' "$$CGI" > /www/app/headers.cgi
        chmod +x /www/app/headers.cgi
        echo '*.cgi:/bin/sh' > /etc/httpd.conf
        exec httpd -f -p 8080 -h /www -c /etc/httpd.conf
    healthcheck:
      test: ["CMD", "sh", "-c", "READY wget -q -O /dev/null http://127.0.0.1:8080/app/index.html"]
      interval: 1s
      timeout: 2s
      retries: 120
"""


def page_text(instance: str) -> str:
    return f"page of {instance}\n"


@dataclass
class Bridge:
    """The running bridge and its Caddy: ``https_port`` / ``http_port`` are the ingress ports on 127.0.0.1."""

    service: Service
    caddy: CaddyProcess
    deployment: str
    https_port: int
    http_port: int
    docker: object
    operator_port: int  # a plain-HTTP server of the operator's own in the same Caddy

    def create(self, service_id: int, username: str, product: str = "pages", wait: float = 60,
               **fields) -> dict:
        """A WHMCS create; the answer's JSON (asserted 200 succeeded with ``wait``, else 202 not finished)."""
        body = {"client": {"id": service_id, "email": f"c{service_id}@example.org"}, "product": product,
                "plan": "basic", "username": username, "wait": wait, **fields}
        answer = self.service.post(f"/whmcs/v1/services/{service_id}/create", body)
        if wait:
            assert (answer.status_code, answer.json().get("result")) == (200, "succeeded"), answer.text
        else:
            assert answer.status_code == 202 and answer.json()["result"] in ("queued", "running"), answer.text
        return answer.json()

    def lifecycle(self, service_id: int, action: str) -> dict:
        """suspend / unsuspend / terminate with a wait; asserted to succeed."""
        answer = self.service.post(f"/whmcs/v1/services/{service_id}/{action}", {"wait": 60})
        assert answer.status_code == 200 and answer.json()["result"] == "succeeded", answer.text
        return answer.json()

    def wait_active(self, order_id: int) -> dict:
        """Polls the order view until the order is active (60 s); fails at once if it failed."""
        def active():
            view = self.order(order_id)
            assert view["status"] != "failed", view
            return view["status"] == "active" and view
        return wait_for(active, timeout=60, interval=0.2, what=f"order {order_id} active")

    def order(self, order_id: int) -> dict:
        answer = self.service.get(f"/api/v1/orders/{order_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def readyz(self) -> dict:
        return requests.get(f"{self.service.url}/readyz", timeout=10).json()

    def ask(self, **params: str) -> int:
        """The status of Caddy's question to the bridge, asked as Caddy does (no credentials)."""
        return requests.get(f"{self.service.url}/ingress/v1/ask", params=params, timeout=10).status_code

    def https(self, hostname: str, path: str = ENDPOINT_PATH + "/", **kwargs) -> Answer:
        wait_for(self.caddy.root_cert.exists, timeout=SETTLE_SECONDS, what="Caddy's internal CA root")
        return self.caddy.https_get(hostname, self.https_port, path, **kwargs)

    def https_until(self, hostname: str, accept, path: str = ENDPOINT_PATH + "/", timeout: float = SETTLE_SECONDS,
                    **kwargs) -> Answer:
        """Polls :meth:`https` until ``accept(answer)``, and returns that answer (connection errors retry)."""
        seen: list[object] = []

        def attempt():
            try:
                answer = self.https(hostname, path, **kwargs)
            except urllib3.exceptions.HTTPError as exc:
                seen.append(exc)
                return None
            seen.append(answer)
            return answer if accept(answer) else None

        try:
            return wait_for(attempt, timeout=timeout, interval=0.2, what=f"the expected answer for {hostname}{path}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last: {seen[-1:]}; caddy log: {self.caddy.log_tail(1500)}") from None


def serves(instance: str):
    return lambda answer: answer.status == 200 and answer.text == page_text(instance)


def status_is(code: int):
    return lambda answer: answer.status == code


def operator_config(caddy: CaddyProcess, port: int) -> dict:
    """What an operator configured in Caddy before the bridge came: a server of their own, a TLS policy."""
    return {"admin": {"listen": f"127.0.0.1:{caddy.admin_port}"}, "apps": {
        "http": {"servers": {"operator": {
            "listen": [f"127.0.0.1:{port}"], "automatic_https": {"disable": True},
            "routes": [{"@id": "operator-site", "handle": [{"handler": "static_response", "body": "operator site"}]}]}}},
        "tls": {"automation": {"policies": [{"@id": "operator-tls", "subjects": ["intranet.example"],
                                             "issuers": [{"module": "internal"}]}]}},
    }}


@pytest.fixture(scope="module")
def bridge(docker_engine, tmp_path_factory):
    """One Caddy (admin API on a free port) and one bridge with its worker, ingress on free 127.0.0.1 ports."""
    folder = tmp_path_factory.mktemp("ingress")
    config_repo = folder / "config-repo"
    write_product(config_repo, "pages", manifest("Ingress pages"), COMPOSE.replace("READY ", ""))
    # Healthy only once the test writes /tmp/go: its create stays in progress until then.
    write_product(config_repo, "held", manifest("Held pages"), COMPOSE.replace("READY ", "test -f /tmp/go && "))
    settings = load_settings({
        "LIVE_DATABASE_URL": f"sqlite:///{folder / 'live.db'}", "LIVE_CONFIG_REPO": str(config_repo),
        "LIVE_BASE_DOMAIN": BASE_DOMAIN, "LIVE_BACKUP_DIR": str(folder / "backups"),
        "LIVE_DEPLOYMENT": "t" + secrets.token_hex(4),
    })
    caddy = CaddyProcess(folder / "caddy").start()
    https_port, http_port, operator_port = free_port(), free_port(), free_port()
    caddy.load(operator_config(caddy, operator_port))
    service = Service(settings, folder)
    service.env.update({
        "LIVE_CADDY_ADMIN_URL": caddy.admin_url, "LIVE_INGRESS_BIND": "127.0.0.1",
        "LIVE_INGRESS_HTTP_PORT": str(http_port), "LIVE_INGRESS_HTTPS_PORT": str(https_port), "LIVE_TLS": "internal",
        "LIVE_INGRESS_ASK_URL": f"{service.url}/ingress/v1/ask", "LIVE_BILLING_URL": BILLING_URL,
        "LIVE_INGRESS_RESYNC_SECONDS": "1", "LIVE_RETRY_BASE_SECONDS": "0.2",
    })
    try:
        service.start(worker=True)
        service.flask("products", "sync")
        yield Bridge(service, caddy, settings.deployment, https_port, http_port, docker_engine, operator_port)
    finally:
        service.stop()
        caddy.stop()
        remove_deployment_objects(docker_engine, settings.deployment)


@pytest.fixture(scope="module")
def orders(bridge) -> dict[str, dict]:
    """Three active orders of the page product, by instance: ``alpha``, ``beta`` and ``river`` (custom domain)."""
    made = {"alpha": bridge.create(1201, "alpha", wait=0), "beta": bridge.create(1202, "beta", wait=0),
            "river": bridge.create(1203, "river", wait=0, domain=CUSTOM_DOMAIN)}
    for answer in made.values():  # created side by side by the worker
        bridge.wait_active(answer["order"]["id"])
    return {instance: answer["order"] for instance, answer in made.items()}


def test_each_order_serves_its_own_page_over_tls_from_the_internal_ca(bridge, orders):
    for instance in ("alpha", "beta"):
        url = orders[instance]["endpoints"][0]["url"]
        assert url == f"https://{instance}.{BASE_DOMAIN}:{bridge.https_port}{ENDPOINT_PATH}", "the URL handed out"
        parts = urlsplit(url)
        answer = bridge.https_until(parts.hostname, serves(instance), path=parts.path + "/")
        assert answer.text == page_text(instance)
        assert bridge.https(parts.hostname).text == page_text(instance), "again: never the other order's page"
        assert bridge.order(orders[instance]["id"])["ingress"] == "applied"

    # The certificate verifies against the internal CA only (not a public one).
    with pytest.raises(urllib3.exceptions.SSLError):
        bridge.https(f"alpha.{BASE_DOMAIN}", ca_certs=requests.certs.where())


def test_the_upstream_gets_the_path_unchanged_and_caddys_forwarded_headers(bridge, orders):
    hostname = f"alpha.{BASE_DOMAIN}"
    bridge.https_until(hostname, serves("alpha"))
    spoofed = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"}
    answer = bridge.https(hostname, f"{ENDPOINT_PATH}/headers.cgi?q=1", headers=spoofed)
    assert answer.status == 200, answer
    assert answer.text.splitlines() == [
        f"uri={ENDPOINT_PATH}/headers.cgi?q=1",
        "HTTP_X_FORWARDED_FOR=127.0.0.1",
        f"HTTP_X_FORWARDED_HOST={hostname}:{bridge.https_port}",
        "HTTP_X_FORWARDED_PROTO=https",
    ], "set by Caddy, whatever the client sent"


def test_plain_http_redirects_to_https(bridge, orders):
    hostname = f"beta.{BASE_DOMAIN}"
    bridge.https_until(hostname, serves("beta"))
    answer = bridge.caddy.http_get(hostname, bridge.http_port, f"{ENDPOINT_PATH}/?x=1")
    assert answer.status == 308, answer
    assert answer.headers["Location"] == f"https://{hostname}:{bridge.https_port}{ENDPOINT_PATH}/?x=1"


def test_a_custom_domain_is_served_like_a_generated_hostname(bridge, orders):
    river = orders["river"]
    assert river["hostname"] == CUSTOM_DOMAIN
    assert river["endpoints"][0]["url"] == f"https://{CUSTOM_DOMAIN}:{bridge.https_port}{ENDPOINT_PATH}"
    answer = bridge.https_until(CUSTOM_DOMAIN, serves("river"))
    assert answer.text == page_text("river")


def test_an_unknown_host_never_reaches_an_order(bridge, orders):
    hostname = f"alpha.{BASE_DOMAIN}"
    bridge.https_until(hostname, serves("alpha"))
    # A valid SNI (a known order's certificate), another Host header: 421 Misdirected Request (RFC 9110,
    # section 15.5.20), since the server requires the Host to be the handshake's name (strict_sni_host).
    for host in (f"stranger.{BASE_DOMAIN}:{bridge.https_port}", "stranger.example", f"{BASE_DOMAIN}",
                 f"alpha.{BASE_DOMAIN}.evil.example", f"beta.{BASE_DOMAIN}"):
        answer = bridge.https(hostname, host=host)
        assert answer.status == 421, (host, answer)
        assert "page of" not in answer.text
    # Plain HTTP never reaches an order either: an unknown Host is redirected, never proxied.
    plain = bridge.caddy.http_get("stranger.example", bridge.http_port, ENDPOINT_PATH)
    assert plain.status == 308 and "page of" not in plain.text
    # An unknown name in SNI too: the ask endpoint says no, so Caddy has no certificate and the handshake fails.
    with pytest.raises(urllib3.exceptions.SSLError):
        bridge.https(f"stranger.{BASE_DOMAIN}")


def test_the_ask_endpoint_allows_certificates_only_for_known_hostnames(bridge, orders):
    assert bridge.ask(domain=f"alpha.{BASE_DOMAIN}") == 200
    assert bridge.ask(domain=CUSTOM_DOMAIN) == 200
    assert bridge.ask(domain=f"stranger.{BASE_DOMAIN}") == 404
    assert bridge.ask(domain="example.org") == 404
    assert bridge.ask() == 422  # the API's validation error: Caddy only tells 200 from the rest
    # (A terminated order's hostname: test_suspend_unsuspend_and_terminate_follow_the_order.)


def test_suspend_unsuspend_and_terminate_follow_the_order(bridge):
    created = bridge.create(1210, "gamma")["order"]
    hostname = created["hostname"]
    assert hostname == f"gamma.{BASE_DOMAIN}"
    bridge.https_until(hostname, serves("gamma"))

    bridge.lifecycle(1210, "suspend")
    suspended = bridge.https_until(hostname, status_is(503))
    assert "suspended" in suspended.text and BILLING_URL in suspended.text, suspended.text
    assert "page of" not in suspended.text
    assert suspended.headers["Content-Type"].startswith("text/html")
    assert bridge.ask(domain=hostname) == 200, "a suspended order keeps its certificate"

    bridge.lifecycle(1210, "unsuspend")
    assert bridge.https_until(hostname, serves("gamma")).text == page_text("gamma")

    bridge.lifecycle(1210, "terminate")
    gone = bridge.https_until(hostname, status_is(404))
    assert "page of" not in gone.text
    assert bridge.ask(domain=hostname) == 404, "no certificate for a terminated order's hostname"
    route = requests.get(f"{bridge.caddy.admin_url}/id/live-{bridge.deployment}-order-{created['id']}", timeout=10)
    assert route.status_code == 404, route.text


def test_an_order_being_prepared_gets_the_503_page(bridge):
    queued = bridge.create(1220, "delta", product="held", wait=0)["order"]
    hostname = queued["hostname"]
    # Until the create has started the route may still be missing (404); then it is the "being prepared" page.
    waiting = bridge.https_until(hostname, lambda answer: answer.status != 404)
    assert waiting.status == 503, waiting
    assert waiting.headers["Retry-After"] == "30"
    assert waiting.headers["Content-Type"].startswith("text/html")
    assert "being prepared" in waiting.text and "page of" not in waiting.text

    # The health check passes once /tmp/go exists: the create finishes and the page is served.
    selector = {"label": [f"live.deployment={bridge.deployment}", f"live.order={queued['id']}"]}
    container = wait_for(lambda: bridge.docker.containers.list(filters=selector), what="delta's container")[0]
    assert container.exec_run(["touch", "/tmp/go"]).exit_code == 0
    bridge.wait_active(queued["id"])
    assert bridge.https_until(hostname, serves("delta")).text == page_text("delta")


def test_what_the_operator_configured_in_caddy_survives_the_bridges_updates(bridge, orders):
    bridge.https_until(f"alpha.{BASE_DOMAIN}", serves("alpha"))  # the bridge wrote its part
    answer = bridge.caddy.http_get("intranet.example", bridge.operator_port, "/")
    assert (answer.status, answer.text) == (200, "operator site")
    expected = operator_config(bridge.caddy, bridge.operator_port)["apps"]
    assert bridge.caddy.config("apps/http/servers/operator") == expected["http"]["servers"]["operator"]
    policies = bridge.caddy.config("apps/tls/automation/policies")
    assert expected["tls"]["automation"]["policies"][0] in policies, policies


def test_routes_come_back_after_caddy_restarts_empty_and_operations_never_wait_for_it(bridge, orders):
    beta = orders["beta"]
    for instance in ("alpha", "beta"):
        bridge.https_until(f"{instance}.{BASE_DOMAIN}", serves(instance))
    ready = wait_for(lambda: (body := bridge.readyz())["checks"]["ingress"]["ok"] and body, what="ingress ready")
    assert ready["status"] == "ready", ready

    bridge.caddy.kill()
    degraded = wait_for(lambda: not (body := bridge.readyz())["checks"]["ingress"]["ok"] and body,
                        what="/readyz noticing Caddy is gone")
    assert degraded["status"] == "degraded", degraded

    # An operation while Caddy is down succeeds; its route waits for Caddy.
    suspended = bridge.lifecycle(beta["service_id"], "suspend")
    assert suspended["order"]["status"] == "suspended"
    shown = json.loads(bridge.service.flask("orders", "show", str(beta["id"]), "--json"))
    assert shown["ingress"] == "pending", "live orders show"
    assert bridge.order(beta["id"])["ingress"] == "pending", "GET /api/v1/orders/<id>"
    assert bridge.readyz()["status"] == "degraded"

    bridge.caddy.restart_empty()
    for instance in ("alpha", "river"):
        hostname = orders[instance]["hostname"]
        assert bridge.https_until(hostname, serves(instance)).text == page_text(instance)
    assert "suspended" in bridge.https_until(f"beta.{BASE_DOMAIN}", status_is(503)).text
    wait_for(lambda: bridge.order(beta["id"])["ingress"] == "applied", timeout=SETTLE_SECONDS, what="beta applied")
    back = wait_for(lambda: (body := bridge.readyz())["checks"]["ingress"]["ok"] and body, timeout=SETTLE_SECONDS,
                    what="ingress ready again")
    assert back["status"] == "ready", back
