"""The tests' Caddy helper (tests/support/caddy.py) against the real binary: admin API, internal TLS, restarts."""
from __future__ import annotations

import pytest
import requests
import urllib3

from tests.support.caddy import CaddyProcess
from tests.support.live_service import free_port
from tests.support.waiting import wait_for


def site(caddy: CaddyProcess, https_port: int, http_port: int) -> dict:
    """One TLS server on 127.0.0.1 with no route yet, certificates from the internal CA ``live``."""
    return {
        "admin": {"listen": f"127.0.0.1:{caddy.admin_port}"},
        "apps": {
            "pki": {"certificate_authorities": {"live": {"install_trust": False}}},
            "http": {"http_port": http_port, "servers": {
                "probe": {"listen": [f"127.0.0.1:{https_port}"], "routes": [], "tls_connection_policies": [{}]},
                "plain": {"listen": [f"127.0.0.1:{http_port}"], "automatic_https": {"disable": True},
                          "routes": [{"handle": [{"handler": "static_response", "body": "plain {http.request.hostport}"}]}]},
            }},
            "tls": {"automation": {"policies": [{"subjects": ["*.live.test"], "on_demand": True,
                                                 "issuers": [{"module": "internal", "ca": "live"}]}]}},
        },
    }


@pytest.fixture
def caddy(tmp_path):
    process = CaddyProcess(tmp_path / "caddy").start()
    yield process
    process.stop()


def test_a_route_added_through_the_admin_api_answers_over_verified_tls(caddy):
    https_port, http_port = free_port(), free_port()
    caddy.load(site(caddy, https_port, http_port))
    route = {"@id": "probe-a", "match": [{"host": ["a.live.test"]}], "terminal": True,
             "handle": [{"handler": "static_response", "body": "page a {http.request.hostport}"}]}
    added = requests.post(f"{caddy.admin_url}/config/apps/http/servers/probe/routes", json=route, timeout=10)
    assert added.status_code == 200, added.text
    assert caddy.config("apps/http/servers/probe/routes") == [route]

    # The old server may take a connection or two while the new config starts: the route is there once it answers.
    answer = wait_for(lambda: (a := caddy.https_get("a.live.test", https_port, "/x")).text and a, what="route a")
    assert (answer.status, answer.text) == (200, f"page a a.live.test:{https_port}")
    assert caddy.root_cert.read_text().startswith("-----BEGIN CERTIFICATE-----")
    with pytest.raises(urllib3.exceptions.SSLError):  # not a public certificate: only the internal CA verifies it
        caddy.https_get("a.live.test", https_port, "/x", ca_certs=requests.certs.where())
    other = caddy.https_get("a.live.test", https_port, "/x", host="b.live.test")
    assert other.status == 200 and other.text == "", "no route matches: Caddy's empty 200"
    plain = caddy.http_get("b.live.test", http_port, "/")
    assert (plain.status, plain.text) == (200, f"plain b.live.test:{http_port}")


def test_a_killed_caddy_restarts_empty_with_the_same_admin_port_and_ca(caddy):
    https_port, http_port = free_port(), free_port()
    caddy.load(site(caddy, https_port, http_port))
    caddy.https_get("a.live.test", https_port, "/")
    root = caddy.root_cert.read_bytes()

    caddy.kill()
    assert not caddy.admin_answers()
    with pytest.raises(urllib3.exceptions.HTTPError):
        caddy.https_get("a.live.test", https_port, "/")
    caddy.restart_empty()
    assert caddy.config() == {"admin": {"listen": f"127.0.0.1:{caddy.admin_port}"}}, "nothing of the last run"

    caddy.load(site(caddy, https_port, http_port))
    assert caddy.https_get("a.live.test", https_port, "/").status == 200, "verified against the same root"
    assert caddy.root_cert.read_bytes() == root
