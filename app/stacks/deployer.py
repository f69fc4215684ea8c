"""Deploys, stops and removes one order's project on the container engine.

The engine's labels are the only state: every run lists what exists for the
order, computes a convergence plan and applies it, so every method is
idempotent and safe to re-run after a crash at any point.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Collection

from app.compose.model import one_shot_services, topological_order
from app.config import Settings
from app.errors import ArchiveHelperMissing, HealthCheckFailed, LiveError, UpstreamFailed
from app.stacks.engine import ContainerRequest, ContainerState, Engine
from app.stacks.engine_requests import PLACEHOLDER_IMAGE_ID, build_requests, network_requests, volume_requests
from app.stacks.plan import Action, ConvergencePlan, plan_convergence
from app.stacks.project import CONFIG_HASH_LABEL, REPLACES_LABEL, Project

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class DeployResult:
    actions: dict[str, str]
    published_ports: dict[str, int]
    orphans_removed: list[str]
    # service -> the config hash (live.config-hash) its container was made with: what should run (app/orders/drift.py)
    config_hashes: dict[str, str] = field(default_factory=dict)


#: The archive helper image when no setting names one (LIVE_HELPER_IMAGE; built by scripts/build-helper-image.sh).
DEFAULT_HELPER_IMAGE = Settings.helper_image  # LIVE_HELPER_IMAGE's default, defined once in app/config.py
HELPER_SCRIPT = "scripts/build-helper-image.sh"
#: Seconds between two inspections of a container waited for. A create waits for its first healthcheck (a second
#: or more after the start), and the wait ends at the first look after it: 0.1 s instead of 0.25 s takes
#: 0.075 s off every such wait on average for about 8 more inspections per create of busybox-demo
#: (docs/BENCHMARKS.md, figure 5). On a swarm manager a look is two calls, hence the longer interval there.
POLL_SECONDS = 0.1
SWARM_POLL_SECONDS = 0.25


class Deployer:
    """Converges, stops, archives and removes orders' stacks on one engine.

    ``health_timeout`` and ``poll_interval`` are seconds; ``helper_image`` is the only image archives are
    made with (never a product's image, never pulled). ``poll_interval`` is the time between two inspections of
    a container waited for (healthy, started); by default :data:`POLL_SECONDS`, or :data:`SWARM_POLL_SECONDS`
    on an engine whose containers start asynchronously (a swarm manager, where one look costs more).
    """

    def __init__(self, engine: Engine, health_timeout: float = 300.0, poll_interval: float | None = None,
                 helper_image: str = DEFAULT_HELPER_IMAGE):
        self.engine = engine
        self.health_timeout = health_timeout
        if poll_interval is None:
            poll_interval = SWARM_POLL_SECONDS if engine.starts_asynchronously else POLL_SECONDS
        self.poll_interval = poll_interval
        self.helper_image = helper_image

    # -- deploy -------------------------------------------------------------
    def plan(self, project: Project, *, pull: bool = True,
             rerun_jobs: bool = False) -> tuple[ConvergencePlan, dict[str, ContainerRequest], list]:
        """What :meth:`deploy` would do (plus the requests and the observed containers); ``rerun_jobs``: finished
        one-shot jobs are started again too.

        With ``pull`` false nothing on the engine changes at all: an image that is not present is not pulled,
        and its services plan as created or recreated (previews, checks of the web process). :meth:`deploy`
        plans with ``pull`` true, since it needs every image.
        """
        # Each distinct image once (the services of a product often share one: busybox-demo's three do).
        by_ref = {ref: self._image_id(ref, pull) for ref in dict.fromkeys(svc.image for svc in project.stack.services.values())}
        image_ids = {name: by_ref[svc.image] for name, svc in project.stack.services.items()}
        requests = build_requests(project, image_ids)
        observed = self.engine.list_containers(project.selector)
        return (plan_convergence(requests.config_hashes, observed, () if rerun_jobs else one_shot_services(project.stack)),
                requests.containers, observed)

    def _image_id(self, ref: str, pull: bool) -> str:
        if pull or self.engine.image_present(ref):
            return self.engine.image_id(ref)
        return PLACEHOLDER_IMAGE_ID  # not present: whatever runs now differs from what a deploy would create

    def deploy(self, project: Project, progress: Progress = lambda _: None, *, rerun_jobs: bool = False) -> DeployResult:
        """Converge the order's project to ``project``: networks and volumes, then each service as planned
        (:func:`~app.stacks.plan.plan_convergence`) in ``depends_on`` order, then wait until every service
        with a healthcheck is healthy. A one-shot job that exited 0 with its definition unchanged is not run again:
        its dependants' ``service_completed_successfully`` is met by its exited container; unless ``rerun_jobs``
        (a restore: the data changed under them), which starts them again.

        A changed service is recreated as compose does it (:meth:`_replace`): its replacement is created
        before the old container is stopped, so a replacement that cannot be made or started leaves the old
        one running. Leftovers of an interrupted recreate and orphan containers are removed first.

        Raises the engine's errors, :class:`HealthCheckFailed` and :class:`UpstreamFailed` (a service skipped
        because one it depends on failed; the first failure of a service itself is raised first).
        """
        self._ensure_networks(project, progress)
        self._ensure_volumes(project, progress)
        plan, requests, containers = self.plan(project, rerun_jobs=rerun_jobs)
        removed = {c.id for c in plan.orphans + plan.leftovers}
        observed = {c.service: c for c in containers if c.id not in removed}
        for leftover in plan.leftovers:
            progress(f"remove unfinished replacement {leftover.name}")
            self.engine.remove_container(leftover.id)
        for orphan in plan.orphans:
            progress(f"remove orphan container {orphan.name}")
            self.engine.stop_container(orphan.id, timeout=10)
            self.engine.remove_container(orphan.id)

        container_ids: dict[str, str] = {}
        ids_lock = threading.Lock()

        def converge(name: str) -> None:
            service = project.stack.services[name]
            for dependency, condition in service.depends_on.items():
                self._wait_condition(name, dependency, condition, container_ids[dependency])
            action = plan.actions[name]
            current = observed.get(name)
            request = requests[name]
            if current is not None and action is not Action.RECREATE and REPLACES_LABEL in current.labels \
                    and current.name != request.name:
                progress(f"rename {current.name} to {request.name}")  # a recreate stopped before its last step
                self.engine.rename_container(current.id, request.name)
            if action is Action.RECREATE:
                progress(f"recreate {name}")
                new_id = self._replace(current, request, progress)
            elif action is Action.CREATE:
                progress(f"create {name}")
                new_id = self.engine.create_container(request)
                self.engine.start_container(new_id)
            elif action is Action.START:
                progress(f"start {name}")
                new_id = current.id
                self.engine.start_container(new_id)
            elif action is Action.UNPAUSE:
                progress(f"unpause {name}")
                new_id = current.id
                self.engine.unpause_container(new_id)
            else:
                new_id = current.id
            with ids_lock:
                container_ids[name] = new_id

        run_in_dependency_order({n: list(s.depends_on) for n, s in project.stack.services.items()}, converge)
        if self.engine.starts_asynchronously:  # every service has left "created" (a swarm task was started)
            for name in sorted(container_ids):
                self._wait_condition("the stack", name, "service_started", container_ids[name])
        self._wait_all_healthy(project, container_ids, progress)

        containers = self.engine.list_containers(project.selector)
        ports = {}
        for container in containers:
            for endpoint in project.endpoints:
                if container.service == endpoint.service and f"{endpoint.port}/tcp" in container.host_ports:
                    ports[f"{endpoint.service}:{endpoint.port}"] = container.host_ports[f"{endpoint.port}/tcp"]
        return DeployResult(
            actions={name: action.value for name, action in plan.actions.items()},
            published_ports=ports,
            orphans_removed=[o.name for o in plan.orphans],
            config_hashes={name: request.labels.get(CONFIG_HASH_LABEL) for name, request in requests.items()},
        )

    def _replace(self, current: ContainerState, request: ContainerRequest, progress: Progress) -> str:
        """Recreate ``current`` from ``request`` as compose does; returns the new container's id.

        Create the replacement under a temporary name (``<old id[:12]>_<name>``, compose's) with the
        :data:`~app.stacks.project.REPLACES_LABEL` label, stop the old container, start the new one, remove
        the old one, rename the new one to its final name. Host ports are bound at start, so the replacement
        publishes the old container's port.

        A failure before the swap removes the replacement and leaves the old container as it was; when the
        replacement does not start, the old container is started again (if it was running) and the
        replacement removed. Either way the failure is raised. Killed midway, the next deploy finishes the
        job (see :mod:`app.stacks.plan`).

        An engine that :attr:`~app.stacks.engine.Engine.updates_in_place` (Docker Swarm) updates the container
        instead: the orchestrator replaces what runs.
        """
        if self.engine.updates_in_place:  # a swarm service: swarm replaces its task (stop-first)
            return self.engine.update_container(current.id, request)
        replacement = dataclasses.replace(request, name=f"{current.id[:12]}_{request.name}",
                                          labels={**request.labels, REPLACES_LABEL: current.id})
        try:
            new_id = self.engine.create_container(replacement)
            self.engine.stop_container(current.id, timeout=request.stop_grace_seconds)
        except Exception:
            self._discard_replacements(current)  # also one made before connecting its other networks failed
            raise
        try:
            self.engine.start_container(new_id)
        except Exception:
            if current.running:
                progress(f"start {current.name} again: its replacement did not start")
                try:
                    self.engine.start_container(current.id)
                except LiveError as exc:
                    log.warning("container %s was not started again: %s", current.name, exc)
            self._discard_replacements(current)
            raise
        self.engine.remove_container(current.id)
        self.engine.rename_container(new_id, request.name)
        return new_id

    def _discard_replacements(self, replaced: ContainerState) -> None:
        """Remove the replacements of ``replaced`` (found by their label); a failure is logged: the next deploy
        removes them."""
        try:
            for container in self.engine.list_containers({REPLACES_LABEL: replaced.id}):
                self.engine.remove_container(container.id)
        except LiveError as exc:
            log.warning("the replacement of container %s was not removed: %s", replaced.name, exc)

    def _ensure_networks(self, project: Project, progress: Progress) -> None:
        """Create the order's missing networks; the proxy joins those it must reach endpoints on (every
        deploy: a proxy recreated since the network was made is attached again; :meth:`Engine.connect_proxy`)."""
        existing = {n.name for n in self.engine.list_networks(project.selector)}
        for request in network_requests(project):
            if request.name not in existing:
                progress(f"create network {request.name}")
                self.engine.create_network(request)
            self.engine.connect_proxy(request)

    def _ensure_volumes(self, project: Project, progress: Progress) -> None:
        """Create the project's missing volumes, on the project's swarm node (a volume of the same name on another
        node does not count: an order being moved has its volumes on two nodes for a while)."""
        existing = {v.name for v in self.engine.list_volumes(project.selector, node=project.node)}
        for request in volume_requests(project):
            if request.name not in existing and not self.engine.volume_exists(request.name, node=project.node):
                progress(f"create volume {request.name}")
                self.engine.create_volume(request)

    def _wait_condition(self, service: str, dependency: str, condition: str, container_id: str) -> None:
        """Wait until ``dependency`` (its container ``container_id``) meets ``condition`` (compose's
        ``depends_on`` conditions) so that ``service`` may start. ``service_started`` is met at once on one engine;
        where containers start asynchronously (a swarm task is scheduled first), once the container has left the
        ``created`` state. Raises :class:`HealthCheckFailed` naming both, after at most ``health_timeout``."""
        if condition == "service_started" and not self.engine.starts_asynchronously:
            return
        deadline = time.monotonic() + self.health_timeout
        while True:
            state = self.engine.inspect_container(container_id)
            if state.state == "dead" and state.error:
                raise HealthCheckFailed(f"{dependency} could not be started: {state.error}",
                                        public=f"{dependency} could not be started")
            if condition == "service_started":
                if state.state != "created":
                    return
            elif condition == "service_healthy":
                if state.health == "healthy":
                    return
                if state.health is None and state.state != "created":  # created: a swarm task not started yet
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

    def _wait_all_healthy(self, project: Project, container_ids: dict[str, str], progress: Progress) -> None:
        """Every service with a healthcheck must be healthy before the stack counts as up."""
        waiting = [name for name, svc in project.stack.services.items()
                   if svc.healthcheck and svc.healthcheck.get("Test") != ["NONE"]]
        if waiting:
            progress("wait for health: " + ", ".join(sorted(waiting)))
        for name in sorted(waiting):
            self._wait_condition("the stack", name, "service_healthy", container_ids[name])

    # -- stop / remove ------------------------------------------------------
    def stop(self, project: Project, progress: Progress = lambda _: None, *, keep: Collection[str] = ()) -> list[str]:
        """Stop every container of the order, dependents first; returns the services stopped. Volumes are untouched.

        A service may have two containers (an interrupted recreate): both are stopped. A one-shot job that finished
        (exited 0) is left as it is, also in a swarm (its service keeps its completed task). Services in ``keep``
        (and, so that they keep working, the services they depend on) are left running: a final backup dumps
        a database once the applications writing to it have stopped.
        """
        keep = _with_dependencies(project, keep)
        finished_jobs = one_shot_services(project.stack)
        containers: dict[str, list[ContainerState]] = {}
        for container in self.engine.list_containers(project.selector):
            if container.service is None:
                # Not a service: an archive helper left by an interrupted terminate.
                self.engine.remove_container(container.id)
            else:
                containers.setdefault(container.service, []).append(container)
        stopped: list[str] = []

        def stop_one(name: str) -> None:
            if name in keep:
                return
            if self.engine.starts_asynchronously:
                # Every swarm service is stopped: one scaled down by an interrupted stop may still be stopping (the
                # stop waits for its container), one scaled up may not have started yet.
                grace = project.stack.services[name].stop_grace_seconds if name in project.stack.services else 10
                for container in containers.get(name, []):
                    # Not a finished job (its task completed): scaled to 0, swarm would drop that task, and the next
                    # deploy could no longer tell it finished (it would run it again, :mod:`app.stacks.plan`).
                    if container.state == "exited" and not (name in finished_jobs and container.exit_code == 0):
                        self.engine.stop_container(container.id, timeout=grace)
                running = [c for c in containers.get(name, []) if c.state != "exited"]
            else:
                running = [c for c in containers.get(name, []) if c.state not in ("exited", "created", "dead")]
            if running:
                progress(f"stop {name}")
                grace = project.stack.services[name].stop_grace_seconds if name in project.stack.services else 10
                for container in running:
                    self.engine.stop_container(container.id, timeout=grace)
                stopped.append(name)

        graph = {n: list(s.depends_on) for n, s in project.stack.services.items()}
        graph.update({name: [] for name in containers if name not in graph})
        run_in_dependency_order(graph, stop_one, reverse=True)
        return sorted(stopped)

    def start_only(self, project: Project, services: Collection[str], progress: Progress = lambda _: None) -> dict[str, str]:
        """Start the existing containers of ``services`` and of the services they depend on, in ``depends_on``
        order, each waited for as its dependents ask (healthy when it has a healthcheck); nothing else is
        started, created or removed. Returns ``{service: container id}``.

        For a restore: databases run their restore commands while the applications stay stopped. A service
        without a container (a project never deployed: a restore drill) gets one as :meth:`deploy` would
        create it, with the project's networks and volumes. Raises :class:`HealthCheckFailed` and the
        engine's errors.
        """
        wanted = _with_dependencies(project, services)
        containers: dict[str, ContainerState] = {}
        for container in self.engine.list_containers(project.selector):
            if container.service in wanted and (container.service not in containers or container.running):
                containers[container.service] = container
        requests = None
        started: dict[str, str] = {}
        for name in project.stack.start_order():
            if name not in wanted:
                continue
            container = containers.get(name)
            if container is None:
                if requests is None:
                    self._ensure_networks(project, progress)
                    self._ensure_volumes(project, progress)
                    requests = self.plan(project)[1]
                progress(f"create {name}")
                container_id = self.engine.create_container(requests[name])
                self.engine.start_container(container_id)
            else:
                container_id = container.id
                if not container.running:
                    progress(f"start {name}")
                    self.engine.start_container(container_id)
            started[name] = container_id
            if self.engine.starts_asynchronously:
                self._wait_condition("the restore", name, "service_started", container_id)
            service = project.stack.services[name]
            healthcheck = service.healthcheck or {}
            if healthcheck and healthcheck.get("Test") != ["NONE"]:
                self._wait_condition("the restore", name, "service_healthy", container_id)
        return started

    def require_helper_image(self) -> None:
        """Raise :class:`ArchiveHelperMissing` (naming the setting and the script) unless the helper image is present.

        Never pulls. :class:`~app.errors.EngineUnavailable` when the engine cannot be asked.
        """
        if not self.engine.image_present(self.helper_image):
            raise ArchiveHelperMissing(
                f"the archive helper image {self.helper_image} (LIVE_HELPER_IMAGE) is not on the Docker engine; "
                f"build it there with `bash {HELPER_SCRIPT} {self.helper_image}` (nothing was stopped or deleted)",
                image=self.helper_image)

    def remove_containers(self, project: Project, progress: Progress) -> None:
        """Remove the order's containers (swarm services), running or not; networks and volumes are kept."""
        for container in self.engine.list_containers(project.selector):
            progress(f"remove container {container.name}")
            self.engine.remove_container(container.id)

    def remove_resources(self, project: Project, progress: Progress, volumes: bool) -> None:
        """Remove the order's containers and networks, and its volumes when ``volumes`` (back them up first)."""
        self.remove_containers(project, progress)
        for network in self.engine.list_networks(project.selector):
            progress(f"remove network {network.name}")
            self.engine.remove_network(network.name)
        if volumes:
            for volume in self.engine.list_volumes(project.selector, node=project.node):
                progress(f"remove volume {volume.name}")
                self.engine.remove_volume(volume.name, node=project.node)


def _with_dependencies(project: Project, services: Collection[str]) -> set[str]:
    """``services`` and every service they depend on, directly or not (names not in the stack are kept as given)."""
    found: set[str] = set()
    todo = list(services)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        service = project.stack.services.get(name)
        if service is not None:
            todo.extend(service.depends_on)
    return found


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

