"""Error messages a developer can act on: what to send, which key is needed, which field is wrong, in plain words."""
from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from app.config import PROJECT_ROOT
from app.web.observability import route_label
from tests.api.conftest import client_payload
from tests.api.test_errors import assert_error

ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
CREATE = "/whmcs/v1/services/1/create"
# What only a Python structure or failure would write into a message.
PYTHON_TEXT = re.compile(r"\{'|\['|\{\d+:|Traceback|<class|<function|object at 0x|\bNone\b|\(\)")
STATUS = re.compile(r"(?<![\d.,])([1-5]\d\d)(?![\d.,])")


def access_lines(caplog) -> list[dict]:
    """The structured access log lines written so far, decoded."""
    return [json.loads(record.getMessage()) for record in caplog.records if record.name == "app.web.access"]


# -- Content-Type ---------------------------------------------------------------
@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_body_not_sent_as_json_is_a_415_that_says_so(api, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = api.call("POST", CREATE, data=json.dumps(client_payload()), headers=headers)
    error = assert_error(response, 415, "unsupported_media_type")
    sent = f"Content-Type: {content_type}" if content_type else "no Content-Type"
    assert error["message"] == ("the request body is not declared as JSON: send Content-Type: application/json "
                                f"(this request has {sent})")
    assert error["details"] == {"content_type": content_type}
    # The same body with the header is read: its problems are the body's own, not "missing fields".
    sent_as_json = api.call("POST", CREATE, data=json.dumps({**client_payload(), "plan": 7}),
                            headers={"Content-Type": "application/json"})
    assert assert_error(sent_as_json, 422, "validation_error")["message"] == (
        "the request is invalid: plan: Not a valid string.")


def test_empty_bodies_stay_valid_where_every_field_is_optional(api):
    terminate = "/whmcs/v1/services/4242/terminate"
    # No body at all, with or without a Content-Type, and the WHMCS module's `{}` with its header.
    assert api.call("POST", terminate).status_code == 200
    assert api.call("POST", terminate, headers={"Content-Type": "text/plain"}).status_code == 200
    assert api.post(terminate, {}).json["result"] == "unchanged"
    # A body is only read once the key was checked: no key is a 401, whatever was sent.
    assert api.call("POST", CREATE, scope=None, data="x=1", headers={"Content-Type": "text/plain"}).status_code == 401


# -- validation messages -----------------------------------------------------------
def test_nested_fields_and_list_indexes_are_named_with_dots(api):
    error = assert_error(api.post(CREATE, {**client_payload(), "client": {"id": "x", "email": "nope"}}),
                         422, "validation_error")
    assert error["message"] == ("the request is invalid: client.id: Not a valid integer.; "
                                "client.email: Not a valid email address.")
    error = assert_error(api.get("/whmcs/v1/usage?service_id=3&service_id=x"), 422, "validation_error")
    assert error["message"] == "the request is invalid: service_id.1: Not a valid integer."
    error = assert_error(api.post(CREATE, {**client_payload(), "client": "Ada"}), 422, "validation_error")
    assert error["message"] == "the request is invalid: client: must be a JSON object"
    error = assert_error(api.post(CREATE, [client_payload()]), 422, "validation_error")
    assert error["message"] == "the request is invalid: body: must be a JSON object"
    # The details keep marshmallow's structure, for programs.
    assert error["details"] == {"json": {"_schema": ["Invalid input type."]}}


SAFE_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="{}[]<>'\"\\",
                                  exclude_categories=("Cs",)), max_size=12)
FIELD_NAMES = st.sampled_from(["client", "id", "email", "firstname", "product", "plan", "username", "domain",
                               "wait", "reason", "revision", "dry_run", "allow_data_risk", "_schema", "0"])
KEYS = FIELD_NAMES | st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True)


def json_containers(children: st.SearchStrategy) -> st.SearchStrategy:
    """Arrays and objects of ``children``: how JSON nests."""
    return st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=3)


JSON_SCALARS = (st.none() | st.booleans() | st.integers(-2**40, 2**40)
                | st.floats(allow_nan=False, allow_infinity=False) | SAFE_TEXT | st.just("a\x00b"))
JSON_VALUES = st.recursive(JSON_SCALARS, json_containers, max_leaves=10)


@st.composite
def invalid_bodies(draw):
    """A random JSON document, or a valid create body with fields replaced, added or removed at any depth."""
    if draw(st.booleans()):
        return draw(JSON_VALUES)
    body = client_payload(username="fuzz", wait=0)
    for _ in range(draw(st.integers(1, 3))):
        target = body["client"] if draw(st.booleans()) and isinstance(body.get("client"), dict) else body
        key = draw(KEYS)
        if draw(st.integers(0, 3)) == 0:
            target.pop(key, None)
        else:
            target[key] = draw(JSON_VALUES)
    return body


ROUTES = st.sampled_from([
    ("POST", "/whmcs/v1/services/77/create", "whmcs"), ("POST", "/whmcs/v1/services/999/suspend", "whmcs"),
    ("POST", "/whmcs/v1/services/999/change-package", "whmcs"), ("POST", "/whmcs/v1/services/999/restart", "whmcs"),
    ("POST", "/api/v1/orders/999999/upgrade", "admin"),
])
QUERIES = st.sampled_from(["/api/v1/orders", "/api/v1/customers", "/api/v1/orders/1/events", "/whmcs/v1/usage",
                           "/whmcs/v1/failures"])
QUERY_KEYS = st.sampled_from(["service_id", "status", "page", "per_page", "email", "since", "customer_id", "product"])


def assert_plain(message: str) -> None:
    assert isinstance(message, str) and message.strip(), message
    assert PYTHON_TEXT.search(message) is None, message


@ON_SQLITE
@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=ROUTES, body=invalid_bodies())
def test_no_validation_message_shows_a_python_structure(api, route, body):
    method, path, scope = route
    response = api.call(method, path, scope, json=body)
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        assert_plain(response.json["error"]["message"])


@ON_SQLITE
@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=QUERIES, params=st.lists(st.tuples(QUERY_KEYS | KEYS, SAFE_TEXT | st.integers().map(str)), max_size=4))
def test_no_query_message_shows_a_python_structure(api, path, params):
    scope = "whmcs" if path.startswith("/whmcs/") else "read"
    response = api.get(path, scope, query_string=params)
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        assert_plain(response.json["error"]["message"])


# -- an unknown product: one status in the code, the API document, API.md and WHMCS.md -----------
def documented_statuses(document: str, term: str) -> list[set[int]]:
    """For each line of ``document`` that mentions ``term`` and an HTTP status: the statuses it names."""
    text = (PROJECT_ROOT / "docs" / document).read_text(encoding="utf-8")
    found = []
    for line in text.splitlines():
        if term.lower() in line.lower():
            statuses = {int(status) for status in STATUS.findall(line)}
            if statuses:
                found.append(statuses)
    return found


def test_an_unknown_product_has_the_same_status_in_the_code_and_the_docs(api):
    created = api.post(CREATE, client_payload())
    assert created.status_code == 202, created.json
    answers = [api.post("/whmcs/v1/services/2/create", client_payload(product="no-such-product")),
               api.post("/whmcs/v1/services/1/change-package", {"product": "no-such-product", "plan": "small"})]
    statuses = set()
    for answer in answers:
        statuses.add(answer.status_code)
        error = answer.json["error"]
        assert error["code"] == "validation_error", error
        assert "no-such-product" in error["message"] and "busybox-demo" in error["message"], error
    assert len(statuses) == 1
    status = statuses.pop()
    document = api.get("/api/v1/openapi.json", scope=None).json
    for operation in ("create", "change-package"):
        responses = document["paths"][f"/whmcs/v1/services/{{service_id}}/{operation}"]["post"]["responses"]
        assert "unknown product" in responses[str(status)]["description"], operation
    for page in ("API.md", "WHMCS.md"):
        stated = documented_statuses(page, "unknown product")
        assert stated and all(found == {status} for found in stated), (page, stated)
    # A missing order is another thing: 404 order_not_found, in the code and both documents.
    missing = api.post("/whmcs/v1/services/3/suspend", {})
    assert missing.status_code == 404 and missing.json["error"]["code"] == "order_not_found"
    for page in ("API.md", "WHMCS.md"):
        stated = documented_statuses(page, "order_not_found")
        assert stated and all(found == {404} for found in stated), (page, stated)


# -- keys: 401 and 403 say what to do; the access log names the key -------------------
def test_a_key_of_the_wrong_scope_is_told_which_scope_it_needs(api, caplog):
    caplog.set_level("INFO", logger="app.web.access")
    error = assert_error(api.get("/whmcs/v1/products", scope="read"), 403, "forbidden")
    assert error["message"] == "this call needs a key with the whmcs or admin scope; key 'test-read' has the read scope"
    assert error["details"] == {"required_scopes": ["whmcs", "admin"], "key": "test-read", "scope": "read"}
    error = assert_error(api.post("/api/v1/products/sync", {}, scope="read"), 403, "forbidden")
    assert error["message"] == "this call needs a key with the admin scope; key 'test-read' has the read scope"
    error = assert_error(api.get("/api/v1/orders", scope="whmcs"), 403, "forbidden")
    assert "the read or admin scope; key 'test-whmcs' has the whmcs scope" in error["message"]
    logged = [(line["status"], line["key"]) for line in access_lines(caplog)]
    assert logged == [(403, "test-read"), (403, "test-read"), (403, "test-whmcs")]


def test_the_access_log_names_the_key_of_every_answer_after_authentication(api, caplog):
    caplog.set_level("INFO", logger="app.web.access")
    assert api.post(CREATE, {"product": 3}).status_code == 422
    assert api.call("POST", CREATE, data="{}", headers={"Content-Type": "text/plain"}).status_code == 415
    assert api.post("/whmcs/v1/services/5/suspend", {}).status_code == 404
    assert api.call("DELETE", "/api/v1/orders", scope="admin").status_code == 405  # no route: auth never ran
    assert api.post("/whmcs/v1/services/5/suspend", {}, scope=None).status_code == 401
    lines = access_lines(caplog)
    assert [(line["status"], line["key"]) for line in lines] == [
        (422, "test-whmcs"), (415, "test-whmcs"), (404, "test-whmcs"), (405, None), (401, None)]
    assert api.tokens["whmcs"] not in caplog.text


def test_a_401_says_whether_a_key_was_missing_or_not_valid(api):
    error = assert_error(api.get("/api/v1/orders", scope=None), 401, "unauthorized")
    assert error["message"] == "this call needs an API key: send Authorization: Bearer <token>"
    unknown = api.get("/api/v1/orders", scope=None, headers={"Authorization": "Bearer live_xxxxxxxx_" + "y" * 43})
    error = assert_error(unknown, 401, "unauthorized")
    assert error["message"].startswith("the API key is not valid (unknown, revoked or malformed)")
    assert unknown.headers["WWW-Authenticate"].startswith("Bearer")


# -- metrics: the route template as the API document writes it ------------------------
def test_every_route_is_labelled_as_the_api_document_writes_its_path(api):
    document = api.get("/api/v1/openapi.json", scope=None).json
    hidden = {"/metrics", "/api/v1/openapi.json", "/api/v1/docs", "/api/v1/docs/assets/{filename}",
              "/docs/oauth2-redirect", "/static/{filename}"}
    for rule in api.app.url_map.iter_rules():
        label = route_label(rule.rule)
        assert not re.search(r"[<>:()]", label), (rule.rule, label)
        assert label in document["paths"] or label in hidden, (rule.rule, label)
    assert route_label("/x/<int(min=1, max=9):a>/<path:b>/<c>") == "/x/{a}/{b}/{c}"


def test_metrics_use_the_label_and_unmatched_for_unknown_paths(api):
    api.post("/whmcs/v1/services/31/suspend", {})
    api.get("/api/v1/orders/12345", scope="read")
    api.get("/no/such/path/<int:x>", scope=None)
    text = api.get("/metrics", scope=None).get_data(as_text=True)
    samples = [line for line in text.splitlines() if line.startswith("live_http_requests_total{")]
    labels = {re.search(r'endpoint="([^"]*)"', line).group(1) for line in samples}
    assert {"/whmcs/v1/services/{service_id}/suspend", "/api/v1/orders/{order_id}", "unmatched"} <= labels
    assert not [label for label in labels if re.search(r"[<>:()]", label)], labels
