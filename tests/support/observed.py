"""What runs for an order, read straight from Docker (never through the bridge), the same way in both modes.

On one engine a compose service is a container; in a swarm it is a swarm service whose task runs a container
on some node. Tests of the lifecycle in both modes (LIVE_ORCHESTRATOR=docker|swarm) ask this module what
runs, so one test body checks both. Node engines are reached through their ``live.engine`` node label, as the
bridge does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import docker

from tests.support.waiting import wait_for


@dataclass
class ObservedService:
    """One compose service of an order as it runs now.

    ``container`` is the id of the container that runs it (a new one after a recreate or a swarm update, the
    same one while nothing changed); ``running`` whether it runs; ``memory_limit`` in bytes (0: none);
    ``node`` the swarm node (None on one engine); ``exec(argv)`` runs a command in it and returns its exit code
    and output, ``run(argv)`` only the output.
    """

    name: str
    labels: dict[str, str]
    container: str | None
    running: bool
    memory_limit: int
    node: str | None
    exec: Callable[[list[str]], tuple[int, bytes]]

    def run(self, argv: list[str]) -> bytes:
        return self.exec(argv)[1]


class Observer:
    """Reads an order's services, networks and volumes from the engine (``orchestrator``: docker or swarm)."""

    def __init__(self, client: docker.DockerClient, deployment: str, orchestrator: str):
        self.client, self.deployment, self.orchestrator = client, deployment, orchestrator
        self._node_clients: dict[str, docker.DockerClient] = {}

    def _selector(self, order_id: int | None = None) -> dict:
        labels = [f"live.deployment={self.deployment}"]
        if order_id is not None:
            labels.append(f"live.order={order_id}")
        return {"label": labels}

    def node_client(self, node_id: str | None) -> docker.DockerClient:
        """The Docker client of a swarm node (its ``live.engine`` label; the manager's own node: ours)."""
        if node_id is None or node_id == (self.client.info().get("Swarm") or {}).get("NodeID"):
            return self.client
        if node_id not in self._node_clients:
            address = self.client.nodes.get(node_id).attrs["Spec"]["Labels"]["live.engine"]
            self._node_clients[node_id] = docker.DockerClient(base_url=address, timeout=60)
        return self._node_clients[node_id]

    def services(self, order_id: int) -> dict[str, ObservedService]:
        """``{compose service: what runs it}`` for order ``order_id``."""
        if self.orchestrator == "swarm":
            return {s.name: s for s in map(self._swarm_service, self.client.services.list(filters=self._selector(order_id)))}
        found = {}
        for container in self.client.containers.list(all=True, filters=self._selector(order_id)):
            if "live.service" not in container.labels:
                continue
            found[container.labels["live.service"]] = ObservedService(
                name=container.labels["live.service"], labels=container.labels, container=container.id,
                running=container.status == "running", memory_limit=container.attrs["HostConfig"].get("Memory") or 0,
                node=None, exec=lambda argv, c=container: tuple(c.exec_run(argv)))
        return found

    def _swarm_service(self, service) -> ObservedService:
        spec = service.attrs["Spec"]
        running = [t for t in service.tasks(filters={"desired-state": "running"})
                   if t["Status"]["State"] == "running"]
        task = running[0] if running else None
        container = task["Status"]["ContainerStatus"]["ContainerID"] if task else None
        node = task["NodeID"] if task else None

        def run(argv, node=node, container=container):
            if container is None:
                raise AssertionError(f"swarm service {spec['Name']} has no running task")
            return tuple(self.node_client(node).containers.get(container).exec_run(argv))

        limits = (spec["TaskTemplate"].get("Resources") or {}).get("Limits") or {}
        return ObservedService(name=spec["Labels"]["live.service"], labels=spec["Labels"], container=container,
                               running=task is not None, memory_limit=limits.get("MemoryBytes") or 0, node=node,
                               exec=run)

    def objects(self) -> dict[str, list[str]]:
        """The names of every object of the deployment: containers (task containers too, on every node),
        swarm services, networks and volumes (on every node)."""
        clients = [self.client]
        if self.orchestrator == "swarm":
            clients += [self.node_client(n.id) for n in self.client.nodes.list()
                        if "live.engine" in (n.attrs["Spec"].get("Labels") or {})]
        selector = self._selector()
        swarm = self.orchestrator == "swarm"
        return {
            "containers": sorted(c.name for client in clients for c in client.containers.list(all=True, filters=selector)),
            "services": sorted(s.name for s in self.client.services.list(filters=selector)) if swarm else [],
            "networks": sorted(n.name for n in self.client.networks.list(filters=selector)),
            "volumes": sorted(v.name for client in clients for v in client.volumes.list(filters=selector)),
        }

    def wait_until_nothing_left(self, timeout: float = 60) -> dict[str, list[str]]:
        """Wait until no object of the deployment is left (a swarm removes task containers soon after their
        service); returns what is left at the end (empty lists on success)."""
        empty = {"containers": [], "services": [], "networks": [], "volumes": []}
        try:
            wait_for(lambda: self.objects() == empty, timeout=timeout, interval=0.5, what="nothing left")
        except AssertionError:
            pass
        return self.objects()
