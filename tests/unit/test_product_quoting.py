"""What a product author writes is what deploys (issue 9, item 1): product.yml and docker-compose.yml end to end."""
from __future__ import annotations

import textwrap

import pytest

from app.catalog.product import ProductDefinition, load_product, sample_builtins
from app.compose.parse import _environment, _mapping, parse_service
from app.errors import StackSpecError

MINIMAL_MANIFEST = "name: Minimal\nplans:\n  basic:\n"
MINIMAL_COMPOSE = "services:\n  web:\n    image: busybox\n"


def load(manifest: str = MINIMAL_MANIFEST, compose: str = MINIMAL_COMPOSE) -> ProductDefinition:
    return load_product("demo", manifest, compose)


def service(extra: str) -> str:
    return "services:\n  web:\n    image: busybox\n" + textwrap.indent(textwrap.dedent(extra), "    ")


def render(product: ProductDefinition, plan: str = "basic") -> dict:
    assert product.errors == []
    return product.render(plan, sample_builtins(product.slug, plan), product.generate_secrets())


def the_error(product: ProductDefinition, *fragments: str) -> str:
    matching = [e for e in product.errors if all(f in e for f in fragments)]
    assert matching, (fragments, product.errors)
    return matching[0]


# -- the examples of the issue ---------------------------------------------------------------

ISSUE_MANIFEST = textwrap.dedent("""\
    name: Example
    variables: {ENABLE_CORS: yes, PG_VERSION: 13.10, UMASK: 0022, BACKUP_AT: 12:30}
    plans:
      basic:
    """)
ISSUE_COMPOSE = textwrap.dedent("""\
    services:
      db:
        image: postgres:${PG_VERSION}
        environment:
          CORS: ${ENABLE_CORS}
          UMASK: ${UMASK}
          BACKUP_AT: ${BACKUP_AT}
          CORS_ENABLED: yes
    """)


def test_issue_variables_keep_the_authors_text():
    product = load(ISSUE_MANIFEST, ISSUE_COMPOSE)
    assert product.errors == []
    assert product.defaults == {"ENABLE_CORS": "yes", "PG_VERSION": "13.10", "UMASK": "0022", "BACKUP_AT": "12:30"}


def test_issue_image_deploys_the_version_written():
    rendered = render(load(ISSUE_MANIFEST, ISSUE_COMPOSE))
    assert rendered["services"]["db"]["image"] == "postgres:13.10"
    assert rendered["services"]["db"]["environment"] == {"CORS": "yes", "UMASK": "0022", "BACKUP_AT": "12:30",
                                                         "CORS_ENABLED": "yes"}


def test_issue_environment_yes_is_accepted_as_the_text_yes():
    product = load(compose=service("environment: {CORS_ENABLED: yes}\n"))
    rendered = render(product)
    spec = parse_service("web", rendered["services"]["web"], rendered)
    assert spec.environment == {"CORS_ENABLED": "yes"}


# -- the whole kind: no scalar renders differently from what was typed ---------------------------

SCALARS = [
    # YAML 1.1 booleans, and the canonical ones
    "yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF", "y", "n", "Y", "N",
    "True", "TRUE", "False", "FALSE", "true", "false",
    # integers in every YAML 1.1 spelling
    "0", "7", "-7", "+7", "0022", "0755", "00", "010", "08", "09", "08080", "0x1F", "0xFF", "0b101", "1_000",
    "12:30", "1:00:00", "-1:30", "-0", "99999999999999999999",
    # floats
    "0.5", "1.0", "13.10", "1.50", "1.", ".5", "+1.5", "-0.0", "1_000.5", "1.5e+3", "1e3", "1.0e-7", ".inf", "-.inf",
    ".nan", "190:20:30.15", "100000000000000000000.0",
    # dates and times
    "2024-01-01", "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10 -5", "2024-02-30",
    # things YAML 1.1 leaves as text
    "=", "<<", "0o17", "hello", "v1.2.3", "1.2.3", "a b", "x:y", "._", "0b_",
]


@pytest.mark.parametrize("text", SCALARS)
def test_validate_ok_never_renders_a_different_value(text):
    """Every plain scalar, as a variable default, a plan value and an environment value, renders as typed."""
    manifest = f"name: Table\nvariables:\n  V: {text}\nplans:\n  basic:\n    P: {text}\n"
    compose = service(f"environment:\n  DIRECT: {text}\n  FROM_DEFAULT: ${{V}}\n  FROM_PLAN: ${{P}}\n"
                      f"labels:\n  org.example.v: {text}\n")
    product = load(manifest, compose)
    if text in ("true", "false"):
        # A boolean where Compose wants text is refused (by the Compose schema), with what to write.
        the_error(product, f"services.web.environment.DIRECT: {text} is a boolean here, where text is needed: "
                           f"quote it ('{text}')")
        the_error(product, f"services.web.labels.org.example.v: {text} is a boolean here")
        return
    assert product.errors == [], product.errors  # text fields take any other scalar, as written
    assert product.defaults["V"] == text and product.plans["basic"]["P"] == text
    rendered = render(product)
    spec = parse_service("web", rendered["services"]["web"], rendered)
    assert spec.environment == {"DIRECT": text, "FROM_DEFAULT": text, "FROM_PLAN": text}
    assert spec.labels == {"org.example.v": text}


@pytest.mark.parametrize("text", SCALARS)
def test_typed_fields_either_take_the_canonical_value_or_refuse(text):
    """In boolean and number fields a scalar is used only when its canonical text is what was typed."""
    product = load(compose=service(f"read_only: {text}\nhealthcheck:\n  test: [CMD, 'true']\n  retries: {text}\n"))
    if product.valid:
        rendered = render(product)["services"]["web"]
        for key, written in (("read_only", rendered["read_only"]), ("retries", rendered["healthcheck"]["retries"])):
            canonical = ("true" if written else "false") if isinstance(written, bool) else str(written)
            assert canonical == text, (key, written, text)


# -- typed fields refuse kept text, saying what YAML 1.1 would have done and what to write ----------

@pytest.mark.parametrize("extra, path, fragments", [
    ("read_only: yes\n", "services.web.read_only",
     ["'yes' is text here, not a boolean", "as true", "write true or false"]),
    ("init: True\n", "services.web.init", ["'True' is text here, not a boolean", "write true or false"]),
    ("tty: off\n", "services.web.tty", ["'off'", "as false"]),
    ("healthcheck:\n  test: [CMD, 'true']\n  retries: 03\n", "services.web.healthcheck.retries",
     ["'03' is text here, not a number", "as 3, an octal number", "write a plain decimal number such as 3"]),
    ("healthcheck:\n  disable: no\n", "services.web.healthcheck.disable", ["'no'", "write true or false"]),
])
def test_compose_typed_fields_name_service_key_text_reading_and_fix(extra, path, fragments):
    product = load(compose=service(extra))
    message = the_error(product, f"product demo: docker-compose.yml: {path}: ")
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert "(line " in message


def test_external_volume_written_yes_is_refused_with_the_hint():
    compose = service("volumes: ['data:/data']\n") + "volumes:\n  data:\n    external: yes\n"
    assert "write true or false" in the_error(load(compose=compose), "docker-compose.yml: volumes.data.external: 'yes'")


@pytest.mark.parametrize("snippet, path, fragments", [
    ("endpoints:\n  - {application: web, service: web, port: 08080}\n", "endpoints.0.port",
     ["'08080' is text here, not a number", "YAML 1.1 reads it as text too", "such as 8080"]),
    ("endpoints:\n  - {application: web, service: web, port: 0x50}\n", "endpoints.0.port", ["as 80, a hexadecimal"]),
    ("variables:\n  PW: {generate: secret, length: 032}\n", "variables.PW.length", ["as 26, an octal number"]),
])
def test_manifest_typed_fields_name_the_key_and_say_what_to_write(snippet, path, fragments):
    product = load(MINIMAL_MANIFEST + snippet)
    message = the_error(product, f"product demo: product.yml: {path}: ")
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_a_value_from_a_variable_gets_the_plain_schema_message():
    manifest = "name: X\nvariables: {RO: 'yes'}\nplans:\n  basic:\n"
    message = the_error(load(manifest, service("read_only: ${RO}\n")), "services.web.read_only")
    assert "is not of type 'boolean'" in message


@pytest.mark.parametrize("extra, path, text", [
    ("image: 1\n", "services.web.image", "1"), ("user: 1000\n", "services.web.user", "1000"),
    ("command: [sleep, 10]\n", "services.web.command", "10"),
])
def test_a_number_where_text_is_needed_says_to_quote_it(extra, path, text):
    product = load(compose=service(extra) if not extra.startswith("image") else f"services:\n  web:\n    {extra}")
    the_error(product, f"docker-compose.yml: {path}",
              f"{text} is a number here, where text is needed: quote it ('{text}')")


def test_explicit_tags_give_the_typed_value():
    manifest = "name: X\nplans:\n  basic:\nendpoints:\n  - {application: web, service: web, port: !!int 0x50}\n"
    assert load(manifest).endpoints[0].port == 80


# -- null where text is needed --------------------------------------------------------------------

@pytest.mark.parametrize("null", ["", " ~", " null", " Null"])
def test_a_variable_without_value_is_refused_naming_it(null):
    manifest = f"name: X\nvariables:\n  GREETING:{null}\nplans:\n  basic:\n"
    message = the_error(load(manifest), "product demo: product.yml: ")
    assert "variables.GREETING: no value" in message and 'quote it ("~")' in message


def test_a_plan_value_without_value_is_refused_naming_plan_and_variable():
    message = the_error(load("name: X\nplans:\n  basic:\n    MEMORY: ~\n"), "product.yml: plans.basic.MEMORY: no value")
    assert 'give a value, or quote it ("~")' in message


def test_a_plan_without_overrides_stays_valid():
    assert load("name: X\nplans:\n  basic:\n  large: ~\n").plans == {"basic": {}, "large": {}}


def test_quoted_tilde_is_the_text():
    product = load("name: X\nvariables: {T: '~'}\nplans:\n  basic:\n", service("environment: {A: '~', B: '${T}'}\n"))
    assert render(product)["services"]["web"]["environment"] == {"A": "~", "B": "~"}


@pytest.mark.parametrize("extra, key, name", [
    ("environment:\n  TOKEN:\n", "environment", "TOKEN"),
    ("environment:\n  TOKEN: ~\n", "environment", "TOKEN"),
    ("environment: [TOKEN]\n", "environment", "TOKEN"),
    ("labels:\n  org.example.team: ~\n", "labels", "org.example.team"),
    ("sysctls:\n  net.core.somaxconn:\n", "sysctls", "net.core.somaxconn"),
    ("extra_hosts:\n  db.local: null\n", "extra_hosts", "db.local"),
    ("logging:\n  driver: json-file\n  options:\n    max-size:\n", "logging.options", "max-size"),
])
def test_null_in_a_text_mapping_of_a_service_is_refused_naming_service_and_key(extra, key, name):
    product = load(compose=service(extra))
    message = the_error(product, f"product demo: service web: {key}: {name} has no value")
    assert 'quote it ("~") if the text is meant' in message
    assert len([e for e in product.errors if f"{name} has no value" in e]) == 1  # reported once


@pytest.mark.parametrize("section", ["networks", "volumes"])
def test_null_label_of_a_network_or_volume_is_refused(section):
    use = "networks: [back]\n" if section == "networks" else "volumes: ['back:/data']\n"
    compose = service(use) + f"{section}:\n  back:\n    labels:\n      team: ~\n"
    the_error(load(compose=compose), f"product demo: {section}.back: labels: team has no value")


def test_null_option_maps_of_volumes_networks_and_depends_on_are_fine():
    compose = service("networks:\n  back:\nvolumes: ['data:/data']\n") + "volumes:\n  data:\nnetworks:\n  back:\n"
    assert load(compose=compose).errors == []


# -- keys, duplicates, tags, aliases through a product -----------------------------------------------

def test_keys_are_text():
    product = load("name: X\nplans:\n  1: {}\n  yes: {}\n", service("environment:\n  yes: on\n"))
    assert set(product.plans) == {"1", "yes"}
    assert render(product, "yes")["services"]["web"]["environment"] == {"yes": "on"}


def test_duplicate_key_in_a_product_file_names_file_key_and_lines():
    product = load("name: X\nvariables:\n  A: 1\n  A: 2\nplans:\n  basic:\n")
    assert product.errors == ["product demo: product.yml: variables: key 'A' appears twice, at lines 3 and 4; "
                              "YAML would silently keep only the last one: remove one"]


def test_duplicate_service_key_in_the_compose_file():
    product = load(compose=service("image: other\n"))
    the_error(product, "product demo: docker-compose.yml: services.web: key 'image' appears twice, at lines 3 and 4")


@pytest.mark.parametrize("value", ["!!binary aGk=", "!!python/object/apply:os.system ['id']", "!env HOME",
                                   "!!timestamp 2024-01-01"])
def test_unsupported_tags_are_refused_naming_the_file_and_path(value):
    message = the_error(load(compose=service(f"environment:\n  X: {value}\n")), "product demo: docker-compose.yml: ")
    assert "services.web.environment.X: tag !" in message and "is not supported" in message


def test_alias_bomb_is_refused_naming_the_file():
    text = "x-0: &l0 [" + ", ".join(["lol"] * 10) + "]\n"
    for level in range(1, 7):
        text += f"x-{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]\n"
    message = the_error(load(compose=text + service("")), "product demo: docker-compose.yml: ")
    assert "more than 100,000 values" in message


def test_merge_keys_still_work_in_a_compose_file():
    compose = textwrap.dedent("""\
        x-base: &base
          image: busybox
          init: true
          environment: {MODE: yes}
        services:
          web:
            <<: *base
          app:
            <<: *base
            init: false
        """)
    rendered = render(load(compose=compose))["services"]
    assert rendered["web"] == {"image": "busybox", "init": True, "environment": {"MODE": "yes"}}
    assert rendered["app"]["init"] is False and rendered["app"]["environment"] == {"MODE": "yes"}


# -- app/compose/parse.py's text conversions ----------------------------------------------------------------

def test_environment_keeps_text_and_writes_canonical_scalars():
    assert _environment({"A": "yes", "B": 8080, "C": True, "D": 0.5, "E": ""}) == \
        {"A": "yes", "B": "8080", "C": "true", "D": "0.5", "E": ""}
    assert _environment(["A=yes", "B=", "C=x=y"]) == {"A": "yes", "B": "", "C": "x=y"}


@pytest.mark.parametrize("value", [{"A": None}, ["A"]])
def test_environment_without_value_names_the_variable(value):
    with pytest.raises(StackSpecError, match=r"environment: A has no value \(values are never taken from the host\)"):
        _environment(value)


def test_mapping_refuses_null_values_but_keeps_the_list_form():
    with pytest.raises(StackSpecError, match=r'labels: team has no value; give a value, or quote it \("~"\)'):
        _mapping({"team": None}, "labels")
    assert _mapping(["a=1", "b"], "labels") == {"a": "1", "b": ""}
    with pytest.raises(StackSpecError, match="labels: list entry 5 is not text"):
        _mapping([5], "labels")
