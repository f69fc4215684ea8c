"""The Docker Swarm adapter of the engine port (:class:`~app.stacks.engine.Engine`), for ``LIVE_ORCHESTRATOR=swarm``.

What one engine calls a container is here a **swarm service** with at most one task: the deployer's words keep
their meaning (docs/SCALING.md, "How Live uses a swarm"):

========================  ==========================================================================
engine port               Docker Swarm
========================  ==========================================================================
create (not started)      ``POST /services/create`` with 0 replicas, placed on the order's node
start / stop              scale to 1 and force a new task, unless one runs already (start waits until swarm
                          made it) / scale to 0 (stop waits until the task has stopped)
update (a changed spec)   ``POST /services/{id}/update``: swarm stops the old task, starts the new one
remove                    ``DELETE /services/{id}``
state, health             the service's newest task: a task with a healthcheck stays ``starting`` until
                          healthy; swarm replaces an unhealthy task
networks                  attachable overlay networks (``LIVE_SWARM_ENCRYPT_NETWORKS``: encrypted); the
                          proxy container (``LIVE_SWARM_PROXY_CONTAINER``) joins those it reaches endpoints on
volumes, exec, archives   the Docker engine of the node that holds them (its ``live.engine`` label)
========================  ==========================================================================

Swarm volumes are node-local: every service and volume of an order is placed on one node (the request's
``node``), so no task with data ever starts on a node without that data. Reads are label-filtered: listing an
order's (or every order's) containers costs two manager calls (services, tasks) whatever the number of orders;
listing volumes costs one call per node.

The manager is ``DOCKER_HOST`` (or ``base_url``). Every error is translated into Live's errors
(:mod:`app.errors`) at this boundary, as :class:`~app.stacks.docker_engine.DockerEngine` does.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, ContextManager, Iterable, Iterator, Mapping, Sequence

from app.errors import EngineOperationError, EngineUnavailable, LiveError, NotFound
from app.stacks.docker_engine import (CancellableStream, DockerEngine, close_stream, read_log_stream, stream_socket,
                                      translate_errors)
from app.stacks.engine import (LISTED, ContainerRequest, ContainerState, Engine, EngineEvent, NetworkRequest,
                               NetworkState, NodeState, Readable, VolumeRequest, VolumeState, VolumeUsage)
from app.stacks.project import CONFIG_HASH_LABEL, DEPLOYMENT_LABEL, NODE_ENGINE_LABEL, ORDER_LABEL
from app.stacks.swarm_spec import service_spec, swarm_network_spec

log = logging.getLogger(__name__)

#: The node label that gives the address of a node's own Docker engine (``unix:///...`` or ``tcp://...``).
ENGINE_LABEL = NODE_ENGINE_LABEL

#: Task states before the task's container runs (swarmkit ``api.TaskState``).
_PENDING_TASK_STATES = frozenset({"new", "allocated", "pending", "assigned", "accepted", "preparing", "ready"})
#: Task states of a task whose container runs or may still run.
_LIVE_TASK_STATES = _PENDING_TASK_STATES | {"starting", "running"}

#: How long to wait, at most, for swarm to let go of a removed service's containers (seconds): until then the
#: engine refuses to remove their networks and volumes ("in use", "has active endpoints").
RELEASE_TIMEOUT = 60.0
#: How long :meth:`SwarmEngine.start_container` waits, at most, for swarm to make the task of a service it started
#: (seconds). Swarm's orchestrator makes it within a second, one it cannot place included (pending, with the
#: reason): none after this long is an error, not a start to wait for.
SCHEDULE_TIMEOUT = 30.0


class SwarmEngine(Engine):
    """Docker Swarm through a manager's API; each node's own engine for what swarm has no API for (exec,
    volumes, archives).

    ``encrypt_networks`` encrypts the overlay networks it creates (IPsec between nodes: ``--opt encrypted``).
    ``proxy_container`` is the name (or id) of the ingress proxy's container on the manager, which joins every
    ``proxied`` order network and dials the endpoint services by name (docs/SCALING.md, "Ingress in a swarm");
    None: no proxy to attach. ``poll_interval`` is seconds between two looks while waiting for a task to stop (or
    to be made); ``schedule_timeout`` the seconds a start waits for swarm to make its task (:data:`SCHEDULE_TIMEOUT`).
    """

    updates_in_place = True
    starts_asynchronously = True
    publishes_host_ports = False

    def __init__(self, base_url: str | None = None, timeout: int = 120, *, encrypt_networks: bool = False,
                 proxy_container: str | None = None, poll_interval: float = 0.25, cert_path: str | None = None,
                 mirror_poll_seconds: float = 2.0, schedule_timeout: float = SCHEDULE_TIMEOUT):
        self.manager = DockerEngine(base_url, timeout)
        self.schedule_timeout = schedule_timeout
        # How often events() polls services and tasks (LIVE_MIRROR_POLL_SECONDS): tasks on other nodes send the
        # manager no event.
        self.mirror_poll_seconds = mirror_poll_seconds
        self._timeout = timeout
        self.encrypt_networks = encrypt_networks
        # Client certificate, key and CA for node engines reached over TCP (Docker's DOCKER_CERT_PATH convention).
        self.cert_path = cert_path if cert_path is not None else os.environ.get("DOCKER_CERT_PATH", "")
        self.proxy_container = proxy_container or None
        self.poll_interval = poll_interval
        self._node_engines: dict[str, DockerEngine] = {}
        self._lock = threading.Lock()
        self._own_node: str | None = None

    @property
    def api_calls(self) -> int:
        """API calls made to the manager and to every node's engine (benchmarks)."""
        return self.manager.api_calls + sum(engine.api_calls for engine in self._node_engines.values())

    @property
    def api(self):
        return self.manager.api

    # -- the cluster --------------------------------------------------------
    def ping(self) -> None:
        """Return when the manager answers and is a swarm manager; :class:`~app.errors.EngineUnavailable`
        otherwise (a plain engine, or a worker node, cannot run services)."""
        with translate_errors("ping the swarm manager"):
            info = self.api.info()
        swarm = info.get("Swarm") or {}
        if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
            raise EngineUnavailable(
                "the Docker engine at DOCKER_HOST is not a swarm manager (LIVE_ORCHESTRATOR=swarm needs one: "
                f"`docker swarm init`); its swarm state is {swarm.get('LocalNodeState') or 'unknown'}")
        self._own_node = swarm.get("NodeID") or self._own_node

    def version(self) -> tuple[str, str]:
        """The manager's ``(engine version, API version)`` (live doctor)."""
        return self.manager.version()

    def address_pools(self):
        """The manager's address pools and networks (live doctor)."""
        return self.manager.address_pools()

    def own_node(self) -> str:
        """The id of the manager node the bridge talks to."""
        if self._own_node is None:
            self.ping()
        return self._own_node or ""

    def nodes(self) -> list[NodeState]:
        """Every node of the swarm with the memory reserved on it (three manager calls: nodes, services, tasks).

        A node's reserved memory counts every service pinned to it (``node.id==<id>``), running or scaled to
        zero: a suspended order has no task but comes back on its node only. Per service its memory
        reservation, else its memory limit (as :func:`~app.stacks.placement.order_reservation` counts an order).
        Services not pinned to one node count by the tasks swarm placed on each node.
        """
        own = self.own_node()
        with translate_errors("list swarm nodes"):
            raw_nodes = self.api.nodes()
            services = self.api.services()
            tasks = self.api.tasks(filters={"desired-state": "running"})
        reserved: dict[str, int] = {}
        floating: set[str] = set()
        for service in services:
            template = (service.get("Spec") or {}).get("TaskTemplate") or {}
            pinned = _pinned_node(template)
            if pinned is None:
                floating.add(service["ID"])
            else:
                reserved[pinned] = reserved.get(pinned, 0) + _memory(template)
        for task in tasks:
            node = task.get("NodeID")
            if node and task.get("ServiceID") in floating:
                reserved[node] = reserved.get(node, 0) + _memory(task.get("Spec") or {})
        found = []
        for raw in raw_nodes:
            spec = raw.get("Spec") or {}
            labels = spec.get("Labels") or {}
            node_id = raw["ID"]
            found.append(NodeState(
                id=node_id,
                hostname=(raw.get("Description") or {}).get("Hostname") or node_id,
                labels=labels,
                ready=(raw.get("Status") or {}).get("State") == "ready",
                active=spec.get("Availability") == "active",
                memory_bytes=int(((raw.get("Description") or {}).get("Resources") or {}).get("MemoryBytes") or 0),
                reserved_bytes=reserved.get(node_id, 0),
                engine=labels.get(ENGINE_LABEL) or ("" if node_id == own else None),
                manager=spec.get("Role") == "manager",
            ))
        return found

    def node_engine(self, node_id: str | None) -> DockerEngine:
        """The Docker engine of node ``node_id`` (None, or the manager's own node: the manager's engine).

        Raises :class:`~app.errors.EngineOperationError` when the node has no ``live.engine`` label (the bridge
        cannot reach its engine), :class:`~app.errors.NotFound` when there is no such node.
        """
        if node_id is None or node_id == self.own_node():
            return self.manager
        with self._lock:
            cached = self._node_engines.get(node_id)
        if cached is not None:
            return cached
        with translate_errors(f"inspect swarm node {node_id}"):
            raw = self.api.inspect_node(node_id)
        address = ((raw.get("Spec") or {}).get("Labels") or {}).get(ENGINE_LABEL)
        if not address:
            hostname = (raw.get("Description") or {}).get("Hostname") or node_id
            raise EngineOperationError(
                f"swarm node {hostname} has no {ENGINE_LABEL} label: the bridge cannot reach its Docker engine "
                f"(`docker node update --label-add {ENGINE_LABEL}=tcp://<address>:2376 {hostname}`; docs/SCALING.md)")
        hostname = (raw.get("Description") or {}).get("Hostname") or node_id
        tls = node_tls(address, hostname, self.cert_path)
        engine = DockerEngine(address, self._timeout, where=f"the engine of swarm node {hostname} ({address})", tls=tls)
        with self._lock:
            return self._node_engines.setdefault(node_id, engine)

    def forget_node_engines(self) -> None:
        """Close the connections to the nodes' engines; the next use reads each node's ``live.engine`` label again
        (after an operator changed one)."""
        with self._lock:
            engines, self._node_engines = list(self._node_engines.values()), {}
        for engine in engines:
            engine.close()

    def _engines(self) -> list[tuple[str, DockerEngine]]:
        """``(node id, engine)`` of every ready node whose engine the bridge can reach."""
        found = []
        for node in self.nodes():
            if node.ready and node.engine is not None:
                found.append((node.id, self.node_engine(node.id)))
        return found

    # -- images -------------------------------------------------------------
    def image_id(self, ref: str) -> str:
        """The image's id on the manager (pulled once there when missing); every node must hold or pull the
        same image: a node without it rejects the task, and the deploy fails naming the error."""
        return self.manager.image_id(ref)

    def image_present(self, ref: str) -> bool:
        return self.manager.image_present(ref)

    # -- containers (swarm services) ------------------------------------------
    def list_containers(self, labels: dict[str, str]) -> list[ContainerState]:
        """Every service carrying ``labels`` as a container: two manager calls (services, tasks)."""
        return [state for state, _tasks in self._services_and_tasks(labels)]

    def _services_and_tasks(self, labels: dict[str, str]) -> list[tuple[ContainerState, list[dict[str, Any]]]]:
        """Every service carrying ``labels`` as a container, with its tasks (two manager calls)."""
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        with translate_errors("list swarm services"):
            services = self.api.services(filters=filters)
            tasks = self.api.tasks(filters=filters) if services else []
        by_service: dict[str, list[dict]] = {}
        for task in tasks:
            by_service.setdefault(task.get("ServiceID", ""), []).append(task)
        return [(_service_state(service, by_service.get(service["ID"], [])), by_service.get(service["ID"], []))
                for service in services]

    def events(self, labels: dict[str, str], since: float | None = None) -> ContextManager[Iterator[EngineEvent]]:
        """The services carrying ``labels`` as a stream of changes (see :meth:`Engine.events`).

        Tasks on other nodes send the manager no event, so the stream is a poll: services and tasks (two manager
        calls, :meth:`list_containers`) every ``mirror_poll_seconds`` and soon after any event of the manager's own
        stream (a service, a node, or a container of the manager node), at most every 0.25 s. Each poll yields a
        :data:`~app.stacks.engine.LISTED` event for every service whose state changed (all of them at the first
        poll), ``destroy`` for a service gone, and ``die`` for a task that failed (timed by the task's status, so
        a follower resuming from ``since`` counts each failure once; at the first poll only those after ``since``).
        A poll yields its ``die`` events first, in the order of their times (it reads services one after the other:
        a failure found later may be the earlier one), each with the service's state as the poll read it (swarm has
        replaced the task already), then its LISTED and destroy events. LISTED and destroy
        events (and a ``die`` whose task has no time) carry the bridge's clock: marked
        :attr:`~app.stacks.engine.EngineEvent.bridge_clock`. The manager's stream breaking raises
        :class:`~app.errors.EngineUnavailable` at the next poll.
        """
        return self._events(labels, since)

    @contextlib.contextmanager
    def _events(self, labels: dict[str, str], since: float | None) -> Iterator[Iterator[EngineEvent]]:
        with translate_errors("follow the swarm manager's events"):
            stream = self.api.events(filters={"type": ["service", "node", "container"]}, decode=True)
        sock = stream_socket(stream)
        closed, wake = threading.Event(), threading.Event()
        broken: list[str] = []

        def read() -> None:
            try:
                for _raw in stream:
                    wake.set()
                reason = "the swarm manager ended its event stream (did it restart?)"
            except Exception as exc:  # noqa: BLE001 (reported by the poll below)
                reason = f"the swarm manager's event stream broke: {exc}"
            if not closed.is_set():
                broken.append(reason)
            wake.set()

        reader = threading.Thread(target=read, name="swarm-events", daemon=True)
        reader.start()

        def follow() -> Iterator[EngineEvent]:
            previous: dict[str, ContainerState] = {}
            failed_seen: set[str] = set()
            first = True
            last_poll = 0.0
            while not closed.is_set():
                if broken:
                    raise EngineUnavailable(broken[0])
                pause = 0.25 - (time.monotonic() - last_poll)
                if pause > 0 and closed.wait(pause):
                    return
                last_poll = time.monotonic()
                listed = self._services_and_tasks(labels)
                now = time.time()
                current = {}
                deaths: list[EngineEvent] = []
                seen: list[EngineEvent] = []
                for state, tasks in listed:
                    current[state.id] = state
                    for task in tasks:
                        if (task.get("Status") or {}).get("State") not in ("failed", "rejected") or task["ID"] in failed_seen:
                            continue
                        failed_seen.add(task["ID"])
                        when = _task_time(task)
                        if first and (since is None or when is None or when <= since):
                            continue
                        deaths.append(EngineEvent(
                            time=when if when is not None else now, action="die", container_id=state.id,
                            labels=dict(state.labels), bridge_clock=when is None, state=state,
                            attributes={"exitCode": "" if _exit_code(task) is None else str(_exit_code(task)),
                                        "task": task["ID"], "name": state.name}))
                    if previous.get(state.id) != state:
                        seen.append(EngineEvent(time=now, action=LISTED, container_id=state.id,
                                                labels=dict(state.labels), attributes={"name": state.name},
                                                state=state, bridge_clock=True))
                for gone in [sid for sid in previous if sid not in current]:
                    seen.append(EngineEvent(time=now, action="destroy", container_id=gone, bridge_clock=True,
                                            labels=dict(previous[gone].labels), attributes={"name": previous[gone].name}))
                # The poll walks services, not time: the failures in the engine's order, then what the poll saw.
                yield from sorted(deaths, key=lambda event: event.time)
                yield from seen
                previous, first = current, False
                wake.wait(self.mirror_poll_seconds)
                wake.clear()

        try:
            yield follow()
        finally:
            closed.set()
            wake.set()
            close_stream(stream, sock)

    def inspect_container(self, container_id: str) -> ContainerState:
        with translate_errors(f"inspect swarm service {container_id[:12]}"):
            service = self.api.inspect_service(container_id)
            tasks = self.api.tasks(filters={"service": service["ID"]})
        return _service_state(service, tasks)

    def create_container(self, request: ContainerRequest) -> str:
        """Create the service of ``request`` with no task (0 replicas), on ``request.node``; returns its id."""
        spec = service_spec(request, replicas=0, constraints=_constraints(request))
        with translate_errors(f"create swarm service {request.name}"):
            created = self.api.create_service(**_service_kwargs(spec))
        return created["ID"]

    def update_container(self, container_id: str, request: ContainerRequest) -> str:
        """Give the service the spec of ``request`` and one task: swarm stops the old task, then starts the new
        one (its default update order, ``stop-first``: the old task releases the volumes first)."""
        spec = service_spec(request, replicas=1, constraints=_constraints(request))

        def change(current: dict[str, Any]) -> dict[str, Any]:
            force = int(((current.get("Spec") or {}).get("TaskTemplate") or {}).get("ForceUpdate") or 0)
            # A service whose task was rejected (an image missing on the node) is retried with the same spec.
            spec["TaskTemplate"]["ForceUpdate"] = force + 1
            return spec

        self._update(container_id, f"update swarm service {request.name}", change)
        return container_id

    def start_container(self, container_id: str) -> None:
        """Give the service one task to run and return once swarm has made it (it runs once swarm has started it:
        see the state's ``running``).

        A service with one replica and a task meant to run (desired ``running``, not ended) is left as it is.
        Any other is scaled to one replica with its ``TaskTemplate.ForceUpdate`` bumped, as :meth:`update_container`
        does: swarm makes no new task for a replica whose last task ended and is not restarted (restart condition
        ``none``, or ``on-failure`` past its attempts), and counts such a task as the replica even once the service
        was scaled to 0 (by hand, an instant before: measured, a start then waited for a task that never came).
        Returns once swarm has made a new task (whatever its state: it may have failed already). Raises
        :class:`~app.errors.EngineOperationError` naming the service when it has made none within
        ``schedule_timeout`` seconds; the manager's errors as translated.
        """
        before: set[str] = set()
        names = [container_id[:12]]

        def change(current: dict[str, Any]) -> dict[str, Any] | None:
            spec = current["Spec"]
            names[0] = spec.get("Name") or names[0]
            with translate_errors(f"list the tasks of swarm service {names[0]}"):
                tasks = self.api.tasks(filters={"service": current["ID"]})
            before.clear()
            before.update(task["ID"] for task in tasks)
            if (((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas") == 1
                    and any(_meant_to_run(task) for task in tasks)):
                return None
            spec["Mode"] = {"Replicated": {"Replicas": 1}}
            template = spec.setdefault("TaskTemplate", {})
            template["ForceUpdate"] = int(template.get("ForceUpdate") or 0) + 1
            return spec

        if self._update(container_id, f"start swarm service {container_id[:12]}", change):
            self._wait_scheduled(container_id, names[0], before)

    def _wait_scheduled(self, service_id: str, name: str, before: set[str]) -> None:
        """Wait until the service has a task not in ``before`` (its state may already be an end);
        :class:`~app.errors.EngineOperationError` naming service ``name`` after ``schedule_timeout`` seconds."""
        deadline = time.monotonic() + self.schedule_timeout
        while True:
            with translate_errors(f"list the tasks of swarm service {name}"):
                tasks = self.api.tasks(filters={"service": service_id})
            if any(task["ID"] not in before for task in tasks):
                return
            if time.monotonic() > deadline:
                raise EngineOperationError(
                    f"swarm service {name} was started but swarm made no task for it within "
                    f"{self.schedule_timeout:.0f}s (`docker service ps {name}`)")
            time.sleep(self.poll_interval)

    def stop_container(self, container_id: str, timeout: int) -> None:
        """Scale the service to no task and wait until its task has stopped (swarm kills it after the service's
        stop grace period; ``timeout`` seconds plus a margin are waited at most)."""
        self._scale(container_id, 0)
        deadline = time.monotonic() + timeout + RELEASE_TIMEOUT
        while True:
            with translate_errors(f"list the tasks of swarm service {container_id[:12]}"):
                tasks = self.api.tasks(filters={"service": container_id})
            live = [t for t in tasks if (t.get("Status") or {}).get("State") in _LIVE_TASK_STATES]
            if not live or all(self._container_stopped(t) for t in live):
                return
            if time.monotonic() > deadline:
                raise EngineUnavailable(f"the task of swarm service {container_id[:12]} did not stop within "
                                        f"{timeout + RELEASE_TIMEOUT:.0f}s")
            time.sleep(self.poll_interval)

    def _container_stopped(self, task: dict[str, Any]) -> bool:
        """Whether the container of a task swarm is shutting down has stopped, asked of its node's engine: the
        manager learns it a few seconds later (measured: about 3 s per service), and nothing here needs more than
        the container stopped (its volumes are free)."""
        container = ((task.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID")
        if not container or task.get("DesiredState") == "running":
            return False
        try:
            return not self.node_engine(task.get("NodeID")).inspect_container(container).running
        except NotFound:
            return True
        except LiveError:
            return False  # the node's engine does not answer: the manager's view decides

    def unpause_container(self, container_id: str) -> None:
        node, task_container = self._task_container(container_id)
        self.node_engine(node).unpause_container(task_container)

    def rename_container(self, container_id: str, name: str) -> None:
        raise EngineOperationError(f"swarm service {container_id[:12]} cannot be renamed to {name}: Docker Swarm "
                                   "does not rename services (Live updates them in place)")

    def remove_container(self, container_id: str) -> None:
        """Remove the service; a missing one is not an error. Its tasks' containers go soon after (removing
        the order's networks and volumes waits for them)."""
        try:
            with translate_errors(f"remove swarm service {container_id[:12]}"):
                self.api.remove_service(container_id)
        except NotFound:
            pass

    def container_usage(self, container_id: str) -> tuple[float, float]:
        node, task_container = self._task_container(container_id)
        return self.node_engine(node).container_usage(task_container)

    def running_usage(self, container: ContainerState) -> tuple[float, float]:
        """One stats call to the engine of the node the service's task runs on (no task lookup: the listing
        named its container)."""
        if container.task_container is None:
            return self.container_usage(container.id)
        return self.node_engine(container.node).container_usage(container.task_container)

    def container_logs(self, container_id: str, tail: int) -> str:
        """The service's last ``tail`` log lines, read by the manager from its tasks wherever they ran (``docker
        service logs --tail``; tasks that failed included, which a crash loop needs)."""
        with translate_errors(f"read the logs of swarm service {container_id[:12]}"):
            chunks = self.api.service_logs(container_id, stdout=True, stderr=True, tail=max(0, tail),
                                           timestamps=False, is_tty=self._service_tty(container_id))
            output = b"".join(chunks) if not isinstance(chunks, bytes) else chunks
        return output.decode("utf-8", errors="replace")

    def stream_logs(self, container_id: str, *, tail: int, since: dt.datetime | None = None,
                    follow: bool = False) -> Iterator[str]:
        """``GET /services/{id}/logs`` streamed by the manager from the service's tasks wherever they ran (``docker
        service logs --tail --since [--follow]``; failed tasks included); see :meth:`Engine.stream_logs`. The
        engine takes ``since`` in whole seconds: it is rounded down (a line of that second may come too)."""
        action = f"read the logs of swarm service {container_id[:12]}"
        params = {"details": False, "follow": follow, "stdout": True, "stderr": True, "timestamps": False,
                  "tail": max(0, tail), "since": 0 if since is None else int(since.timestamp())}
        tty = self._service_tty(container_id)
        with translate_errors(action):
            # docker-py's service_logs() hands back a bare generator, which cannot close its response (a followed
            # stream would hold its socket until collected): the same request, wrapped as its container logs() are.
            response = self.api._get(self.api._url("/services/{0}/logs", container_id), params=params, stream=True)
            self.api._raise_for_status(response)
            # With a TTY the engine sends the raw text, without frames (read as frames, its first 8 bytes would be a
            # length of up to 4 GB): docker-py's own choice between the two readers, as its service_logs() makes it.
            stream = CancellableStream(self.api._get_result_tty(True, response, tty), response)
        return read_log_stream(stream, action)

    def _service_tty(self, service_id: str) -> bool:
        """Whether the service's containers have a TTY (``Spec.TaskTemplate.ContainerSpec.TTY``): their logs are
        then raw text, not frames of standard output and error (docker-py's ``service_logs`` asks the same)."""
        with translate_errors(f"inspect swarm service {service_id[:12]}"):
            spec = self.api.inspect_service(service_id).get("Spec") or {}
        return bool(((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("TTY", False))

    def _task_container(self, service_id: str) -> tuple[str | None, str]:
        """``(node id, container id)`` of the service's running task; EngineOperationError when none runs."""
        with translate_errors(f"list the tasks of swarm service {service_id[:12]}"):
            tasks = self.api.tasks(filters={"service": service_id, "desired-state": "running"})
        for task in _newest_first(tasks):
            status = task.get("Status") or {}
            container = (status.get("ContainerStatus") or {}).get("ContainerID")
            if status.get("State") == "running" and container:
                return task.get("NodeID"), container
        raise EngineOperationError(f"swarm service {service_id[:12]} has no running task")

    def _scale(self, service_id: str, replicas: int) -> None:
        def change(current: dict[str, Any]) -> dict[str, Any] | None:
            spec = current["Spec"]
            if ((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas") == replicas:
                return None
            spec["Mode"] = {"Replicated": {"Replicas": replicas}}
            return spec

        self._update(service_id, f"scale swarm service {service_id[:12]} to {replicas}", change)

    def _update(self, service_id: str, action: str, change) -> bool:
        """Apply ``change(current service)`` (a new spec, or None: nothing to do) with the service's version;
        a concurrent change ("update out of sequence") is read again and applied once more. Returns whether the
        service was updated."""
        for attempt in (1, 2):
            with translate_errors(action):
                current = self.api.inspect_service(service_id)
            spec = change(current)
            if spec is None:
                return False
            try:
                with translate_errors(action):
                    self.api.update_service(current["ID"], current["Version"]["Index"], fetch_current_spec=False,
                                            **_service_kwargs(spec))
                return True
            except EngineOperationError as exc:
                if attempt == 2 or "out of sequence" not in str(exc):
                    raise
        return False

    # -- networks -------------------------------------------------------------
    def list_networks(self, labels: dict[str, str]) -> list[NetworkState]:
        return self.manager.list_networks(labels)

    def create_network(self, request: NetworkRequest) -> None:
        """Create the order network as an attachable overlay network (encrypted if so configured)."""
        with translate_errors(f"create overlay network {request.name}"):
            self.api.create_network(**swarm_network_spec(request, encrypted=self.encrypt_networks))

    def connect_proxy(self, request: NetworkRequest) -> None:
        """Connect the proxy container to the ``proxied`` network ``request`` (on the manager, by the network's
        name); already connected is fine. A proxy container that does not exist is logged, never raised: the
        proxy being away never fails an operation (the next deploy of the order attaches it; docs/OPERATIONS.md).
        """
        if self.proxy_container is None or not request.proxied:
            return
        action = f"connect the proxy container {self.proxy_container} to network {request.name}"
        try:
            with translate_errors(action):
                self.api.connect_container_to_network(self.proxy_container, request.name)
        except NotFound as exc:
            if self._proxy_missing():
                log.warning("%s: the container does not exist (LIVE_SWARM_PROXY_CONTAINER); the order's routes "
                            "fail until it runs and the order is deployed again", action)
                return
            raise EngineOperationError(str(exc)) from exc
        except EngineOperationError as exc:
            if "already attached" not in str(exc) and "already exists" not in str(exc):
                raise
        else:
            log.info("the proxy container %s joined network %s", self.proxy_container, request.name)

    def remove_network(self, name: str) -> None:
        """Disconnect the proxy container from the network (when it is connected), then remove the network,
        waiting (at most :data:`RELEASE_TIMEOUT`) while removed services still use it."""
        if self.proxy_container is not None:
            self._disconnect_proxy(name)
        _retry_while_in_use(lambda: self.manager.remove_network(name), f"network {name}")

    def _disconnect_proxy(self, network: str) -> None:
        """Disconnect the proxy container from ``network``; nothing to do when either is missing or they are not
        connected (a network the proxy never joined: it is not ``proxied``)."""
        try:
            with translate_errors(f"disconnect the proxy container {self.proxy_container} from network {network}"):
                self.api.disconnect_container_from_network(self.proxy_container, network)
        except NotFound:
            return
        except EngineOperationError as exc:  # the manager answers 500 for both
            if "is not connected" not in str(exc) and "not found" not in str(exc):
                raise

    def proxy_problem(self) -> str | None:
        """What keeps the proxy container from reaching the orders' services, or None when nothing does (live
        doctor): it must exist on the manager, run, and have been created on a user-defined network: only then is
        its resolver Docker's 127.0.0.11 (its ``/etc/resolv.conf``, read with ``cat`` in it), which resolves the
        services of the overlay networks it joins later; one created on the default bridge keeps the host's
        resolver even once connected. Raises :class:`~app.errors.EngineUnavailable`."""
        if self.proxy_container is None:
            return "LIVE_SWARM_PROXY_CONTAINER is not set"
        name = self.proxy_container
        try:
            with translate_errors(f"inspect the proxy container {name}"):
                raw = self.api.inspect_container(name)
        except NotFound:
            return f"there is no container {name} on the swarm manager"
        status = (raw.get("State") or {}).get("Status") or "unknown"
        if status != "running":
            return f"the container {name} is {status}, not running"
        mode = (raw.get("HostConfig") or {}).get("NetworkMode") or "default"
        if mode in ("host", "none") or mode.startswith("container:"):
            return f"the container {name} runs with network mode {mode}: it cannot join the orders' overlay networks"
        try:
            resolv = self.manager.exec_input(name, ["cat", "/etc/resolv.conf"])
        except EngineOperationError as exc:
            return f"the resolver of the container {name} cannot be read ({exc})"
        if "127.0.0.11" not in resolv:
            return (f"the container {name} does not use Docker's resolver 127.0.0.11 (created on the default bridge "
                    "network?), so it resolves no swarm service name: create it with --network <a user-defined "
                    "network>")
        return None

    def _proxy_missing(self) -> bool:
        """Whether the proxy container does not exist on the manager."""
        try:
            with translate_errors(f"inspect the proxy container {self.proxy_container}"):
                self.api.inspect_container(self.proxy_container)
        except NotFound:
            return True
        return False

    # -- volumes (on the nodes' own engines) ----------------------------------
    def list_volumes(self, labels: dict[str, str], node: str | None = None) -> list[VolumeState]:
        """The labelled volumes of node ``node`` (one call to its engine: an engine that cannot be reached, or a
        node without its ``live.engine`` label, raises; it never reads as "no volumes"), or of every ready node
        whose engine is known when None (one call per node), each with its ``node``."""
        engines = [(node, self.node_engine(node))] if node is not None else self._engines()
        return _on_nodes(engines, lambda engine: engine.list_volumes(labels))

    def volume_usage(self, labels: dict[str, str]) -> VolumeUsage:
        """The labelled volumes of every node, with their sizes (one call per node engine, plus the node listing).
        A node that is not ready, has no ``live.engine`` label or whose engine fails is in ``unread_nodes`` (logged):
        the disk of its orders is unknown, never 0."""
        found: list[VolumeState] = []
        unread = set()
        for node in self.nodes():
            if not node.ready or node.engine is None:
                unread.add(node.id)
                continue
            try:
                volumes = self.node_engine(node.id).volume_usage(labels).volumes
            except LiveError as exc:
                log.warning("disk usage of swarm node %s not read: %s", node.hostname or node.id, exc)
                unread.add(node.id)
                continue
            for volume in volumes:
                volume.node = node.id
                found.append(volume)
        return VolumeUsage(found, frozenset(unread))

    def volume_exists(self, name: str, node: str | None = None) -> bool:
        """Whether node ``node`` holds the volume; any node when None."""
        if node is not None:
            return self.node_engine(node).volume_exists(name)
        return any(engine.volume_exists(name) for _, engine in self._engines())

    def create_volume(self, request: VolumeRequest) -> None:
        """Create the volume on the engine of ``request.node`` (the manager's when None), whether or not another
        node holds one of that name."""
        self.node_engine(request.node).create_volume(request)

    def remove_volume(self, name: str, node: str | None = None) -> None:
        """Remove the volume from node ``node`` (every node that holds it when None), waiting while a removed
        service's task still mounts it."""
        engines = [(node, self.node_engine(node))] if node is not None else self._engines()
        for _, engine in engines:
            _retry_while_in_use(lambda engine=engine: engine.remove_volume(name), f"volume {name}")

    def _volume_engine(self, volume: str) -> DockerEngine:
        """The engine of the node that holds ``volume``; NotFound when none does. When several do (a move that
        was interrupted), the node its order's services are placed on."""
        holders = [(node, engine) for node, engine in self._engines() if engine.volume_exists(volume)]
        if not holders:
            raise NotFound(f"no swarm node holds volume {volume}", public="an object on the container platform is missing")
        if len(holders) > 1:
            with translate_errors(f"inspect volume {volume}"):
                labels = holders[0][1].api.inspect_volume(volume).get("Labels") or {}
            pinned = self._placed_node({k: v for k, v in labels.items()
                                        if k in (DEPLOYMENT_LABEL, ORDER_LABEL)})
            for node, engine in holders:
                if node == pinned:
                    return engine
        return holders[0][1]

    def _placed_node(self, selector: dict[str, str]) -> str | None:
        """The node the services selected by ``selector`` are constrained to (``node.id==...``), if any."""
        if not selector:
            return None
        with translate_errors("list swarm services"):
            services = self.api.services(filters={"label": [f"{k}={v}" for k, v in selector.items()]})
        for service in services:
            pinned = _pinned_node((service.get("Spec") or {}).get("TaskTemplate") or {})
            if pinned is not None:
                return pinned
        return None

    def export_volume(self, volume: str, image: str, helper_name: str,
                      labels: dict[str, str], node: str | None = None) -> ContextManager[Readable]:
        """The volume's archive, read by a helper container on node ``node`` (None: the node that holds it)."""
        engine = self.node_engine(node) if node is not None else self._volume_engine(volume)
        return engine.export_volume(volume, image, helper_name, labels)

    def import_volume(self, volume: str, image: str, helper_name: str, labels: dict[str, str],
                      stream: Readable, node: str | None = None) -> int:
        """Fill the volume of node ``node`` (None: the node that holds it) through a helper container there."""
        engine = self.node_engine(node) if node is not None else self._volume_engine(volume)
        return engine.import_volume(volume, image, helper_name, labels, stream)

    # -- commands in the running task ------------------------------------------
    def exec_output(self, container_id: str, command: Sequence[str]) -> ContextManager[Readable]:
        node, task_container = self._task_container(container_id)
        return self.node_engine(node).exec_output(task_container, command)

    def exec_input(self, container_id: str, command: Sequence[str], stream: Readable | None = None, *,
                   environment: Mapping[str, str] | None = None) -> str:
        node, task_container = self._task_container(container_id)
        return self.node_engine(node).exec_input(task_container, command, stream, environment=environment)


def _on_nodes(engines: list[tuple[str, DockerEngine]], read) -> list[VolumeState]:
    """``read(engine)`` on each ``(node, engine)``, every volume it returns marked with its node."""
    found = []
    for node, engine in engines:
        for volume in read(engine):
            volume.node = node
            found.append(volume)
    return found


def node_tls(address: str, hostname: str, cert_path: str) -> tuple[str, str, str] | None:
    """The TLS configuration to reach the engine of swarm node ``hostname`` at ``address`` (its ``live.engine``).

    ``unix://`` (and ``ssh://``) need none. ``tcp://`` (or ``https://``) is refused without TLS: an engine's API is
    root on its machine (Docker docs, "Protect the Docker daemon socket"), so the bridge verifies the node's
    certificate against ``ca.pem`` and presents ``cert.pem``/``key.pem``, all in ``cert_path`` (Docker's
    ``DOCKER_CERT_PATH``; one CA per cluster): returns the paths ``(ca, cert, key)``. Raises :class:`~app.errors.EngineOperationError` naming the node
    and the missing files.
    """
    scheme = address.split("://", 1)[0].lower() if "://" in address else ""
    if scheme in ("unix", "ssh"):
        return None
    if scheme not in ("tcp", "https"):
        raise EngineOperationError(f"swarm node {hostname}: its {ENGINE_LABEL} label {address!r} is not unix://, "
                                   "ssh:// or tcp://<host>:<port>")
    folder = Path(cert_path) if cert_path else None
    files = {name: (folder / name if folder else None) for name in ("ca.pem", "cert.pem", "key.pem")}
    missing = [name for name, path in files.items() if path is None or not path.is_file()]
    if missing:
        where = f"in DOCKER_CERT_PATH ({folder})" if folder else "(DOCKER_CERT_PATH is not set)"
        raise EngineOperationError(
            f"swarm node {hostname}: its engine {address} is reached over TCP, which needs TLS: {', '.join(missing)} "
            f"missing {where}; see docs/SCALING.md, \"Access to every node's engine\"")
    return str(files["ca.pem"]), str(files["cert.pem"]), str(files["key.pem"])


def _pinned_node(template: dict[str, Any]) -> str | None:
    """The node id a task template's ``node.id==<id>`` placement constraint names, if it has one."""
    for constraint in (template.get("Placement") or {}).get("Constraints") or []:
        compact = constraint.replace(" ", "")
        if compact.startswith("node.id=="):
            return compact.split("==", 1)[1]
    return None


def _memory(template: dict[str, Any]) -> int:
    """A task template's memory reservation in bytes, else its memory limit, else 0."""
    resources = template.get("Resources") or {}
    return int((resources.get("Reservations") or {}).get("MemoryBytes")
               or (resources.get("Limits") or {}).get("MemoryBytes") or 0)


def _constraints(request: ContainerRequest) -> list[str]:
    return [f"node.id=={request.node}"] if request.node else []


def _service_kwargs(spec: dict[str, Any]) -> dict[str, Any]:
    """docker-py ``create_service``/``update_service`` keyword arguments of a ServiceSpec JSON."""
    return {"task_template": spec["TaskTemplate"], "name": spec["Name"], "labels": spec.get("Labels"),
            "mode": spec.get("Mode"), "endpoint_spec": spec.get("EndpointSpec")}


def _meant_to_run(task: dict[str, Any]) -> bool:
    """Whether swarm means the task to run (desired ``running``, or ``ready``: a restart waiting for its delay) and it
    has not ended."""
    return (task.get("DesiredState") in ("running", "ready")
            and (task.get("Status") or {}).get("State") in _LIVE_TASK_STATES)


def _newest_first(tasks: Iterable[dict]) -> list[dict]:
    return sorted(tasks, key=lambda t: ((t.get("Version") or {}).get("Index") or 0, t.get("CreatedAt") or ""),
                  reverse=True)


def _service_state(service: dict[str, Any], tasks: list[dict[str, Any]]) -> ContainerState:
    """One service as a container (see the module docstring): its state and health from its newest task.

    - No task should run (0 replicas): ``exited``, also while the manager still lists the last task running (it
      learns of the stop a few seconds after the container stopped; :meth:`SwarmEngine.stop_container` waits for
      the container itself).
    - No task should run although the service has a replica: swarm is about to make one (scaled up an instant
      ago; restart condition ``any``: swarm replaces every task that ends) -> ``created``; else swarm makes none
      (the last one ended and is not restarted: restart condition ``none``, ``on-failure`` after an exit 0 or past
      its attempts): the newest task as it ended (``complete`` -> ``exited`` 0, ``failed``/``shutdown`` ->
      ``exited`` with its error, ``rejected`` -> ``dead``; one still stopping -> ``created``). So no
      ``created`` lasts: a deploy waits while a service reads so (:meth:`SwarmEngine.start_container` makes an
      ended service a new task, and returns once swarm has made it).
    - The newest task that should run was made from another spec (an update swarm has not acted on yet):
      ``created``.
    - The task before it (same spec) failed: ``restarting`` with its error (health ``unhealthy`` when swarm killed
      it for that), since swarm replaces a failed task at once. A pending task swarm cannot place (its ``Err``:
      "no suitable node ..."): ``dead`` with that error.
    - That task: pending states -> ``created``; ``starting`` -> ``running`` with health ``starting`` when the
      service has a healthcheck, else ``created``; ``running`` -> ``running`` (health ``healthy`` with a
      healthcheck: swarm reports a task running only once it is healthy); ``complete`` -> ``exited`` 0;
      ``failed`` -> ``restarting`` (swarm starts another task, unless its restart condition is ``none``:
      ``exited``), health ``unhealthy`` when swarm killed it for that; ``rejected`` -> ``dead`` (the error
      says why: an image missing on the node, a mount that cannot be made).
    """
    spec = service.get("Spec") or {}
    labels = spec.get("Labels") or {}
    template = spec.get("TaskTemplate") or {}
    checked = ((template.get("ContainerSpec") or {}).get("Healthcheck") or {}).get("Test") not in (None, [], ["NONE"])
    replicas = ((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas", 1)
    base = dict(id=service["ID"], name=spec.get("Name", service["ID"]), labels=labels)
    ordered = _newest_first(tasks)
    if replicas == 0:  # told to stop: stopped for every decision (stop_container waits for the container itself)
        node = (ordered[0] if ordered else {}).get("NodeID")
        exit_code = _exit_code(ordered[0]) if ordered else None
        return ContainerState(**base, state="exited", exit_code=exit_code, node=node)
    wanted = [t for t in ordered if t.get("DesiredState") in ("running", "ready")]
    task = wanted[0] if wanted else None
    if task is None:
        return _ended_state(base, ordered, checked, (template.get("RestartPolicy") or {}).get("Condition", "any"))
    status = task.get("Status") or {}
    state = status.get("State")
    node = task.get("NodeID")
    error = status.get("Err") or None
    task_hash = (((task.get("Spec") or {}).get("ContainerSpec") or {}).get("Labels") or {}).get(CONFIG_HASH_LABEL)
    if task_hash != labels.get(CONFIG_HASH_LABEL):
        return ContainerState(**base, state="created", node=node)
    if state in _PENDING_TASK_STATES | {"starting"}:
        # Swarm replaces a failed task at once (its desired state becomes shutdown): the failure shows on the
        # task before this one, of the same spec.
        failed = next((t for t in ordered if t is not task and t.get("DesiredState") == "shutdown"
                       and (t.get("Status") or {}).get("State") in ("failed", "rejected")
                       and (((t.get("Spec") or {}).get("ContainerSpec") or {}).get("Labels") or {}).get(
                           CONFIG_HASH_LABEL) == task_hash), None)
        if failed is not None:
            reason = (failed.get("Status") or {}).get("Err") or (failed.get("Status") or {}).get("Message")
            return ContainerState(**base, state="restarting", health="unhealthy" if "unhealthy" in (reason or "")
                                  else ("starting" if checked else None), exit_code=_exit_code(failed), node=node,
                                  error=reason)
        if state in _PENDING_TASK_STATES and error:  # "no suitable node (...)": swarm cannot place it
            return ContainerState(**base, state="dead", node=node, error=error)
    if state in _PENDING_TASK_STATES:
        return ContainerState(**base, state="created", node=node)
    if state == "starting":
        return ContainerState(**base, state="running" if checked else "created", health="starting" if checked else None,
                              node=node)
    if state == "running":
        return ContainerState(**base, state="running", health="healthy" if checked else None, node=node,
                              task_container=(status.get("ContainerStatus") or {}).get("ContainerID") or None)
    if state == "complete":
        return ContainerState(**base, state="exited", exit_code=_exit_code(task) or 0, node=node)
    if state == "rejected":
        return ContainerState(**base, state="dead", node=node, error=error or status.get("Message"))
    unhealthy = "unhealthy" in (error or "")
    condition = (template.get("RestartPolicy") or {}).get("Condition", "any")
    return ContainerState(**base, state="exited" if condition == "none" else "restarting",
                          health="unhealthy" if unhealthy else ("starting" if checked else None),
                          exit_code=_exit_code(task), node=node, error=error)


#: Task states of a task that has ended (swarmkit ``api.TaskState`` after ``running``).
_ENDED_TASK_STATES = frozenset({"complete", "shutdown", "failed", "rejected", "orphaned", "remove"})


def _ended_state(base: dict[str, Any], ordered: list[dict[str, Any]], checked: bool, condition: str) -> ContainerState:
    """A service with a replica and no task meant to run (:func:`_service_state`), from its tasks newest first and
    its restart condition."""
    if not ordered or condition == "any":  # created or scaled up an instant ago: swarm makes the task
        return ContainerState(**base, state="created")
    last = ordered[0]
    status = last.get("Status") or {}
    state, node = status.get("State"), last.get("NodeID")
    error = status.get("Err") or None
    if state not in _ENDED_TASK_STATES:  # still being stopped (scaled down and up again, an update): in between
        return ContainerState(**base, state="created", node=node)
    if state == "rejected":
        return ContainerState(**base, state="dead", node=node, error=error or status.get("Message"))
    exit_code = _exit_code(last)
    return ContainerState(**base, state="exited", exit_code=exit_code if exit_code is not None or state != "complete"
                          else 0, node=node, error=error if state == "failed" else None,
                          health="unhealthy" if checked and "unhealthy" in (error or "") else None)


_TASK_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def _task_time(task: dict[str, Any]) -> float | None:
    """The time of the task's status (``Status.Timestamp``, RFC 3339 with nanoseconds) as seconds since the epoch."""
    match = _TASK_TIME.match((task.get("Status") or {}).get("Timestamp") or "")
    if not match:
        return None
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    when = dt.datetime.fromisoformat(match.group(1) + zone)
    return when.timestamp() + float("0" + (match.group(2) or ".0"))


def _exit_code(task: dict[str, Any]) -> int | None:
    code = ((task.get("Status") or {}).get("ContainerStatus") or {}).get("ExitCode")
    return int(code) if code is not None else None


def _retry_while_in_use(remove, what: str) -> None:
    """Run ``remove()`` until the engine stops refusing it because removed services still use ``what``."""
    deadline = time.monotonic() + RELEASE_TIMEOUT
    while True:
        try:
            remove()
            return
        except LiveError as exc:
            text = str(exc)
            busy = "in use" in text or "active endpoints" in text
            if not busy or time.monotonic() > deadline:
                raise
            log.debug("%s is still in use by a removed service's task; waiting", what)
        time.sleep(0.5)
