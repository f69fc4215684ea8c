"""The container engine port: what the deployer and the operation handlers need from an orchestrator.

:class:`Engine` lists, creates, starts, stops, renames and removes containers, networks and volumes,
streams a volume's files out and back in (backups, restores), runs commands in running
containers with their input and output streamed, and answers questions about images and usage; the value
types of this module are what goes in and out, and :class:`Readable` is what a stream is. Nothing here knows an orchestrator's own types: :class:`~app.stacks.docker_engine.DockerEngine`
is the Docker Engine adapter (docker-py), ``tests/fakes.py`` has an in-memory one, and another orchestrator
(Docker Swarm) is another implementation of the same class.

Objects are found by their labels (``live.deployment``, ``live.order``, ``live.service``, ...; the
contract is :mod:`app.stacks.project`), never by name. Every implementation raises Live's errors
(:mod:`app.errors`), never its library's:

- :class:`~app.errors.EngineUnavailable`: the engine cannot be reached, or is in trouble for now (transient:
  the worker retries the operation);
- :class:`~app.errors.EngineOperationError`: the engine refused the call, retrying cannot help; its
  subclasses :class:`~app.errors.ImageMissing` (an image is neither present nor pullable),
  :class:`~app.errors.HostPortInUse` (a host port to publish is taken, ``port`` detail) and
  :class:`~app.errors.CommandFailed` (a command run in a container exited with a non-zero code);
- :class:`~app.errors.NotFound`: the named object does not exist (removals ignore it).
"""
from __future__ import annotations

import abc
import codecs
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ContextManager, Iterable, Iterator, Mapping, Protocol, Sequence

from app.stacks.project import service_of


class Readable(Protocol):
    """A stream of bytes: ``read(n)`` returns at most ``n`` bytes, ``b""`` at the end (a file opened ``rb``,
    an engine's stream, a backup store's artefact). Consumers loop until ``b""``; memory stays flat."""

    def read(self, size: int = -1) -> bytes: ...


#: How much of a command's output :meth:`Engine.exec_input` returns and :class:`~app.errors.CommandFailed` quotes
#: (at most; a longer output is quoted from its first whole line kept, so no secret is left cut in two).
OUTPUT_TAIL_BYTES = 4096


#: The longest log line :meth:`Engine.stream_logs` yields in one piece (characters); longer ones come in pieces.
LOG_LINE_MAX_CHARS = 16384


class LinePiece(str):
    """A piece of a log line longer than :data:`LOG_LINE_MAX_CHARS` that the next item of the stream continues (the
    last piece of the line is a plain ``str``): whoever masks or joins lines (``app/orders/logs.py``) can see a
    secret that spans the cut."""

    __slots__ = ()


def log_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """The lines of a log stream that arrives in ``chunks`` of any size (an engine's frames): decoded as UTF-8
    (undecodable bytes replaced; a character split between chunks is kept whole), without line endings
    (``\\n``, ``\\r\\n``), a line longer than :data:`LOG_LINE_MAX_CHARS` in pieces of that size (every piece but
    the last a :class:`LinePiece`); a last line without an ending too. Holds at most one line in memory."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    for chunk in chunks:
        pending += decoder.decode(chunk)
        *complete, pending = pending.split("\n")
        for line in complete:
            yield from _pieces(line.removesuffix("\r"))
        while len(pending) > LOG_LINE_MAX_CHARS:
            yield LinePiece(pending[:LOG_LINE_MAX_CHARS])
            pending = pending[LOG_LINE_MAX_CHARS:]
    pending += decoder.decode(b"", final=True)
    for line in pending.split("\n"):
        if line:
            yield from _pieces(line.removesuffix("\r"))


def _pieces(line: str) -> Iterator[str]:
    """``line`` in pieces of at most :data:`LOG_LINE_MAX_CHARS` (an empty line is one empty piece)."""
    if len(line) <= LOG_LINE_MAX_CHARS:
        yield line
        return
    last = (len(line) - 1) // LOG_LINE_MAX_CHARS * LOG_LINE_MAX_CHARS
    for start in range(0, last, LOG_LINE_MAX_CHARS):
        yield LinePiece(line[start:start + LOG_LINE_MAX_CHARS])
    yield line[last:]


#: The container states in which its process runs (``restarting``: the engine is bringing it back). The one rule of
#: "running" for listings (:attr:`ContainerState.running`) and the engine mirror's rows (``app/stacks/mirror.py``).
RUNNING_STATES = ("running", "restarting")


@dataclass
class ContainerState:
    """One container as the engine reports it (a listing, or an inspect)."""

    id: str
    name: str
    labels: dict[str, str]
    state: str  # created, running, paused, restarting, removing, exited, dead
    health: str | None = None  # healthy, unhealthy, starting; None without a healthcheck
    exit_code: int | None = None
    host_ports: dict[str, int] = field(default_factory=dict)  # "8080/tcp" -> 32768
    node: str | None = None  # the swarm node it runs on (its id); None on one engine
    error: str | None = None  # why the orchestrator could not run it (a swarm task's error), if it says
    # The id of the container that runs it on its node's engine when that is not ``id`` (a swarm service's running
    # task); None on one engine, and while no task runs.
    task_container: str | None = None

    @property
    def service(self) -> str | None:
        """The compose service the container runs (:func:`~app.stacks.project.service_of`)."""
        return service_of(self.labels)

    @property
    def running(self) -> bool:
        """Whether its process runs (``restarting`` counts: the engine is bringing it back)."""
        return self.state in RUNNING_STATES


@dataclass
class ContainerRequest:
    """Everything needed to create one container.

    ``create`` and ``host_config`` hold the container's settings under the argument names of the Docker
    Engine API as docker-py spells them (``ContainerConfig`` and ``HostConfig`` keyword arguments, e.g.
    ``mem_limit``, ``port_bindings``): :mod:`app.stacks.engine_requests` builds them from the compose file;
    an implementation translates them into its own calls.
    """

    name: str
    image: str
    labels: dict[str, str]
    create: dict[str, Any]  # ContainerConfig keyword arguments, host_config excluded
    host_config: dict[str, Any]  # HostConfig keyword arguments
    networks: dict[str, list[str]]  # network name -> aliases; the first is attached at create
    stop_grace_seconds: int
    node: str | None = None  # the swarm node (id) the container must run on; None: wherever (one engine)


@dataclass(frozen=True)
class NetworkRequest:
    """One network to create.

    ``proxied``: the ingress proxy must reach an endpoint service over this network (set by
    :func:`~app.stacks.engine_requests.network_requests`); an engine whose proxy dials service names (a swarm)
    attaches the proxy to it (:meth:`Engine.connect_proxy`); one engine ignores it (the proxy dials host ports).
    """

    name: str
    labels: dict[str, str]
    internal: bool = False
    driver: str = "bridge"
    proxied: bool = False


@dataclass(frozen=True)
class VolumeRequest:
    """One named volume to create."""

    name: str
    labels: dict[str, str]
    driver: str = "local"
    node: str | None = None  # the swarm node (id) whose engine holds it; None: the one engine


@dataclass(frozen=True)
class NodeState:
    """One machine of a cluster (a Docker Swarm node) as the orchestrator reports it.

    ``memory_bytes`` is the node's memory (``Description.Resources.MemoryBytes``), ``reserved_bytes`` the sum of
    the memory reservations of the tasks that should run on it; ``engine`` is the address of the node's own
    Docker engine (its ``live.engine`` label, or the manager's for the manager itself), None when unknown.
    """

    id: str
    hostname: str
    labels: dict[str, str]
    ready: bool
    active: bool
    memory_bytes: int
    reserved_bytes: int = 0
    engine: str | None = None
    manager: bool = False

    @property
    def free_bytes(self) -> int:
        """Memory not reserved by tasks (bytes; may be negative when reservations exceed memory)."""
        return self.memory_bytes - self.reserved_bytes


@dataclass
class NetworkState:
    """One network as the engine lists it."""

    name: str
    labels: dict[str, str]


@dataclass
class VolumeState:
    """One named volume as the engine lists it."""

    name: str
    labels: dict[str, str]
    size: int = 0  # bytes; only filled by volume_usage()
    node: str | None = None  # the swarm node (id) whose engine holds it; None on one engine


@dataclass
class VolumeUsage:
    """What :meth:`Engine.volume_usage` read: ``volumes`` with their sizes, and ``unread_nodes``, the swarm nodes
    (ids) whose engine could not be read (down, unreachable, without a ``live.engine`` label): their volumes are
    absent, so the disk of what they hold is unknown, not 0. Empty on one engine."""

    volumes: list[VolumeState]
    unread_nodes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class EngineEvent:
    """One change the engine reports on its event stream (:meth:`Engine.events`).

    ``time`` is the engine's time of the event (seconds since the epoch, float, nanosecond digits kept where the
    engine gives them): the ``since`` of a stream opened later. ``action`` is the engine's word: Docker's container
    actions (``create``, ``start``, ``restart``, ``die``, ``kill``, ``stop``, ``pause``, ``unpause``,
    ``health_status: healthy``, ``rename``, ``destroy``, ...), or :data:`LISTED` when the adapter read the
    container's whole state (``state``; a swarm's task poll). ``container_id`` is the container's (a swarm service's)
    id, ``labels`` its labels, ``attributes`` the engine's other attributes as text (``exitCode``, ``name``,
    ``signal``). ``state``: the container as the engine reports it now, when the adapter has it (else None).
    ``bridge_clock``: ``time`` is the bridge's clock, not the engine's (what a swarm's poll observed: a service
    listed or gone); such an event is no replay to skip and no point to resume a stream from.
    """

    time: float
    action: str
    container_id: str
    labels: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    state: ContainerState | None = None
    bridge_clock: bool = False


#: :attr:`EngineEvent.action` of an event that carries the container's whole state (:attr:`EngineEvent.state`).
LISTED = "listed"


class Engine(abc.ABC):
    """The operations Live needs from a container orchestrator (see the module docstring for the errors).

    ``labels`` arguments select objects carrying every one of those labels with those values. Container
    references (``container_id``) are ids; a name is accepted too. Removals are idempotent: removing an
    object that does not exist is not an error.
    """

    #: Whether a changed container is updated where it is (:meth:`update_container`: a swarm service update)
    #: rather than replaced by a new one the deployer creates, swaps in and renames (compose's recreate).
    updates_in_place = False
    #: Whether a started container may not run yet when :meth:`start_container` returns (a swarm task is
    #: scheduled, then started): the deployer then waits until it runs before starting its dependents.
    starts_asynchronously = False
    #: Whether endpoints are published on host ports (one engine: ``127.0.0.1:<port>``, which the proxy dials);
    #: a swarm publishes nothing: the proxy reaches endpoint services over the order's overlay network.
    publishes_host_ports = True

    def update_container(self, container_id: str, request: ContainerRequest) -> str:
        """Give the existing container ``container_id`` the definition of ``request`` (running it if it was
        stopped); returns its id. Only engines with :attr:`updates_in_place` implement it."""
        raise NotImplementedError(f"{type(self).__name__} replaces containers instead of updating them")

    def nodes(self) -> list[NodeState]:
        """The machines the orchestrator places containers on; empty on one engine (nothing to choose)."""
        return []

    def connect_proxy(self, request: NetworkRequest) -> None:
        """Let the ingress proxy reach the services on the existing network ``request`` when it is
        :attr:`~NetworkRequest.proxied`. Called at every deploy for every network of the order (so a proxy
        recreated since is attached again); connecting twice is not an error. Nothing to do on one engine,
        whose proxy dials the endpoints' published host ports (:attr:`publishes_host_ports`)."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Return when the engine answers; :class:`~app.errors.EngineUnavailable` otherwise."""

    # -- images -------------------------------------------------------------
    @abc.abstractmethod
    def image_id(self, ref: str) -> str:
        """The id of the image ``ref`` (``sha256:...``), pulled once when it is missing.

        Raises :class:`~app.errors.ImageMissing` when it is neither present nor pullable.
        """

    @abc.abstractmethod
    def image_present(self, ref: str) -> bool:
        """Whether the image ``ref`` is on the engine; never pulls it."""

    # -- containers ---------------------------------------------------------
    @abc.abstractmethod
    def list_containers(self, labels: dict[str, str]) -> list[ContainerState]:
        """Every container carrying ``labels``, whatever its state."""

    @abc.abstractmethod
    def events(self, labels: dict[str, str], since: float | None = None) -> ContextManager[Iterator[EngineEvent]]:
        """The engine's stream of container changes for containers carrying ``labels``, as a context whose value is
        an iterator of :class:`EngineEvent` in the engine's order; leaving the context closes the stream (from
        another thread too: the iterator then ends).

        ``since`` (engine time, seconds): start with the events the engine still holds from that time on (inclusive;
        Docker keeps its last 256), then follow live; None: only new events. The iterator blocks while nothing
        happens; it raises :class:`~app.errors.EngineUnavailable` when the stream breaks (the engine restarted or
        cannot be reached), and also when the engine ends it: a stream only ends when it was closed.
        """

    @abc.abstractmethod
    def inspect_container(self, container_id: str) -> ContainerState:
        """The container's current state (health included); :class:`~app.errors.NotFound` when it is gone."""

    @abc.abstractmethod
    def create_container(self, request: ContainerRequest) -> str:
        """Create the container of ``request``, not started, attached to all its networks; returns its id.

        Host ports are not bound until it starts. A name already in use is an
        :class:`~app.errors.EngineOperationError`, a missing image :class:`~app.errors.ImageMissing`.
        """

    @abc.abstractmethod
    def start_container(self, container_id: str) -> None:
        """Start a created or stopped container; a running one is left as it is.

        A host port taken by something else is :class:`~app.errors.HostPortInUse`.
        """

    @abc.abstractmethod
    def unpause_container(self, container_id: str) -> None:
        """Resume a paused container."""

    @abc.abstractmethod
    def stop_container(self, container_id: str, timeout: int) -> None:
        """Stop a container: its stop signal, then a kill after ``timeout`` seconds; a stopped one is left as it is."""

    @abc.abstractmethod
    def rename_container(self, container_id: str, name: str) -> None:
        """Give the container the name ``name``; a name in use is an :class:`~app.errors.EngineOperationError`."""

    @abc.abstractmethod
    def remove_container(self, container_id: str) -> None:
        """Remove a container by force (a running one too); a missing one is not an error."""

    @abc.abstractmethod
    def container_usage(self, container_id: str) -> tuple[float, float]:
        """(memory bytes in use, CPU seconds used) of a running container, from one sample."""

    def running_usage(self, container: ContainerState) -> tuple[float, float]:
        """:meth:`container_usage` of a container as a listing returned it, in one call to the engine that runs it
        (a swarm asks the node's engine for its task's container: :attr:`ContainerState.task_container`)."""
        return self.container_usage(container.id)

    @abc.abstractmethod
    def container_logs(self, container_id: str, tail: int) -> str:
        """The last ``tail`` lines the container wrote (standard output and error, interleaved as written; UTF-8,
        undecodable bytes replaced), whatever its state: a stopped or crash-looping one's too. In a swarm, the
        service's (its tasks' lines, on whichever node they ran). :class:`~app.errors.NotFound` when it is gone.
        """

    @abc.abstractmethod
    def stream_logs(self, container_id: str, *, tail: int, since: datetime | None = None,
                    follow: bool = False) -> Iterator[str]:
        """The container's log lines as an iterator, read from the engine as they are consumed (memory stays flat).

        Each item is one line as the container wrote it (standard output and error, interleaved as written; UTF-8,
        undecodable bytes replaced), without its line ending; a line longer than :data:`LOG_LINE_MAX_CHARS` comes in
        pieces of that size, every piece but its last a :class:`LinePiece`. ``tail``: only the last ``tail`` lines
        (0: none of the past ones); ``since`` (an aware datetime): only lines written from then on (a swarm: to the
        second); ``follow``: after those, the lines written from now on, until the iterator is closed (``close()``,
        which closes the engine's stream). Works whatever the container's state: a stopped one's lines too. In a
        swarm, the service's (its tasks' lines, failed ones included, on whichever node they ran).

        The engine is asked when this is called: :class:`~app.errors.NotFound` (the container is gone) and
        :class:`~app.errors.EngineUnavailable` are raised here; a stream that breaks midway raises
        :class:`~app.errors.EngineUnavailable` from ``next()``. ``close()`` may be called from another thread while
        ``next()`` waits for the engine: it closes the engine's stream, and ``next()`` then ends the iteration or
        raises :class:`~app.errors.EngineUnavailable` (a deadline, a reader of followed streams stopped). A
        container (service) with a TTY sends raw text, not standard output and error frames: it is read as such.
        """

    # -- networks -----------------------------------------------------------
    @abc.abstractmethod
    def list_networks(self, labels: dict[str, str]) -> list[NetworkState]:
        """Every network carrying ``labels``."""

    @abc.abstractmethod
    def create_network(self, request: NetworkRequest) -> None:
        """Create the network of ``request``."""

    @abc.abstractmethod
    def remove_network(self, name: str) -> None:
        """Remove a network; a missing one is not an error, one with containers attached is refused."""

    # -- volumes ------------------------------------------------------------
    @abc.abstractmethod
    def list_volumes(self, labels: dict[str, str], node: str | None = None) -> list[VolumeState]:
        """Every named volume carrying ``labels`` (``size`` is 0: see :meth:`volume_usage`): on swarm node
        ``node`` only (its id; a node whose engine cannot be reached is an error, never "no volumes"), or on
        every node when None (one engine: ``node`` is ignored)."""

    @abc.abstractmethod
    def volume_exists(self, name: str, node: str | None = None) -> bool:
        """Whether a volume named ``name`` exists, whatever its labels: on swarm node ``node`` (its id), or on any
        node when None (one engine: ``node`` is ignored)."""

    @abc.abstractmethod
    def create_volume(self, request: VolumeRequest) -> None:
        """Create the named volume of ``request`` on ``request.node`` (one engine: the engine); an existing one
        there is left as it is, and one of the same name on another swarm node does not count (an order being
        moved has its volumes on two nodes for a while)."""

    @abc.abstractmethod
    def remove_volume(self, name: str, node: str | None = None) -> None:
        """Remove a volume and its data: from swarm node ``node`` only, or from every node holding it when None
        (one engine: ``node`` is ignored). A missing one is not an error, one in use is refused."""

    @abc.abstractmethod
    def volume_usage(self, labels: dict[str, str]) -> VolumeUsage:
        """Every named volume carrying ``labels``, with its size in bytes, and the nodes that could not be read
        (:class:`VolumeUsage`). Raises the engine's errors when the (manager's) engine itself cannot be asked."""

    @abc.abstractmethod
    def export_volume(self, volume: str, image: str, helper_name: str,
                      labels: dict[str, str], node: str | None = None) -> ContextManager[Readable]:
        """A stream (``read(n)`` until ``b""``) of the volume's files as a tar archive (uncompressed), member
        names relative to the volume root (``.``, ``./a``, ``./a/b``), with owners, modes, times and links.

        Read through a helper container of ``image`` (never pulled, never started; the volume mounted
        read-only) named ``helper_name`` and carrying ``labels``, removed when the context exits (the stream
        is closed first). Memory stays flat whatever the volume's size. ``node``: the swarm node whose volume
        is read (None: the node that holds it; one engine: ignored).

        Raises :class:`~app.errors.NotFound` (no such volume), :class:`~app.errors.ImageMissing` (no such
        image) and :class:`~app.errors.EngineUnavailable` (the engine cannot be reached; or, from ``read()``,
        the stream broke midway).
        """

    @abc.abstractmethod
    def import_volume(self, volume: str, image: str, helper_name: str, labels: dict[str, str],
                      stream: Readable, node: str | None = None) -> int:
        """Replace the volume's whole content with the tar archive read from ``stream`` (what
        :meth:`export_volume` wrote); returns the bytes read from ``stream``. ``node``: the swarm node whose
        volume is replaced (None: the node that holds it; one engine: ignored).

        Everything in the volume is removed first, then the archive is extracted with owners, modes, times
        and links as archived, through a helper container of ``image`` (never pulled) named ``helper_name``
        and carrying ``labels``, always removed afterwards. Memory stays flat whatever the size.

        Raises :class:`~app.errors.NotFound` (no such volume: it is never created here),
        :class:`~app.errors.ImageMissing`, :class:`~app.errors.ArchiveError` naming the volume when the
        stream is not a whole tar archive (one that does not start as a tar archive leaves the volume as it
        was; one that breaks off later leaves it partly restored), :class:`~app.errors.EngineUnavailable`.
        Errors of ``stream.read`` itself propagate unchanged (the volume is then partly restored).
        """

    @abc.abstractmethod
    def exec_output(self, container_id: str, command: Sequence[str]) -> ContextManager[Readable]:
        """Run ``command`` (argv) in the running container; a stream of its standard output.

        Once the output ends, its exit code is checked: a non-zero one raises
        :class:`~app.errors.CommandFailed` from ``read()`` (message: the container, the command, the exit code
        and the last :data:`OUTPUT_TAIL_BYTES` of its error output). Leaving the context early closes the
        stream (the command then fails writing, or is left to end). Memory stays flat.

        Raises :class:`~app.errors.EngineOperationError` when the container is not running,
        :class:`~app.errors.NotFound` when it does not exist, :class:`~app.errors.EngineUnavailable`
        (also from ``read()`` when the stream breaks).
        """

    @abc.abstractmethod
    def exec_input(self, container_id: str, command: Sequence[str], stream: Readable | None = None, *,
                   environment: Mapping[str, str] | None = None) -> str:
        """Run ``command`` (argv) in the running container with ``stream`` on its standard input (``None``: no
        input) and wait for it to end; returns the last :data:`OUTPUT_TAIL_BYTES` of its output (standard
        output and error, interleaved as written; UTF-8, undecodable bytes replaced). ``environment`` is added
        to the command's environment (over the container's own): the way a secret reaches a command without
        being in its argv (``ps``, error messages).

        The input is streamed and the output read at the same time, so a command that writes much before it
        reads all its input cannot block; memory stays flat. Errors of ``stream.read`` propagate unchanged;
        the command then sees its input end early (it is not waited for).

        Raises :class:`~app.errors.CommandFailed` (a non-zero exit code), and the errors of
        :meth:`exec_output`.
        """
