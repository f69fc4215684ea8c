"""The OpenAPI document is valid and describes every route the service has."""
from __future__ import annotations

import re

from openapi_spec_validator import validate

from app.web.docs_ui import ASSETS_RULE as DOCS_ASSETS_RULE


def test_document_validates(api):
    document = api.get("/api/v1/openapi.json", scope=None).json
    validate(document)
    assert document["info"]["title"] == "GeoCat Live Bridge"
    assert document["components"]["securitySchemes"]["BearerAuth"]["scheme"].lower() == "bearer"


def test_every_route_is_documented_with_its_methods(api):
    document = api.get("/api/v1/openapi.json", scope=None).json
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    undocumented = set()
    for rule in api.app.url_map.iter_rules():
        # Hidden on purpose: Prometheus' scrape endpoint and the docs page's Swagger UI files.
        if rule.endpoint.startswith(("openapi.", "static")) or rule.rule in ("/metrics", DOCS_ASSETS_RULE):
            continue
        path = re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if (path, method) not in documented:
                undocumented.add((path, method))
    assert undocumented == set()


def test_protected_operations_declare_their_security_and_errors(api):
    document = api.get("/api/v1/openapi.json", scope=None).json
    for path, item in document["paths"].items():
        for method, operation in item.items():
            public = path.startswith(("/healthz", "/readyz", "/geocat-live", "/hooks/", "/ingress/"))
            assert bool(operation.get("security")) != public, (method, path)
            if not public:
                assert {"401"} <= set(operation["responses"]), (method, path)
            if operation.get("requestBody"):
                assert "422" in operation["responses"], (method, path)


def test_human_docs_page(api):
    page = api.get("/api/v1/docs", scope=None)
    assert page.status_code == 200 and b"/api/v1/openapi.json" in page.data
