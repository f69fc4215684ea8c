"""The Zabbix template (config/zabbix/, a Zabbix 6.0 LTS YAML export) against itself and against the bridge's answers.

Its structure: it parses, every uuid is 32 hex digits and unique, every dependent item and discovery rule names an
existing master item, every trigger names items that exist (trigger prototypes: the rule's prototypes or the
template's items), every LLD macro is one the rule defines, every user macro one the template defines. Two master
items: the public ``/metrics`` (no credentials) for the bridge's own figures, ``/metrics/orders`` (a read key in
{$LIVE.TOKEN}, a secret macro) for the discovery and every order's items. Then the bridge's own answers (the Flask
test client on the in-memory engine, with orders in every state the template reads; ``/metrics/orders`` with a real
read key) are run through the template as Zabbix would, each item against the endpoint its master item reads: the
discovery rule's PROMETHEUS_TO_JSON finds the orders that are not terminated, and every PROMETHEUS_PATTERN step, its
LLD macros replaced by each discovered order's values, selects exactly one series (with the label it outputs).
Also: ``/metrics/orders`` refuses a caller without a key (401) or with a key lacking the read scope (403), and the
public ``/metrics`` names no order.
"""
from __future__ import annotations

import datetime as dt
import re

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import app as app_package
from app.apikeys import create_key
from app.config import PROJECT_ROOT
from app.models import Backup, Operation, Order, OrderDrift, OrderUsage, utcnow
from app.orders.service import CustomerInfo

TEMPLATE_FILE = PROJECT_ROOT / "config" / "zabbix" / "geocat_live_bridge_by_http.yaml"
UUID = re.compile(r"^[0-9a-f]{32}$")
LLD_MACRO = re.compile(r"\{#[A-Z0-9_.]+\}")
USER_MACRO = re.compile(r"\{\$[A-Z0-9_.]+(?::[^}]*)?\}")
# A function's item reference in a trigger expression: /<template>/<key>, the key running to the first , or ) outside
# brackets and quotes (keys here have one bracketed parameter and no commas).
ITEM_REFERENCE = re.compile(r"/([^/]+)/([a-z0-9_.]+(?:\[[^\]]*\])?)")
PATTERN = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$")
MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')
GiB = 1024 ** 3
PUBLIC_URL, ORDERS_URL = "{$LIVE.URL}/metrics", "{$LIVE.URL}/metrics/orders"


# -- the file -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def export() -> dict:
    return yaml.safe_load(TEMPLATE_FILE.read_text(encoding="utf-8"))["zabbix_export"]


@pytest.fixture(scope="module")
def template(export) -> dict:
    [template] = export["templates"]
    return template


def walk(node, path=()):
    """Every (path, key, value) of a parsed YAML tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from walk(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, (*path, index))


def strings(node) -> list[str]:
    return [value for _, _, value in walk(node) if isinstance(value, str)] + ([node] if isinstance(node, str) else [])


def test_it_is_a_zabbix_6_0_export_of_one_template_in_a_group_it_declares(export, template):
    assert export["version"] == "6.0"
    assert {group["name"] for group in template["groups"]} <= {group["name"] for group in export["groups"]}
    assert template["template"] == template["name"] == "GeoCat Live Bridge by HTTP"
    assert template["items"] and template["discovery_rules"] and template["macros"]


# What Zabbix 6.0's importer accepts (its C60XmlValidator), for the parts this template uses: an unknown key or value
# fails the import.
_TAGS = {"tag", "value"}
_STEP = {"type", "parameters", "error_handler", "error_handler_params"}
_HTTP = {"timeout", "url", "query_fields", "posts", "status_codes", "follow_redirects", "post_type", "http_proxy",
         "headers", "retrieve_mode", "request_method", "allow_traps", "ssl_cert_file", "ssl_key_file",
         "ssl_key_password", "verify_peer", "verify_host"}
_ITEM = {"uuid", "name", "type", "snmp_oid", "key", "delay", "history", "trends", "status", "value_type",
         "allowed_hosts", "units", "params", "ipmi_sensor", "authtype", "username", "password", "publickey",
         "privatekey", "description", "inventory_link", "valuemap", "logtimefmt", "preprocessing", "jmx_endpoint",
         "master_item", "parameters", "output_format", "tags", "triggers", *_HTTP}
_TRIGGER = {"uuid", "expression", "recovery_mode", "recovery_expression", "correlation_mode", "correlation_tag", "name",
            "event_name", "opdata", "url", "status", "priority", "description", "type", "manual_close", "dependencies",
            "tags"}
SCHEMA = {
    "export": {"version", "date", "groups", "templates"},
    "template": {"uuid", "template", "name", "description", "templates", "groups", "items", "discovery_rules",
                 "httptests", "tags", "macros", "dashboards", "valuemaps"},
    "item": _ITEM,
    "item_prototype": (_ITEM - {"triggers", "inventory_link"}) | {"discover", "inventory_link", "trigger_prototypes"},
    "discovery_rule": {"uuid", "name", "type", "snmp_oid", "key", "delay", "status", "allowed_hosts", "params",
                       "ipmi_sensor", "authtype", "username", "password", "publickey", "privatekey", "filter",
                       "lifetime", "description", "item_prototypes", "trigger_prototypes", "graph_prototypes",
                       "host_prototypes", "jmx_endpoint", "master_item", "parameters", "lld_macro_paths",
                       "preprocessing", "overrides", *_HTTP},
    "trigger": _TRIGGER, "trigger_prototype": _TRIGGER | {"discover"},
    "dependency": {"name", "expression", "recovery_expression"},
    "step": _STEP, "tag": _TAGS, "header": {"name", "value"}, "macro": {"macro", "type", "value", "description"},
    "valuemap": {"uuid", "name", "mappings"}, "mapping": {"type", "value", "newvalue"},
    "filter": {"evaltype", "formula", "conditions"}, "condition": {"macro", "value", "operator", "formulaid"},
    "lld_macro_path": {"lld_macro", "path"}, "group": {"uuid", "name"},
}
ITEM_TYPES = {"ZABBIX_PASSIVE", "TRAP", "SIMPLE", "INTERNAL", "ZABBIX_ACTIVE", "EXTERNAL", "ODBC", "IPMI", "SSH",
              "TELNET", "CALCULATED", "JMX", "SNMP_TRAP", "DEPENDENT", "HTTP_AGENT", "SNMP_AGENT", "SCRIPT"}
VALUE_TYPES = {"FLOAT", "CHAR", "LOG", "UNSIGNED", "TEXT"}
ITEM_STEPS = {"MULTIPLIER", "RTRIM", "LTRIM", "TRIM", "REGEX", "BOOL_TO_DECIMAL", "OCTAL_TO_DECIMAL", "HEX_TO_DECIMAL",
              "SIMPLE_CHANGE", "CHANGE_PER_SECOND", "XMLPATH", "JSONPATH", "IN_RANGE", "MATCHES_REGEX",
              "NOT_MATCHES_REGEX", "CHECK_JSON_ERROR", "CHECK_XML_ERROR", "CHECK_REGEX_ERROR", "CHECK_NOT_SUPPORTED",
              "DISCARD_UNCHANGED", "DISCARD_UNCHANGED_HEARTBEAT", "JAVASCRIPT", "PROMETHEUS_PATTERN",
              "PROMETHEUS_TO_JSON", "CSV_TO_JSON", "STR_REPLACE", "XML_TO_JSON"}
RULE_STEPS = {"REGEX", "XMLPATH", "JSONPATH", "NOT_MATCHES_REGEX", "CHECK_JSON_ERROR", "CHECK_XML_ERROR",
              "DISCARD_UNCHANGED_HEARTBEAT", "JAVASCRIPT", "PROMETHEUS_TO_JSON", "CSV_TO_JSON", "STR_REPLACE",
              "XML_TO_JSON"}
PRIORITIES = {"NOT_CLASSIFIED", "INFO", "WARNING", "AVERAGE", "HIGH", "DISASTER"}


def check_keys(kind: str, node: dict) -> None:
    assert isinstance(node, dict) and set(node) <= SCHEMA[kind], (kind, set(node) - SCHEMA[kind])
    for tag in node.get("tags", []):
        check_keys("tag", tag)


def check_steps(steps: list, allowed: set[str]) -> None:
    for step in steps:
        check_keys("step", step)
        assert step["type"] in allowed and isinstance(step["parameters"], list), step
        assert all(isinstance(parameter, str) for parameter in step["parameters"]), step
        if step["type"] == "PROMETHEUS_PATTERN":  # 6.0: pattern, value|label|function, label name or function
            assert len(step["parameters"]) == 3 and step["parameters"][1] in {"value", "label", "function"}, step


def check_trigger(kind: str, trigger: dict) -> None:
    check_keys(kind, trigger)
    assert trigger["priority"] in PRIORITIES and trigger.get("manual_close", "NO") in {"YES", "NO"}
    for dependency in trigger.get("dependencies", []):
        check_keys("dependency", dependency)


def check_item(kind: str, item: dict) -> None:
    check_keys(kind, item)
    assert item["type"] in ITEM_TYPES and item.get("value_type", "UNSIGNED") in VALUE_TYPES, item["key"]
    check_steps(item.get("preprocessing", []), ITEM_STEPS)
    for header in item.get("headers", []):
        check_keys("header", header)
    for trigger in item.get("triggers", []):
        check_trigger("trigger", trigger)
    for trigger in item.get("trigger_prototypes", []):
        check_trigger("trigger_prototype", trigger)


def test_every_object_has_only_keys_and_values_zabbix_6_0_imports(export, template):
    check_keys("export", export)
    for group in export["groups"]:
        check_keys("group", group)
    check_keys("template", template)
    for item in template["items"]:
        check_item("item", item)
    for rule in template["discovery_rules"]:
        check_keys("discovery_rule", rule)
        assert rule["type"] in ITEM_TYPES - {"CALCULATED", "SNMP_TRAP"}
        check_steps(rule["preprocessing"], RULE_STEPS)
        check_keys("filter", rule["filter"])
        assert rule["filter"]["evaltype"] in {"AND_OR", "AND", "OR", "FORMULA"}
        for condition in rule["filter"]["conditions"]:
            check_keys("condition", condition)
            assert condition.get("operator", "MATCHES_REGEX") in {"MATCHES_REGEX", "NOT_MATCHES_REGEX", "EXISTS",
                                                                  "NOT_EXISTS"}
        for path in rule["lld_macro_paths"]:
            check_keys("lld_macro_path", path)
        for prototype in rule["item_prototypes"]:
            check_item("item_prototype", prototype)
        for trigger in rule.get("trigger_prototypes", []):
            check_trigger("trigger_prototype", trigger)
    for macro in template["macros"]:
        check_keys("macro", macro)
        assert USER_MACRO.fullmatch(macro["macro"]), macro
        assert macro.get("type", "TEXT") in {"TEXT", "SECRET_TEXT", "VAULT"}, macro
    for valuemap in template["valuemaps"]:
        check_keys("valuemap", valuemap)
        for mapping in valuemap["mappings"]:
            check_keys("mapping", mapping)
    # Every value Zabbix reads as a string is one (YAML would read 0 or yes otherwise).
    assert all(isinstance(value, (str, list, dict)) for _, _, value in walk(export)), \
        [(path, key, value) for path, key, value in walk(export) if not isinstance(value, (str, list, dict))]


def test_every_uuid_is_32_hex_digits_and_unique(export):
    uuids = [value for _, key, value in walk(export) if key == "uuid"]
    assert len(uuids) > 20
    assert [u for u in uuids if not UUID.match(str(u))] == []
    assert len(set(uuids)) == len(uuids)


def item_keys(template) -> set[str]:
    return {item["key"] for item in template["items"]}


def master_url(template, item: dict) -> str:
    """The URL of the HTTP agent master item a dependent item or rule reads."""
    master = {item["key"]: item for item in template["items"]}[item["master_item"]["key"]]
    assert master["type"] == "HTTP_AGENT", item["key"]
    return master["url"]


def test_dependent_items_and_rules_name_an_existing_http_master_item(template):
    dependents = [*template["items"], *template["discovery_rules"],
                  *(p for rule in template["discovery_rules"] for p in rule["item_prototypes"])]
    for item in dependents:
        if item["type"] == "DEPENDENT":
            assert item["delay"] == "0", item["key"]
            assert master_url(template, item) in {PUBLIC_URL, ORDERS_URL}, item["key"]
    keys = [p["key"] for rule in template["discovery_rules"] for p in rule["item_prototypes"]]
    assert len(keys) == len(set(keys)) and not set(keys) & item_keys(template)


def triggers(template):
    """``(trigger, keys it may name)``: items' triggers name items; prototypes' also their rule's prototypes."""
    items = item_keys(template)
    for item in template["items"]:
        for trigger in item.get("triggers", []):
            yield trigger, items
    for rule in template["discovery_rules"]:
        prototypes = {p["key"] for p in rule["item_prototypes"]}
        for prototype in rule["item_prototypes"]:
            for trigger in prototype.get("trigger_prototypes", []):
                yield trigger, items | prototypes
        for trigger in rule.get("trigger_prototypes", []):
            yield trigger, items | prototypes


def test_every_trigger_names_existing_keys_of_this_template_and_its_dependencies_exist(template):
    found = list(triggers(template))
    assert len(found) >= 8
    names = {trigger["name"]: trigger["expression"] for trigger, _ in found}
    for trigger, allowed in found:
        references = ITEM_REFERENCE.findall(trigger["expression"])
        assert references, trigger["name"]
        for host, key in references:
            assert host == template["template"], trigger["name"]
            assert key in allowed, f"{trigger['name']}: {key}"
        assert trigger["priority"] in {"INFO", "WARNING", "AVERAGE", "HIGH", "DISASTER"}
        for dependency in trigger.get("dependencies", []):
            assert names[dependency["name"]] == dependency["expression"], dependency["name"]


def test_every_lld_macro_used_is_defined_by_its_rule(template):
    assert not LLD_MACRO.findall(" ".join(strings(template["items"]))), "an LLD macro outside a discovery rule"
    for rule in template["discovery_rules"]:
        defined = {path["lld_macro"] for path in rule["lld_macro_paths"]}
        assert all(path["path"].startswith("$.labels.") for path in rule["lld_macro_paths"])
        body = {key: value for key, value in rule.items() if key != "lld_macro_paths"}
        used = set(LLD_MACRO.findall(" ".join(strings(body))))
        assert used and used <= defined, used - defined


def test_the_orders_are_read_with_a_secret_token_and_the_bridge_figures_without_one(template):
    masters = {item["url"]: item for item in template["items"] if item["type"] == "HTTP_AGENT"}
    assert set(masters) == {PUBLIC_URL, ORDERS_URL}
    assert "headers" not in masters[PUBLIC_URL], "the public /metrics needs no key"
    assert masters[ORDERS_URL]["headers"] == [{"name": "Authorization", "value": "Bearer {$LIVE.TOKEN}"}]
    [token] = [macro for macro in template["macros"] if macro["macro"] == "{$LIVE.TOKEN}"]
    assert token["type"] == "SECRET_TEXT" and not token.get("value"), "a secret macro, no key in the file"
    for rule in template["discovery_rules"]:
        assert master_url(template, rule) == ORDERS_URL
        assert {master_url(template, prototype) for prototype in rule["item_prototypes"]} == {ORDERS_URL}


def test_every_user_macro_used_is_defined_by_the_template(template):
    defined = {macro["macro"] for macro in template["macros"]}
    body = {key: value for key, value in template.items() if key != "macros"}
    used = {macro.split(":")[0].rstrip("}") + "}" if ":" in macro else macro
            for macro in USER_MACRO.findall(" ".join(strings(body)))}
    assert used == defined, (used - defined, defined - used)


def test_numeric_items_are_float_as_the_python_client_writes_every_value(template):
    """prometheus_client writes ``1.0`` and ``2.147483648e+09``: an unsigned item would refuse them."""
    items = [*template["items"], *(p for rule in template["discovery_rules"] for p in rule["item_prototypes"])]
    for item in items:
        if item["type"] == "DEPENDENT":
            assert item.get("value_type") in {"FLOAT", "CHAR"}, item["key"]
            assert (item["value_type"] == "CHAR") == (item["preprocessing"][0]["parameters"][1] == "label"), item["key"]


def test_every_value_map_named_exists(template):
    maps = {valuemap["name"] for valuemap in template["valuemaps"]}
    named = {value["name"] for _, key, value in walk(template) if key == "valuemap"}
    assert named and named <= maps


# -- against a real /metrics answer ------------------------------------------------------------------------------
def matchers(pattern: str) -> tuple[str, list[tuple[str, str, str]]]:
    """A Prometheus pattern of Zabbix (``name{label="value",other=~"regex"}``) as its name and label matchers."""
    match = PATTERN.match(pattern.strip())
    assert match, f"not a pattern this test reads: {pattern!r}"
    name, body = match.group(1), match.group(2) or ""
    assert MATCHER.sub("", body) == "", f"unread matchers in {pattern!r}"
    return name, MATCHER.findall(body)


def select(samples, pattern: str):
    """The samples a PROMETHEUS_PATTERN or PROMETHEUS_TO_JSON step selects."""
    name, conditions = matchers(pattern)

    def keeps(sample) -> bool:
        for label, op, value in conditions:
            actual = sample.labels.get(label, "")
            if op == "=" and actual != value or op == "!=" and actual == value:
                return False
            if op == "=~" and not re.fullmatch(value, actual) or op == "!~" and re.fullmatch(value, actual):
                return False
        return True
    return [sample for sample in samples if sample.name == name and keeps(sample)]


def make_orders(live, count: int) -> list[Order]:
    ids = []
    for number in range(1, count + 1):
        outcome = live.orders.create(service_id=7000 + number, customer=CustomerInfo(email=f"z{number}@example.org"),
                                     product="busybox-demo", plan="small", username=f"zabbix{number}")
        ids.append(outcome.order.id)
    live.worker().run_until_idle(timeout=120)
    return list(Order.select().where(Order.id.in_(ids)).order_by(Order.id))


@pytest.fixture
def seeded(fake_live):
    """Four orders: ``failing`` (failing, sampled, backed up an hour ago), ``broken`` (two failed operations, not
    sampled, no backup), ``quiet`` (suspended) and ``gone`` (terminated: never discovered)."""
    failing, broken, quiet, gone = make_orders(fake_live, 4)
    OrderUsage.insert(order=failing, sampled_at=utcnow(), memory_bytes=300 * 1024 ** 2, disk_bytes=2 * GiB,
                      disk_sampled_at=utcnow()).on_conflict_replace().execute()
    OrderUsage.delete().where(OrderUsage.order.in_([broken.id, quiet.id])).execute()
    if not OrderDrift.update(state="failing", failing_since=utcnow()).where(OrderDrift.order == failing).execute():
        OrderDrift.create(order=failing, state="failing", failing_since=utcnow())
    OrderDrift.update(state="ok").where(OrderDrift.order != failing).execute()
    for _ in range(2):
        Operation.create(order=broken, kind="redeploy", state="failed", error="boom", finished_at=utcnow())
    backed_up = utcnow() - dt.timedelta(hours=1)
    Backup.delete().execute()
    Backup.create(order=failing, kind="scheduled", state="succeeded", backup_id="b-zabbix-1", started_at=backed_up,
                  finished_at=backed_up, size=1234)
    Order.update(status="suspended").where(Order.id == quiet.id).execute()
    Order.update(status="terminated").where(Order.id == gone.id).execute()
    return {"failing": failing, "broken": broken, "quiet": quiet, "gone": gone, "backed_up": backed_up}


@pytest.fixture
def client(fake_live, monkeypatch):
    monkeypatch.setattr(app_package, "bootstrap", lambda settings: fake_live)
    return app_package.create_app(fake_live.settings).test_client()


@pytest.fixture
def answers(client, seeded) -> dict[str, str]:
    """``{master item URL: the bridge's answer}``: ``/metrics`` without credentials, ``/metrics/orders`` with a real
    read key, as the template's two master items send them."""
    public = client.get("/metrics")
    assert public.status_code == 200, "/metrics is public: its master item sends no credentials"
    orders = client.get("/metrics/orders", headers={"Authorization": f"Bearer {create_key('zabbix', 'read')[1]}"})
    assert orders.status_code == 200 and orders.mimetype == "text/plain"
    return {PUBLIC_URL: public.get_data(as_text=True), ORDERS_URL: orders.get_data(as_text=True)}


def samples_of(text: str) -> list:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def test_the_per_order_figures_in_metrics_orders(answers, seeded):
    text = answers[ORDERS_URL]
    samples = samples_of(text)
    failing, broken, quiet = seeded["failing"], seeded["broken"], seeded["quiet"]

    def value(name: str, order: Order) -> float | None:
        found = [s.value for s in samples if s.name == name and s.labels.get("instance") == order.instance]
        assert len(found) <= 1
        return found[0] if found else None
    statuses = {s.labels["instance"]: s.labels for s in samples if s.name == "live_order_status"}
    assert set(statuses) == {failing.instance, broken.instance, quiet.instance}, "terminated orders are left out"
    assert statuses[quiet.instance] == {"order_id": str(quiet.id), "service_id": str(quiet.whmcs_service_id),
                                        "instance": quiet.instance, "product": "busybox-demo", "status": "suspended"}
    assert statuses[failing.instance]["status"] == "active"
    assert [value("live_order_failing", o) for o in (failing, broken, quiet)] == [1, 0, 0]
    assert [value("live_order_failed_operations_total", o) for o in (failing, broken, quiet)] == [0, 2, 0]
    assert value("live_order_disk_bytes", failing) == 2 * GiB and value("live_order_memory_bytes", failing) == 300 * 1024 ** 2
    assert value("live_order_disk_bytes", broken) is None, "not sampled yet: no series"
    assert value("live_order_backup_last_success_timestamp_seconds", failing) == \
        seeded["backed_up"].replace(tzinfo=dt.timezone.utc).timestamp()
    assert value("live_order_backup_last_success_timestamp_seconds", broken) is None, "no backup yet: no series"
    assert [s.value for s in samples if s.name == "live_orders_reported"] == [3]
    assert "# TYPE live_order_failed_operations_total counter" in text


def test_public_metrics_name_no_order(answers, seeded):
    """Nothing that identifies a customer's order beyond the instance of the backup families (as on main): no
    per-order family, no order, service or product label."""
    samples = samples_of(answers[PUBLIC_URL])
    assert not [s.name for s in samples if s.name.startswith(("live_order_", "live_orders_reported"))]
    assert not [s for s in samples if {"order_id", "service_id", "product"} & set(s.labels)]
    for name in ("failing", "broken", "quiet"):
        order = seeded[name]
        # In no label (a number in the text may hold its digits: a timestamp, a size).
        assert not [s for s in samples if str(order.whmcs_service_id) in s.labels.values()]
        assert not [s for s in samples if s.name != "live_backup_last_success_timestamp_seconds"
                    and s.name != "live_backup_bytes" and order.instance in s.labels.values()]


def test_metrics_orders_needs_a_key_with_the_read_scope(client, seeded):
    anonymous = client.get("/metrics/orders")
    assert anonymous.status_code == 401 and anonymous.json["error"]["code"] == "unauthorized"
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert seeded["failing"].instance not in anonymous.get_data(as_text=True)
    wrong = client.get("/metrics/orders", headers={"Authorization": "Bearer live_xxxxxxxx_" + "y" * 43})
    assert wrong.status_code == 401
    billing = client.get("/metrics/orders", headers={"Authorization": f"Bearer {create_key('billing', 'whmcs')[1]}"})
    assert billing.status_code == 403 and billing.json["error"]["code"] == "forbidden"
    assert billing.json["error"]["details"]["required_scopes"] == ["read", "admin"]
    admin = client.get("/metrics/orders", headers={"Authorization": f"Bearer {create_key('ops', 'admin')[1]}"})
    assert admin.status_code == 200


def test_the_template_finds_every_order_and_each_of_its_items_in_the_answer_of_its_endpoint(template, answers, seeded):
    for item in template["items"]:
        for step in item.get("preprocessing", []):
            if step["type"] == "PROMETHEUS_PATTERN":
                samples = samples_of(answers[master_url(template, item)])
                assert len(select(samples, step["parameters"][0])) == 1, item["key"]
    [rule] = template["discovery_rules"]
    samples = samples_of(answers[master_url(template, rule)])
    [to_json] = [step for step in rule["preprocessing"] if step["type"] == "PROMETHEUS_TO_JSON"]
    rows = select(samples, to_json["parameters"][0])
    discovered = [{path["lld_macro"]: row.labels[path["path"].removeprefix("$.labels.")]
                   for path in rule["lld_macro_paths"]} for row in rows]
    assert sorted(row["{#INSTANCE}"] for row in discovered) == \
        sorted(seeded[name].instance for name in ("failing", "broken", "quiet"))
    assert all(row["{#SERVICE_ID}"].isdigit() and row["{#ORDER_ID}"].isdigit() for row in discovered)
    # Every prototype of the order that has every figure (sampled, backed up) selects exactly one series.
    [full] = [row for row in discovered if row["{#INSTANCE}"] == seeded["failing"].instance]
    checked = set()
    for prototype in rule["item_prototypes"]:
        samples = samples_of(answers[master_url(template, prototype)])
        patterns = [step for step in prototype["preprocessing"] if step["type"] == "PROMETHEUS_PATTERN"]
        assert len(patterns) == 1 and prototype["preprocessing"][0] is patterns[0], \
            f"{prototype['key']}: one PROMETHEUS_PATTERN, first (Zabbix caches and indexes it only then)"
        pattern, output, label = patterns[0]["parameters"]
        assert output in {"value", "label"} and (label != "") == (output == "label")
        assert matchers(pattern)[1][0][:2] == ("instance", "="), "indexed by the label with most values"
        for row in discovered if prototype["key"].startswith(("live.order.status", "live.order.failing",
                                                             "live.order.failed_operations")) else [full]:
            concrete = pattern
            for macro, text in row.items():
                concrete = concrete.replace(macro, text)
            found = select(samples, concrete)
            assert len(found) == 1, f"{prototype['key']} of {row['{#INSTANCE}']}: {concrete}"
            if output == "label":
                assert found[0].labels[label]
            checked.add(matchers(pattern)[0])
    assert checked == {"live_order_status", "live_order_failing", "live_order_failed_operations_total",
                       "live_order_disk_bytes", "live_order_memory_bytes",
                       "live_order_backup_last_success_timestamp_seconds"}


def test_the_per_order_families_cost_the_same_queries_whatever_the_number_of_orders(fake_live, monkeypatch):
    from app.web.observability import OrderCollector

    statements: list[str] = []
    execute = type(fake_live.db).execute_sql

    def counted(db, sql, *args, **kwargs):
        statements.append(sql)
        return execute(db, sql, *args, **kwargs)
    monkeypatch.setattr(type(fake_live.db), "execute_sql", counted)
    collector = OrderCollector(fake_live.queries)

    def scrape() -> int:
        statements.clear()
        families = {family.name for family in collector.collect()}
        assert "live_order_status" in families
        return len(statements)
    make_orders(fake_live, 1)
    few = scrape()
    assert few >= 5, "the statements are counted"
    for number in range(2, 6):
        fake_live.orders.create(service_id=7100 + number, customer=CustomerInfo(email=f"q{number}@example.org"),
                                product="busybox-demo", plan="small", username=f"query{number}")
    assert scrape() == few
