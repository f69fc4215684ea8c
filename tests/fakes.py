"""An in-memory container engine for unit tests: the :class:`~app.stacks.engine.Engine` port without Docker.

:class:`FakeEngine` keeps containers, networks and volumes in dictionaries and
answers like the engine does where the deployer depends on it:

- objects are listed by label, as ``docker ps --filter label=...`` lists them;
- ``create_container`` builds the request's JSON with the production
  :func:`~app.stacks.docker_engine.container_payload` (so docker-py's checks run) and
  refuses what the engine refuses: a name already in use, an unknown network,
  an image that is not present;
- a started container with a healthcheck (its own or its image's) becomes
  healthy at once, unless :attr:`FakeEngine.health` or
  :attr:`FakeEngine.exit_codes` say otherwise for its service; a container
  with a healthcheck that exits is unhealthy, as Docker reports it;
- host ports are allocated at start and a port already bound by a running
  container (or by another process: :attr:`FakeEngine.busy_ports`) is refused
  with the engine's message, as :class:`~app.errors.HostPortInUse`;
- ``rename_container`` refuses a name in use, as ``docker rename`` does;
- volumes are per swarm node when requests name one (:attr:`FakeEngine.volumes` keys ``<name>@<node>``, see
  :func:`volume_key`): a volume of one name may be on two nodes while an order moves; containers record their
  request's node (``ContainerState.node``), and :attr:`FakeEngine.swarm_nodes` is what ``nodes()`` answers;
- ``export_volume`` streams a tar archive of the volume's files and ``import_volume`` replaces the
  volume's files with a tar stream's regular files (a missing helper image fails, as on the engine);
- every change of a container is recorded as the engine's event (:attr:`FakeEngine.event_log`, Docker's actions:
  ``create``, ``start``, ``health_status: <health>``, ``kill``, ``die`` with ``exitCode``, ``stop``, ``pause``,
  ``unpause``, ``rename``, ``destroy``), on a fake engine clock (:attr:`FakeEngine.now`); ``events()`` replays them
  from ``since`` and follows new ones until closed; :meth:`FakeEngine.crash` is a process dying by itself,
  :meth:`FakeEngine.break_events` the engine restarting (every open stream raises EngineUnavailable);
- ``exec_output`` and ``exec_input`` run a command in a running container through
  :attr:`FakeEngine.exec_handlers` (none registered: exit code 127, ``command not found``), and raise
  :class:`~app.errors.CommandFailed` for a non-zero exit code as the engine adapter does.

:attr:`FakeEngine.failures` makes one call fail (or the worker die there, :class:`Killed`) for the
failure paths, :attr:`FakeEngine.stream_failures` one stream break midway. Errors are Live's, with the texts ``app.stacks.docker_engine.translate_errors``
gives the engine's answers. Everything the deployer sent is kept
(:attr:`FakeContainer.payload`, :attr:`FakeEngine.calls`) for assertions.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import shlex
import tarfile
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any, Callable, ContextManager, Iterable, Iterator, Mapping, Sequence

from app.errors import (
    ArchiveError,
    CommandFailed,
    EngineOperationError,
    EngineUnavailable,
    HostPortInUse,
    ImageMissing,
    IngressUnavailable,
    NotFound,
)
from app.ingress.routes import Route, RouteTable
from app.stacks.docker_engine import ENGINE_API_VERSION, container_payload, network_payload, volume_payload
from app.stacks.engine import (
    OUTPUT_TAIL_BYTES,
    ContainerRequest,
    ContainerState,
    Engine,
    EngineEvent,
    NetworkRequest,
    NetworkState,
    Readable,
    VolumeRequest,
    VolumeState,
    VolumeUsage,
    log_lines,
)

#: What an exec handler does: ``fn(command, stdin, container) -> (exit code, stdout, stderr)``; ``stdin`` is
#: ``None`` for :meth:`FakeEngine.exec_output` and for :meth:`FakeEngine.exec_input` without a stream.
ExecHandler = Callable[[tuple[str, ...], "bytes | None", "FakeContainer"], tuple[int, bytes, bytes]]
#: Bytes a fake stream hands out at a time (a stream failure strikes after the first piece).
FAKE_CHUNK_BYTES = 4096

FIRST_EPHEMERAL_PORT = 32768  # where the engine starts picking host ports for HostPort ""


@dataclass
class FakeContainer:
    id: str
    name: str
    image: str
    payload: dict[str, Any]  # the JSON body of POST /containers/create
    networks: dict[str, list[str]]  # network -> aliases
    volumes: list[str]  # named volumes mounted
    state: str = "created"
    health: str | None = None
    exit_code: int | None = None
    host_ports: dict[str, int] = field(default_factory=dict)
    node: str | None = None  # the request's swarm node (where a swarm would run it)

    @property
    def labels(self) -> dict[str, str]:
        return self.payload.get("Labels") or {}

    @property
    def service(self) -> str | None:
        return self.labels.get("live.service")

    def snapshot(self, listed: bool = False) -> ContainerState:
        """As inspect reports it; ``listed``: as ``docker ps`` does, which shows health only while running."""
        health = self.health if not listed or self.state == "running" else None
        return ContainerState(id=self.id, name=self.name, labels=dict(self.labels), state=self.state,
                              health=health, exit_code=self.exit_code, host_ports=dict(self.host_ports),
                              node=self.node)

    def exit(self, code: int) -> None:
        """The main process ended: the engine marks a container with a healthcheck unhealthy."""
        self.state, self.exit_code, self.host_ports = "exited", code, {}
        if self.health is not None:
            self.health = "unhealthy"


@dataclass
class FakeVolume:
    name: str
    labels: dict[str, str]
    files: dict[str, bytes] = field(default_factory=dict)  # path inside the volume -> content
    node: str | None = None  # the swarm node whose engine holds it (None: the one engine)


def volume_key(name: str, node: str | None = None) -> str:
    """The key of :attr:`FakeEngine.volumes`: the name on one engine (node None), ``<name>@<node>`` on a swarm
    node (a volume of one name may be on several nodes while an order moves)."""
    return name if node is None else f"{name}@{node}"


class FakeEngine(Engine):
    """A container engine in memory; see the module docstring for what it models.

    ``images`` are the references present locally; ``healthchecked_images`` also have a HEALTHCHECK of their
    own. ``image_id`` pulls a missing reference, as ``DockerEngine.image_id`` does, when ``pullable(ref)`` says a
    registry has it (none does by default); pulled images have a healthcheck when ``pulled_healthcheck``.
    """

    def __init__(self, images: Iterable[str] = (), *, healthchecked_images: Iterable[str] = (),
                 pullable: Callable[[str], bool] = lambda ref: False, pulled_healthcheck: bool = False,
                 api_version: str = ENGINE_API_VERSION):
        self.api_version = api_version
        self.pullable, self.pulled_healthcheck = pullable, pulled_healthcheck
        self.images: dict[str, str] = {}
        self.healthchecked_images: set[str] = set()
        for ref in images:
            self.add_image(ref)
        for ref in healthchecked_images:
            self.add_image(ref, healthcheck=True)
        self.containers: dict[str, FakeContainer] = {}
        self.networks: dict[str, NetworkState] = {}
        #: :func:`volume_key` (the name, or ``<name>@<node>`` for a swarm node's) -> volume.
        self.volumes: dict[str, FakeVolume] = {}
        #: service (or container name) -> health reached once started: "healthy" (default), "unhealthy", "starting".
        self.health: dict[str, str] = {}
        #: service (or container name) -> exit code: the container exits right after it starts.
        self.exit_codes: dict[str, int] = {}
        #: container id, name or service -> what container_logs and stream_logs read (lines).
        self.logs: dict[str, str] = {}
        #: the same keys -> when each line of :attr:`logs` was written (seconds since the epoch, one per line, in
        #: order): stream_logs' ``since`` compares them; lines without one count as written before any ``since``.
        self.log_times: dict[str, list[float]] = {}
        #: container names or services whose stream_logs, after its lines, waits for more until closed (a followed
        #: stream; an engine that hangs): ``close()`` from another thread ends it. Every such stream opened is in
        #: :attr:`open_log_streams` until closed.
        self.hung_logs: set[str] = set()
        self.open_log_streams: list[_HungLogStream] = []
        #: container id -> (memory bytes, CPU seconds) for container_usage.
        self.usage: dict[str, tuple[float, float]] = {}
        #: Host ports another process listens on: a container publishing one does not start.
        self.busy_ports: set[int] = set()
        #: Every state-changing call, in order: ("create_container", name), ("start_container", name), ...
        self.calls: list[tuple[str, str]] = []
        self.reachable = True
        # Swarm node ids volume_usage() reports as unread (a node whose engine is down).
        self.unread_nodes: set[str] = set()
        #: (call, container name or service) -> exception the call raises once, before it changes anything; calls
        #: are create_container, connect_container (after the container is made, as its other networks are
        #: connected), start_container, stop_container, rename_container and remove_container, exec_output and
        #: exec_input; and (call, volume) for export_volume and import_volume, ("remove_volume",
        #: :func:`volume_key`) for remove_volume. A BaseException
        #: that is no Exception (:class:`Killed`) passes every ``except Exception``: the worker died there.
        self.failures: dict[tuple[str, str], BaseException] = {}
        #: (call, volume or container name or service) -> exception raised once midway: export_volume's and
        #: exec_output's streams raise it from read() after their first piece; import_volume after the volume
        #: was emptied and the first piece read (the volume is left empty); exec_input after the first piece of
        #: input was read (the command is not run).
        self.stream_failures: dict[tuple[str, str], BaseException] = {}
        #: container name or service -> what a command run there does (:data:`ExecHandler`).
        self.exec_handlers: dict[str, ExecHandler] = {}
        self.exec_environments: list[tuple[str, tuple[str, ...], dict[str, str]]] = []
        #: Every command run: (container name, command, stdin or None).
        self.execs: list[tuple[str, tuple[str, ...], bytes | None]] = []
        self.api_calls = 0
        #: What nodes() answers: empty models one engine; NodeState entries model a swarm's nodes for placement.
        self.swarm_nodes: list = []
        #: container or volume name -> the request's node (where a swarm would place it).
        self.placements: dict[str, str | None] = {}
        self._lock = threading.RLock()  # the deployer converges services in parallel threads
        #: Every container event, oldest first (see :meth:`events`); ``now`` is the engine clock (seconds), moved
        #: 1 ms by each event.
        self.event_log: list[EngineEvent] = []
        self.now = 1_700_000_000.0
        self._events_changed = threading.Condition(self._lock)
        self._stream_generation = 0  # break_events() moves it: streams opened before it break

    # -- test helpers -------------------------------------------------------
    def add_image(self, ref: str, healthcheck: bool = False) -> str:
        """Make ``ref`` present locally; returns its id (stable for a reference)."""
        image_id = "sha256:" + hashlib.sha256(ref.encode()).hexdigest()
        self.images[ref] = image_id
        if healthcheck:
            self.healthchecked_images.add(ref)
        return image_id

    def container(self, name: str) -> FakeContainer:
        """The container named ``name`` (KeyError if there is none)."""
        return next(c for c in self.containers.values() if c.name == name)

    def write_file(self, volume: str, path: str, data: bytes, node: str | None = None) -> None:
        self.volumes[volume_key(volume, node)].files[path] = data

    def volume(self, name: str, node: str | None = None) -> FakeVolume:
        """The volume ``name`` of swarm node ``node`` (None: of the one engine); KeyError if there is none."""
        return self.volumes[volume_key(name, node)]

    def calls_of(self, kind: str) -> list[str]:
        return [name for call, name in self.calls if call == kind]

    def record(self, container: FakeContainer, action: str, **attributes: str) -> EngineEvent:
        """Record a container event as the engine emits it (labels and name in its attributes), waking streams."""
        with self._lock:
            self.now = round(self.now + 0.001, 6)
            merged = {**container.labels, "name": container.name, **attributes}
            event = EngineEvent(time=self.now, action=action, container_id=container.id, labels=dict(merged),
                                attributes=merged)
            self.event_log.append(event)
            self._events_changed.notify_all()
            return event

    def crash(self, container_id: str, code: int = 1) -> None:
        """The container's process ends by itself (no kill): ``die`` with ``code``, as a crash looks on the engine."""
        with self._lock:
            container = self._find(container_id, "crash")
            container.exit(code)
            self.record(container, "die", exitCode=str(code))

    def break_events(self) -> None:
        """The engine restarts: every event stream open now raises EngineUnavailable (new ones work)."""
        with self._lock:
            self._stream_generation += 1
            self._events_changed.notify_all()

    def events(self, labels: dict[str, str], since: float | None = None) -> ContextManager[Iterator[EngineEvent]]:
        """The recorded events of containers carrying ``labels`` from ``since`` (inclusive; None: only new ones),
        then new ones as they happen, until the context exits or :meth:`break_events` (a :class:`FakeEventStream`)."""
        return self._events(labels, since)

    @contextlib.contextmanager
    def _events(self, labels: dict[str, str], since: float | None) -> Iterator[Iterator[EngineEvent]]:
        self._call()
        with self._lock:
            position = len(self.event_log) if since is None else next(
                (i for i, e in enumerate(self.event_log) if e.time >= since), len(self.event_log))
            stream = FakeEventStream(self, labels, position, self._stream_generation)
        try:
            yield stream
        finally:
            stream.closed = True
            with self._lock:
                self._events_changed.notify_all()

    # -- engine -------------------------------------------------------------
    def ping(self) -> None:
        self._call()

    def image_id(self, ref: str) -> str:
        self._call()
        with self._lock:
            if ref not in self.images:
                if not self.pullable(ref):
                    raise ImageMissing(f"image {ref} is not available locally and could not be pulled: "
                                       f"pull access denied for {ref}")
                self.add_image(ref, healthcheck=self.pulled_healthcheck)
                self.calls.append(("pull", ref))
            return self.images[ref]

    def list_containers(self, labels: dict[str, str]) -> list[ContainerState]:
        self._call()
        with self._lock:
            return [c.snapshot(listed=True) for c in self.containers.values() if _matches(c.labels, labels)]

    def inspect_container(self, container_id: str) -> ContainerState:
        self._call()
        with self._lock:
            return self._find(container_id, f"inspect container {container_id[:12]}").snapshot()

    def nodes(self):
        self._call()
        return list(self.swarm_nodes)

    def create_container(self, request: ContainerRequest) -> str:
        self._call()
        self.placements[request.name] = request.node
        payload = container_payload(request, self.api_version)
        action = f"create container {request.name}"
        with self._lock:
            self._fail("create_container", request.name, request.labels.get("live.service"))
            for other in self.containers.values():
                if other.name == request.name:
                    raise EngineOperationError(
                        f'{action}: Conflict. The container name "/{request.name}" is already in use by container '
                        f'"{other.id}". You have to remove (or rename) that container to be able to reuse that name.')
            if payload["Image"] not in self.images:
                raise ImageMissing(f"{action}: image not found: No such image: {payload['Image']}")
            endpoints = (payload.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
            for network in endpoints:
                if network not in self.networks:
                    raise NotFound(f"{action}: network {network} not found")
            volumes = [volume_key(bind.split(":")[0], request.node)
                       for bind in (payload["HostConfig"].get("Binds") or [])]
            for key in volumes:  # the engine creates a named volume that does not exist, without labels
                self.volumes.setdefault(key, FakeVolume(key.split("@")[0], {}, node=request.node))
            container = FakeContainer(
                id=uuid.uuid4().hex + uuid.uuid4().hex, name=request.name, image=payload["Image"], payload=payload,
                networks={name: list(e.get("Aliases") or []) for name, e in endpoints.items()}, volumes=volumes,
                node=request.node,
            )
            self.containers[container.id] = container
            self.record(container, "create")
            self.calls.append(("create_container", request.name))
            for network, aliases in list(request.networks.items())[1:]:
                self._fail("connect_container", request.name, container.service)
                if network not in self.networks:
                    raise NotFound(f"connect {request.name} to {network}: network {network} not found")
                container.networks[network] = list(aliases)
        return container.id

    def start_container(self, container_id: str) -> None:
        self._call()
        action = f"start container {container_id[:12]}"
        with self._lock:
            container = self._find(container_id, action)
            self._fail("start_container", container.name, container.service)
            if container.state == "paused":
                raise EngineOperationError(f"{action}: cannot start a paused container, try unpause instead")
            if container.state == "running":
                return
            container.host_ports = self._bind_ports(container, action)
            self.calls.append(("start_container", container.name))
            key = container.service or container.name
            container.state, container.exit_code = "running", None
            container.health = self._health_after_start(container, key)
            self.record(container, "start")
            if container.health is not None and container.health != "starting":
                self.record(container, f"health_status: {container.health}")
            if key in self.exit_codes:
                container.exit(self.exit_codes[key])
                self.record(container, "die", exitCode=str(self.exit_codes[key]))

    def stop_container(self, container_id: str, timeout: int) -> None:
        self._call()
        with self._lock:
            container = self._find(container_id, f"stop container {container_id[:12]}")
            self._fail("stop_container", container.name, container.service)
            if container.state in ("running", "paused", "restarting"):
                self.record(container, "kill", signal="15")
                container.exit(0)
                self.record(container, "die", exitCode="0")
                self.record(container, "stop")
                self.calls.append(("stop_container", container.name))

    def unpause_container(self, container_id: str) -> None:
        self._call()
        action = f"unpause container {container_id[:12]}"
        with self._lock:
            container = self._find(container_id, action)
            if container.state != "paused":
                raise EngineOperationError(f"{action}: Container {container.id} is not paused")
            container.state = "running"
            self.record(container, "unpause")
            self.calls.append(("unpause_container", container.name))

    def pause_container(self, container_id: str) -> None:
        """Not used by the deployer; lets a test put a container in the paused state."""
        with self._lock:
            container = self._find(container_id, "pause")
            container.state = "paused"
            self.record(container, "pause")

    def rename_container(self, container_id: str, name: str) -> None:
        self._call()
        action = f"rename container {container_id[:12]} to {name}"
        with self._lock:
            container = self._find(container_id, action)
            self._fail("rename_container", container.name, container.service)
            other = next((c for c in self.containers.values() if c.name == name and c is not container), None)
            if other is not None:
                raise EngineOperationError(f'{action}: Error when allocating new name: Conflict. The container name '
                                           f'"/{name}" is already in use by container "{other.id}". You have to '
                                           'remove (or rename) that container to be able to reuse that name.')
            self.calls.append(("rename_container", f"{container.name} -> {name}"))
            container.name = name
            self.record(container, "rename")

    def remove_container(self, container_id: str) -> None:
        self._call()
        with self._lock:
            try:
                container = self._find(container_id, "remove")
            except NotFound:
                return  # removal is idempotent, as in DockerEngine
            self._fail("remove_container", container.name, container.service)
            if container.state in ("running", "paused", "restarting"):
                self.record(container, "kill", signal="9")
                container.exit(137)
                self.record(container, "die", exitCode="137")
            del self.containers[container.id]
            self.record(container, "destroy")
            self.calls.append(("remove_container", container.name))

    def list_networks(self, labels: dict[str, str]) -> list[NetworkState]:
        self._call()
        with self._lock:
            return [NetworkState(n.name, dict(n.labels)) for n in self.networks.values() if _matches(n.labels, labels)]

    def create_network(self, request: NetworkRequest) -> None:
        self._call()
        payload = network_payload(request, self.api_version)
        with self._lock:
            if request.name in self.networks:
                raise EngineOperationError(f"create network {request.name}: network with name {request.name} "
                                            "already exists")
            self.networks[request.name] = NetworkState(payload["Name"], dict(payload["Labels"]))
            self.calls.append(("create_network", request.name))

    def remove_network(self, name: str) -> None:
        self._call()
        with self._lock:
            if name not in self.networks:
                return
            if any(name in c.networks for c in self.containers.values()):
                raise EngineOperationError(f"remove network {name}: error while removing network: network {name} "
                                            "has active endpoints")
            del self.networks[name]
            self.calls.append(("remove_network", name))

    def list_volumes(self, labels: dict[str, str], node: str | None = None) -> list[VolumeState]:
        self._call()
        with self._lock:
            return [VolumeState(v.name, dict(v.labels), node=v.node) for v in self.volumes.values()
                    if _matches(v.labels, labels) and (node is None or v.node in (None, node))]

    def volume_exists(self, name: str, node: str | None = None) -> bool:
        self._call()
        with self._lock:
            if node is not None:
                return volume_key(name, node) in self.volumes
            return any(v.name == name for v in self.volumes.values())

    def create_volume(self, request: VolumeRequest) -> None:
        self._call()
        self.placements[request.name] = request.node
        payload = volume_payload(request, self.api_version)
        with self._lock:
            key = volume_key(request.name, request.node)
            if key not in self.volumes:  # the engine answers with the existing volume, unchanged
                self.volumes[key] = FakeVolume(payload["Name"], dict(payload["Labels"]), node=request.node)
                self.calls.append(("create_volume", request.name))

    def remove_volume(self, name: str, node: str | None = None) -> None:
        """Remove the volume from node ``node`` (every node holding it when None)."""
        self._call()
        with self._lock:
            keys = ([volume_key(name, node)] if node is not None
                    else [key for key, v in self.volumes.items() if v.name == name])
            for key in keys:
                if key not in self.volumes:
                    continue
                self._fail_once(("remove_volume", key))
                users = [c.id[:12] for c in self.containers.values() if key in c.volumes]
                if users:
                    raise EngineOperationError(f"remove volume {name}: remove {name}: volume is in use - "
                                                f"[{', '.join(users)}]")
                del self.volumes[key]
                self.calls.append(("remove_volume", key))

    def volume_usage(self, labels: dict[str, str]) -> VolumeUsage:
        self._call()
        with self._lock:
            return VolumeUsage([VolumeState(v.name, dict(v.labels), sum(len(d) for d in v.files.values()), node=v.node)
                                for v in self.volumes.values() if _matches(v.labels, labels)],
                               frozenset(self.unread_nodes))

    def container_usage(self, container_id: str) -> tuple[float, float]:
        self._call()
        with self._lock:
            container = self._find(container_id, f"read stats of {container_id[:12]}")
            return self.usage.get(container.id, (0.0, 0.0))

    def container_logs(self, container_id: str, tail: int) -> str:
        """The last ``tail`` lines of :attr:`logs` for the container (by id; by name or service too)."""
        self._call()
        with self._lock:
            container = self._find(container_id, f"read the logs of {container_id[:12]}")
            text = self.logs.get(container.id) or self.logs.get(container.name) or self.logs.get(container.service or "", "")
        lines = text.splitlines(keepends=True)
        return "".join(lines[-tail:]) if tail > 0 else ""

    def stream_logs(self, container_id: str, *, tail: int, since: datetime | None = None,
                    follow: bool = False) -> Iterator[str]:
        """The lines of :attr:`logs` for the container (by id; by name or service too) written from ``since``
        (:attr:`log_times`), the last ``tail`` of them; ``follow`` ends at the end of what is recorded. A
        :attr:`stream_failures` entry ``("stream_logs", name or service)`` is raised after the first line."""
        self._call()
        with self._lock:
            container = self._find(container_id, f"read the logs of {container_id[:12]}")
            key = next((k for k in (container.id, container.name, container.service or "") if k in self.logs), "")
            lines = self.logs.get(key, "").splitlines()
            times = self.log_times.get(key, [])
            failure = next((self.stream_failures.pop(k) for k in (("stream_logs", container.name),
                                                                   ("stream_logs", container.service))
                            if k in self.stream_failures), None)
        if since is not None:
            lines = [line for i, line in enumerate(lines) if i < len(times) and times[i] >= since.timestamp()]
        lines = lines[-tail:] if tail > 0 else []

        if container.name in self.hung_logs or container.service in self.hung_logs:
            stream = _HungLogStream(lines, self.open_log_streams)
            with self._lock:
                self.open_log_streams.append(stream)
            return stream

        def read() -> Iterator[str]:
            for line in log_lines(line.encode() + b"\n" for line in lines):  # long lines in pieces, as an engine
                yield line
                if failure is not None:
                    raise failure
        return read()

    def image_present(self, ref: str) -> bool:
        """Whether ``ref`` is present locally (never pulls), as ``DockerEngine.image_present``."""
        self._call()
        with self._lock:
            return ref in self.images

    def export_volume(self, volume: str, image: str, helper_name: str,
                      labels: dict[str, str], node: str | None = None) -> ContextManager[Readable]:
        """A tar stream of the volume's files (``.`` then ``./<path>`` members, mode 0644), through a helper
        container that is removed when the context exits; :attr:`stream_failures` breaks it midway. ``node``:
        the swarm node's volume (None: the one engine's, else the first node holding one of that name)."""
        return self._exported(volume, image, helper_name, labels, node)

    def _volume_key_of(self, volume: str, node: str | None) -> str | None:
        """The key of the volume an export or import reads or fills (None: there is none)."""
        if node is not None:
            key = volume_key(volume, node)
            return key if key in self.volumes else None
        if volume in self.volumes:
            return volume
        return next((key for key, v in self.volumes.items() if v.name == volume), None)

    @contextlib.contextmanager
    def _exported(self, volume: str, image: str, helper_name: str, labels: dict[str, str],
                  node: str | None = None) -> Iterator[Readable]:
        self._call()
        with self._lock:
            key = self._volume_key_of(volume, node)
            if key is None:
                raise NotFound(f"read volume {volume}: inspect volume {volume}: get {volume}: no such volume")
            self._fail_once(("export_volume", volume))
            files = dict(self.volumes[key].files)
        helper = self._add_helper(key, image, helper_name, labels)
        try:
            with self._lock:
                failure = self.stream_failures.pop(("export_volume", volume), None)
                self.calls.append(("export_volume", volume))
            yield _FakeStream(tar_of(files), failure)
        finally:
            with self._lock:
                self.containers.pop(helper.id, None)

    def import_volume(self, volume: str, image: str, helper_name: str, labels: dict[str, str],
                      stream: Readable, node: str | None = None) -> int:
        """Replace the volume's files with the regular files of the tar archive ``stream`` holds; the bytes read.

        A stream that is no tar archive leaves the volume as it was (:class:`ArchiveError`); errors of
        ``stream.read`` pass unchanged; :attr:`stream_failures` fails it after emptying the volume.
        """
        self._call()
        action = f"restore volume {volume}"
        with self._lock:
            key = self._volume_key_of(volume, node)
            if key is None:
                raise NotFound(f"{action}: inspect volume {volume}: get {volume}: no such volume")
            self._fail_once(("import_volume", volume))
        helper = self._add_helper(key, image, helper_name, labels)
        try:
            data = bytearray()
            while True:
                piece = stream.read(FAKE_CHUNK_BYTES)
                if not piece:
                    break
                data += piece
                with self._lock:
                    failure = self.stream_failures.pop(("import_volume", volume), None)
                if failure is not None:
                    self.volumes[key].files = {}
                    raise failure
            try:
                files = files_of(bytes(data))
            except (tarfile.TarError, EOFError) as exc:
                raise ArchiveError(f"{action}: the stream is not a tar archive ({exc}); the volume was left as it was",
                                   volume=volume) from exc
            with self._lock:
                self.volumes[key].files = files
                self.calls.append(("import_volume", volume))
            return len(data)
        finally:
            with self._lock:
                self.containers.pop(helper.id, None)

    def exec_output(self, container_id: str, command: Sequence[str]) -> ContextManager[Readable]:
        """The handler's stdout as a stream; its exit code checked at the end of it (:class:`CommandFailed`)."""
        return self._exec_output(container_id, tuple(command))

    @contextlib.contextmanager
    def _exec_output(self, container_id: str, command: tuple[str, ...]) -> Iterator[Readable]:
        container, code, stdout, stderr = self._exec(container_id, command, None, "exec_output")
        with self._lock:
            failure = self._stream_failure("exec_output", container)

        def check() -> None:
            if code != 0:
                raise _command_failed(container, command, code, stderr)

        yield _FakeStream(stdout, failure, at_end=check)

    def exec_input(self, container_id: str, command: Sequence[str], stream: Readable | None = None, *,
                   environment: Mapping[str, str] | None = None) -> str:
        """Run the handler with everything ``stream`` holds as its stdin; the last 4 KiB of stdout + stderr.
        ``environment`` is recorded in :attr:`exec_environments` (container name, command, environment) before the
        handler runs."""
        with self._lock:
            self.exec_environments.append((self._find(container_id, "exec").name, tuple(command), dict(environment or {})))
        command = tuple(command)
        container = self._running(container_id, command, "exec_input")
        stdin = None
        if stream is not None:
            stdin = bytearray()
            while True:
                piece = stream.read(FAKE_CHUNK_BYTES)  # its errors propagate unchanged
                if not piece:
                    break
                stdin += piece
                with self._lock:
                    failure = self._stream_failure("exec_input", container)
                if failure is not None:
                    raise failure
            stdin = bytes(stdin)
        container, code, stdout, stderr = self._exec(container.id, command, stdin, None)
        output = (stdout + stderr)[-OUTPUT_TAIL_BYTES:]
        if code != 0:
            raise _command_failed(container, command, code, output)
        return output.decode("utf-8", "replace")

    # -- internals ----------------------------------------------------------
    def _add_helper(self, volume: str, image: str, helper_name: str, labels: dict[str, str]) -> FakeContainer:
        """The helper container of a volume's export or import (a missing image fails, as on the engine)."""
        self.remove_container(helper_name)
        if image not in self.images:
            raise ImageMissing(f"create archive helper for volume {volume}: image not found: No such image: {image}")
        with self._lock:
            helper = FakeContainer(id=uuid.uuid4().hex + uuid.uuid4().hex, name=helper_name, image=image,
                                   payload={"Image": image, "Labels": dict(labels), "HostConfig": {}}, networks={},
                                   volumes=[volume])
            self.containers[helper.id] = helper
        return helper

    def _running(self, container_id: str, command: tuple[str, ...], call: str) -> FakeContainer:
        self._call()
        action = f"run {shlex.join(command)} in container {container_id[:12]}"
        with self._lock:
            container = self._find(container_id, action)
            self._fail(call, container.name, container.service)
            if container.state == "paused":
                raise EngineOperationError(f"{action}: Container {container.id} is paused, unpause the container "
                                           "before exec")
            if container.state != "running":
                raise EngineOperationError(f"{action}: Container {container.id} is not running")
        return container

    def _exec(self, container_id: str, command: tuple[str, ...], stdin: bytes | None,
              call: str | None) -> tuple[FakeContainer, int, bytes, bytes]:
        if call is not None:
            container = self._running(container_id, command, call)
        else:
            container = self._find(container_id, "exec")
        with self._lock:
            handler = self.exec_handlers.get(container.name) or self.exec_handlers.get(container.service or "")
            self.execs.append((container.name, command, stdin))
            self.calls.append(("exec", f"{container.name}: {shlex.join(command)}"))
        if handler is None:
            return container, 127, b"", f"sh: {command[0] if command else ''}: command not found\n".encode()
        code, stdout, stderr = handler(command, stdin, container)
        return container, code, stdout, stderr

    def _stream_failure(self, call: str, container: FakeContainer) -> BaseException | None:
        for key in ((call, container.name), (call, container.service)):
            if key in self.stream_failures:
                return self.stream_failures.pop(key)
        return None

    def _fail_once(self, key: tuple[str, str]) -> None:
        if key in self.failures:
            raise self.failures.pop(key)

    def _call(self) -> None:
        self.api_calls += 1
        if not self.reachable:
            raise EngineUnavailable("cannot reach the Docker engine: the fake engine is down")

    def _fail(self, call: str, name: str, service: str | None) -> None:
        """Raise the failure :attr:`failures` has for ``call`` on this container (by name, else service), once."""
        for key in ((call, name), (call, service)):
            if key in self.failures:
                raise self.failures.pop(key)

    def _find(self, ref: str, action: str) -> FakeContainer:
        found = self.containers.get(ref) or next((c for c in self.containers.values() if c.name == ref), None)
        if found is None:
            found = next((c for c in self.containers.values() if c.id.startswith(ref) and len(ref) >= 12), None)
        if found is None:
            raise NotFound(f"{action}: No such container: {ref}")
        return found

    def _health_after_start(self, container: FakeContainer, key: str) -> str | None:
        """The engine reports health only for a container with a healthcheck test (its own or its image's)."""
        test = (container.payload.get("Healthcheck") or {}).get("Test")
        if test == ["NONE"]:
            return None
        if test or container.image in self.healthchecked_images:
            return self.health.get(key, "healthy")
        return None

    def _bind_ports(self, container: FakeContainer, action: str) -> dict[str, int]:
        taken = {port for c in self.containers.values() if c.state == "running" for port in c.host_ports.values()}
        bound: dict[str, int] = {}
        for port, bindings in (container.payload["HostConfig"].get("PortBindings") or {}).items():
            for binding in bindings:
                wanted = binding.get("HostPort")
                if wanted:
                    host_port = int(wanted)
                    if host_port in self.busy_ports:
                        raise HostPortInUse(
                            f"{action}: driver failed programming external connectivity on endpoint "
                            f"{container.name}: Error starting userland proxy: listen tcp4 "
                            f"{binding.get('HostIp') or '0.0.0.0'}:{host_port}: bind: address already in use",
                            port=host_port)
                    if host_port in taken:
                        raise HostPortInUse(
                            f"{action}: driver failed programming external connectivity on endpoint "
                            f"{container.name}: Bind for {binding.get('HostIp') or '0.0.0.0'}:{host_port} failed: "
                            "port is already allocated", port=host_port)
                else:
                    host_port = next(p for p in itertools.count(FIRST_EPHEMERAL_PORT) if p not in taken)
                taken.add(host_port)
                bound[port] = host_port
        return bound


class FakeEventStream:
    """An open stream of :meth:`FakeEngine.events`: iterating blocks until an event comes, the stream is closed
    (the iteration ends) or broken (EngineUnavailable). :meth:`ready` tells whether an event can be read at once."""

    def __init__(self, engine: FakeEngine, labels: dict[str, str], position: int, generation: int):
        self.engine, self.labels, self.position, self.generation = engine, labels, position, generation
        self.closed = False

    def __iter__(self):
        return self

    def _skip_others(self) -> None:
        log = self.engine.event_log
        while self.position < len(log) and not _matches(log[self.position].labels, self.labels):
            self.position += 1

    def ready(self) -> bool:
        """Whether :meth:`__next__` returns (or raises) without waiting."""
        with self.engine._lock:
            self._skip_others()
            return (self.position < len(self.engine.event_log) or self.closed
                    or self.generation != self.engine._stream_generation or not self.engine.reachable)

    def __next__(self) -> EngineEvent:
        engine = self.engine
        with engine._lock:
            while True:
                self._skip_others()
                if self.closed:
                    raise StopIteration
                if self.generation != engine._stream_generation or not engine.reachable:
                    raise EngineUnavailable("read the Docker engine's events: the fake engine's stream broke")
                if self.position < len(engine.event_log):
                    event = engine.event_log[self.position]
                    self.position += 1
                    return event
                engine._events_changed.wait(0.05)


class _FakeStream:
    """``read(n)`` over bytes in pieces of at most :data:`FAKE_CHUNK_BYTES`; ``failure`` is raised after the first
    piece; ``at_end`` is called once when the end is reached (the exit code check of exec_output)."""

    def __init__(self, data: bytes, failure: BaseException | None = None, at_end: Callable[[], None] | None = None):
        self._data, self._position = data, 0
        self._failure, self._at_end = failure, at_end

    def read(self, size: int = -1) -> bytes:
        if self._position and self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        if size is None or size < 0:
            size = FAKE_CHUNK_BYTES
        piece = self._data[self._position:self._position + min(size, FAKE_CHUNK_BYTES)]
        self._position += len(piece)
        if not piece and self._at_end is not None:
            at_end, self._at_end = self._at_end, None
            at_end()
        return piece


def tar_of(files: dict[str, bytes]) -> bytes:
    """A tar archive of ``files`` (path -> content) as export_volume streams it: a ``.`` directory, then
    ``./<path>`` regular files (mode 0644, owner 0), sorted."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        root = tarfile.TarInfo(".")
        root.type, root.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(root)
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo("./" + path.lstrip("/"))
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def files_of(archive_bytes: bytes) -> dict[str, bytes]:
    """The regular files of a tar archive (path without a leading ``./`` -> content); raises tarfile.TarError."""
    if not archive_bytes:
        raise tarfile.ReadError("empty stream")
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r:") as archive:
        for member in archive:
            if member.isreg():
                name = member.name[2:] if member.name.startswith("./") else member.name.lstrip("/")
                files[name] = archive.extractfile(member).read()
    return files


def _command_failed(container: FakeContainer, command: tuple[str, ...], code: int, output: bytes) -> CommandFailed:
    text = output[-OUTPUT_TAIL_BYTES:].decode("utf-8", "replace")
    return CommandFailed(f"command {shlex.join(command)} in container {container.id[:12]} exited with code {code}: "
                         f"{text.strip()}", exit_code=code, output=text)


class Killed(BaseException):
    """The worker died (SIGKILL) at this call: no ``except Exception`` clean-up runs (:attr:`FakeEngine.failures`)."""


def _matches(labels: dict[str, str], wanted: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in wanted.items())


class FakeRouteTable(RouteTable):
    """The proxy in memory (:class:`app.ingress.routes.RouteTable`): ``routes`` by order id, ``custom_domains``.

    ``down`` makes every call raise IngressUnavailable, as Caddy's adapter does when Caddy does not answer;
    ``history`` keeps every route put, in order, so a test sees the "being prepared" route of an operation.
    """

    def __init__(self):
        self.routes: dict[int, Route] = {}
        self.custom_domains: list[str] = []
        self.history: list[Route] = []
        self.down = False
        self.syncs = 0
        self.calls = 0  # every call, answered or not

    def _answer(self) -> None:
        self.calls += 1
        if self.down:
            raise IngressUnavailable("the fake proxy is down", unreachable=True)

    def put_route(self, route: Route) -> None:
        self._answer()
        self.routes[route.order_id] = route
        self.history.append(route)

    def remove_route(self, order_id: int) -> None:
        self._answer()
        self.routes.pop(order_id, None)

    def set_custom_domains(self, domains) -> None:
        self._answer()
        self.custom_domains = sorted(set(domains))

    def sync(self, routes, custom_domains):
        self._answer()
        wanted = {route.order_id: route for route in routes}
        changed = wanted != self.routes or sorted(set(custom_domains)) != self.custom_domains
        self.routes = wanted
        self.custom_domains = sorted(set(custom_domains))
        self.syncs += 1
        return SimpleNamespace(changed=changed)

    def check(self) -> bool:
        self._answer()
        return True


class _HungLogStream:
    """A log stream that, after its lines, waits until :meth:`close` (from any thread), then ends, as a docker-py
    stream whose socket is shut down; it leaves ``registry`` when closed."""

    def __init__(self, lines: list[str], registry: list):
        self._lines = iter(lines)
        self._closed = threading.Event()
        self._registry = registry

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if not self._closed.is_set():
            line = next(self._lines, None)
            if line is not None:
                return line
            self._closed.wait()
        raise StopIteration

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        self._closed.set()
        try:
            self._registry.remove(self)
        except ValueError:
            pass
