"""Two swarm nodes on one machine: the harness's worker (tests/support/swarm_node.py) and the manager.

Proves what the swarm orchestrator relies on: a service pinned with ``node.id==`` runs on that node,
a named volume created on the node's own engine is the one its task mounts (volumes are node-local),
and an attachable overlay network carries traffic between a plain container on the manager and a task
on the worker, by service name.

The service reached by name uses endpoint mode ``dnsrr`` (the name resolves to the task addresses):
a ``vip`` name resolves to a virtual IP that only IPVS answers, and kernels without IP_VS (this
machine's) never answer it (docs/SWARM-TEST-NODE.md).
"""
from __future__ import annotations

import secrets

import docker
import pytest
from docker.types import EndpointSpec, Mount

from tests.conftest import HELPER_IMAGE, TEST_IMAGE
from tests.support.waiting import wait_for

HTTP_GET = 'printf "GET /proof HTTP/1.0\\r\\n\\r\\n" | nc -w 3 {host} 8080'


@pytest.fixture
def objects(docker_engine, swarm_worker):
    """A name prefix for this test's objects; removes every service, container, network and volume
    carrying the label ``live.test=<prefix>`` on both engines afterwards."""
    prefix = "i14n" + secrets.token_hex(4)
    yield prefix
    selector = {"label": f"live.test={prefix}"}
    manager, worker = docker_engine, swarm_worker.client
    for service in manager.services.list(filters=selector):
        service.remove()
    for container in manager.containers.list(all=True, filters=selector):
        container.remove(force=True)
    # Task containers go away asynchronously after their service is removed; volumes and the overlay's
    # local copy are in use until then.
    wait_for(lambda: not worker.containers.list(all=True, filters=selector), timeout=60, interval=0.3,
             what=f"task containers of {prefix} gone from the worker")
    for client in (manager, worker):
        for volume in client.volumes.list(filters=selector):
            volume.remove(force=True)
    for network in manager.networks.list(filters=selector):
        network.remove()


def running_task(service, node_id: str) -> dict:
    """Waits until ``service`` has a running task and returns it; it must be on ``node_id``."""
    def running():
        service.reload()
        tasks = [t for t in service.tasks() if t["Status"]["State"] == "running"]
        failed = [t["Status"].get("Err") for t in service.tasks() if t["Status"]["State"] in ("failed", "rejected")]
        assert not failed, f"tasks of {service.name} failed: {failed}"
        return tasks[0] if tasks else None

    task = wait_for(running, timeout=90, interval=0.3, what=f"a running task of {service.name}")
    assert task["NodeID"] == node_id
    return task


def test_the_worker_is_a_ready_swarm_worker_with_its_engine_label(docker_engine, swarm_worker):
    node = docker_engine.nodes.get(swarm_worker.node_id)

    assert node.attrs["Status"]["State"] == "ready"
    assert node.attrs["Spec"]["Role"] == "worker"
    assert node.attrs["Spec"]["Labels"]["live.engine"] == swarm_worker.socket_url
    assert node.attrs["Description"]["Hostname"] == swarm_worker.hostname == f"live-{swarm_worker.name}"
    assert node.attrs["Status"]["Addr"] == swarm_worker.address
    info = swarm_worker.client.info()
    assert info["Swarm"]["NodeID"] == swarm_worker.node_id
    assert info["Swarm"]["ControlAvailable"] is False
    assert docker_engine.info()["Swarm"]["NodeID"] != swarm_worker.node_id
    for image in (TEST_IMAGE, HELPER_IMAGE):  # the node has no registry: the harness loaded them
        assert swarm_worker.client.images.get(image).id == docker_engine.images.get(image).id


def test_a_pinned_service_runs_on_the_worker_and_writes_into_the_workers_volume(docker_engine, swarm_worker,
                                                                                  objects):
    manager, worker = docker_engine, swarm_worker.client
    volume_name = f"{objects}_data"
    labels = {"live.test": objects, "live.kind": "data"}
    worker.volumes.create(volume_name, labels=labels)
    token = secrets.token_hex(8)

    service = manager.services.create(
        TEST_IMAGE, ["sh", "-c", f"echo {token} > /data/proof && exec sleep 600"], name=f"{objects}_app",
        labels={"live.test": objects}, container_labels={"live.test": objects}, init=True,
        constraints=[f"node.id=={swarm_worker.node_id}"],
        mounts=[Mount("/data", volume_name, type="volume")])
    task = running_task(service, swarm_worker.node_id)

    container_id = task["Status"]["ContainerStatus"]["ContainerID"]
    assert worker.containers.get(container_id).labels["live.test"] == objects
    with pytest.raises(docker.errors.NotFound):
        manager.containers.get(container_id)
    proof = wait_for(lambda: worker.containers.run(
        TEST_IMAGE, ["sh", "-c", "cat /v/proof 2>/dev/null || true"], volumes={volume_name: {"bind": "/v"}},
        labels={"live.test": objects}, remove=True).decode().strip(), timeout=30, what="the file in the volume")
    assert proof == token
    assert worker.volumes.get(volume_name).attrs["Labels"] == labels  # the volume created, not a new one
    with pytest.raises(docker.errors.NotFound):
        manager.volumes.get(volume_name)


def test_an_attachable_overlay_carries_a_manager_container_to_a_worker_service_by_name(docker_engine,
                                                                                        swarm_worker, objects):
    manager, worker = docker_engine, swarm_worker.client
    network = manager.networks.create(f"{objects}_net", driver="overlay", attachable=True, scope="swarm",
                                      labels={"live.test": objects})
    token = secrets.token_hex(8)
    service_name = f"{objects}_web"
    service = manager.services.create(
        TEST_IMAGE, ["sh", "-c", f"mkdir -p /www && echo {token} > /www/proof && exec httpd -f -p 8080 -h /www"],
        name=service_name, labels={"live.test": objects}, container_labels={"live.test": objects}, init=True,
        constraints=[f"node.id=={swarm_worker.node_id}"], networks=[network.name],
        endpoint_spec=EndpointSpec(mode="dnsrr"))
    task = running_task(service, swarm_worker.node_id)
    task_address = task["NetworksAttachments"][0]["Addresses"][0].split("/")[0]
    client = manager.containers.run(TEST_IMAGE, ["sleep", "600"], name=f"{objects}_client", init=True,
                                    detach=True, network=network.name, labels={"live.test": objects})

    def answer(host: str):
        def get():
            result = client.exec_run(["sh", "-c", HTTP_GET.format(host=host)])
            return token in result.output.decode(errors="replace")
        return get

    wait_for(answer(service_name), timeout=60, interval=0.5, what=f"{service_name} answering over the overlay")
    wait_for(answer(f"tasks.{service_name}"), timeout=30, interval=0.5, what=f"tasks.{service_name} answering")
    resolved = client.exec_run(["nslookup", service_name, "127.0.0.11"]).output.decode()
    assert task_address in resolved
    assert worker.networks.get(network.id).attrs["Driver"] == "overlay"  # the worker holds the same network
