"""Property: every product is either refused at validation or deploys, over many generated compose files.

The products are generated (Hypothesis) from every supported service key
(``SERVICE_KEYS``, the parser's table) with valid and invalid values of every kind:
strings, numbers, booleans, lists, mappings, nulls, ranges, durations, sizes,
variables that differ between plans, plus top-level volumes and networks.
For each one, ``load_product`` either reports errors, or every plan deploys on
the fake engine (tests/fakes.py, which builds every request's JSON with the
production ``container_payload``) exactly as the worker would deploy it.

What depends on images rather than on the product is made to work on the
fake: every image can be pulled and has a healthcheck that passes, and a
service others wait for to complete exits 0.

Deterministic (``derandomize``), no example database, silent unless it fails.
"""
from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.catalog.product import build_project, load_product, sample_builtins
from app.compose.parse import SERVICE_KEYS
from app.stacks.deployer import Deployer
from app.stacks.engine_requests import dry_run
from tests.fakes import FakeEngine

IMAGES = ["live-test/busybox:latest", "nginx:1.25", "postgis/postgis:17-3.5",
          "registry.example.org:5000/geo/server:2.28@sha256:" + "a" * 64]
SERVICE_NAMES = ["app", "db", "web-1", "x.y", "-bad"]
VARIABLE = "${V}"  # a plan variable: its value differs between plans

SETTINGS = settings(max_examples=1000, derandomize=True, deadline=None, database=None, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])

# -- building blocks ---------------------------------------------------------------------------------------

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=10)
printable = st.text(st.characters(categories=("L", "N", "P", "S", "Zs"), exclude_characters="$"), max_size=10)
junk = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), text,
                 st.lists(text, max_size=3), st.dictionaries(text, text, max_size=2))


def mostly(valid, invalid, invalid_share: int = 5):
    """``valid`` four times out of five (``invalid_share`` = 5), else ``invalid`` or any junk."""
    choice = st.sampled_from([True] * (invalid_share - 1) + [False])  # shrinks towards a valid value
    return choice.flatmap(lambda is_valid: valid if is_valid else st.one_of(invalid, junk))


durations = mostly(st.sampled_from(["10s", "1m30s", "500ms", "0s", "1ms", "2h", VARIABLE]) | st.integers(0, 600),
                   st.sampled_from(["", "often", "-5s", "1d", "999us", "99999999999h", "1e400s"])
                   | st.integers(-5, 10**13) | st.floats())
sizes = mostly(st.sampled_from(["64m", "256m", "1g", "6m", "512M", "1.5g", VARIABLE]) | st.integers(0, 2**34),
               st.sampled_from(["5m", "lots", "-1g", "0", "9" * 30 + "g", "1x", "64 mb"])
               | st.integers(-2, 2**70) | st.floats())
booleans = mostly(st.booleans(), st.sampled_from(["true", "false", "yes", "maybe", "", 0, 1]))
ports = mostly(st.integers(1, 65535) | st.sampled_from(["9090", "9090/udp", "9090-9092", "9090-9092/tcp", "53/sctp",
                                                        VARIABLE]),
               st.integers(-1, 70000) | st.sampled_from(["9092-9090", "80/http", "0", "70000", "1-70000", "x", " 80 ",
                                                         "80/TCP", "80:80"]) | st.floats())
names_or_text = st.sampled_from(SERVICE_NAMES[:4]) | text  # hashable: dictionary keys


def mapping_or_list(keys, values, entries):
    """A compose ``list_or_dict``: a mapping of ``keys`` to ``values``, or a list of ``entries``."""
    return st.one_of(st.dictionaries(keys, values, max_size=3), st.lists(entries, max_size=3, unique=True))


SERVICE_VALUES = {
    "image": mostly(st.sampled_from(IMAGES), st.sampled_from(["Busybox", "nginx:", "a b", "", "ghcr.io//x"]), 10),
    "command": mostly(st.sampled_from(["sleep 600", 'sh -c "echo hi"', ""])
                      | st.lists(text | st.integers(), max_size=3),
                      st.sampled_from(["echo 'unterminated", "a\x00b"]) | st.lists(junk, max_size=2)),
    "entrypoint": mostly(st.sampled_from(["/entrypoint.sh", ["tini", "--"]]), st.lists(junk, max_size=2)),
    "environment": mostly(mapping_or_list(st.sampled_from(["A", "B_1", "PATH"]), text | st.integers() | st.booleans(),
                                          st.sampled_from(["A=1", "B=", "C=x=y"])),
                          mapping_or_list(st.sampled_from(["", "A=B", "x y"]), junk,
                                          st.sampled_from(["=x", "NOVALUE", "A=\x00"]))),
    "labels": mostly(mapping_or_list(st.sampled_from(["a", "org.example.x", "traefik.enable"]), text,
                                     st.sampled_from(["a=b", "flag"])),
                     mapping_or_list(st.sampled_from(["live.x", ""]), junk, st.sampled_from(["=x", "live.y=1"]))),
    "volumes": st.lists(mostly(
        st.sampled_from(["data:/data", "data:/data:ro", "cache:/cache:nocopy,ro",
                         {"type": "volume", "source": "data", "target": "/srv", "read_only": True},
                         {"type": "tmpfs", "target": "/scratch", "tmpfs": {"size": 1048576}}]),
        st.sampled_from(["data:/", "data:relative", "/anonymous", "ghost:/g", "data:/a:b:c", "data:/d:z", "/etc:/etc",
                         {"type": "tmpfs"}, {"type": "bind", "source": "/", "target": "/h"},
                         {"type": "volume", "target": "/t"}, "data:/data"])), max_size=3),
    "depends_on": mostly(
        st.lists(st.sampled_from(SERVICE_NAMES[:4]), max_size=2, unique=True)
        | st.dictionaries(st.sampled_from(SERVICE_NAMES[:4]),
                          st.fixed_dictionaries({"condition": st.sampled_from(
                              ["service_started", "service_healthy", "service_completed_successfully"])}),
                          max_size=2),
        st.dictionaries(names_or_text, junk | st.fixed_dictionaries({"condition": text}), max_size=2)),
    "healthcheck": mostly(
        st.fixed_dictionaries({}, optional={
            "test": st.sampled_from(["true", ["CMD", "true"], ["CMD-SHELL", "exit 0"], ["NONE"]]),
            "interval": durations, "timeout": durations, "start_period": durations,
            "retries": mostly(st.integers(0, 10), st.integers(-3, -1) | st.floats() | text),
            "disable": booleans}),
        st.fixed_dictionaries({"test": st.sampled_from([["CMD"], ["curl", "x"], [], 5, ["NONE", "x"]]) | junk})),
    "restart": mostly(st.sampled_from(["no", "always", "unless-stopped", "on-failure", "on-failure:3"]),
                      st.sampled_from(["always:3", "sometimes", "on-failure:x", "on-failure:-1", True])),
    "init": booleans,
    "stop_grace_period": durations,
    "stop_signal": mostly(st.sampled_from(["SIGTERM", "TERM", "sigint", "SIGRTMIN+3", "9"]),
                          st.sampled_from(["0", "65", "FOO", ""]) | st.integers()),
    "user": mostly(st.sampled_from(["1000", "1000:1000", "nginx", ""]) | st.integers(0, 65535),
                   st.sampled_from(["a:b:c", "a b", ":x"])),
    "working_dir": mostly(st.sampled_from(["/app", "/srv/data"]), st.sampled_from(["app", "", "/\x00"]) | text),
    "mem_limit": sizes,
    "mem_reservation": sizes,
    "memswap_limit": mostly(sizes | st.just(-1), st.integers(-5, -2)),
    "cpus": mostly(st.sampled_from(["0.5", "2", 1, 0.25, "0.01", VARIABLE]),
                   st.sampled_from(["0", "-1", "0.001", "half", "1e400", "inf", "nan"]) | st.floats()),
    "deploy": mostly(
        st.fixed_dictionaries({}, optional={
            "resources": st.fixed_dictionaries({}, optional={
                "limits": st.fixed_dictionaries({}, optional={"cpus": st.sampled_from(["0.5", "1"]), "memory": sizes}),
                "reservations": st.fixed_dictionaries({}, optional={"memory": sizes, "cpus": st.just("0.25")})}),
            "restart_policy": st.fixed_dictionaries({}, optional={
                "condition": st.sampled_from(["none", "on-failure", "any"]),
                "max_attempts": st.integers(0, 5), "delay": st.just("5s")}),
            "replicas": st.just(1), "mode": st.sampled_from(["replicated", "global"]),
            "placement": st.just({"constraints": ["node.role==manager"]})}),
        st.fixed_dictionaries({}, optional={
            "replicas": st.integers(-1, 5), "mode": text, "update_config": st.just({"parallelism": 2}),
            "resources": st.just({"reservations": {"devices": [{"capabilities": ["gpu"]}]}}),
            "restart_policy": st.fixed_dictionaries({"condition": text | st.just("any"),
                                                     "max_attempts": st.integers(-1, 3)})})),
    "networks": mostly(
        st.lists(st.sampled_from(["default", "backend"]), max_size=2, unique=True)
        | st.dictionaries(st.sampled_from(["default", "backend"]),
                          st.none() | st.fixed_dictionaries({"aliases": st.lists(st.sampled_from(["db", "api"]),
                                                                                 max_size=2, unique=True)}),
                          max_size=2),
        st.lists(st.sampled_from(["ghost", "default"]), max_size=2)
        | st.dictionaries(st.sampled_from(["default", "backend"]),
                          st.fixed_dictionaries({}, optional={"ipv4_address": st.just("172.20.0.5"),
                                                              "aliases": junk}), max_size=2)),
    "expose": mostly(st.lists(ports, max_size=3, unique_by=repr), st.lists(junk, max_size=2)),
    "hostname": mostly(st.sampled_from(["web", "db.internal", "h" * 64]), st.sampled_from(["a b", "h" * 65, "", "-x"])),
    "domainname": mostly(st.sampled_from(["example.org"]), st.sampled_from(["a b", "x" * 300])),
    "tmpfs": mostly(st.sampled_from(["/run", ["/tmp:size=64m,mode=1777"], ["/var/cache:noexec,nosuid"]]),
                    st.sampled_from(["/x:size=1.5g", "relative", "/", ["/y:foo=bar"], ["/z:wat"], ["/data"]])),
    "ulimits": mostly(
        st.dictionaries(st.sampled_from(["nofile", "nproc", "core", "memlock"]),
                        st.integers(-1, 65536) | st.fixed_dictionaries({"soft": st.integers(0, 1024),
                                                                         "hard": st.integers(1024, 65536)}),
                        max_size=2),
        st.dictionaries(st.sampled_from(["as", "foo", "nofile"]),
                        junk | st.fixed_dictionaries({"soft": st.integers(-3, 10**20)}), max_size=2)),
    "shm_size": sizes,
    "read_only": booleans,
    "cap_add": mostly(st.lists(st.sampled_from(["CHOWN", "chown", "CAP_NET_BIND_SERVICE", "KILL"]), max_size=2,
                               unique=True),
                      st.lists(st.sampled_from(["FOO", "SYS_ADMIN", "ALL", ""]), max_size=2)),
    "cap_drop": mostly(st.lists(st.sampled_from(["ALL", "NET_RAW", "mknod"]), max_size=2, unique=True),
                       st.lists(st.sampled_from(["FOO", ""]), max_size=2)),
    "sysctls": mostly(mapping_or_list(st.sampled_from(["net.core.somaxconn"]), st.sampled_from(["1024", 511]),
                                      st.sampled_from(["net.ipv4.tcp_syncookies=1"])),
                      mapping_or_list(st.sampled_from(["kernel.shmmax", "net x"]), junk,
                                      st.sampled_from(["net.core.somaxconn"]))),
    "extra_hosts": mostly(mapping_or_list(st.sampled_from(["gw", "db.local"]),
                                          st.sampled_from(["10.0.0.1", "::1", "host-gateway"]),
                                          st.sampled_from(["a:10.0.0.1", "b=::1", "c:host-gateway"])),
                          mapping_or_list(st.sampled_from(["x", ""]), junk,
                                          st.sampled_from(["d:notanip", ":1.2.3.4", "nohost", "a b:1.2.3.4"]))),
    "logging": mostly(
        st.fixed_dictionaries({}, optional={
            "driver": st.sampled_from(["json-file", "local"]),
            "options": st.fixed_dictionaries({}, optional={"max-size": st.sampled_from(["10m", "1g"]),
                                                           "max-file": st.sampled_from(["3", 5]),
                                                           "compress": st.sampled_from(["true", "false"])})}),
        st.fixed_dictionaries({}, optional={
            "driver": st.sampled_from(["syslog", "none", "", "gelf"]) | junk,
            "options": st.dictionaries(st.sampled_from(["max-size", "labels", "foo", "mode"]),
                                       st.sampled_from(["0", "lots", "fast", "-1"]) | junk, max_size=2)})),
    "tty": booleans,
    "stdin_open": booleans,
}
assert set(SERVICE_VALUES) == SERVICE_KEYS, "the strategy must cover every supported service key"


@st.composite
def services(draw):
    """A service with an image and up to six other keys (more would be refused almost always)."""
    keys = draw(st.lists(st.sampled_from(sorted(SERVICE_KEYS - {"image"})), max_size=6, unique=True))
    service = {"image": draw(SERVICE_VALUES["image"])}
    service.update({key: draw(SERVICE_VALUES[key]) for key in keys})
    return service


volume_definitions = mostly(st.none() | st.fixed_dictionaries({}, optional={"labels": st.just({"backup": "daily"}),
                                                                          "driver": st.just("local")}),
                            st.sampled_from([{"external": True}, {"driver": "nfs"}, {"labels": {"live.x": "1"}},
                                             {"name": "fixed"}]))
network_definitions = mostly(st.none() | st.fixed_dictionaries({}, optional={"internal": booleans,
                                                                           "labels": st.just({"tier": "data"})}),
                             st.sampled_from([{"ipam": {"config": [{"subnet": "10.5.0.0/16"}]}}, {"external": True},
                                              {"enable_ipv6": True}, {"driver": "macvlan"}]))
plan_values = st.sampled_from(["64m", "1g", "10s", "0.5", "9090-9092", "lots", "9092-9090", "", "1ms", "2"])


@st.composite
def products(draw) -> tuple[str, str]:
    """(product.yml, docker-compose.yml) texts."""
    names = st.sampled_from(SERVICE_NAMES[:4] * 9 + SERVICE_NAMES[4:])  # an invalid name one time in ten
    compose = {"services": draw(st.dictionaries(names, services(), min_size=1, max_size=3))}
    volumes = draw(mostly(st.fixed_dictionaries({"data": volume_definitions}, optional={"cache": volume_definitions}),
                          st.dictionaries(st.sampled_from(["data", "cache", "-x"]), volume_definitions, max_size=1)))
    networks = draw(st.dictionaries(st.sampled_from(["backend", "default"]), network_definitions, max_size=2))
    if volumes:
        compose["volumes"] = volumes
    if networks:
        compose["networks"] = networks
    plans = {"small": {"V": draw(plan_values)}}
    if draw(st.booleans()):
        plans["large"] = {"V": draw(plan_values)}
    manifest = {"name": "Generated", "plans": plans}
    first = next(iter(compose["services"]))
    if draw(st.booleans()):
        manifest["endpoints"] = [{"application": "web", "service": first, "port": draw(st.sampled_from([80, 8080]))}]
    return yaml.safe_dump(manifest, sort_keys=False), yaml.safe_dump(compose, sort_keys=False, allow_unicode=True)


def deploy_every_plan(manifest: str, compose: str) -> bool:
    """False if validation refuses the product; else deploy every plan on a fake engine (raises on failure)."""
    product = load_product("gen", manifest, compose)
    if product.errors:
        assert all(error.startswith("product gen: ") for error in product.errors), product.errors
        return False
    for plan in sorted(product.plans):
        project = build_project(product, plan, sample_builtins("gen", plan), product.generate_secrets(),
                                revision="r1", deployment="t")
        assert dry_run(project) == []
        engine = FakeEngine(pullable=lambda ref: True, pulled_healthcheck=True)  # any valid reference exists
        for service in project.stack.services.values():
            for dependency, condition in service.depends_on.items():
                if condition == "service_completed_successfully":
                    engine.exit_codes[dependency] = 0
        result = Deployer(engine, health_timeout=0.2, poll_interval=0.001).deploy(project)
        assert set(result.actions) == set(project.stack.services)
        assert {c.service for c in engine.containers.values()} == set(project.stack.services)
        assert {n.labels["live.network"] for n in engine.networks.values()} == set(project.stack.networks)
    return True


@SETTINGS
@given(products())
def test_every_generated_product_is_refused_at_validation_or_deploys(generated):
    deploy_every_plan(*generated)


# -- the strategy does produce products that validation accepts -------------------------------------------------

valid_services = st.fixed_dictionaries(
    {"image": st.sampled_from(IMAGES)},
    optional={key: values for key, values in {
        "command": st.sampled_from(["sleep 600", ["sh", "-c", "echo hi"]]),
        "environment": st.dictionaries(st.sampled_from(["A", "B_1"]), printable | st.integers(), max_size=2),
        "labels": st.dictionaries(st.sampled_from(["org.example.x"]), printable, max_size=1),
        "volumes": st.sampled_from([["data:/data"], ["cache:/cache:ro", {"type": "tmpfs", "target": "/scratch"}]]),
        "healthcheck": st.fixed_dictionaries({"test": st.sampled_from([["CMD", "true"], "exit 0"]),
                                              "interval": st.sampled_from(["10s", "1ms"]),
                                              "retries": st.integers(0, 5)}),
        "restart": st.sampled_from(["no", "unless-stopped", "on-failure:3"]),
        "init": st.booleans(), "read_only": st.booleans(), "tty": st.booleans(), "stdin_open": st.booleans(),
        "stop_grace_period": st.sampled_from(["2s", "1m30s", "0s"]),
        "stop_signal": st.sampled_from(["SIGINT", "QUIT", "15"]),
        "user": st.sampled_from(["1000:1000", "nginx"]),
        "working_dir": st.just("/srv"),
        "mem_limit": st.sampled_from(["256m", "1g"]),
        "mem_reservation": st.sampled_from(["6m", "64m"]),
        "cpus": st.sampled_from(["0.5", 2, "${V}"]),
        "deploy": st.just({"restart_policy": {"condition": "on-failure", "max_attempts": 3}}),
        "networks": st.sampled_from([["default"], {"default": {"aliases": ["api"]}}]),
        "expose": st.lists(st.sampled_from(["9090-9092", 8080, "53/udp", "7000/sctp"]), max_size=3, unique=True),
        "hostname": st.just("web"), "domainname": st.just("example.org"),
        "tmpfs": st.sampled_from(["/run", ["/tmp:size=64m,mode=1777"]]),
        "ulimits": st.just({"nofile": {"soft": 1024, "hard": 4096}, "core": -1}),
        "shm_size": st.sampled_from(["64m", 0]),
        "cap_add": st.just(["CHOWN"]), "cap_drop": st.just(["ALL"]),
        "sysctls": st.just(["net.core.somaxconn=1024"]),
        "extra_hosts": st.just({"gw": "host-gateway"}),
        "logging": st.just({"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}}),
    }.items()})


@st.composite
def valid_products(draw) -> tuple[str, str]:
    names = draw(st.lists(st.sampled_from(SERVICE_NAMES[:4]), min_size=1, max_size=3, unique=True))
    compose_services = {}
    for index, name in enumerate(names):
        service = draw(valid_services)
        earlier = names[:index]
        if earlier and draw(st.booleans()):  # only earlier services: no cycles
            service["depends_on"] = {dep: {"condition": draw(st.sampled_from(["service_started", "service_healthy"]))}
                                     for dep in draw(st.lists(st.sampled_from(earlier), min_size=1, unique=True))}
        compose_services[name] = service
    compose = {"services": compose_services, "volumes": {"data": None, "cache": {"labels": {"backup": "daily"}}}}
    manifest = {"name": "Valid", "plans": {"small": {"V": "0.5"}, "large": {"V": "2"}},
                "endpoints": [{"application": "web", "service": names[0], "port": 8080}]}
    return yaml.safe_dump(manifest, sort_keys=False), yaml.safe_dump(compose, sort_keys=False, allow_unicode=True)


@settings(SETTINGS, max_examples=200)
@given(valid_products())
def test_products_of_valid_values_are_accepted_and_deploy(generated):
    assert deploy_every_plan(*generated), load_product("gen", *generated).errors
