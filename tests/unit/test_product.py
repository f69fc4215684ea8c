"""Product definitions: product.yml + docker-compose.yml (app/catalog/product.py)."""
from __future__ import annotations

import re
import string
import textwrap
from pathlib import Path

import pytest

from app.catalog.product import (
    BUILTIN_VARIABLES,
    ProductDefinition,
    content_hash,
    load_product,
    load_product_folder,
    sample_builtins,
)
from app.errors import InvalidRequest, ProductError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_PRODUCTS = REPO / "examples" / "config-repo" / "products"

MANIFEST = textwrap.dedent(
    """\
    name: Demo
    description: A demo product
    variables:
      GREETING: hello
      WORKERS: 2
      DEBUG: false
      DB_PASSWORD: {generate: secret}
      API_KEY: {generate: hex, length: 16}
      ADMIN_PASSWORD: {generate: password, length: 24}
    plans:
      small: {MEMORY: 64m}
      large: {MEMORY: 1g, GREETING: hi}
    endpoints:
      - {application: web, service: web, port: 8080, path: /app}
    """
)

COMPOSE = textwrap.dedent(
    """\
    services:
      web:
        image: nginx:1.25
        mem_limit: ${MEMORY}
        environment:
          GREETING: ${GREETING}
          WORKERS: ${WORKERS}
          DB_PASSWORD: ${DB_PASSWORD}
          URL: ${LIVE_BASE_URL}
        volumes:
          - data:/data
        depends_on: [db]
      db:
        image: postgres:17
        environment:
          POSTGRES_PASSWORD: ${DB_PASSWORD}
    volumes:
      data:
    """
)

MINIMAL_MANIFEST = "name: Minimal\nplans:\n  basic:\n"
MINIMAL_COMPOSE = "services:\n  app:\n    image: busybox\n"


def load(manifest: str = MINIMAL_MANIFEST, compose: str = MINIMAL_COMPOSE, slug: str = "demo") -> ProductDefinition:
    return load_product(slug, manifest, compose)


def compose_with_service(extra: str) -> str:
    """The minimal compose document with extra lines added to service 'app'."""
    return MINIMAL_COMPOSE + textwrap.indent(textwrap.dedent(extra), "    ")


def assert_one_error(product: ProductDefinition, *fragments: str) -> str:
    assert len(product.errors) == 1, product.errors
    for fragment in fragments:
        assert fragment in product.errors[0], (fragment, product.errors[0])
    return product.errors[0]


# -- valid products ------------------------------------------------------------

def test_minimal_product_is_valid():
    product = load()
    assert product.errors == []
    assert product.valid
    product.require_valid()  # does not raise
    assert product.name == "Minimal"
    assert product.description == ""
    assert product.plans == {"basic": {}}  # a plan without variables is allowed (null)
    assert product.endpoints == []
    assert product.compose == {"services": {"app": {"image": "busybox"}}}


def test_full_product_is_parsed():
    product = load(MANIFEST, COMPOSE)
    assert product.errors == []
    assert product.name == "Demo"
    assert product.description == "A demo product"
    # Scalar defaults become text (YAML numbers and booleans as Compose would write them).
    assert product.defaults == {"GREETING": "hello", "WORKERS": "2", "DEBUG": "false"}
    assert {name: (g.kind, g.length) for name, g in product.generated.items()} == {
        "DB_PASSWORD": ("secret", 32),  # default length
        "API_KEY": ("hex", 16),
        "ADMIN_PASSWORD": ("password", 24),
    }
    assert product.plans == {"small": {"MEMORY": "64m"}, "large": {"MEMORY": "1g", "GREETING": "hi"}}
    [endpoint] = product.endpoints
    assert (endpoint.application, endpoint.service, endpoint.port, endpoint.path) == ("web", "web", 8080, "/app")


def test_endpoint_path_defaults_to_root():
    manifest = MINIMAL_MANIFEST + "endpoints:\n  - {application: app, service: app, port: 80}\n"
    product = load(manifest)
    assert product.errors == []
    assert product.endpoints[0].path == "/"


def test_top_level_extension_keys_and_version_are_accepted():
    compose = "version: '3.8'\nx-common: &common\n  image: busybox\nservices:\n  app: *common\n"
    assert load(compose=compose).errors == []


def test_render_substitutes_plan_defaults_secrets_and_builtins():
    product = load(MANIFEST, COMPOSE)
    secrets = product.generate_secrets()
    rendered = product.render("large", sample_builtins("demo", "large"), secrets)
    web = rendered["services"]["web"]
    assert web["mem_limit"] == "1g"
    assert web["environment"] == {
        "GREETING": "hi",  # the plan overrides the default
        "WORKERS": "2",
        "DB_PASSWORD": secrets["DB_PASSWORD"],
        "URL": "https://sample.example.org",
    }
    assert rendered["services"]["db"]["environment"]["POSTGRES_PASSWORD"] == secrets["DB_PASSWORD"]
    # The stored compose document is left alone.
    assert product.compose["services"]["web"]["mem_limit"] == "${MEMORY}"


# -- manifest errors -----------------------------------------------------------------

def test_missing_name():
    product = load("plans:\n  basic:\n")
    message = assert_one_error(product, "product demo: product.yml", "'name' is a required property")
    assert not product.valid
    with pytest.raises(ProductError) as info:
        product.require_valid()
    assert info.value.errors == [message]
    assert info.value.slug == "demo"


def test_missing_plans():
    assert_one_error(load("name: X\n"), "product demo: product.yml", "'plans' is a required property")


def test_empty_plans_mapping():
    # A product must be orderable in at least one plan.
    assert_one_error(load("name: X\nplans: {}\n"), "product demo: product.yml: plans:")


def test_unknown_manifest_key_is_an_error():
    product = load(MINIMAL_MANIFEST + "colour: blue\n")
    assert_one_error(product, "product.yml", "colour")


@pytest.mark.parametrize(
    "snippet, path",
    [
        ("variables:\n  1BAD: x\n", "variables"),
        ("variables:\n  PW: {generate: magic}\n", "variables.PW"),
        ("variables:\n  PW: {generate: secret, length: 4}\n", "variables.PW"),
        ("endpoints:\n  - {application: app, service: app, port: 70000}\n", "endpoints.0.port"),
        ("endpoints:\n  - {application: App, service: app, port: 80}\n", "endpoints.0.application"),
        ("endpoints:\n  - {application: app, service: app, port: 80, path: nope}\n", "endpoints.0.path"),
    ],
)
def test_manifest_schema_errors_name_the_path(snippet, path):
    product = load(MINIMAL_MANIFEST + snippet)
    assert product.errors, "expected a manifest error"
    assert all(e.startswith("product demo: product.yml: ") for e in product.errors)
    assert any(f"product.yml: {path}" in e for e in product.errors), product.errors


@pytest.mark.parametrize("manifest", ["", "   \n", "# only a comment\n"])
def test_empty_manifest(manifest):
    product = load(manifest)
    assert not product.valid
    assert any("product.yml" in e for e in product.errors)


@pytest.mark.parametrize("compose", ["", "\n\n"])
def test_empty_compose(compose):
    assert_one_error(load(compose=compose), "product demo: docker-compose.yml is empty or missing")


def test_non_mapping_documents():
    product = load("- a\n- b\n", "just text\n")
    assert len(product.errors) == 2
    assert any("product.yml: must be a mapping" in e for e in product.errors)
    assert any("docker-compose.yml: must be a mapping" in e for e in product.errors)


def test_bad_yaml_reports_file_line_and_column():
    compose = "services:\n  app:\n    image: busybox\n   bad: [unclosed\n"
    # Line 4 is indented by 3 spaces: its key starts at column 4 (1-based, as editors count).
    assert_one_error(load(compose=compose), "product demo: docker-compose.yml: invalid YAML at line 4, column 4")


def test_bad_yaml_in_manifest_reports_the_line_of_the_problem():
    manifest = "name: X\nplans:\n  basic: {A: 1\n"  # unclosed flow mapping, reported after line 3
    message = assert_one_error(load(manifest), "product demo: product.yml: invalid YAML at line")
    line = int(re.search(r"at line (\d+)", message).group(1))
    assert line >= 3


def test_tab_indentation_is_reported_with_its_line():
    compose = "services:\n  app:\n\timage: busybox\n"
    # The tab is the first character of line 3.
    assert_one_error(load(compose=compose), "docker-compose.yml: invalid YAML at line 3, column 1")


# -- slug ------------------------------------------------------------------------

@pytest.mark.parametrize("slug", ["Demo", "1demo", "-demo", "de_mo", "de mo", "", "a" * 64, "démo"])
def test_bad_slug_is_reported(slug):
    product = load(slug=slug)
    assert any("folder name must match" in e for e in product.errors), product.errors
    assert not product.valid


@pytest.mark.parametrize("slug", ["a", "demo", "geoserver-postgis", "a1-b2", "a" * 63])
def test_good_slug(slug):
    assert load(slug=slug).errors == []


# -- variables ---------------------------------------------------------------------

def test_undefined_variable_in_one_plan_names_the_plan_and_variable():
    manifest = "name: X\nplans:\n  small: {MEMORY: 64m}\n  large: {}\n"
    compose = compose_with_service("mem_limit: ${MEMORY}\n")
    message = assert_one_error(load(manifest, compose), "product demo: docker-compose.yml")
    assert "undefined variable MEMORY" in message
    assert "services.app.mem_limit" in message
    assert "plan large" in message
    assert "small" not in message


def test_undefined_variable_in_every_plan_is_reported_per_plan():
    manifest = "name: X\nplans:\n  a: {}\n  b: {}\n"
    compose = compose_with_service("environment:\n  X: ${NOPE}\n")
    errors = load(manifest, compose).errors
    assert len(errors) == 2
    assert any("plan a" in e and "NOPE" in e for e in errors)
    assert any("plan b" in e and "NOPE" in e for e in errors)


def test_variables_with_defaults_need_no_definition():
    compose = compose_with_service("environment:\n  X: ${NOPE:-fallback}\n  Y: ${ALSO-}\n")
    assert load(compose=compose).errors == []


@pytest.mark.parametrize("name", sorted(BUILTIN_VARIABLES))
def test_builtin_variables_are_available_to_every_plan(name):
    compose = compose_with_service(f"environment:\n  X: ${{{name}}}\n")
    assert load(compose=compose).errors == []


@pytest.mark.parametrize(
    "manifest",
    [
        "name: X\nvariables:\n  LIVE_HOSTNAME: mine\nplans:\n  basic:\n",
        "name: X\nvariables:\n  LIVE_ANYTHING: x\nplans:\n  basic:\n",
        "name: X\nvariables:\n  LIVE_SECRET: {generate: secret}\nplans:\n  basic:\n",
        "name: X\nplans:\n  basic: {LIVE_PLAN: gold}\n",
    ],
    ids=["builtin-default", "other-live-default", "generated", "plan"],
)
def test_live_variables_are_reserved(manifest):
    message = assert_one_error(load(manifest), "product demo: product.yml", "reserved")
    assert re.search(r"variable LIVE_[A-Z]+ is reserved", message)


def test_invalid_interpolation_syntax_is_reported():
    compose = compose_with_service("command: echo $ 5\n")
    message = assert_one_error(load(compose=compose), "invalid interpolation", "services.app.command")
    assert "plan basic" in message


# -- compose structure ------------------------------------------------------------------

def test_endpoint_naming_unknown_service():
    manifest = MINIMAL_MANIFEST + "endpoints:\n  - {application: maps, service: geoserver, port: 8080}\n"
    assert_one_error(load(manifest), "product demo: product.yml", "endpoint maps", "unknown service 'geoserver'")


def test_no_services():
    assert_one_error(load(compose="volumes: {}\n"), "at least one service is required")
    assert_one_error(load(compose="services: {}\n"), "at least one service is required")


def test_unsupported_top_level_key():
    compose = MINIMAL_COMPOSE + "secrets:\n  pw:\n    file: ./pw.txt\n"
    assert_one_error(load(compose=compose), "top-level key 'secrets' is not supported")


def test_forbidden_key_is_reported_once_by_the_policy_with_a_reason():
    errors = load(compose=compose_with_service("runtime: runc\n")).errors
    assert errors == ["product demo: service app: runtime: container runtimes are chosen by the operator"]
    assert not any("not supported" in e for e in errors)


@pytest.mark.parametrize("extra, key", [("pull_policy: always\n", "pull_policy"), ("scale: 2\n", "scale"),
                                        ("dns: [8.8.8.8]\n", "dns")])
def test_unsupported_service_key(extra, key):
    assert_one_error(load(compose=compose_with_service(extra)), "product demo", "service app", f"{key}: not supported by Live")


def assert_some_error(product: ProductDefinition, *fragments: str) -> str:
    matching = [e for e in product.errors if all(f in e for f in fragments)]
    assert matching, (fragments, product.errors)
    return matching[0]


def test_service_extension_keys_are_allowed():
    assert load(compose=compose_with_service("x-note: anything\n")).errors == []


def test_policy_violation_is_reported_through_load():
    compose = compose_with_service("volumes:\n  - /:/host\n")
    # The service parser also refuses the undeclared source; the policy's reason must be there.
    assert_some_error(load(compose=compose), "product demo", "service app", "volumes[0]", "host path '/'")


def test_policy_sees_the_rendered_value_of_variables():
    # A forbidden value cannot be hidden behind a variable.
    manifest = "name: X\nvariables:\n  SRC: /var/run/docker.sock\nplans:\n  basic:\n"
    compose = compose_with_service("volumes:\n  - ${SRC}:/var/run/docker.sock\n")
    assert_some_error(load(manifest, compose), "product demo", "service app", "volumes[0]", "Docker socket")


def test_policy_is_checked_for_every_plan():
    manifest = "name: X\nplans:\n  a: {SRC: data}\n  b: {SRC: /}\n"
    compose = compose_with_service("volumes:\n  - ${SRC}:/data\n") + "volumes:\n  data:\n"
    product = load(manifest, compose)
    assert any("host path '/'" in e for e in product.errors), product.errors


def test_service_without_image():
    compose = "services:\n  app:\n    command: [sleep, '1']\n"
    assert_one_error(load(compose=compose), "service app", "image: required")


def test_depends_on_unknown_service():
    assert_one_error(load(compose=compose_with_service("depends_on: [ghost]\n")),
                     "service app", "depends_on: unknown service 'ghost'")


def test_dependency_cycle():
    compose = textwrap.dedent(
        """\
        services:
          a: {image: x, depends_on: [b]}
          b: {image: x, depends_on: [c]}
          c: {image: x, depends_on: [a]}
        """
    )
    message = assert_one_error(load(compose=compose), "product demo: docker-compose.yml: depends_on: cycle")
    cycle = message.split("cycle ", 1)[1].split(" -> ")
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"a", "b", "c"}


def test_spec_errors_are_reported_with_the_service():
    # The service parser's conversions run at load time, not first at deploy time.
    compose = compose_with_service("mem_limit: lots\n")
    assert_one_error(load(compose=compose), "product demo: service app", "mem_limit")


def test_compose_schema_errors_are_reported():
    compose = compose_with_service("restart: [always]\n")
    product = load(compose=compose)
    assert any(e.startswith("product demo: docker-compose.yml: services.app.restart") for e in product.errors), product.errors


# -- generate_secrets ----------------------------------------------------------------

def test_generate_secrets_lengths_and_alphabets():
    product = load(MANIFEST, COMPOSE)
    values = product.generate_secrets()
    assert set(values) == {"DB_PASSWORD", "API_KEY", "ADMIN_PASSWORD"}
    alphanumeric = set(string.ascii_letters + string.digits)
    assert len(values["DB_PASSWORD"]) == 32 and set(values["DB_PASSWORD"]) <= alphanumeric
    assert len(values["ADMIN_PASSWORD"]) == 24 and set(values["ADMIN_PASSWORD"]) <= alphanumeric
    assert len(values["API_KEY"]) == 16 and set(values["API_KEY"]) <= set("0123456789abcdef")


@pytest.mark.parametrize("kind", ["secret", "password", "hex"])
@pytest.mark.parametrize("length", [8, 9, 31, 33, 128])
def test_generated_length_is_exact_for_odd_and_even_lengths(kind, length):
    manifest = f"name: X\nvariables:\n  V: {{generate: {kind}, length: {length}}}\nplans:\n  basic:\n"
    product = load(manifest)
    assert product.errors == []
    assert len(product.generate_secrets()["V"]) == length


def test_generated_values_differ_between_calls():
    product = load(MANIFEST, COMPOSE)
    assert product.generate_secrets()["DB_PASSWORD"] != product.generate_secrets()["DB_PASSWORD"]


def test_generate_secrets_keeps_existing_values():
    product = load(MANIFEST, COMPOSE)
    existing = {"DB_PASSWORD": "kept-for-life", "UNRELATED": "stays"}
    values = product.generate_secrets(existing)
    assert values["DB_PASSWORD"] == "kept-for-life"
    assert values["UNRELATED"] == "stays"
    assert len(values["API_KEY"]) == 16  # missing ones are filled in
    assert existing == {"DB_PASSWORD": "kept-for-life", "UNRELATED": "stays"}  # input not mutated


def test_generate_secrets_replaces_empty_values():
    values = load(MANIFEST, COMPOSE).generate_secrets({"DB_PASSWORD": ""})
    assert len(values["DB_PASSWORD"]) == 32


def test_product_without_generated_variables():
    assert load().generate_secrets() == {}
    assert load().generate_secrets({"A": "b"}) == {"A": "b"}


# -- variables_for --------------------------------------------------------------------

def precedence_product() -> ProductDefinition:
    manifest = textwrap.dedent(
        """\
        name: X
        variables:
          ONLY_DEFAULT: d
          DEFAULT_AND_PLAN: d
          GEN: {generate: secret}
          GEN_AND_PLAN: {generate: secret}
        plans:
          basic: {DEFAULT_AND_PLAN: p, GEN_AND_PLAN: p, ONLY_PLAN: p}
          other: {ONLY_PLAN: other}
        """
    )
    product = load(manifest)
    assert product.errors == []
    return product


def test_variables_for_precedence():
    product = precedence_product()
    secrets = {"GEN": "g", "GEN_AND_PLAN": "g", "NOT_GENERATED": "ignored"}
    builtins = sample_builtins("demo", "basic")
    values = product.variables_for("basic", builtins, secrets)
    assert values["ONLY_DEFAULT"] == "d"
    assert values["DEFAULT_AND_PLAN"] == "p"  # plan beats default
    assert values["GEN"] == "g"
    assert values["GEN_AND_PLAN"] == "p"  # plan beats generated
    assert values["ONLY_PLAN"] == "p"
    assert "NOT_GENERATED" not in values  # stored secrets of removed variables are not used
    for name, value in builtins.items():
        assert values[name] == value


def test_builtins_win_over_everything():
    product = precedence_product()
    values = product.variables_for("basic", {"ONLY_DEFAULT": "b", "DEFAULT_AND_PLAN": "b", "GEN": "b"}, {"GEN": "g"})
    assert values["ONLY_DEFAULT"] == values["DEFAULT_AND_PLAN"] == values["GEN"] == "b"


def test_variables_for_uses_only_the_chosen_plan():
    values = precedence_product().variables_for("other", {}, {})
    assert values["ONLY_PLAN"] == "other"
    assert values["DEFAULT_AND_PLAN"] == "d"
    assert "GEN" not in values  # no secrets given


def test_unknown_plan_raises_invalid_request():
    product = precedence_product()
    with pytest.raises(InvalidRequest) as info:
        product.variables_for("gold", {}, {})
    message = str(info.value)
    assert "'gold'" in message
    assert "basic" in message and "other" in message
    with pytest.raises(InvalidRequest):
        product.render("gold", {}, {})


# -- content hash -----------------------------------------------------------------------

def test_content_hash_is_stable_and_depends_on_both_files():
    base = load(MANIFEST, COMPOSE).content_hash
    assert base == load(MANIFEST, COMPOSE).content_hash
    assert base == content_hash(MANIFEST, COMPOSE)
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert load(MANIFEST + "# comment\n", COMPOSE).content_hash != base
    assert load(MANIFEST, COMPOSE + "# comment\n").content_hash != base


def test_content_hash_distinguishes_where_the_files_split():
    # Moving text from one file to the other must change the hash.
    assert content_hash("ab", "c") != content_hash("a", "bc")
    assert content_hash("", "abc") != content_hash("abc", "")


def test_content_hash_does_not_depend_on_slug():
    assert load(slug="one").content_hash == load(slug="two").content_hash


# -- folders ------------------------------------------------------------------------------

def test_load_product_folder_reports_missing_files(tmp_path):
    folder = tmp_path / "empty-product"
    folder.mkdir()
    product = load_product_folder(folder)
    assert product.slug == "empty-product"
    assert any("product.yml is missing" in e for e in product.errors)
    assert any("docker-compose.yml is missing" in e for e in product.errors)


def test_load_product_folder_reads_both_files(tmp_path):
    folder = tmp_path / "mini"
    folder.mkdir()
    (folder / "product.yml").write_text(MINIMAL_MANIFEST, encoding="utf-8")
    (folder / "docker-compose.yml").write_text(MINIMAL_COMPOSE, encoding="utf-8")
    product = load_product_folder(folder)
    assert product.errors == []
    assert product.content_hash == content_hash(MINIMAL_MANIFEST, MINIMAL_COMPOSE)


EXAMPLE_FOLDERS = sorted(p for p in EXAMPLE_PRODUCTS.iterdir() if p.is_dir()) if EXAMPLE_PRODUCTS.is_dir() else []


def test_example_products_exist():
    assert EXAMPLE_FOLDERS, f"no example products under {EXAMPLE_PRODUCTS}"


@pytest.mark.parametrize("folder", EXAMPLE_FOLDERS, ids=[p.name for p in EXAMPLE_FOLDERS])
def test_example_product_loads_without_errors(folder):
    product = load_product_folder(folder)
    assert product.errors == []
    assert product.plans
    # Every plan renders with fresh secrets and sample built-ins.
    secrets = product.generate_secrets()
    for plan in product.plans:
        rendered = product.render(plan, sample_builtins(product.slug, plan), secrets)
        assert set(rendered["services"]) == set(product.compose["services"])
