"""Swarm specs (app/stacks/swarm_spec.py) created as services on the real local swarm, and read back.

The local engine is a swarm manager; every service here is pinned to it (``node.id``), carries the
``live.deployment`` label of its test and is removed with its networks and volumes by the fixture. Services
of the shipped products run 0 replicas (nothing starts: their images are replaced by the test image anyway);
one service with every mapped argument runs 1 replica and its container is inspected.
"""
from __future__ import annotations

import dataclasses
import secrets
import textwrap

import docker.errors
import pytest

from app.catalog.product import build_project, load_product, load_product_folder, sample_builtins
from app.config import PROJECT_ROOT
from app.stacks.engine_requests import PLACEHOLDER_IMAGE_ID, build_requests, network_requests, volume_requests
from app.stacks.swarm_spec import service_spec, swarm_network_spec
from tests.conftest import TEST_IMAGE, unavailable
from tests.support.waiting import wait_for

SECOND = 1_000_000_000


@pytest.fixture
def swarm(docker_engine):
    """``(low-level client, id of the local manager node)``; fails under CI=true when the engine is no manager."""
    info = docker_engine.info().get("Swarm") or {}
    if info.get("LocalNodeState") != "active" or not info.get("ControlAvailable"):
        unavailable(f"the Docker engine is not an active swarm manager (Swarm.LocalNodeState "
                    f"{info.get('LocalNodeState')!r}, ControlAvailable {info.get('ControlAvailable')!r})")
    return docker_engine.api, info["NodeID"]


@pytest.fixture
def deployments(swarm):
    """A factory of fresh ``LIVE_DEPLOYMENT`` names; everything labelled with them is removed afterwards."""
    api, _ = swarm
    made: list[str] = []

    def new() -> str:
        made.append("s" + secrets.token_hex(4))
        return made[-1]

    yield new
    for deployment in made:
        selector = {"label": [f"live.deployment={deployment}"]}
        for service in api.services(filters=selector):
            api.remove_service(service["ID"])
        wait_for(lambda: not api.containers(all=True, filters=selector), timeout=120, interval=0.5,
                 what=f"the task containers of {deployment} gone")
        for network in api.networks(filters=selector):
            wait_for(lambda: _removed(api.remove_network, network["Id"]), timeout=60, interval=0.5,
                     what=f"network {network['Name']} removed")
        for volume in (api.volumes(filters=selector).get("Volumes") or []):
            api.remove_volume(volume["Name"], force=True)


def _removed(remove, name: str) -> bool:
    try:
        remove(name)
    except docker.errors.NotFound:
        return True
    except docker.errors.APIError:
        return False  # still in use by a task being removed
    return True


def create(api, spec: dict) -> dict:
    """Create the service of ``spec`` as the swarm engine will, and return its inspection."""
    created = api.create_service(task_template=spec["TaskTemplate"], name=spec["Name"], labels=spec["Labels"],
                                 mode=spec["Mode"], endpoint_spec=spec["EndpointSpec"])
    return api.inspect_service(created["ID"])


def assert_kept(sent, kept, where: str = "Spec") -> None:
    """Every value of ``sent`` is in ``kept``; a false value (False, 0, empty) may be left out (omitempty)."""
    if isinstance(sent, dict):
        assert isinstance(kept, dict), f"{where}: {kept!r}"
        for key, value in sent.items():
            if key not in kept and not value:
                continue
            assert key in kept, f"{where}.{key}: the engine dropped {value!r}"
            assert_kept(value, kept[key], f"{where}.{key}")
    elif isinstance(sent, list):
        assert isinstance(kept, list) and len(kept) == len(sent), f"{where}: sent {sent!r}, kept {kept!r}"
        for index, (one, other) in enumerate(zip(sent, kept)):
            assert_kept(one, other, f"{where}[{index}]")
    else:
        assert kept == sent, f"{where}: sent {sent!r}, kept {kept!r}"


def deploy_specs(api, node: str, project, *, replicas: int, encrypted: bool = False) -> list[tuple[dict, dict]]:
    """Create the project's overlay networks and its services (test image); ``[(spec, inspection)]``."""
    for request in network_requests(project):
        api.create_network(**swarm_network_spec(request, encrypted=encrypted))
    requests = build_requests(project, {name: PLACEHOLDER_IMAGE_ID for name in project.stack.services})
    created = []
    for request in requests.containers.values():
        spec = service_spec(dataclasses.replace(request, image=TEST_IMAGE), replicas=replicas,
                            constraints=[f"node.id=={node}"])
        created.append((spec, create(api, spec)))
    return created


def assert_service_kept(api, spec: dict, service: dict) -> None:
    kept = service["Spec"]
    networks = spec["TaskTemplate"].pop("Networks", [])
    try:
        assert_kept({k: v for k, v in spec.items()}, kept)
    finally:
        spec["TaskTemplate"]["Networks"] = networks
    by_name = [(api.inspect_network(n["Target"])["Name"], n.get("Aliases")) for n in kept["TaskTemplate"]["Networks"]]
    assert sorted(by_name) == sorted((n["Target"], n["Aliases"]) for n in networks)


def shipped_products():
    for folder in sorted((PROJECT_ROOT / "examples" / "config-repo" / "products").iterdir()):
        product = load_product_folder(folder)
        assert product.errors == []
        yield product


def test_the_engine_keeps_every_field_of_the_shipped_products_services(swarm, deployments):
    api, node = swarm
    checked = []
    for product in shipped_products():
        plan = sorted(product.plans)[-1]
        project = build_project(product, plan, sample_builtins(product.slug, plan), product.generate_secrets(),
                                revision="r1", deployment=deployments())
        for spec, service in deploy_specs(api, node, project, replicas=0, encrypted=product.slug == "sdi"):
            assert_service_kept(api, spec, service)
            container = service["Spec"]["TaskTemplate"]["ContainerSpec"]
            assert container["StopGracePeriod"] % SECOND == 0 and container["StopGracePeriod"] >= SECOND
            assert service["Spec"]["Mode"] == {"Replicated": {"Replicas": 0}}
            checked.append(spec["Name"])
    assert len(checked) >= 9
    # Units as the engine keeps them: the geonetwork service of the sdi product (30s grace, 30s interval).
    [geonetwork] = [s for s in api.services(filters={"name": checked[-1].rsplit("_", 1)[0] + "_geonetwork"})]
    container = geonetwork["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert container["StopGracePeriod"] == 30 * SECOND
    assert container["Healthcheck"]["Interval"] == 30 * SECOND
    assert container["Healthcheck"]["StartPeriod"] == 180 * SECOND


def test_overlay_networks_are_attachable_encrypted_and_internal(swarm, deployments):
    api, _ = swarm
    compose = f"services:\n  app:\n    image: {TEST_IMAGE}\n    networks: [backend, default]\n" \
              "networks:\n  backend:\n    internal: true\n"
    product = load_product("nets", "name: Nets\nplans:\n  basic:\n", compose)
    assert product.errors == []
    project = build_project(product, "basic", sample_builtins("nets", "basic"), {}, revision="r1",
                            deployment=deployments())
    backend, default = sorted(network_requests(project), key=lambda r: r.name)
    api.create_network(**swarm_network_spec(backend, encrypted=True))
    api.create_network(**swarm_network_spec(default, encrypted=False))
    kept = api.inspect_network(backend.name)
    assert (kept["Driver"], kept["Scope"], kept["Attachable"], kept["Internal"]) == ("overlay", "swarm", True, True)
    assert kept["Options"].get("encrypted") == "" and kept["Labels"] == backend.labels
    kept = api.inspect_network(default.name)
    assert (kept["Internal"], "encrypted" in (kept["Options"] or {})) == (False, False)


EDGE = textwrap.dedent(f"""\
    services:
      app:
        image: {TEST_IMAGE}
        init: true
        command: ["sh", "-c", "echo kept > /data/f && exec sleep 600"]
        environment: {{GREETING: hello}}
        working_dir: /srv
        hostname: box
        stop_signal: SIGINT
        stop_grace_period: 3s
        read_only: true
        tmpfs: ["/run/app:size=1m,mode=700,noexec,nosuid"]
        shm_size: 8m
        ulimits: {{nofile: {{soft: 1024, hard: 4096}}}}
        cap_drop: [MKNOD]
        cap_add: [NET_BIND_SERVICE]
        sysctls: {{net.core.somaxconn: "1024"}}
        extra_hosts: {{gw: host-gateway, v6: "::1", db.local: 10.0.0.5}}
        logging: {{driver: local, options: {{max-size: 1m}}}}
        healthcheck: {{test: [CMD, test, -f, /data/f], interval: 1s, retries: 30}}
        volumes: ["data:/data", "data:/backup:ro"]
        restart: on-failure:2
        mem_limit: 32m
        mem_reservation: 16m
        deploy: {{resources: {{limits: {{cpus: "0.5"}}}}}}
        networks: {{backend: {{aliases: [store]}}}}
    networks:
      backend:
        internal: true
    volumes:
      data:
    """)


def test_a_running_service_has_every_mapped_setting(swarm, deployments):
    api, node = swarm
    product = load_product("edge", "name: Edge\nplans:\n  basic:\n", EDGE)
    assert product.errors == []
    project = build_project(product, "basic", sample_builtins("edge", "basic"), {}, revision="r1",
                            deployment=deployments())
    for request in volume_requests(project):  # as the bridge does on the order's node, before the service
        api.create_volume(request.name, labels=request.labels)
    [(spec, service)] = deploy_specs(api, node, project, replicas=1)
    assert_service_kept(api, spec, service)

    def running_task():
        tasks = api.tasks(filters={"service": service["ID"], "desired-state": "running"})
        return next((t for t in tasks if t["Status"]["State"] == "running"), None)

    task = wait_for(running_task, timeout=120, interval=0.5, what="the task running (healthy)")
    container = api.inspect_container(task["Status"]["ContainerStatus"]["ContainerID"])
    config, host = container["Config"], container["HostConfig"]
    assert config["Labels"]["live.service"] == "app" and config["Hostname"] == "box"
    assert "GREETING=hello" in config["Env"] and config["WorkingDir"] == "/srv"
    assert config["StopSignal"] == "SIGINT"  # the grace period is the executor's (service spec), not StopTimeout
    assert config["Healthcheck"] == {"Test": ["CMD", "test", "-f", "/data/f"], "Interval": SECOND, "Retries": 30}
    assert host["Init"] is True and host["ReadonlyRootfs"] is True
    assert (host["Memory"], host["NanoCpus"]) == (32 * 1024**2, 500_000_000)
    # Engine 20.10's swarm executor applies limits only: the reservation places the task (the service keeps it,
    # checked above) but is no soft limit of the container, unlike mem_reservation on one engine.
    assert spec["TaskTemplate"]["Resources"]["Reservations"] == {"MemoryBytes": 16 * 1024**2}
    assert host["MemoryReservation"] == 0
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 4096}]
    assert (host["CapAdd"], host["CapDrop"]) == (["NET_BIND_SERVICE"], ["MKNOD"])
    assert host["Sysctls"] == {"net.core.somaxconn": "1024"}
    assert host["LogConfig"] == {"Type": "local", "Config": {"max-size": "1m"}}
    assert sorted(host["ExtraHosts"]) == sorted(["gw:host-gateway", "v6:::1", "db.local:10.0.0.5"])
    volume = f"{project.prefix}_data"
    mounts = {m["Destination"]: (m.get("Name"), m["RW"]) for m in container["Mounts"] if m["Type"] == "volume"}
    assert mounts == {"/data": (volume, True), "/backup": (volume, False)}

    def run(*command: str) -> str:
        exec_id = api.exec_create(container["Id"], list(command))["Id"]
        return api.exec_start(exec_id).decode()

    assert run("cat", "/backup/f") == "kept\n"
    hosts = run("cat", "/etc/hosts").split("\n")
    assert "::1\tv6" in hosts and "10.0.0.5\tdb.local" in hosts
    assert any(line.endswith("\tgw") and not line.startswith("host-gateway") for line in hosts)
    mounted = {line.split()[1]: line.split()[3].split(",") for line in run("cat", "/proc/mounts").splitlines()}
    assert "size=8192k" in mounted["/dev/shm"]
    assert {"size=1024k", "mode=700", "noexec", "nosuid"} <= set(mounted["/run/app"])
    network = api.inspect_network(f"{project.prefix}_backend")
    assert container["Id"] in network["Containers"]


def test_the_engine_drops_what_swarm_spec_refuses(swarm, deployments):
    """Why domainname, memswap_limit and shm_size are refused or mapped: a manager keeps no such field."""
    api, node = swarm
    deployment = deployments()
    container = {"Image": TEST_IMAGE, "Labels": {"live.deployment": deployment}, "Domainname": "example.org",
                 "MemorySwap": 64 * 1024**2, "ShmSize": 8 * 1024**2}
    service = create(api, {"Name": f"{deployment}-probe", "Labels": {"live.deployment": deployment},
                           "TaskTemplate": {"ContainerSpec": container,
                                            "Placement": {"Constraints": [f"node.id=={node}"]}},
                           "Mode": {"Replicated": {"Replicas": 0}}, "EndpointSpec": {"Mode": "dnsrr"}})
    kept = service["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert kept["Image"] == TEST_IMAGE
    assert not {"Domainname", "MemorySwap", "ShmSize"} & set(kept)
