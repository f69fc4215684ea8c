"""Swarm service specs of a project's requests (app/stacks/swarm_spec.py): each argument, its unit, the refusals."""
from __future__ import annotations

import inspect
import textwrap

import docker
import pytest

from app.catalog.product import build_project, load_product, load_product_folder, sample_builtins
from app.config import PROJECT_ROOT
from app.errors import StackSpecError
from app.stacks import swarm_spec
from app.stacks.engine import NetworkRequest
from app.stacks.engine_requests import COMPOSE_KEYS, PLACEHOLDER_IMAGE_ID, build_requests, dry_run
from app.stacks.swarm_spec import service_refusals, service_spec, swarm_network_spec, swarm_problems

MANIFEST = "name: Demo\nplans:\n  basic:\n"
IMAGE = "live-test/busybox:latest"
SECOND = 1_000_000_000


def project_of(extra: str, top: str = "", manifest: str = MANIFEST, service: str = "app"):
    compose = (f"services:\n  {service}:\n    image: {IMAGE}\n" + textwrap.indent(textwrap.dedent(extra), "    ")
               + textwrap.dedent(top))
    product = load_product("demo", manifest, compose)
    assert product.errors == []
    return build_project(product, "basic", sample_builtins("demo", "basic"), product.generate_secrets(),
                         revision="r1", deployment="t")


def request_of(extra: str, top: str = "", manifest: str = MANIFEST):
    project = project_of(extra, top, manifest)
    return build_requests(project, {name: PLACEHOLDER_IMAGE_ID for name in project.stack.services}).containers["app"]


def spec_of(extra: str, top: str = "", manifest: str = MANIFEST, replicas: int = 1) -> dict:
    return service_spec(request_of(extra, top, manifest), replicas=replicas, constraints=["node.id==abc"])


def container_of(extra: str, top: str = "") -> dict:
    return spec_of(extra, top)["TaskTemplate"]["ContainerSpec"]


# -- the service around the container ----------------------------------------------------------------------

def test_service_shape_name_labels_mode_placement_and_endpoint():
    request = request_of("labels: {org.example.role: web}\n")
    spec = service_spec(request, replicas=0, constraints=["node.id==n1", "node.labels.live.pool==true"])
    assert spec["Name"] == request.name == "t-sample_app"
    assert spec["Labels"] == spec["TaskTemplate"]["ContainerSpec"]["Labels"] == request.labels
    assert spec["Labels"]["org.example.role"] == "web" and spec["Labels"]["live.service"] == "app"
    assert spec["Mode"] == {"Replicated": {"Replicas": 0}}
    assert spec["EndpointSpec"] == {"Mode": "dnsrr"}
    assert spec["TaskTemplate"]["Placement"] == {"Constraints": ["node.id==n1", "node.labels.live.pool==true"]}
    assert spec["TaskTemplate"]["ContainerSpec"]["Image"] == IMAGE
    assert spec["Labels"] is not spec["TaskTemplate"]["ContainerSpec"]["Labels"]  # two mappings, not one shared


def test_networks_carry_the_service_name_and_its_aliases():
    spec = spec_of("networks: {backend: {aliases: [store]}, default: }\n",
                   top="networks:\n  backend:\n    internal: true\n")
    assert sorted(spec["TaskTemplate"]["Networks"], key=lambda n: n["Target"]) == [
        {"Target": "t-sample_backend", "Aliases": ["app", "store"]},
        {"Target": "t-sample_default", "Aliases": ["app"]},
    ]


def test_ports_and_endpoint_bindings_publish_nothing():
    manifest = MANIFEST + "endpoints:\n  - {application: web, service: app, port: 8080}\n"
    request = request_of('expose: ["9090"]\n', manifest=manifest)
    assert request.create["ports"] and request.host_config["port_bindings"]
    spec = service_spec(request, replicas=1, constraints=[])
    assert spec["EndpointSpec"] == {"Mode": "dnsrr"}
    assert "port" not in repr(spec["TaskTemplate"]).lower()


# -- each argument -------------------------------------------------------------------------------------------

def test_entrypoint_is_command_and_command_is_args():
    container = container_of('entrypoint: ["/bin/sh", "-c"]\ncommand: ["echo hi"]\n')
    assert container["Command"] == ["/bin/sh", "-c"]
    assert container["Args"] == ["echo hi"]
    container = container_of('command: "sleep 5"\n')
    assert container["Args"] == ["sleep", "5"] and "Command" not in container


def test_container_settings_map_to_their_swarm_fields():
    container = container_of("""\
        environment: {B: "2", A: "1"}
        user: "1000:1000"
        working_dir: /srv
        hostname: box
        stop_signal: SIGINT
        tty: true
        stdin_open: true
        init: true
        read_only: true
        cap_add: [NET_BIND_SERVICE]
        cap_drop: [MKNOD]
        sysctls: {net.core.somaxconn: "1024"}
        ulimits: {nofile: {soft: 1024, hard: 4096}, core: -1}
        """)
    assert container["Env"] == ["A=1", "B=2"]
    assert (container["User"], container["Dir"], container["Hostname"]) == ("1000:1000", "/srv", "box")
    assert container["StopSignal"] == "SIGINT"
    assert container["TTY"] is True and container["OpenStdin"] is True
    assert container["Init"] is True and container["ReadOnly"] is True
    assert container["CapabilityAdd"] == ["NET_BIND_SERVICE"] and container["CapabilityDrop"] == ["MKNOD"]
    assert container["Sysctls"] == {"net.core.somaxconn": "1024"}
    assert sorted(container["Ulimits"], key=lambda u: u["Name"]) == [
        {"Name": "core", "Soft": -1, "Hard": -1}, {"Name": "nofile", "Soft": 1024, "Hard": 4096}]


def test_durations_are_nanoseconds():
    container = container_of("""\
        stop_grace_period: 1m30s
        healthcheck: {test: ["CMD", "true"], interval: 2s, timeout: 500ms, start_period: 1m, retries: 4}
        """)
    assert container["StopGracePeriod"] == 90 * SECOND
    assert container["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 2 * SECOND,
                                        "Timeout": SECOND // 2, "StartPeriod": 60 * SECOND, "Retries": 4}
    assert container_of("")["StopGracePeriod"] == 10 * SECOND  # compose's default


@pytest.mark.parametrize("healthcheck", ["{disable: true}", '{test: ["NONE"]}'])
def test_a_disabled_healthcheck_is_none(healthcheck):
    assert container_of(f"healthcheck: {healthcheck}\n")["Healthcheck"] == {"Test": ["NONE"]}


def test_resources_are_bytes_and_nano_cpus():
    resources = spec_of("""\
        mem_limit: 512m
        deploy: {resources: {limits: {cpus: "0.5"}, reservations: {memory: 64m}}}
        """)["TaskTemplate"]["Resources"]
    assert resources == {"Limits": {"MemoryBytes": 512 * 1024**2, "NanoCPUs": 500_000_000},
                         "Reservations": {"MemoryBytes": 64 * 1024**2}}
    assert spec_of("")["TaskTemplate"]["Resources"] == {}


@pytest.mark.parametrize("restart, policy", [
    (None, {"Condition": "none"}),
    ('"no"', {"Condition": "none"}),
    ("always", {"Condition": "any"}),
    ("unless-stopped", {"Condition": "any"}),
    ("on-failure", {"Condition": "on-failure"}),
    ("on-failure:3", {"Condition": "on-failure", "MaxAttempts": 3}),
])
def test_restart_policies(restart, policy):
    assert spec_of(f"restart: {restart}\n" if restart else "")["TaskTemplate"]["RestartPolicy"] == policy


def test_deploy_restart_policy_maps_as_well():
    spec = spec_of("deploy: {restart_policy: {condition: on-failure, max_attempts: 2}}\n")
    assert spec["TaskTemplate"]["RestartPolicy"] == {"Condition": "on-failure", "MaxAttempts": 2}


def test_extra_hosts_are_ip_then_host_as_docker_cli_writes_them():
    container = container_of('extra_hosts: ["db.local:10.0.0.5", "v6=::1", "gw:host-gateway"]\n')
    assert container["Hosts"] == ["10.0.0.5 db.local", "::1 v6", "host-gateway gw"]


def test_logging_is_the_task_log_driver():
    spec = spec_of("logging: {driver: local, options: {max-size: 1m, max-file: '2'}}\n")
    assert spec["TaskTemplate"]["LogDriver"] == {"Name": "local", "Options": {"max-size": "1m", "max-file": "2"}}
    assert "LogDriver" not in spec_of("")["TaskTemplate"]


def test_named_volumes_are_volume_mounts_read_only_or_not():
    container = container_of('volumes: ["data:/data", "data:/backup:ro"]\n', top="volumes:\n  data:\n")
    assert container["Mounts"] == [
        {"Type": "volume", "Source": "t-sample_data", "Target": "/data", "ReadOnly": False},
        {"Type": "volume", "Source": "t-sample_data", "Target": "/backup", "ReadOnly": True},
    ]


def test_tmpfs_size_in_bytes_and_mode_in_octal():
    container = container_of('tmpfs: ["/run/a:size=64m,mode=1777,noexec,nosuid", "/run/b", "/run/c:size=4096"]\n')
    assert container["Mounts"] == [
        {"Type": "tmpfs", "Target": "/run/a", "TmpfsOptions": {"SizeBytes": 64 * 1024**2, "Mode": 0o1777}},
        {"Type": "tmpfs", "Target": "/run/b"},
        {"Type": "tmpfs", "Target": "/run/c", "TmpfsOptions": {"SizeBytes": 4096}},
    ]


def test_shm_size_is_a_tmpfs_at_dev_shm():
    container = container_of("shm_size: 256m\n")
    assert container["Mounts"] == [{"Type": "tmpfs", "Target": "/dev/shm",
                                    "TmpfsOptions": {"SizeBytes": 256 * 1024**2, "Mode": 0o1777}}]


def test_every_request_argument_has_a_swarm_mapping():
    # labels and networks are not create/host_config arguments: the service takes them directly.
    assert set(COMPOSE_KEYS) - {"labels", "networks"} <= set(swarm_spec._HANDLERS)


# -- refusals ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, key, words", [
    ("domainname: example.org\n", "domainname", "Docker Swarm cannot set a container's domain name"),
    ("mem_limit: 64m\nmemswap_limit: 128m\n", "memswap_limit", "Docker Swarm cannot limit swap"),
    ("entrypoint: []\n", "entrypoint", "Docker Swarm cannot clear the image's entrypoint"),
    ('tmpfs: ["/run/a:size=10%"]\n', "tmpfs", "Docker Swarm cannot mount a tmpfs at /run/a with 'size=10%'"),
    ('tmpfs: ["/run/a:uid=1000,exec"]\n', "tmpfs", "/run/a with 'uid=1000', /run/a with 'exec'"),
    ('tmpfs: ["/run/a:size=0"]\n', "tmpfs", "/run/a with 'size=0'"),
    ('shm_size: 64m\ntmpfs: ["/dev/shm:size=1m"]\n', "shm_size", "Docker Swarm cannot size /dev/shm"),
])
def test_what_swarm_cannot_express_is_refused_naming_the_compose_key(extra, key, words):
    project = project_of(extra)
    assert dry_run(project) == []  # one engine takes it
    problems = swarm_problems(project)
    assert len(problems) == 1
    assert problems[0].startswith(f"service app: {key}: Docker Swarm cannot")
    assert words in problems[0]
    assert dry_run(project, orchestrator="swarm") == problems


def test_service_spec_raises_with_argument_and_reason():
    request = request_of("domainname: example.org\nmemswap_limit: -1\n")
    with pytest.raises(StackSpecError) as caught:
        service_spec(request, replicas=1, constraints=[])
    assert caught.value.details["argument"] == "domainname"
    assert caught.value.details["reason"].startswith("Docker Swarm cannot")
    assert [error.details["argument"] for error in service_refusals(request)] == ["domainname", "memswap_limit"]


def test_every_refused_argument_of_every_service_is_reported():
    compose = textwrap.dedent(f"""\
        services:
          app:
            image: {IMAGE}
            domainname: a.org
            entrypoint: []
          other:
            image: {IMAGE}
            memswap_limit: -1
        """)
    product = load_product("demo", MANIFEST, compose)
    assert product.errors == []
    project = build_project(product, "basic", sample_builtins("demo", "basic"), {}, revision="r1")
    assert sorted(":".join(p.split(": ")[:2]) for p in swarm_problems(project)) == [
        "service app:domainname", "service app:entrypoint", "service other:memswap_limit"]


@pytest.mark.parametrize("name, words", [
    ("my.app", "letters, digits, '-' and '_' only"),
    ("app-", "ending with a letter or a digit"),
    ("a" * 16, "use a service name of at most 15 characters"),
])
def test_service_names_swarm_refuses(name, words):
    project = project_of("", service=name)
    assert dry_run(project) == []
    problems = swarm_problems(project)
    assert len(problems) == 1 and problems[0].startswith(f"service {name}: name: Docker Swarm cannot name a service")
    assert words in problems[0]


def test_the_longest_name_that_fits():
    assert swarm_problems(project_of("", service="a" * 15)) == []


def test_dry_run_knows_two_orchestrators():
    project = project_of("domainname: example.org\n")
    assert dry_run(project, orchestrator="docker") == []
    with pytest.raises(ValueError):
        dry_run(project, orchestrator="kubernetes")


# -- the shipped products --------------------------------------------------------------------------------

def shipped_projects():
    for folder in sorted((PROJECT_ROOT / "examples" / "config-repo" / "products").iterdir()):
        product = load_product_folder(folder)
        assert product.errors == []
        for plan in sorted(product.plans):
            yield f"{product.slug}/{plan}", build_project(product, plan, sample_builtins(product.slug, plan),
                                                          product.generate_secrets(), revision="r1")


def test_shipped_products_pass_in_swarm_mode_for_every_plan():
    checked = []
    for where, project in shipped_projects():
        assert swarm_problems(project) == [], where
        assert dry_run(project, orchestrator="swarm") == [], where
        requests = build_requests(project, {name: PLACEHOLDER_IMAGE_ID for name in project.stack.services})
        for request in requests.containers.values():
            spec = service_spec(request, replicas=1, constraints=["node.id==n1"])
            assert spec["TaskTemplate"]["ContainerSpec"]["StopGracePeriod"] == request.stop_grace_seconds * SECOND
        checked.append(where)
    assert len(checked) >= 4


# -- networks --------------------------------------------------------------------------------------------

def test_network_spec_is_an_attachable_swarm_overlay():
    request = NetworkRequest("t-sample_backend", {"live.network": "backend"}, internal=True)
    kwargs = swarm_network_spec(request, encrypted=False)
    assert kwargs == {"name": "t-sample_backend", "driver": "overlay", "scope": "swarm", "attachable": True,
                      "labels": {"live.network": "backend"}, "internal": True, "check_duplicate": True,
                      "options": None}
    assert swarm_network_spec(request, encrypted=True)["options"] == {"encrypted": ""}
    accepted = inspect.signature(docker.APIClient.create_network).parameters
    assert set(kwargs) <= set(accepted)


def test_the_catalog_validates_for_the_configured_orchestrator(tmp_path):
    """A key a swarm cannot express passes on one engine and is refused in swarm mode, naming file and key."""
    from app.catalog.catalog import Catalog
    from app.catalog.source import LocalFolderSource

    folder = tmp_path / "repo" / "products" / "demo"
    folder.mkdir(parents=True)
    (folder / "product.yml").write_text(MANIFEST)
    (folder / "docker-compose.yml").write_text(
        "services:\n  app:\n    image: live-test/busybox:latest\n    domainname: example.org\n")
    assert load_product_folder(folder).errors == []
    [error] = load_product_folder(folder, orchestrator="swarm").errors
    assert error.startswith("product demo: service app: domainname: Docker Swarm cannot")
    for orchestrator, valid in (("docker", True), ("swarm", False)):
        catalog = Catalog(LocalFolderSource(tmp_path / "repo"), orchestrator=orchestrator)
        [item] = catalog.source.read()
        assert item.load(catalog.orchestrator).valid is valid
