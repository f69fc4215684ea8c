"""Deploys, stops and removes one order's stack on the container engine.

The engine's labels are the only state: every run lists what exists for the
order, computes a convergence plan and applies it, so every method is
idempotent and safe to re-run after a crash at any point.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from app.errors import HealthCheckFailed, UpstreamFailed
from app.stacks.engine_requests import build_requests, network_requests, volume_requests
from app.stacks.plan import Action, ConvergencePlan, plan_convergence
from app.stacks.runtime import ContainerRequest, DockerRuntime
from app.stacks.spec import topological_order
from app.stacks.target import DeploymentTarget  # defined in target.py; still importable from here

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class DeployResult:
    actions: dict[str, str]
    published_ports: dict[str, int]
    orphans_removed: list[str]


@dataclass
class ArchivedVolume:
    volume: str
    path: str
    size: int


class Deployer:
    def __init__(self, runtime: DockerRuntime, health_timeout: float = 300.0, poll_interval: float = 0.25):
        self.runtime = runtime
        self.health_timeout = health_timeout
        self.poll_interval = poll_interval

    # -- deploy -------------------------------------------------------------
    def plan(self, target: DeploymentTarget) -> tuple[ConvergencePlan, dict[str, ContainerRequest], list]:
        """What :meth:`deploy` would do, without changing anything (plus the requests and observed containers)."""
        image_ids = {name: self.runtime.image_id(svc.image) for name, svc in target.stack.services.items()}
        requests = build_requests(target, image_ids)
        observed = self.runtime.list_containers(target.selector)
        return plan_convergence(requests.config_hashes, observed), requests.containers, observed

    def deploy(self, target: DeploymentTarget, progress: Progress = lambda _: None) -> DeployResult:
        self._ensure_networks(target, progress)
        self._ensure_volumes(target, progress)
        plan, requests, containers = self.plan(target)
        observed = {c.service: c for c in containers if c not in plan.orphans}
        for orphan in plan.orphans:
            progress(f"remove orphan container {orphan.name}")
            self.runtime.stop_container(orphan.id, timeout=10)
            self.runtime.remove_container(orphan.id)

        container_ids: dict[str, str] = {}
        ids_lock = threading.Lock()

        def converge(name: str) -> None:
            service = target.stack.services[name]
            for dependency, condition in service.depends_on.items():
                self._wait_condition(name, dependency, condition, container_ids[dependency])
            action = plan.actions[name]
            current = observed.get(name)
            if action is Action.RECREATE and current is not None:
                progress(f"recreate {name}")
                self.runtime.stop_container(current.id, timeout=service.stop_grace_seconds)
                self.runtime.remove_container(current.id)
            if action in (Action.CREATE, Action.RECREATE):
                if action is Action.CREATE:
                    progress(f"create {name}")
                new_id = self.runtime.create_container(requests[name])
                self.runtime.start_container(new_id)
            elif action is Action.START:
                progress(f"start {name}")
                new_id = current.id
                self.runtime.start_container(new_id)
            elif action is Action.UNPAUSE:
                progress(f"unpause {name}")
                new_id = current.id
                self.runtime.unpause_container(new_id)
            else:
                new_id = current.id
            with ids_lock:
                container_ids[name] = new_id

        run_in_dependency_order({n: list(s.depends_on) for n, s in target.stack.services.items()}, converge)
        self._wait_all_healthy(target, container_ids, progress)

        containers = self.runtime.list_containers(target.selector)
        ports = {}
        for container in containers:
            for endpoint in target.endpoints:
                if container.service == endpoint.service and f"{endpoint.port}/tcp" in container.host_ports:
                    ports[f"{endpoint.service}:{endpoint.port}"] = container.host_ports[f"{endpoint.port}/tcp"]
        return DeployResult(
            actions={name: action.value for name, action in plan.actions.items()},
            published_ports=ports,
            orphans_removed=[o.name for o in plan.orphans],
        )

    def _ensure_networks(self, target: DeploymentTarget, progress: Progress) -> None:
        existing = {n.name for n in self.runtime.list_networks(target.selector)}
        for request in network_requests(target):
            if request.name not in existing:
                progress(f"create network {request.name}")
                self.runtime.create_network(request)

    def _ensure_volumes(self, target: DeploymentTarget, progress: Progress) -> None:
        existing = {v.name for v in self.runtime.list_volumes(target.selector)}
        for request in volume_requests(target):
            if request.name not in existing and not self.runtime.volume_exists(request.name):
                progress(f"create volume {request.name}")
                self.runtime.create_volume(request)

    def _wait_condition(self, service: str, dependency: str, condition: str, container_id: str) -> None:
        if condition == "service_started":
            return
        deadline = time.monotonic() + self.health_timeout
        while True:
            state = self.runtime.inspect_container(container_id)
            if condition == "service_healthy":
                if state.health == "healthy":
                    return
                if state.health is None:
                    raise HealthCheckFailed(f"{service} waits for {dependency} to be healthy, but {dependency} has no healthcheck")
                if state.health == "unhealthy":
                    raise HealthCheckFailed(f"{dependency} is unhealthy, so {service} was not started")
            elif condition == "service_completed_successfully" and state.state == "exited":
                if state.exit_code == 0:
                    return
                raise HealthCheckFailed(f"{dependency} exited with code {state.exit_code}, so {service} was not started")
            if state.state in ("exited", "dead") and condition == "service_healthy":
                raise HealthCheckFailed(f"{dependency} stopped (exit code {state.exit_code}) before it was healthy")
            if time.monotonic() > deadline:
                raise HealthCheckFailed(f"{dependency} did not become {condition.removeprefix('service_')} within {self.health_timeout:.0f}s")
            time.sleep(self.poll_interval)

    def _wait_all_healthy(self, target: DeploymentTarget, container_ids: dict[str, str], progress: Progress) -> None:
        """Every service with a healthcheck must be healthy before the stack counts as up."""
        waiting = [name for name, svc in target.stack.services.items()
                   if svc.healthcheck and svc.healthcheck.get("Test") != ["NONE"]]
        if waiting:
            progress("wait for health: " + ", ".join(sorted(waiting)))
        for name in sorted(waiting):
            self._wait_condition("the stack", name, "service_healthy", container_ids[name])

    # -- stop / remove ------------------------------------------------------
    def stop(self, target: DeploymentTarget, progress: Progress = lambda _: None) -> list[str]:
        """Stop every container of the order, dependents first. Volumes are untouched."""
        containers = {}
        for container in self.runtime.list_containers(target.selector):
            if container.service is None:
                # Not a service: an archive helper left by an interrupted terminate.
                self.runtime.remove_container(container.id)
            else:
                containers[container.service] = container
        stopped: list[str] = []

        def stop_one(name: str) -> None:
            container = containers.get(name)
            if container is not None and container.state not in ("exited", "created", "dead"):
                progress(f"stop {name}")
                grace = target.stack.services[name].stop_grace_seconds if name in target.stack.services else 10
                self.runtime.stop_container(container.id, timeout=grace)
                stopped.append(name)

        graph = {n: list(s.depends_on) for n, s in target.stack.services.items()}
        graph.update({name: [] for name in containers if name not in graph})
        run_in_dependency_order(graph, stop_one, reverse=True)
        return sorted(stopped)

    def archive_and_remove(self, target: DeploymentTarget, backup_dir: Path, stamp: str,
                           progress: Progress = lambda _: None) -> list[ArchivedVolume]:
        """Stop, archive every named volume, then remove containers, networks and volumes.

        Nothing is removed unless every volume was archived and the archive read
        back; a crash midway leaves a state the next call finishes.
        """
        self.stop(target, progress)
        archives = []
        images = self._archive_images(target)
        for volume in sorted(self.runtime.list_volumes(target.selector), key=lambda v: v.name):
            destination = backup_dir / target.instance / f"{stamp}-{volume.name}.tar"
            progress(f"archive volume {volume.name}")
            logical = volume.labels.get("live.volume", "")
            size = self.runtime.archive_volume(
                volume.name, images.get(logical) or images[""], destination,
                helper_name=f"{target.prefix}-archive", labels={**target.base_labels(), "live.role": "archive-helper"},
            )
            archives.append(ArchivedVolume(volume.name, str(destination), size))
        self.remove_resources(target, progress, volumes=True)
        return archives

    def remove_resources(self, target: DeploymentTarget, progress: Progress, volumes: bool) -> None:
        for container in self.runtime.list_containers(target.selector):
            progress(f"remove container {container.name}")
            self.runtime.remove_container(container.id)
        for network in self.runtime.list_networks(target.selector):
            progress(f"remove network {network.name}")
            self.runtime.remove_network(network.name)
        if volumes:
            for volume in self.runtime.list_volumes(target.selector):
                progress(f"remove volume {volume.name}")
                self.runtime.remove_volume(volume.name)

    def _archive_images(self, target: DeploymentTarget) -> dict[str, str]:
        """For each logical volume, an image already used with it (so no pull is needed)."""
        images: dict[str, str] = {}
        for service in target.stack.services.values():
            images.setdefault("", service.image)
            for mount in service.volumes:
                images.setdefault(mount.volume, service.image)
        for image in set(images.values()):
            self.runtime.image_id(image)
        return images


def run_in_dependency_order(graph: dict[str, list[str]], work: Callable[[str], None], reverse: bool = False) -> None:
    """Run ``work(node)`` for every node, in parallel where the graph allows.

    A node starts once all its dependencies (its dependents when ``reverse``)
    are done; if one fails, the nodes that wait for it are skipped, and the
    first failure is raised once every started node has finished.
    """
    if reverse:
        waits = {node: [other for other, deps in graph.items() if node in deps] for node in graph}
    else:
        waits = {node: [dep for dep in deps if dep in graph] for node, deps in graph.items()}
    order = topological_order(waits)
    futures: dict[str, Future] = {}
    with ThreadPoolExecutor(max_workers=max(1, len(order)), thread_name_prefix="stack") as pool:
        def task(node: str) -> None:
            for dep in waits[node]:
                try:
                    futures[dep].result()
                except Exception as exc:
                    raise UpstreamFailed(f"{node} was skipped because {dep} failed: {exc}") from exc
            work(node)

        for node in order:
            futures[node] = pool.submit(task, node)
    errors = [f.exception() for f in futures.values() if f.exception() is not None]
    primary = [e for e in errors if not isinstance(e, UpstreamFailed)]
    if primary or errors:
        raise (primary or errors)[0]

