"""Values that validation accepts since the deploy path became the validator, deployed on the real engine."""
from __future__ import annotations

import secrets
import textwrap

import pytest

from app.catalog.product import build_project, load_product, sample_builtins
from app.stacks.deployer import Deployer
from app.stacks.docker_engine import DockerEngine
from tests.conftest import TEST_IMAGE

MANIFEST = "name: Edge\nplans:\n  basic:\n"
COMPOSE = textwrap.dedent(f"""\
    services:
      app:
        image: {TEST_IMAGE}
        command: ["sleep", "600"]
        init: true
        expose: ["9090-9092", "9100/udp", 8080]
        stop_signal: sigrtmin+3
        stop_grace_period: 1s
        ulimits: {{nofile: {{soft: 1024, hard: 4096}}, core: -1}}
        tmpfs: ["/run/app:size=10%,mode=1777,noexec,nosuid"]
        extra_hosts: {{gw: host-gateway, v6: "::1"}}
        logging: {{driver: local, options: {{max-size: 1m, max-file: "2"}}}}
        healthcheck: {{test: [CMD, "true"], interval: 1s, retries: 3}}
        volumes: ["data:/data:ro,nocopy"]
        deploy:
          replicas: 1
          restart_policy: {{condition: on-failure, max_attempts: 2, delay: 5s}}
          resources: {{limits: {{cpus: "0.01", memory: 6m}}}}
    volumes:
      data:
        labels: {{org.example.backup: daily}}
    """)


@pytest.fixture
def namespace(docker_engine):
    deployment = "t" + secrets.token_hex(4)
    yield deployment
    selector = {"label": f"live.deployment={deployment}"}
    for container in docker_engine.containers.list(all=True, filters=selector):
        container.remove(force=True)
    for volume in docker_engine.volumes.list(filters=selector):
        volume.remove(force=True)
    for network in docker_engine.networks.list(filters=selector):
        network.remove()


def test_edge_values_deploy_on_the_engine_as_validated(docker_engine, namespace):
    product = load_product("edge", MANIFEST, COMPOSE)
    assert product.errors == []
    project = build_project(product, "basic", sample_builtins("edge", "basic"), {}, revision="r1", deployment=namespace)
    result = Deployer(DockerEngine(), health_timeout=60).deploy(project)
    assert result.actions == {"app": "create"}

    container = docker_engine.containers.get(f"{namespace}-sample_app")
    assert container.status == "running" and container.attrs["State"]["Health"]["Status"] == "healthy"
    config, host = container.attrs["Config"], container.attrs["HostConfig"]
    assert sorted(config["ExposedPorts"]) == ["8080/tcp", "9090/tcp", "9091/tcp", "9092/tcp", "9100/udp"]
    assert config["StopSignal"] == "sigrtmin+3"
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 4096}, {"Name": "core", "Soft": -1, "Hard": -1}]
    assert (host["NanoCpus"], host["Memory"]) == (10_000_000, 6 * 1024 * 1024)
    assert host["LogConfig"] == {"Type": "local", "Config": {"max-size": "1m", "max-file": "2"}}
    assert docker_engine.volumes.get(f"{namespace}-sample_data").attrs["Labels"]["org.example.backup"] == "daily"
    assert Deployer(DockerEngine()).deploy(project).actions == {"app": "noop"}


def test_one_volume_mounted_at_two_paths_is_mounted_at_both(docker_engine, namespace):
    """Binds were a mapping by volume, so the last mount of a volume silently replaced the others (QA finding)."""
    compose = textwrap.dedent(f"""\
        services:
          app:
            image: {TEST_IMAGE}
            command: ["sh", "-c", "echo kept > /data/f && exec sleep 600"]
            init: true
            healthcheck: {{test: [CMD, test, -f, /data/f], interval: 1s, retries: 30}}
            volumes: ["data:/data", "data:/backup:ro", {{type: volume, source: data, target: /data2, read_only: true}}]
        volumes:
          data:
        """)
    product = load_product("twice", MANIFEST, compose)
    assert product.errors == []
    project = build_project(product, "basic", sample_builtins("twice", "basic"), {}, revision="r1", deployment=namespace)
    Deployer(DockerEngine(), health_timeout=60).deploy(project)
    [container] = docker_engine.containers.list(filters={"label": f"live.deployment={namespace}"})
    mounts = {m["Destination"]: (m["Name"], m["RW"]) for m in container.attrs["Mounts"]}
    volume = f"{namespace}-sample_data"
    assert mounts == {"/data": (volume, True), "/backup": (volume, False), "/data2": (volume, False)}
    assert container.exec_run(["cat", "/backup/f"]).output == b"kept\n"
