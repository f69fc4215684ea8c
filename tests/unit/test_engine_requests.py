"""Validation runs the deploy path: an accepted product builds every engine request (app/stacks/engine_requests.py).

Each input that used to pass validation and then crash or mis-deploy has an
example here: it is now refused at validation with a message naming product,
service and key, or it deploys (on the fake engine) as the compose
specification says. The property test over generated products is in
test_deploy_path_property.py.
"""
from __future__ import annotations

import textwrap

import docker
import pytest

from app.catalog.product import build_project, load_product, sample_builtins
from app.errors import ProductError, StackSpecError
from app.stacks import engine_requests
from app.stacks.deployer import Deployer
from app.stacks.docker_engine import (
    ENGINE_API_VERSION,
    container_payload,
    network_create_kwargs,
    network_payload,
    volume_payload,
)
from app.stacks.engine import ContainerRequest, NetworkRequest, VolumeRequest
from app.stacks.engine_requests import PLACEHOLDER_IMAGE_ID, build_requests, dry_run
from tests.fakes import FakeEngine

MANIFEST = "name: Demo\nplans:\n  basic:\n"
IMAGE = "live-test/busybox:latest"


def compose_with(extra: str, top: str = "") -> str:
    """A compose file whose service ``app`` has the ``extra`` keys (YAML), plus top-level ``top``."""
    return (f"services:\n  app:\n    image: {IMAGE}\n" + textwrap.indent(textwrap.dedent(extra), "    ")
            + textwrap.dedent(top))


def load(extra: str = "", top: str = "", manifest: str = MANIFEST):
    return load_product("demo", manifest, compose_with(extra, top))


def deploy(product, plan: str = "basic", engine: FakeEngine | None = None):
    """Deploy ``product`` on a fake engine as the worker would (project, then Deployer.deploy)."""
    engine = engine or FakeEngine(healthchecked_images=[IMAGE, "nginx:1.25", "postgis/postgis:17-3.5"])
    builtins = sample_builtins(product.slug, plan)
    project = build_project(product, plan, builtins, product.generate_secrets(), revision="r1", deployment="t")
    Deployer(engine, health_timeout=1, poll_interval=0).deploy(project)
    return engine, project


def app_payload(engine: FakeEngine) -> dict:
    return engine.container("t-sample_app").payload


# -- expose: the example of the issue, and every form of the compose specification ------------------------

@pytest.mark.parametrize("entry, ports", [
    ('"9090-9092"', ["9090/tcp", "9091/tcp", "9092/tcp"]),
    ('"9090-9092/tcp"', ["9090/tcp", "9091/tcp", "9092/tcp"]),
    ('"9090-9091/udp"', ["9090/udp", "9091/udp"]),
    ('"9090"', ["9090/tcp"]),
    ("9090", ["9090/tcp"]),
    ('"9090/udp"', ["9090/udp"]),
    ('"9090/sctp"', ["9090/sctp"]),
    ('"5000-5000"', ["5000/tcp"]),
])
def test_expose_forms_validate_and_deploy_each_port(entry, ports):
    product = load(f"expose: [{entry}]\n")
    assert product.errors == []
    engine, _ = deploy(product)
    assert sorted(app_payload(engine)["ExposedPorts"]) == sorted(ports)


def test_expose_range_with_other_ports_and_an_endpoint():
    manifest = MANIFEST + "endpoints:\n  - {application: web, service: app, port: 8080}\n"
    product = load('expose: ["9090-9092", 8080, "53/udp"]\n', manifest=manifest)
    assert product.errors == []
    engine, _ = deploy(product)
    payload = app_payload(engine)
    assert sorted(payload["ExposedPorts"]) == ["53/udp", "8080/tcp", "9090/tcp", "9091/tcp", "9092/tcp"]
    assert list(payload["HostConfig"]["PortBindings"]) == ["8080/tcp"]  # only endpoints are published


@pytest.mark.parametrize("entry, fragment", [
    ('"9092-9090"', "the range ends before it starts"),
    ('"0"', "port 0 is not between 1 and 65535"),
    ('"65536"', "port 65536 is not between 1 and 65535"),
    ('"9090-70000"', "port 70000 is not between 1 and 65535"),
    ('"9090/http"', "unknown protocol 'http'"),
    ('"9090-"', "is not a port"),
    ('"-9090"', "is not a port"),
    ('"90 90"', "is not a port"),
    ('"9090:9090"', "is not a port"),
    ("90.5", "is not a port"),
    ("true", "is not a port"),
])
def test_bad_expose_entries_are_refused_naming_product_service_and_key(entry, fragment):
    errors = load(f"expose: [{entry}]\n").errors
    assert any(e.startswith("product demo: service app: expose: ") and fragment in e for e in errors), errors


def test_expose_that_is_not_a_list_is_refused():
    product = load_product("demo", MANIFEST, compose_with("") + "    expose: 9090\n")
    assert any("service app: expose" in e for e in product.errors), product.errors


# -- every other input that crashed the deploy path or the validator -----------------------------------

# (service keys, fragment of the one expected message after "product demo: service app: ").
REFUSED = [
    # crashed validation (AttributeError, KeyError, OverflowError, TypeError) or the deploy
    ("healthcheck: {test: [CMD, x], retries: 3.5}\n", "healthcheck.retries: expected a whole number"),
    ("healthcheck: {test: [CMD, x], interval: 1ms, timeout: 500us}\n", "healthcheck.timeout: '500us' is under 1ms"),
    ("healthcheck: {test: [CMD, x], retries: -1}\n", "healthcheck.retries: must be at least 0"),
    ("healthcheck: {test: [CMD]}\n", "healthcheck.test: CMD needs a command after it"),
    ("healthcheck: {test: [CMD-SHELL]}\n", "healthcheck.test: CMD-SHELL needs a command after it"),
    ("ulimits: {nofile: {soft: 2048, hard: 1024}}\n",
     "ulimits.nofile: the soft limit 2048 is above the hard limit 1024"),
    ("ulimits: {nofile: {soft: -1, hard: 1024}}\n", "ulimits.nofile: the soft limit -1 is above the hard limit 1024"),
    ("ulimits: {as: 1024}\n", "ulimits: unknown limit 'as'"),
    ("ulimits: {nofile: -1}\n", "ulimits.nofile: unlimited open files is above what Linux allows (1048576)"),
    ("ulimits: {nofile: 2000000}\n", "ulimits.nofile: 2000000 open files is above what Linux allows"),
    ("ulimits: {nofile: 8}\n", "ulimits.nofile: 8 is below 16, too low for the container runtime"),
    ("ulimits: {data: 1048576}\n", "ulimits.data: 1048576 is below 268435456"),
    ("ulimits: {cpu: 0}\n", "ulimits.cpu: 0 is below 1"),
    ("cpus: '1e400'\n", "cpus: '1e400' is too large"),
    ("cpus: 0.001\n", "cpus: 0.001 is under the smallest limit the engine can apply (0.01)"),
    ("mem_limit: 999999999999999999999999t\n", "mem_limit: size '999999999999999999999999t' is too large"),
    ("mem_limit: 1m\n", "mem_limit: '1m' is under the engine's minimum of 6m"),
    ("mem_limit: 64m\nmem_reservation: 128m\n", "mem_reservation: 134217728 bytes is above the memory limit"),
    ("mem_reservation: 1m\n", "mem_reservation: '1m' is under the engine's minimum of 6m"),
    ("memswap_limit: 1g\n", "memswap_limit: needs mem_limit"),
    ("mem_limit: 1g\nmemswap_limit: 512m\n", "memswap_limit: 536870912 bytes is below mem_limit"),
    ("mem_limit: 1g\nmemswap_limit: -2\n", "memswap_limit: -2 is not a size"),
    ("shm_size: -1\n", "shm_size: must not be negative"),
    ("stop_grace_period: 99999999999h\n", "stop_grace_period: duration '99999999999h' is too long"),
    ("volumes: [{type: tmpfs}]\n", "volumes[0].target: target None must be an absolute path"),
    ("volumes: ['data:/']\n", "volumes[0]: cannot mount over the container's root '/'"),
    ("volumes: ['data:/a:b:ro']\n", "expected VOLUME:TARGET or VOLUME:TARGET:MODE"),
    ("volumes: ['data:/d:z']\n", "volumes[0]: unknown mode 'z'"),
    ("volumes: ['data:/d:ro,rw']\n", "volumes[0]: 'data:/d:ro,rw' is both ro and rw"),
    ("volumes: ['data:/d', 'other:/d/']\n", "volumes[1]: /d/ is already mounted by volumes[0]"),
    ("volumes: ['data:/tmp']\ntmpfs: [/tmp]\n", "tmpfs[0]: /tmp is already mounted by volumes[0]"),
    ("tmpfs: ['/x:size=1.5g']\n", "tmpfs[0]: invalid tmpfs size '1.5g'"),
    ("tmpfs: ['/x:size=']\n", "tmpfs[0]: invalid tmpfs size ''"),
    ("tmpfs: ['/x:mode=abc']\n", "tmpfs[0]: invalid tmpfs mode 'abc'"),
    ("tmpfs: ['/x:noexec,wat']\n", "tmpfs[0]: unknown tmpfs option 'wat'"),
    ("tmpfs: ['/x:foo=bar']\n", "tmpfs[0]: unknown tmpfs option 'foo'"),
    ("tmpfs: [relative]\n", "tmpfs[0]: 'relative' must be an absolute path"),
    ("tmpfs: ['/']\n", "tmpfs[0]: cannot mount over the container's root '/'"),
    ("logging: {driver: syslog}\n", "logging.driver: 'syslog' is not available"),
    ("logging: {driver: json-file, options: {max-sise: 10m}}\n",
     "logging.options.max-sise: not an option of the json-file"),
    ("logging: {driver: json-file, options: {max-size: lots}}\n",
     "logging.options.max-size: 'lots' is not a positive size"),
    ("logging: {driver: json-file, options: {max-size: '0'}}\n",
     "logging.options.max-size: '0' is not a positive size"),
    ("logging: {driver: json-file, options: {max-file: '0'}}\n",
     "logging.options.max-file: '0' is not a whole number of at least 1"),
    ("logging: {driver: json-file, options: {compress: maybe}}\n",
     "logging.options.compress: 'maybe' is not true or false"),
    ("logging: {driver: json-file, options: {mode: fast}}\n",
     "logging.options.mode: 'fast' is not blocking or non-blocking"),
    ("logging: {driver: local, options: {labels: a}}\n",
     "logging.options.labels: not an option of the local log driver"),
    ("logging: {driver: none, options: {max-size: 1m}}\n",
     "logging.options.max-size: not an option of the none log driver"),
    ("extra_hosts: ['a:notanip']\n", "extra_hosts: a: 'notanip' is not an IP address"),
    ("extra_hosts: [':1.2.3.4']\n", "extra_hosts: '' is not a host name"),
    ("extra_hosts: ['a b:1.2.3.4']\n", "extra_hosts: 'a b' is not a host name"),
    ("extra_hosts: [nohost]\n", "extra_hosts: 'nohost': expected host=address or host:address"),
    ("stop_signal: FOO\n", "stop_signal: unknown signal 'FOO'"),
    ("stop_signal: '0'\n", "stop_signal: signal number 0 is not between 1 and 64"),
    ("working_dir: app\n", "working_dir: 'app' must be an absolute path"),
    ("hostname: " + "h" * 65 + "\n", "is not a valid host name"),
    ("hostname: 'a b'\n", "hostname: 'a b' is not a valid host name"),
    ("user: 'a:b:c'\n", "user: 'a:b:c' is not a user"),
    ("cap_add: [CAP_FOO]\n", "cap_add: unknown capability 'CAP_FOO'"),
    ("cap_drop: [FOO]\n", "cap_drop: unknown capability 'FOO'"),
    ("sysctls: {'net core': '1'}\n", "sysctls: 'net core' is not a sysctl name"),
    ("labels: ['=x']\n", "labels: a label needs a name"),
    ("environment: ['=x']\n", "environment: '' is not a variable name"),
    ("environment: {'A=B': x}\n", "environment: 'A=B' is not a variable name"),
    ("restart: on-failure:99999999999999999999\n", "restart: must be at most"),
    # silently mis-deployed before
    ("deploy: {replicas: 3}\n", "deploy.replicas: 3: Live runs exactly one container per service"),
    ("deploy: {replicas: 0}\n", "deploy.replicas: 0: Live runs exactly one container per service"),
    ("deploy: {restart_policy: {condition: any, max_attempts: 3}}\n",
     "deploy.restart_policy.max_attempts: only applies with condition on-failure"),
    ("deploy: {resources: {reservations: {devices: [{capabilities: [gpu]}]}}}\n",
     "deploy.resources.reservations.devices: host devices are not available"),
    ("deploy: {mode: sometimes}\n", "deploy.mode: 'sometimes' is not replicated or global"),
    ("networks: {default: {ipv4_address: 172.20.0.5}}\n", "networks: default: ipv4_address: not supported by Live"),
    ("networks: {default: {aliases: ['a b']}}\n", "networks: default: aliases: 'a b' is not a valid host name"),
    ("image: Busybox:latest\n", "image: 'Busybox:latest' is not a valid image reference"),
]


@pytest.mark.parametrize("extra, fragment", REFUSED, ids=[r[1][:60] for r in REFUSED])
def test_input_the_deploy_path_cannot_handle_is_refused_by_name(extra, fragment):
    # A service with a second image line is a YAML duplicate; put the image test's own line instead.
    if extra.startswith("image:"):
        compose = "services:\n  app:\n    " + extra + "volumes:\n  data:\n  other:\n"
        product = load_product("demo", MANIFEST, compose)
    else:
        product = load(extra, top="volumes:\n  data:\n  other:\n")
    expected = f"product demo: service app: {fragment}"
    assert any(e.startswith("product demo: service app: ") and fragment in e for e in product.errors), \
        (expected, product.errors)


@pytest.mark.parametrize("top, fragment", [
    ("networks:\n  default:\n    ipam: {config: [{subnet: 10.5.0.0/16}]}\n",
     "product demo: networks.default: ipam: not supported by Live"),
    ("networks:\n  default:\n    enable_ipv6: true\n",
     "product demo: networks.default: enable_ipv6: not supported by Live"),
    ("networks:\n  default:\n    labels: {live.x: y}\n",
     "product demo: networks.default.labels: the live.* prefix is reserved"),
    ("volumes:\n  data:\n    labels: {live.x: y}\n",
     "product demo: volumes.data.labels: the live.* prefix is reserved"),
])
def test_top_level_networks_and_volumes_are_checked(top, fragment):
    product = load("", top=top)
    assert any(fragment in e for e in product.errors), product.errors


def test_service_healthy_on_a_disabled_healthcheck_is_refused():
    compose = textwrap.dedent(f"""\
        services:
          db: {{image: {IMAGE}, healthcheck: {{disable: true}}}}
          app: {{image: {IMAGE}, depends_on: {{db: {{condition: service_healthy}}}}}}
        """)
    product = load_product("demo", MANIFEST, compose)
    assert product.errors == ["product demo: service app: depends_on: db: condition service_healthy, but the "
                              "healthcheck of db is disabled"]


@pytest.mark.parametrize("services, message", [
    ("  init: {image: %s, healthcheck: {test: [CMD, 'true']}}\n"
     "  app: {image: %s, depends_on: {init: {condition: service_completed_successfully}}}\n",
     "product demo: service app: depends_on: init: condition service_completed_successfully, but init has a "
     "healthcheck: Live waits for every service with a healthcheck to be healthy, and a container that has "
     "exited is not"),
    ("  init: {image: %s}\n"
     "  app: {image: %s, depends_on: {init: {condition: service_completed_successfully}}}\n"
     "  web: {image: %s, depends_on: {init: {condition: service_healthy}}}\n",
     "product demo: service app: depends_on: init: condition service_completed_successfully, but another service "
     "waits for init to be healthy"),
])
def test_a_dependency_that_cannot_both_complete_and_be_waited_for_is_refused(services, message):
    compose = "services:\n" + services.replace("%s", IMAGE)
    assert load_product("demo", MANIFEST, compose).errors == [message]


def test_a_one_shot_dependency_deploys():
    compose = textwrap.dedent(f"""\
        services:
          init: {{image: {IMAGE}, command: [sh, -c, "exit 0"]}}
          app: {{image: {IMAGE}, depends_on: {{init: {{condition: service_completed_successfully}}}}}}
        """)
    product = load_product("demo", MANIFEST, compose)
    assert product.errors == []
    engine = FakeEngine([IMAGE])
    engine.exit_codes["init"] = 0
    deploy(product, engine=engine)
    assert engine.container("t-sample_app").state == "running"


def test_an_endpoint_path_the_proxy_would_read_as_a_pattern_is_refused():
    for path in ("/a`b", "/maps/*", "/{http.request.host}", "/a b", "/a?b"):
        manifest = MANIFEST + f"endpoints:\n  - {{application: web, service: app, port: 80, path: {path!r}}}\n"
        errors = load(manifest=manifest).errors
        assert len(errors) == 1 and "endpoints" in errors[0] and "path" in errors[0], (path, errors)


def test_two_endpoints_on_one_path_are_refused():
    manifest = MANIFEST + ("endpoints:\n  - {application: web, service: app, port: 80, path: /maps}\n"
                           "  - {application: api, service: app, port: 81, path: /maps/}\n")
    assert load(manifest=manifest).errors == [
        "product demo: product.yml: endpoint api has the path '/maps/' of endpoint web: one hostname routes each "
        "path to one service"]


def test_plan_specific_problems_get_the_plan_suffix():
    manifest = "name: Demo\nplans:\n  small: {PORTS: '9090-9092'}\n  broken: {PORTS: '9092-9090'}\n"
    product = load_product("demo", manifest, compose_with('expose: ["${PORTS}"]\n'))
    assert product.errors == ["product demo: service app: expose: '9092-9090': the range ends before it starts "
                              "(plan broken)"]


# -- what is accepted deploys as the compose specification says --------------------------------------------

def test_accepted_edge_values_reach_the_engine_as_meant():
    product = load(textwrap.dedent("""\
        stop_signal: sigrtmin+3
        cap_add: [chown, CAP_NET_BIND_SERVICE]
        ulimits: {core: -1, nofile: {soft: 1024, hard: 4096}}
        extra_hosts: {gw: host-gateway, v6: "::1", bracketed: "[fe80::1]"}
        tmpfs: ["/run:size=10%,mode=1777,uid=1000,noexec,nosuid"]
        healthcheck: {test: [NONE, ignored]}
        logging: {driver: local, options: {max-size: 10m, max-file: "3", compress: "false"}}
        deploy:
          replicas: 1
          mode: replicated
          placement: {constraints: [node.role==manager]}
          restart_policy: {condition: on-failure, max_attempts: 4, delay: 5s}
          resources: {limits: {cpus: "0.01", memory: 6m}, reservations: {cpus: "0.5"}}
        volumes: ["data:/data:ro,nocopy"]
        """), top="volumes:\n  data:\n    labels: {org.example.backup: daily}\n")
    assert product.errors == []
    engine, _ = deploy(product)
    payload = app_payload(engine)
    host = payload["HostConfig"]
    assert payload["StopSignal"] == "sigrtmin+3"
    assert host["CapAdd"] == ["chown", "CAP_NET_BIND_SERVICE"]
    assert host["Ulimits"] == [{"Name": "core", "Soft": -1, "Hard": -1}, {"Name": "nofile", "Soft": 1024, "Hard": 4096}]
    assert host["ExtraHosts"] == ["gw:host-gateway", "v6:::1", "bracketed:fe80::1"]
    assert host["Tmpfs"] == {"/run": "size=10%,mode=1777,uid=1000,noexec,nosuid"}
    assert payload["Healthcheck"]["Test"] == ["NONE"]  # what follows NONE is ignored by the engine: normalised
    assert host["LogConfig"] == {"Type": "local", "Config": {"max-size": "10m", "max-file": "3", "compress": "false"}}
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 4}
    assert (host["NanoCpus"], host["Memory"]) == (10_000_000, 6 * 1024 * 1024)
    assert host["Binds"] == ["t-sample_data:/data:ro"]
    # Labels of a top-level volume were dropped before; Live's own labels still win.
    assert engine.volumes["t-sample_data"].labels["org.example.backup"] == "daily"
    assert engine.volumes["t-sample_data"].labels["live.volume"] == "data"
    assert engine.container("t-sample_app").health is None  # disabled: the deployer does not wait for it


def test_a_sample_render_and_the_real_one_run_the_same_builder():
    # The runner's project (real secrets and built-ins) and validation's sample one give the same requests
    # up to names and values: both come from build_project + build_requests.
    product = load("environment:\n  WHO: ${LIVE_INSTANCE}\n")
    assert product.errors == []
    sample = build_project(product, "basic", sample_builtins("demo", "basic"), {}, revision="r")
    real_builtins = dict(sample_builtins("demo", "basic"), LIVE_ORDER_ID="42", LIVE_INSTANCE="acme",
                         LIVE_HOSTNAME="acme.example.org")
    real = build_project(product, "basic", real_builtins, {}, revision="r", deployment="prod")
    assert (real.order_id, real.instance, real.hostname, real.prefix) == (42, "acme", "acme.example.org", "prod-acme")
    request = build_requests(real, {"app": PLACEHOLDER_IMAGE_ID}).containers["app"]
    assert request.name == "prod-acme_app" and request.create["environment"] == ["WHO=acme"]
    assert dry_run(sample) == dry_run(real) == []


def test_build_project_checks_the_policy_on_the_real_values():
    manifest = "name: Demo\nvariables:\n  SRC: data\nplans:\n  basic:\n"
    product = load("volumes: ['${SRC}:/d']\n", top="volumes:\n  data:\n", manifest=manifest)
    assert product.errors == []
    product.defaults["SRC"] = "/var/run/docker.sock"  # as if the order's value differed from the sample
    with pytest.raises(ProductError, match="Docker socket"):
        build_project(product, "basic", sample_builtins("demo", "basic"), {}, revision="r")


def test_spec_errors_at_deploy_time_name_the_service():
    product = load("mem_limit: ${MEM}\n", manifest="name: Demo\nvariables:\n  MEM: 64m\nplans:\n  basic:\n")
    assert product.errors == []
    product.defaults["MEM"] = "lots"
    with pytest.raises(StackSpecError, match=r"^service app: mem_limit: invalid size 'lots'"):
        build_project(product, "basic", sample_builtins("demo", "basic"), {}, revision="r")


# -- the last line of defence: a crash of the builder is a refusal, never a pass -----------------------------

def test_a_crash_while_building_a_request_is_reported_with_product_and_service(monkeypatch, caplog):
    def broken(project, service, image_id):
        raise TypeError("unexpected type in the builder")

    monkeypatch.setattr(engine_requests, "container_request", broken)
    product = load()
    assert product.errors == ["product demo: service app: the container request cannot be built "
                              "(TypeError: unexpected type in the builder)"]
    assert "cannot build the container request of service app" in caplog.text


def test_a_crash_while_building_a_payload_is_reported_with_product_and_service(monkeypatch):
    def broken(request, api_version):
        raise KeyError("Binds")

    monkeypatch.setattr(engine_requests, "container_payload", broken)
    assert load().errors == ["product demo: service app: the engine request cannot be built (KeyError: 'Binds')"]


def test_a_crash_while_building_the_project_is_reported_with_the_product(monkeypatch):
    import app.catalog.product as product_module

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(product_module, "build_project", broken)
    assert load().errors == ["product demo: docker-compose.yml: the project cannot be built (RuntimeError: boom)"]


def test_a_crash_of_a_check_refuses_the_product_naming_the_service(monkeypatch):
    import app.compose.pipeline as pipeline_module

    def fragile_policy(slug, compose):
        for service in compose["services"].values():
            for cap in service.get("cap_add") or []:  # crashes on a number, as a check might
                pass
        return []

    monkeypatch.setattr(pipeline_module, "check_policy", fragile_policy)
    compose = compose_with("") + f"  db:\n    image: {IMAGE}\n    cap_add: 5\n"
    errors = load_product("demo", MANIFEST, compose).errors
    assert "product demo: service db: cannot be checked (TypeError: 'int' object is not iterable)" in errors
    assert not any("service app" in error for error in errors)


def test_docker_py_refusals_name_the_compose_key(monkeypatch):
    request = _request(host_config={"mem_limit": "lots"})
    with pytest.raises(StackSpecError) as info:
        container_payload(request)
    assert info.value.details["argument"] == "mem_limit"
    project = build_project(load(), "basic", sample_builtins("demo", "basic"), {}, revision="r")
    monkeypatch.setattr(engine_requests, "container_request", lambda *args: (request, "hash"))
    project_problems = dry_run(project)
    assert project_problems and project_problems[0].startswith("service app: mem_limit: the engine request is invalid")


def test_payloads_refuse_what_the_engine_cannot_decode():
    with pytest.raises(StackSpecError, match="does not fit in 64 bits"):
        container_payload(_request(host_config={"shm_size": 2**70}))
    with pytest.raises(StackSpecError, match="not a number JSON can carry"):
        container_payload(_request(create={"healthcheck": {"Test": ["CMD", "x"], "Interval": float("nan")}}))
    with pytest.raises(StackSpecError, match="labels must be a mapping of text"):
        network_payload(NetworkRequest("n", labels={"a": 1}))
    with pytest.raises(StackSpecError, match="not a valid volume name"):
        volume_payload(VolumeRequest("-bad", labels={}))


def test_network_and_volume_payloads_are_what_docker_py_sends():
    request = NetworkRequest("live-acme_backend", labels={"a": "b"}, internal=True)
    assert _docker_py_body("create_network", **network_create_kwargs(request)) == network_payload(request)
    volume = VolumeRequest("live-acme_data", labels={"a": "b"})
    assert _docker_py_body("create_volume", volume.name, driver="local", labels=volume.labels) == volume_payload(volume)


# -- nothing changes for orders already deployed -------------------------------------------------------------

GOLDEN_MANIFEST = """\
name: Golden
variables:
  DB_PASSWORD: {generate: secret}
plans:
  small: {MEM: 256m, CPUS: "0.5"}
  large: {MEM: 1g, CPUS: "2"}
endpoints:
  - {application: web, service: web, port: 8080, path: /app}
"""
GOLDEN_COMPOSE = """\
services:
  db:
    image: postgis/postgis:17-3.5
    environment:
      POSTGRES_PASSWORD: ${DB_PASSWORD}
      POSTGRES_DB: gis
    volumes:
      - db-data:/var/lib/postgresql/data
      - {type: tmpfs, target: /run/postgresql, tmpfs: {size: 16777216}}
    healthcheck:
      test: [CMD-SHELL, pg_isready -U postgres]
      interval: 10s
      timeout: 5s
      retries: 5
      start_period: 30s
    restart: unless-stopped
    stop_grace_period: 1m
    stop_signal: SIGINT
    shm_size: 256m
    mem_limit: ${MEM}
    networks:
      backend:
        aliases: [database]
    labels:
      org.example.role: database
    ulimits:
      nofile: {soft: 1024, hard: 4096}
      nproc: 512
    logging:
      driver: json-file
      options: {max-size: 10m, max-file: "3"}
  web:
    image: nginx:1.25
    command: ["nginx", "-g", "daemon off;"]
    entrypoint: /docker-entrypoint.sh
    user: "101:101"
    working_dir: /usr/share/nginx
    hostname: web
    domainname: example.org
    init: true
    read_only: true
    tty: true
    stdin_open: true
    depends_on:
      db: {condition: service_healthy}
    expose: ["9090", "9100/udp"]
    tmpfs: ["/tmp:size=64m,mode=1777", /var/cache/nginx]
    cap_drop: [ALL]
    cap_add: [NET_BIND_SERVICE, CHOWN]
    sysctls: [net.core.somaxconn=1024]
    extra_hosts: ["metadata.local:10.0.0.1", "api.local=10.0.0.2"]
    deploy:
      resources:
        limits: {memory: 512m, cpus: "${CPUS}"}
        reservations: {memory: 64m}
      restart_policy: {condition: on-failure}
    networks: [default, backend]
volumes:
  db-data:
networks:
  backend:
    internal: true
    labels: {tier: data}
"""
# Computed by Deployer.container_request at commit 6972955, before the builder was extracted: a different
# hash recreates every container of every order when Live is upgraded. The two web hashes changed once, on
# purpose, in issue 12: endpoint services lost their Traefik labels (Caddy routes them from the bridge), so a
# running order's endpoint containers are recreated at its next operation that converges its stack.
GOLDEN_HASHES = {
    "large/db": "ae163263dda8f5944492fe1f4e33bfeeb5fc28f2f0384cf35d38f9145c7172bf",
    "large/web": "15b7a8b84eb40ea7dfdf0994ac1cb35d6433495adbafea289ad3fb81dda6ef78",
    "small/db": "d8bf37d8081b8ca3d6ef39530c5edbf5e5faff44bd17879027c5a72e0e6e08f6",
    "small/web": "be9ecb271b9f45672558d74fad2ccd9cef9ea2ec60e6a553d5703ca801ee5255",
}


def golden_projects():
    product = load_product("golden", GOLDEN_MANIFEST, GOLDEN_COMPOSE)
    assert product.errors == []
    for plan in sorted(product.plans):
        builtins = dict(sample_builtins("golden", plan), LIVE_ORDER_ID="7", LIVE_INSTANCE="acme",
                        LIVE_HOSTNAME="acme.example.org")
        yield plan, build_project(product, plan, builtins, {"DB_PASSWORD": "p" * 32}, revision="r1",
                                  pinned_ports={"web:8080": 20007})


def test_config_hashes_are_those_of_the_previous_deployer():
    hashes = {}
    for plan, project in golden_projects():
        for name, config_hash in build_requests(project, {n: "sha256:" + "1" * 64 for n in project.stack.services}) \
                .config_hashes.items():
            hashes[f"{plan}/{name}"] = config_hash
    assert hashes == GOLDEN_HASHES


def test_container_payload_is_the_body_docker_py_create_container_sends():
    # DockerEngine.create_container used to call APIClient.create_container; it now posts container_payload.
    for _, project in golden_projects():
        image_ids = {name: PLACEHOLDER_IMAGE_ID for name in project.stack.services}
        for request in build_requests(project, image_ids).containers.values():
            client = docker.APIClient(base_url="unix:///nonexistent/docker.sock", version=ENGINE_API_VERSION)
            first, *_ = list(request.networks.items())
            networking = client.create_networking_config({first[0]: client.create_endpoint_config(aliases=first[1])})
            expected = _docker_py_body(
                "create_container", client=client, image=request.image, name=request.name, labels=request.labels,
                host_config=client.create_host_config(**request.host_config), networking_config=networking,
                stop_timeout=request.stop_grace_seconds, use_config_proxy=False, **request.create)
            assert container_payload(request, ENGINE_API_VERSION) == expected


# -- helpers -------------------------------------------------------------------------------------------------

def _request(create=None, host_config=None) -> ContainerRequest:
    return ContainerRequest(name="t-sample_app", image=IMAGE, labels={"live.service": "app"}, create=create or {},
                            host_config=host_config or {}, networks={"t-sample_default": ["app"]},
                            stop_grace_seconds=10)


def _docker_py_body(method: str, *args, client=None, **kwargs) -> dict:
    """The JSON body docker-py's APIClient.<method> would POST, captured without an engine."""
    client = client or docker.APIClient(base_url="unix:///nonexistent/docker.sock", version=ENGINE_API_VERSION)
    sent = {}

    def capture(url, data=None, **_):
        sent["body"] = data
        raise _Captured

    if method == "create_container":
        def from_config(config, name=None, platform=None):
            sent["body"] = config
            raise _Captured
        client.create_container_from_config = from_config
    else:
        client._post_json = capture
    with pytest.raises(_Captured):
        getattr(client, method)(*args, **kwargs)
    return sent["body"]


class _Captured(Exception):
    """Stops docker-py right before it would talk to the engine."""
