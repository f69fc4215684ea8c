"""Every route checks its key and scope; only health, metrics, docs and GeoCat Live 1.0 are public."""
from __future__ import annotations

import re

import pytest

from app.apikeys import revoke_key
from app.models import ApiKey

PUBLIC = {"/healthz", "/readyz", "/metrics", "/api/v1/openapi.json", "/api/v1/docs", "/api/v1/docs/assets/<filename>",
          "/geocat-live/api/1.0/order/<instance>", "/static/<path:filename>", "/docs/oauth2-redirect",
          "/hooks/gitlab",  # the webhook checks X-Gitlab-Token instead of a key
          "/ingress/v1/ask"}  # Caddy asks before it issues a certificate; it sends no key
SCOPE_OF_PREFIX = {"/whmcs/v1/": "whmcs", "/api/v1/": "read",
                   "/metrics/orders": "read"}  # per-order series name customers' instances: not public as /metrics
ADMIN_ONLY = {"/api/v1/products/sync", "/api/v1/orders/<int(min=1, max=2147483647):order_id>/upgrade",
              "/api/v1/products/<slug>/upgrade"}


def routes(app):
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule.rule, method


def concrete(path: str) -> str:
    return re.sub(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>", lambda m: "1" if m.group(1) == "int" else "x", path)


def required_scope(path: str) -> str | None:
    if path in PUBLIC or path.startswith("/docs"):
        return None
    if path in ADMIN_ONLY:
        return "admin"
    return next(scope for prefix, scope in SCOPE_OF_PREFIX.items() if path.startswith(prefix))


def test_every_route_is_classified(api):
    for path, _ in routes(api.app):
        assert path in PUBLIC or path.startswith("/docs") or any(path.startswith(p) for p in SCOPE_OF_PREFIX), path


def test_no_key_is_401_and_wrong_scope_is_403_on_every_protected_route(api):
    checked = 0
    for path, method in routes(api.app):
        scope = required_scope(path)
        if scope is None:
            continue
        url = concrete(path)
        kwargs = {"json": {}} if method == "POST" else {}
        anonymous = api.call(method, url, scope=None, **kwargs)
        assert anonymous.status_code == 401, (method, path)
        assert anonymous.json["error"]["code"] == "unauthorized"
        assert anonymous.headers.get("WWW-Authenticate", "").startswith("Bearer")
        garbage = api.call(method, url, scope=None, headers={"Authorization": "Bearer live_xxxxxxxx_nottherealtoken123456"}, **kwargs)
        assert garbage.status_code == 401, (method, path)
        wrong = {"whmcs": "read", "read": "whmcs", "admin": "read"}[scope]
        forbidden = api.call(method, url, scope=wrong, **kwargs)
        assert forbidden.status_code == 403, (method, path, wrong)
        assert forbidden.json["error"]["code"] == "forbidden"
        allowed = api.call(method, url, scope="admin", **kwargs)
        assert allowed.status_code not in (401, 403), (method, path)
        checked += 1
    assert checked >= 20


def test_public_routes_need_no_key(api):
    assert api.get("/healthz", scope=None).status_code == 200
    assert api.get("/api/v1/openapi.json", scope=None).status_code == 200
    assert api.get("/metrics", scope=None).status_code == 200
    assert api.get("/geocat-live/api/1.0/order/nobody", scope=None).status_code == 404


def test_revoked_key_is_refused_and_only_a_hash_is_stored(api):
    assert api.get("/api/v1/orders", scope="read").status_code == 200
    stored = ApiKey.get(ApiKey.name == "test-read")
    assert api.tokens["read"] not in (stored.token_hash, stored.token_prefix)
    assert len(stored.token_hash) == 64 and stored.last_used_at is not None
    revoke_key("test-read")
    assert api.get("/api/v1/orders", scope="read").status_code == 401


def test_read_keys_never_see_secrets(api):
    from tests.api.conftest import client_payload

    order_id = api.post("/whmcs/v1/services/700/create", client_payload(username="secretive")).json["order"]["id"]
    assert "secrets" not in api.get(f"/api/v1/orders/{order_id}", scope="read").json
    assert "DB_PASSWORD" in api.get(f"/api/v1/orders/{order_id}", scope="admin").json["secrets"]


def test_cli_creates_lists_and_revokes_keys(api):
    runner = api.app.test_cli_runner()
    created = runner.invoke(args=["live", "apikey", "create", "billing", "--scope", "whmcs"])
    assert created.exit_code == 0
    token = created.output.strip().splitlines()[-1]
    assert token.startswith("live_")
    assert api.client.post("/whmcs/v1/test-connection", headers={"Authorization": f"Bearer {token}"}).json["key"] == "billing"
    listed = runner.invoke(args=["live", "apikey", "list"]).output
    assert "billing" in listed and token not in listed
    duplicate = runner.invoke(args=["live", "apikey", "create", "billing", "--scope", "read"])
    assert duplicate.exit_code == 1 and "already exists" in duplicate.output
    assert runner.invoke(args=["live", "apikey", "revoke", "billing"]).exit_code == 0
    assert api.client.post("/whmcs/v1/test-connection", headers={"Authorization": f"Bearer {token}"}).status_code == 401


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer " + "x" * 5000, "live_abc"])
def test_malformed_authorization_headers_are_401(api, header):
    response = api.client.get("/api/v1/orders", headers={"Authorization": header})
    assert response.status_code == 401
