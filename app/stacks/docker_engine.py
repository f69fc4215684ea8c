"""The Docker Engine adapter of the :class:`~app.stacks.engine.Engine` port (docker SDK).

:class:`DockerEngine` speaks the Docker Engine API through docker-py's low-level client. Every
docker/requests exception is translated here into Live's errors (:func:`translate_errors`):
connection problems and engine 5xx that mean "later" become :class:`EngineUnavailable` (retried),
refusals :class:`EngineOperationError` (not retried), a host port taken :class:`HostPortInUse`.
The engine's JSON bodies are built here too (:func:`container_payload` and friends), also without an
engine, so the catalog can check a product against them.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shlex
import socket
import struct
import tarfile
import threading
import time
from datetime import datetime
from typing import Any, ContextManager, Iterator, Mapping, Sequence

import docker
import docker.errors
import docker.types
from docker.types.daemon import CancellableStream
import requests.exceptions
import urllib3.exceptions
from docker.utils import version_lt

from app.errors import (
    ArchiveError,
    CommandFailed,
    EngineOperationError,
    EngineUnavailable,
    HostPortInUse,
    ImageMissing,
    LiveError,
    NotFound,
    StackSpecError,
)
from app.stacks.archives import TarStreamCheck
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

log = logging.getLogger(__name__)

_HEALTH_RE = re.compile(r"\((healthy|unhealthy|health: starting)\)")
_EXIT_RE = re.compile(r"^Exited \((-?\d+)\)")


#: The Docker Engine API version Live validates requests against: Docker Engine 20.10 speaks API 1.41.
ENGINE_API_VERSION = "1.41"
_VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")  # the engine's volume names
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1  # the widest integers the engine's Go decoder reads


def container_payload(request: ContainerRequest, api_version: str = ENGINE_API_VERSION) -> dict[str, Any]:
    """The JSON body of ``POST /containers/create`` for ``request``, built without an engine.

    docker-py's own types build it (``ContainerConfig``, ``HostConfig``, ``EndpointConfig``,
    ``NetworkingConfig`` for ``api_version``), as ``APIClient.create_container`` does, so their argument
    checks run wherever this runs: in :meth:`DockerEngine.create_container` and at product validation.
    Only the first network is attached at create; the engine connects the others afterwards.

    Raises :class:`StackSpecError` when docker-py refuses an argument or when the result is not JSON the
    engine can decode (an integer beyond int64, NaN); its ``argument`` detail names the request argument
    (``mem_limit``, ``ports``, ``networks``, ...) and ``reason`` says why.
    """
    try:
        payload = _container_config(request, api_version)
    except (docker.errors.DockerException, TypeError, ValueError, AttributeError) as exc:
        argument = _refused_argument(request, api_version)
        raise StackSpecError(f"{argument}: docker-py refuses it: {exc}", argument=argument, reason=str(exc)) from exc
    _check_engine_json(payload, "container")
    return payload


def _container_config(request: ContainerRequest, api_version: str) -> dict[str, Any]:
    create = dict(request.create)
    command = create.pop("command", None)
    networking = None
    if request.networks:
        network, aliases = next(iter(request.networks.items()))
        endpoint = docker.types.EndpointConfig(api_version, aliases=aliases or None)
        networking = docker.types.NetworkingConfig({network: endpoint})
    host_config = docker.types.HostConfig(version=api_version, **request.host_config)
    return docker.types.ContainerConfig(
        api_version, request.image, command, labels=request.labels, host_config=host_config,
        networking_config=networking, stop_timeout=request.stop_grace_seconds, **create,
    )


def _refused_argument(request: ContainerRequest, api_version: str) -> str:
    """The request argument docker-py refuses, found by building each argument alone."""
    attempts: list[tuple[str, Any]] = [
        (name, lambda n=name, v=value: docker.types.HostConfig(version=api_version, **{n: v}))
        for name, value in request.host_config.items()
    ]
    attempts += [
        (name, lambda n=name, v=value: docker.types.ContainerConfig(api_version, request.image, None, **{n: v}))
        for name, value in request.create.items() if name != "command"
    ]
    attempts += [
        ("command", lambda: docker.types.ContainerConfig(api_version, request.image, request.create.get("command"))),
        ("labels", lambda: docker.types.ContainerConfig(api_version, request.image, None, labels=request.labels)),
        ("networks", lambda: [docker.types.EndpointConfig(api_version, aliases=a or None)
                              for a in request.networks.values()]),
    ]
    for name, attempt in attempts:
        try:
            attempt()
        except (docker.errors.DockerException, TypeError, ValueError, AttributeError):
            return name
    return "request"


def network_create_kwargs(request: NetworkRequest) -> dict[str, Any]:
    """The arguments of docker-py's ``APIClient.create_network`` for ``request``."""
    return {"name": request.name, "driver": request.driver, "internal": request.internal, "labels": request.labels,
            "check_duplicate": True, "attachable": request.driver == "overlay"}


def network_payload(request: NetworkRequest, api_version: str = ENGINE_API_VERSION) -> dict[str, Any]:
    """The JSON body of ``POST /networks/create`` for ``request``, as ``APIClient.create_network`` builds it.

    docker-py builds that body inline (no type to call offline), so its checks are repeated here: labels
    must be a mapping of text (API 1.23+), internal networks need API 1.22+. Raises :class:`StackSpecError`.
    """
    kwargs = network_create_kwargs(request)
    labels = kwargs["labels"]
    if not isinstance(request.name, str) or not request.name:
        raise StackSpecError(f"network {request.name!r}: a network needs a name", argument="name")
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise StackSpecError(f"network {request.name}: labels must be a mapping of text", argument="labels")
    if version_lt(api_version, "1.23"):
        raise StackSpecError(f"network {request.name}: labels need API 1.23 (engine API {api_version})",
                             argument="labels")
    if request.internal and version_lt(api_version, "1.22"):
        raise StackSpecError(f"network {request.name}: internal networks need API 1.22 (engine API {api_version})",
                             argument="internal")
    payload: dict[str, Any] = {"Name": kwargs["name"], "Driver": kwargs["driver"], "Options": None, "IPAM": None,
                               "CheckDuplicate": kwargs["check_duplicate"], "Labels": labels,
                               "Attachable": kwargs["attachable"]}
    if kwargs["internal"]:
        payload["Internal"] = True
    _check_engine_json(payload, f"network {request.name}")
    return payload


def volume_payload(request: VolumeRequest, api_version: str = ENGINE_API_VERSION) -> dict[str, Any]:
    """The JSON body of ``POST /volumes/create`` for ``request``, as ``APIClient.create_volume`` builds it.

    Raises :class:`StackSpecError` when the labels are not a mapping of text or the name is not one the
    engine accepts (``[a-zA-Z0-9][a-zA-Z0-9_.-]+``).
    """
    if not isinstance(request.name, str) or not _VOLUME_NAME.fullmatch(request.name):
        raise StackSpecError(f"volume {request.name!r}: not a valid volume name", argument="name")
    labels = request.labels
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise StackSpecError(f"volume {request.name}: labels must be a mapping of text", argument="labels")
    if version_lt(api_version, "1.23"):
        raise StackSpecError(f"volume {request.name}: labels need API 1.23 (engine API {api_version})",
                             argument="labels")
    payload = {"Name": request.name, "Driver": request.driver, "DriverOpts": None, "Labels": labels}
    _check_engine_json(payload, f"volume {request.name}")
    return payload


def _check_engine_json(payload: Any, what: str, path: str = "") -> None:
    """Refuse what the engine's Go JSON decoder cannot read: non-text keys, NaN/inf, integers beyond 64 bits."""
    if isinstance(payload, dict):
        for key, value in payload.items():
            if not isinstance(key, str):
                raise StackSpecError(f"{what}: {path or 'payload'}: key {key!r} is not text", argument=path or what,
                                     reason=f"key {key!r} is not text")
            _check_engine_json(value, what, f"{path}.{key}" if path else key)
    elif isinstance(payload, (list, tuple)):
        for index, item in enumerate(payload):
            _check_engine_json(item, what, f"{path}[{index}]")
    elif isinstance(payload, bool) or payload is None or isinstance(payload, str):
        return
    elif isinstance(payload, int):
        if not _INT64_MIN <= payload <= _UINT64_MAX:
            raise StackSpecError(f"{what}: {path}: {payload} does not fit in 64 bits", argument=path,
                                 reason=f"{payload} does not fit in 64 bits")
    elif isinstance(payload, float):
        if not math.isfinite(payload):
            raise StackSpecError(f"{what}: {path}: {payload} is not a number JSON can carry", argument=path,
                                 reason=f"{payload} is not a finite number")
    else:
        raise StackSpecError(f"{what}: {path}: a {type(payload).__name__} is not JSON", argument=path,
                             reason=f"a {type(payload).__name__} is not JSON")
    if not path:
        json.dumps(payload, allow_nan=False)


@contextlib.contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Turn docker/requests exceptions into Live's errors, naming ``action``."""
    try:
        yield
    except docker.errors.ImageNotFound as exc:
        raise ImageMissing(f"{action}: image not found: {_explain(exc)}") from exc
    except docker.errors.NotFound as exc:
        raise NotFound(f"{action}: {_explain(exc)}", public="an object on the container platform is missing") from exc
    except docker.errors.APIError as exc:
        port = host_port_conflict(_explain(exc))
        if port is not None:
            raise HostPortInUse(f"{action}: {_explain(exc)}", port=port) from exc
        if exc.status_code is not None and exc.status_code >= 500 and is_transient_engine_error(_explain(exc)):
            raise EngineUnavailable(f"{action}: Docker engine error: {_explain(exc)}") from exc
        raise EngineOperationError(f"{action}: {_explain(exc)}") from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError) as exc:
        raise EngineUnavailable(f"{action}: cannot reach the Docker engine: {exc}") from exc
    except docker.errors.DockerException as exc:
        raise EngineUnavailable(f"{action}: {exc}") from exc


# What the engine says, in a 5xx, when it (or containerd, or the network to it) is in trouble for now. The engine
# also answers 500 to requests it will never accept (runc refusing a ulimit, a user it cannot find, a name too long
# for the file system): those are the product's problem, not an outage, and retrying cannot help.
_TRANSIENT_ENGINE_ERROR = re.compile(
    r"connection refused|connection reset|broken pipe|transport is closing|deadline exceeded|i/o timeout"
    r"|timed? ?out|temporarily unavailable|try again|shutting down|is restarting|dial (unix|tcp)|\bEOF\b"
    r"|no such host|TLS handshake|too many open files|context canceled|device or resource busy"
    r"|is not running|cannot connect"
    # libnetwork's store (a boltdb file) is closed while the engine stops: a start at that moment fails with
    # "failed to update store for object type *libnetwork.endpoint: open : no such file or directory".
    r"|failed to update store for object type", re.IGNORECASE)


def is_transient_engine_error(explanation: str) -> bool:
    """Whether an engine 5xx means "try again later" rather than "never" (see ``_TRANSIENT_ENGINE_ERROR``)."""
    return bool(_TRANSIENT_ENGINE_ERROR.search(explanation))


# The engine's two answers when a host port to publish is taken at start: by another container (its port
# allocator) or by another process (the userland proxy cannot bind it).
_PORT_CONFLICT = re.compile(r"Bind for [^ ]*:(\d+) failed: port is already allocated"
                            r"|listen tcp[46]? [^ ]*:(\d+): bind: address already in use")


def host_port_conflict(explanation: str) -> int | None:
    """The host port the engine could not bind, from its error message (see ``_PORT_CONFLICT``); else ``None``."""
    match = _PORT_CONFLICT.search(explanation)
    return int(match.group(1) or match.group(2)) if match else None


def _explain(exc: docker.errors.APIError) -> str:
    return str(getattr(exc, "explanation", None) or exc)


#: The engine's answer to ``GET /system/df`` while another one runs (Docker 20.10 runs one at a time, for every
#: client: the worker's disk sampler, a test or an operator's ``docker system df``).
DF_BUSY = "a disk usage operation is already running"
#: How long :meth:`DockerEngine.volume_usage` waits for another caller's disk usage read to end (seconds).
DF_WAIT_SECONDS = 120.0


class DockerEngine(Engine):
    """The Docker Engine, through the docker SDK's low-level API client (``DOCKER_HOST``, or ``base_url``).

    ``timeout`` is seconds per API call. ``api_calls`` counts the calls made (benchmarks of reconcile passes).
    """

    def __init__(self, base_url: str | None = None, timeout: int = 120, where: str | None = None,
                 tls: tuple[str, str, str] | None = None):
        self._base_url = base_url
        # (CA, client certificate, client key) files of an engine reached over TCP with TLS (a swarm node's).
        self._tls = tls
        # Which engine this is, in error messages ("the engine of swarm node n2"); None: the one engine.
        self.where = where
        self._timeout = timeout
        self._client: docker.DockerClient | None = None
        self.api_calls = 0  # counted for benchmarks of reconcile passes
        self._df_lock = threading.Lock()  # one disk usage read at a time from this process (see volume_usage)

    def close(self) -> None:
        """Close the connection to the engine (a later call opens a new one)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _tls_config(self) -> docker.tls.TLSConfig | bool:
        """The TLS configuration of ``tls`` (the engine's certificate verified against the CA), else False."""
        if self._tls is None:
            return False
        ca, cert, key = self._tls
        return docker.tls.TLSConfig(client_cert=(cert, key), ca_cert=ca, verify=True)

    def _errors(self, action: str):
        """:func:`translate_errors` for ``action`` on this engine (named when it is not the only one)."""
        return translate_errors(f"{action} on {self.where}" if self.where else action)

    @property
    def api(self) -> docker.APIClient:
        if self._client is None:
            # The API version is Live's own (ENGINE_API_VERSION, which Docker Engine 20.10 and later serve), so making
            # the client opens no connection: asking the engine its version, docker-py leaks the connection of
            # every attempt that fails (an engine that is down is tried again and again).
            with self._errors("connect to Docker"):
                if self._base_url:
                    self._client = docker.DockerClient(base_url=self._base_url, timeout=self._timeout,
                                                       version=ENGINE_API_VERSION, tls=self._tls_config())
                else:
                    self._client = docker.DockerClient.from_env(timeout=self._timeout, environment=dict(os.environ),
                                                                version=ENGINE_API_VERSION)
        self.api_calls += 1
        return self._client.api

    def ping(self) -> None:
        with self._errors("ping Docker"):
            self.api.ping()

    # -- diagnostics (live doctor; Docker's own, not part of Engine) --------
    def version(self) -> tuple[str, str]:
        """``(engine version, API version)`` as ``GET /version`` reports them (``"?"`` when absent)."""
        with self._errors("ask the Docker engine its version"):
            data = self.api.version()
        return data.get("Version", "?"), data.get("ApiVersion", "?")

    def address_pools(self) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """The engine's ``default-address-pools`` (``[{"Base": "10.240.0.0/12", "Size": 24}]``, empty when not
        configured; ``GET /info``) and its networks as ``(name, driver)`` pairs (``GET /networks``)."""
        with self._errors("ask the Docker engine its address pools"):
            info = self.api.info()
            networks = self.api.networks()
        return (info.get("DefaultAddressPools") or [],
                [(network.get("Name"), network.get("Driver")) for network in networks])

    def network_subnets(self, name: str) -> list[str]:
        """The IPv4 subnets of the network ``name`` (``["10.127.0.0/16"]``; ``GET /networks/{name}``); NotFound when
        it does not exist (live doctor: the size of a swarm node's ``docker_gwbridge``)."""
        with self._errors(f"inspect network {name}"):
            data = self.api.inspect_network(name)
        return [c["Subnet"] for c in ((data.get("IPAM") or {}).get("Config") or []) if ":" not in c.get("Subnet", ":")]

    # -- images -------------------------------------------------------------
    def image_id(self, ref: str) -> str:
        """Id of a local image; pulls it once if it is missing."""
        try:
            with self._errors(f"inspect image {ref}"):
                return self.api.inspect_image(ref)["Id"]
        except (NotFound, ImageMissing):
            pass
        log.info("image %s is not present locally, pulling it", ref)
        try:
            with self._errors(f"pull image {ref}"):
                repository, tag = _split_image(ref)
                self.api.pull(repository, tag=tag)
                return self.api.inspect_image(ref)["Id"]
        except (NotFound, EngineOperationError, EngineUnavailable) as exc:
            raise ImageMissing(f"image {ref} is not available locally and could not be pulled: {exc}") from exc

    # -- containers ---------------------------------------------------------
    def list_containers(self, labels: dict[str, str]) -> list[ContainerState]:
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        with self._errors("list containers"):
            summaries = self.api.containers(all=True, filters=filters)
        return [_from_summary(s) for s in summaries]

    def events(self, labels: dict[str, str], since: float | None = None) -> ContextManager[Iterator[EngineEvent]]:
        """The engine's container events for ``labels`` (``GET /events`` with ``type=container`` and the label
        filters, from ``since``; see :meth:`Engine.events`). ``labels`` of an event are the actor's attributes (the
        container's labels, next to ``name``, ``image`` and, for ``die``, ``exitCode``). Closed on exit."""
        return self._events(labels, since)

    @contextlib.contextmanager
    def _events(self, labels: dict[str, str], since: float | None) -> Iterator[Iterator[EngineEvent]]:
        filters = {"type": ["container"], "label": [f"{k}={v}" for k, v in labels.items()]}
        with self._errors("follow the Docker engine's events"):
            stream = self.api.events(since=None if since is None else f"{since:.9f}", filters=filters, decode=True)
        closed = threading.Event()

        def follow() -> Iterator[EngineEvent]:
            try:
                with self._errors("read the Docker engine's events"):
                    for raw in stream:
                        event = _engine_event(raw)
                        if event is not None:
                            yield event
            except (EngineUnavailable, urllib3.exceptions.HTTPError, OSError, AttributeError, ValueError) as exc:
                if closed.is_set():  # closed by us: a socket error, or docker-py reading a closed response
                    return
                if isinstance(exc, EngineUnavailable):
                    raise
                raise EngineUnavailable(f"the Docker engine's event stream broke: {exc}") from exc
            if not closed.is_set():
                raise EngineUnavailable("the Docker engine ended its event stream (did it restart?)")

        sock = stream_socket(stream)
        try:
            yield follow()
        finally:
            closed.set()
            close_stream(stream, sock)

    def inspect_container(self, container_id: str) -> ContainerState:
        with self._errors(f"inspect container {container_id[:12]}"):
            data = self.api.inspect_container(container_id)
        return _from_inspect(data)

    def create_container(self, request: ContainerRequest) -> str:
        """Create the container of ``request`` (not started) and connect it to its other networks; returns its id.

        The body is :func:`container_payload` for the engine's API version, plus the proxy variables of the
        Docker client configuration (``~/.docker/config.json``) that ``APIClient.create_container`` adds.
        """
        api = self.api
        payload = container_payload(request, api.api_version)
        proxies = getattr(api, "_proxy_configs", None)  # docker-py keeps the client's proxy settings here
        if proxies:
            payload["Env"] = proxies.inject_proxy_environment(payload.get("Env")) or None
        with self._errors(f"create container {request.name}"):
            created = api.create_container_from_config(payload, request.name)
        container_id = created["Id"]
        for network, aliases in list(request.networks.items())[1:]:
            with self._errors(f"connect {request.name} to {network}"):
                api.connect_container_to_network(container_id, network, aliases=aliases or None)
        return container_id

    def start_container(self, container_id: str) -> None:
        with self._errors(f"start container {container_id[:12]}"):
            self.api.start(container_id)

    def unpause_container(self, container_id: str) -> None:
        with self._errors(f"unpause container {container_id[:12]}"):
            self.api.unpause(container_id)

    def stop_container(self, container_id: str, timeout: int) -> None:
        with self._errors(f"stop container {container_id[:12]}"):
            self.api.stop(container_id, timeout=timeout)

    def rename_container(self, container_id: str, name: str) -> None:
        with self._errors(f"rename container {container_id[:12]} to {name}"):
            self.api.rename(container_id, name)

    def remove_container(self, container_id: str) -> None:
        """Remove a container (by id or name) by force; a missing one is not an error.

        A removal the engine already has in progress is :class:`EngineUnavailable` (retried later).
        """
        try:
            with self._errors(f"remove container {container_id[:12]}"):
                self.api.remove_container(container_id, force=True)
        except NotFound:
            pass  # already gone: removal is idempotent
        except EngineOperationError as exc:
            if "already in progress" not in str(exc):
                raise
            # The engine is still removing it (a removal that timed out on our side): it will be gone soon.
            raise EngineUnavailable(f"{exc}; trying again later") from exc

    # -- networks and volumes -----------------------------------------------
    def list_networks(self, labels: dict[str, str]) -> list[NetworkState]:
        with self._errors("list networks"):
            found = self.api.networks(filters={"label": [f"{k}={v}" for k, v in labels.items()]})
        return [NetworkState(n["Name"], n.get("Labels") or {}) for n in found]

    def create_network(self, request: NetworkRequest) -> None:
        """Create the network of ``request`` (its body is :func:`network_payload`)."""
        network_payload(request, self.api.api_version)  # the same checks as at validation, before any call
        with self._errors(f"create network {request.name}"):
            self.api.create_network(**network_create_kwargs(request))

    def remove_network(self, name: str) -> None:
        try:
            with self._errors(f"remove network {name}"):
                self.api.remove_network(name)
        except NotFound:
            pass

    def list_volumes(self, labels: dict[str, str], node: str | None = None) -> list[VolumeState]:
        with self._errors("list volumes"):
            found = self.api.volumes(filters={"label": [f"{k}={v}" for k, v in labels.items()]})
        return [VolumeState(v["Name"], v.get("Labels") or {}) for v in (found.get("Volumes") or [])]

    def volume_usage(self, labels: dict[str, str]) -> VolumeUsage:
        """Sizes of the labelled volumes, in one engine call (``docker system df``).

        The engine serves one disk usage read at a time and refuses the others (``DF_BUSY``): this process's reads
        take turns, and one refused because another client's runs is asked again (0.1 s doubling to 2 s) for up to
        ``DF_WAIT_SECONDS``; then :class:`~app.errors.EngineOperationError` as for any other refusal.
        """
        with self._df_lock, self._errors("read disk usage"):
            deadline, delay = time.monotonic() + DF_WAIT_SECONDS, 0.1
            while True:
                try:
                    report = self.api.df()
                    break
                except docker.errors.APIError as exc:
                    if DF_BUSY not in _explain(exc) or time.monotonic() + delay > deadline:
                        raise
                    log.debug("disk usage read busy elsewhere; again in %.1f s", delay)
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
        found = []
        for volume in report.get("Volumes") or []:
            volume_labels = volume.get("Labels") or {}
            if all(volume_labels.get(k) == v for k, v in labels.items()):
                size = max(0, int((volume.get("UsageData") or {}).get("Size") or 0))
                found.append(VolumeState(volume["Name"], volume_labels, size))
        return VolumeUsage(found)

    def container_usage(self, container_id: str) -> tuple[float, float]:
        """(memory bytes in use, CPU seconds used) of a running container, from one stats sample."""
        with self._errors(f"read stats of {container_id[:12]}"):
            stats = self.api.stats(container_id, stream=False, one_shot=True)
        memory = stats.get("memory_stats") or {}
        detail = memory.get("stats") or {}
        # Page cache is reclaimable: report what `docker stats` reports.
        used = max(0, (memory.get("usage") or 0) - (detail.get("inactive_file") or detail.get("total_inactive_file") or 0))
        cpu = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage") or 0
        return float(used), cpu / 1e9

    def container_logs(self, container_id: str, tail: int) -> str:
        """The container's last ``tail`` log lines (``docker logs --tail``), standard output and error together."""
        with self._errors(f"read the logs of {container_id[:12]}"):
            output = self.api.logs(container_id, stdout=True, stderr=True, tail=max(0, tail), timestamps=False)
        return (output or b"").decode("utf-8", errors="replace")

    def stream_logs(self, container_id: str, *, tail: int, since: datetime | None = None,
                    follow: bool = False) -> Iterator[str]:
        """``GET /containers/{id}/logs`` streamed (``docker logs --tail --since [--follow]``), see
        :meth:`Engine.stream_logs`; ``since`` is sent with its fractions of a second. docker-py's ``logs()`` looks
        at the container's ``Config.Tty`` first (one inspect) and reads a TTY's raw text as such, not as frames."""
        action = f"read the logs of {container_id[:12]}" + (f" on {self.where}" if self.where else "")
        with translate_errors(action):
            stream = self.api.logs(container_id, stdout=True, stderr=True, stream=True, follow=follow,
                                   tail=max(0, tail), since=None if since is None else since.timestamp(),
                                   timestamps=False)
        return read_log_stream(stream, action)

    def volume_exists(self, name: str, node: str | None = None) -> bool:
        try:
            with self._errors(f"inspect volume {name}"):
                self.api.inspect_volume(name)
            return True
        except NotFound:
            return False

    def create_volume(self, request: VolumeRequest) -> None:
        """Create the named volume of ``request`` (its body is :func:`volume_payload`)."""
        volume_payload(request, self.api.api_version)
        with self._errors(f"create volume {request.name}"):
            self.api.create_volume(request.name, driver=request.driver, labels=request.labels)

    def remove_volume(self, name: str, node: str | None = None) -> None:
        try:
            with self._errors(f"remove volume {name}"):
                self.api.remove_volume(name)
        except NotFound:
            pass

    def _create_helper(self, volume: str, image: str, helper_name: str, labels: dict[str, str], *,
                       read_only: bool, command: list[str]) -> str:
        """Create (not start) a helper container of ``image`` with ``volume`` at ``/volume``; returns its id.

        A helper of that name left by an interrupted attempt is removed first. No network; never pulled.
        """
        self.remove_container(helper_name)
        api = self.api
        with self._errors(f"create archive helper for volume {volume}"):
            host_config = api.create_host_config(binds={volume: {"bind": "/volume", "mode": "ro" if read_only else "rw"}},
                                                 network_mode="none")
            return api.create_container(image=image, name=helper_name, command=command, labels=labels,
                                        host_config=host_config, network_disabled=True)["Id"]

    def _remove_helper(self, helper_id: str, helper_name: str, volume: str) -> None:
        """Remove a helper; a failure is logged, never raised (it would hide the error that brought us here)."""
        try:
            self.remove_container(helper_id)
        except LiveError as exc:
            log.warning("archive helper %s of volume %s was not removed: %s", helper_name, volume, exc)

    def _require_volume(self, volume: str, action: str) -> None:
        """NotFound unless the volume exists: the engine would create a missing one for a helper, silently."""
        with self._errors(f"{action}: inspect volume {volume}"):
            self.api.inspect_volume(volume)

    def export_volume(self, volume: str, image: str, helper_name: str,
                      labels: dict[str, str], node: str | None = None) -> ContextManager[Readable]:
        """The volume's files as a tar stream (``GET /containers/{helper}/archive`` of ``/volume/.``).

        The helper is created, never started; the engine mounts the volume for the copy. The archive is
        asked for uncompressed (``Accept-Encoding: identity``): the engine would gzip it for a client that
        accepts gzip, which costs its CPU and the throughput on a local socket.
        """
        return self._exported(volume, image, helper_name, labels)

    @contextlib.contextmanager
    def _exported(self, volume: str, image: str, helper_name: str, labels: dict[str, str]) -> Iterator[Readable]:
        action = f"read volume {volume}"
        self._require_volume(volume, action)
        helper_id = self._create_helper(volume, image, helper_name, labels, read_only=True, command=["true"])
        response = None
        try:
            api = self.api
            with self._errors(action):
                response = api._get(api._url("/containers/{0}/archive", helper_id), params={"path": "/volume/."},
                                    headers={"Accept-Encoding": "identity"}, stream=True)
                api._raise_for_status(response)
            yield _ResponseStream(response, action)
        finally:
            if response is not None:
                response.close()
            self._remove_helper(helper_id, helper_name, volume)

    def import_volume(self, volume: str, image: str, helper_name: str, labels: dict[str, str],
                      stream: Readable, node: str | None = None) -> int:
        """Empty the volume, then extract the tar archive of ``stream`` into it; returns the bytes read.

        The first block of ``stream`` is read and checked before anything is removed: a stream that does not
        start as a tar archive leaves the volume as it was. The helper (rw, no network) then runs
        :func:`_restore_script`: it removes everything in the volume and gives the volume's root the owner and
        mode of the archive's first member when that is the root (``.``, as :meth:`export_volume` writes it:
        the engine's extractor skips the root's own entry). The archive is then sent to the engine (``PUT
        /containers/{helper}/archive`` at ``/volume``, a chunked body streamed from ``stream``), which keeps
        the archive's owners (``copyUIDGID`` unset: the headers' uid/gid, not the helper's user), modes, times
        and links; the helper runs once more to set the root's time. The helper image has ``rm``, ``find``,
        ``chown``, ``chmod`` and ``touch`` since version 2.

        :class:`~app.stacks.archives.TarStreamCheck` follows the archive's framing on the way, so a stream that
        breaks off at a member boundary (which the engine's extractor accepts) is an :class:`ArchiveError` too.
        """
        action = f"restore volume {volume}"
        self._require_volume(volume, action)
        check = TarStreamCheck()
        first = _read_block(stream, 512)
        if len(first) < 512:
            raise ArchiveError(f"{action}: the stream is not a tar archive ({len(first)} bytes); the volume was left "
                               "as it was", volume=volume)
        try:
            check.feed(first)
        except ValueError as exc:
            raise ArchiveError(f"{action}: the stream is not a tar archive ({exc}); the volume was left as it was",
                               volume=volume) from exc
        root = _archive_root(first)
        helper_id = self._create_helper(volume, image, helper_name, labels, read_only=False,
                                        command=["sh", "-c", _restore_script(root)])
        try:
            self._run_helper(helper_id, volume, f"{action}: empty it")
            read = self._put_archive(helper_id, volume, action, stream, first, check)
            if root is not None:
                self._run_helper(helper_id, volume, f"{action}: set the time of its root")
            return read
        finally:
            self._remove_helper(helper_id, helper_name, volume)

    def _run_helper(self, helper_id: str, volume: str, action: str) -> None:
        """Start the helper and wait for it (as long as it takes: removing files goes at the disk's pace)."""
        api = self.api
        with self._errors(action):
            api.start(helper_id)
            status = api.wait(helper_id, timeout=None)
        code = status.get("StatusCode")
        if code != 0:
            with self._errors(f"{action}: read the helper's output"):
                output = api.logs(helper_id, stdout=True, stderr=True, tail=20).decode("utf-8", "replace")
            raise EngineOperationError(f"{action}: the helper failed (exit code {code}): {output.strip()}",
                                       volume=volume, exit_code=code)

    def _put_archive(self, helper_id: str, volume: str, action: str, stream: Readable, first: bytes,
                     check: TarStreamCheck) -> int:
        failure: list[BaseException] = []  # what the body raised, raised again as it was (requests may wrap it)
        sent = [len(first)]
        finished = [False]

        def body() -> Iterator[bytes]:
            try:
                yield first
                while True:
                    data = stream.read(ARCHIVE_CHUNK_BYTES)
                    if not data:
                        break
                    sent[0] += len(data)
                    if not check.ended:
                        check.feed(data)
                    yield data
                finished[0] = True
                if not check.ended:
                    raise ArchiveError(f"{action}: the stream ends before the end of the tar archive after "
                                       f"{sent[0]} bytes ({check.members} members); the volume is partly restored",
                                       volume=volume)
            except ValueError as exc:
                error = ArchiveError(f"{action}: the stream is not a tar archive ({exc}); the volume is partly "
                                     "restored", volume=volume)
                failure.append(error)
                raise error from exc
            except BaseException as exc:
                failure.append(exc)
                raise

        api = self.api
        try:
            with self._errors(action):
                response = api._put(api._url("/containers/{0}/archive", helper_id), params={"path": "/volume"},
                                    data=body())
                api._raise_for_status(response)
        except BaseException as exc:
            if failure:  # the body's own error (stream.read's, or the framing's), as it was raised
                if failure[0] is exc:
                    raise
                raise failure[0] from exc
            if isinstance(exc, (EngineOperationError, EngineUnavailable)) and "Error processing tar file" in str(exc):
                if _NOT_A_TAR.search(str(exc)):
                    raise ArchiveError(f"{action}: the stream is not a tar archive the engine can extract: {exc}; the "
                                       "volume is partly restored", volume=volume) from exc
                # The archive is fine, the volume is not (no space left on device, read-only file system).
                raise EngineOperationError(f"{action}: the engine could not write the files: {exc}; the volume is "
                                           "partly restored", volume=volume) from exc
            raise
        if not finished[0]:
            # The engine answered once its extractor met the archive's end, before the body was all sent (padding
            # after the end): read the stream to its end all the same, so the caller's checks of it run.
            while data := stream.read(ARCHIVE_CHUNK_BYTES):
                sent[0] += len(data)
        return sent[0]

    def exec_output(self, container_id: str, command: Sequence[str]) -> ContextManager[Readable]:
        """A stream of the command's standard output, from an exec whose hijacked connection is read frame by
        frame (the engine multiplexes standard output and error on it, without a TTY)."""
        return self._exec_output(container_id, tuple(command))

    @contextlib.contextmanager
    def _exec_output(self, container_id: str, command: tuple[str, ...]) -> Iterator[Readable]:
        session = self._exec_start(container_id, command, stdin=False)
        try:
            yield _ExecOutput(session)
        finally:
            session.close()

    def exec_input(self, container_id: str, command: Sequence[str], stream: Readable | None = None, *,
                   environment: Mapping[str, str] | None = None) -> str:
        """Run the command with ``stream`` sent on the exec's hijacked connection (then half-closed: the command
        reads the end of its input) while a thread reads its output, keeping the last
        :data:`~app.stacks.engine.OUTPUT_TAIL_BYTES`.

        When the command stops reading before the input ends (it exited), sending stops and its exit code
        decides (zero: logged, the rest of the input is dropped). The hijacked connection has no timeout: a
        command may be silent for long.
        """
        session = self._exec_start(container_id, tuple(command), stdin=stream is not None, environment=environment)
        tail = _Tail()
        broken: list[BaseException] = []

        def pump() -> None:
            try:
                for _, data in session.frames():
                    tail.add(data)
            except BaseException as exc:  # reported by the caller's thread
                broken.append(exc)
            # Its output ended: the command ended (as for `docker exec -i`). The engine keeps reading input it
            # can no longer deliver until the connection closes, so stop a send that would wait forever.
            session.close()

        reader = threading.Thread(target=pump, name=f"exec-output-{session.container[:12]}", daemon=True)
        reader.start()
        unsent = False
        try:
            if stream is not None:
                while True:
                    data = stream.read(ARCHIVE_CHUNK_BYTES)  # its errors propagate unchanged (finally closes)
                    if not data:
                        break
                    try:
                        session.sock.sendall(data)
                    except OSError as exc:
                        log.info("%s stopped reading its input: %s", session.describe(), exc)
                        unsent = True
                        break
                if not unsent:
                    try:
                        session.sock.shutdown(socket.SHUT_WR)
                    except OSError:
                        unsent = True
            reader.join()
        finally:
            session.close()
            reader.join(timeout=10)
        if broken:
            raise broken[0]
        session.check_exit(tail.text())
        if unsent:
            log.warning("%s ended (exit code 0) before reading all its input", session.describe())
        return tail.text()

    def _exec_start(self, container_id: str, command: tuple[str, ...], *, stdin: bool,
                    environment: Mapping[str, str] | None = None) -> "_ExecSession":
        api = self.api
        action = f"run {shlex.join(command)} in container {container_id[:12]}"
        with self._errors(action):
            exec_id = api.exec_create(container_id, list(command), stdout=True, stderr=True, stdin=stdin,
                                      tty=False, environment=dict(environment) if environment else None)["Id"]
            # exec_start(socket=True) hands over the socket alone; what http.client read past the headers
            # (the command's first output) is in the response's buffered reader, so read from that.
            response = api._post_json(api._url("/exec/{0}/start", exec_id), data={"Tty": False, "Detach": False},
                                      headers={"Connection": "Upgrade", "Upgrade": "tcp"}, stream=True)
            try:
                api._raise_for_status(response)
            except BaseException:
                response.close()
                raise
        try:
            buffered = response.raw._fp.fp
            sock = buffered.raw._sock
        except AttributeError as exc:
            response.close()
            raise EngineOperationError(f"{action}: the connection to the Docker engine ({api.base_url}) cannot "
                                       "stream a command's input and output") from exc
        sock.settimeout(None)
        return _ExecSession(self, container_id, command, exec_id, response, buffered, sock, action)

    # -- images (helpers) ---------------------------------------------------
    def image_present(self, ref: str) -> bool:
        """Whether the image ``ref`` is on the engine (never pulls it); for ``live doctor`` and terminate.

        Raises :class:`EngineUnavailable` when the engine cannot be asked, and
        :class:`EngineOperationError` when it refuses the question (e.g. an invalid reference).
        """
        try:
            with self._errors(f"inspect image {ref}"):
                self.api.inspect_image(ref)
            return True
        except (NotFound, ImageMissing):
            return False


#: Bytes read at a time from the engine's archive stream.
ARCHIVE_CHUNK_BYTES = 1024 * 1024
#: The engine's words (Go's archive/tar, its decompressors) for an archive it cannot read, after "Error processing
#: tar file(exit status 1): ", e.g. "archive/tar: invalid tar header", "unexpected EOF".
_NOT_A_TAR = re.compile(r"archive/tar|unexpected EOF|invalid tar|gzip|bzip2|xz:|zstd", re.IGNORECASE)
_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")


class _ResponseStream:
    """``read(n)`` over the body of an engine answer; a stream that breaks midway is :class:`EngineUnavailable`."""

    def __init__(self, response: requests.Response, action: str):
        self._response = response
        self._action = action

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = ARCHIVE_CHUNK_BYTES
        try:
            with translate_errors(self._action):
                return self._response.raw.read(size, decode_content=True) or b""
        except LiveError:
            raise
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise EngineUnavailable(f"{self._action}: the Docker engine's stream broke: {exc}") from exc


def _archive_root(block: bytes) -> tarfile.TarInfo | None:
    """The header of the archive's root (a first member named ``.`` or ``./``, a folder), else ``None``."""
    try:
        info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return None
    return info if info.isdir() and info.name.rstrip("/") == "." else None


def _restore_script(root: tarfile.TarInfo | None) -> str:
    """The helper's shell script for a restore into ``/volume``; the helper runs twice (the second start finds
    its mark in the container's own ``/tmp``). First: remove everything in the volume, give its root the
    archive root's owner and mode. Second (after the engine extracted the archive): the root's time."""
    empty = "find /volume -mindepth 1 -maxdepth 1 -exec rm -rf {} +"
    if root is None:
        return f"set -e; {empty}"
    return (f"set -e; if [ -e /tmp/.emptied ]; then touch -c -d @{int(root.mtime)} /volume; else {empty}; "
            f"chown {int(root.uid)}:{int(root.gid)} /volume; chmod {root.mode & 0o7777:o} /volume; "
            "touch /tmp/.emptied; fi")


def _read_block(stream: Readable, size: int) -> bytes:
    """Up to ``size`` bytes of ``stream``: fewer only at its end (``read`` may return less than asked)."""
    data = b""
    while len(data) < size:
        more = stream.read(size - len(data))
        if not more:
            break
        data += more
    return data


#: The longest secret an order holds (product.yml: generated values and the customer's password, 8..128 ASCII).
_LONGEST_SECRET = 128


class _Tail:
    """The last :data:`OUTPUT_TAIL_BYTES` of what was added (thread-safe enough: one writer). Once some was dropped,
    the text starts after the cut line's end, or :data:`_LONGEST_SECRET` bytes in: what the cut left of a secret
    cannot be recognised by masking (:func:`app.orders.drift.mask_secrets`, whole values only)."""

    def __init__(self, limit: int = OUTPUT_TAIL_BYTES):
        self._limit = limit
        self._data = bytearray()
        self._cut = False

    def add(self, data: bytes) -> None:
        self._cut = self._cut or len(data) > self._limit
        self._data += data[-self._limit:]
        if len(self._data) > self._limit:
            del self._data[:len(self._data) - self._limit]
            self._cut = True

    def text(self) -> str:
        data = bytes(self._data)
        if self._cut:  # the cut line up to its end, at most the longest secret's length
            newline = data.find(b"\n", 0, _LONGEST_SECRET)
            data = data[newline + 1 if newline >= 0 else _LONGEST_SECRET:]
        return data.decode("utf-8", "replace")


class _ExecSession:
    """One exec's hijacked connection: frames of its output, its socket for input, its exit code."""

    #: How long the exec may still report itself running once its output ended (the engine updates it after).
    EXIT_WAIT_SECONDS = 30

    def __init__(self, engine: DockerEngine, container: str, command: tuple[str, ...], exec_id: str,
                 response: requests.Response, buffered, sock: socket.socket, action: str):
        self.engine, self.container, self.command, self.exec_id = engine, container, command, exec_id
        self.response, self.buffered, self.sock, self.action = response, buffered, sock, action

    def describe(self) -> str:
        container = self.container[:12] if _CONTAINER_ID.fullmatch(self.container) else self.container
        return f"command {shlex.join(self.command)} in container {container}"

    def frames(self) -> Iterator[tuple[int, bytes]]:
        """``(stream, data)`` frames (1: standard output, 2: standard error) until the command's output ends."""
        try:
            while True:
                header = self.buffered.read(8)
                if not header:
                    return
                if len(header) < 8:
                    raise EngineUnavailable(f"{self.action}: the Docker engine's stream broke (a frame header of "
                                            f"{len(header)} bytes)")
                kind, size = struct.unpack(">BxxxL", header)
                data = self.buffered.read(size) if size else b""
                if len(data) < size:
                    raise EngineUnavailable(f"{self.action}: the Docker engine's stream broke ({len(data)} of a "
                                            f"frame's {size} bytes)")
                yield kind, data
        except (OSError, ValueError) as exc:  # ValueError: read from a connection closed under us
            raise EngineUnavailable(f"{self.action}: the Docker engine's stream broke: {exc}") from exc

    def check_exit(self, output: str) -> None:
        """Raise :class:`CommandFailed` when the command ended with a non-zero code (``output``: what it printed)."""
        deadline = time.monotonic() + self.EXIT_WAIT_SECONDS
        while True:
            with self.engine._errors(f"{self.action}: read its exit code"):
                info = self.engine.api.exec_inspect(self.exec_id)
            if not info.get("Running") and info.get("ExitCode") is not None:
                break
            if time.monotonic() > deadline:
                raise EngineUnavailable(f"{self.action}: its output ended but the engine still reports it running")
            time.sleep(0.05)
        code = info["ExitCode"]
        if code != 0:
            raise CommandFailed(f"{self.describe()} exited with code {code}: {output.strip()}",
                                exit_code=code, output=output)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.response.close()


class _ExecOutput:
    """``read(n)`` of an exec's standard output; its standard error's tail is kept for the exit check."""

    def __init__(self, session: _ExecSession):
        self._session = session
        self._frames = session.frames()
        self._pending = memoryview(b"")
        self._errors = _Tail()
        self._done = False

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = ARCHIVE_CHUNK_BYTES
        while not self._pending and not self._done:
            frame = next(self._frames, None)
            if frame is None:
                self._done = True
                self._session.check_exit(self._errors.text())
            elif frame[0] == 2:
                self._errors.add(frame[1])
            else:
                self._pending = memoryview(frame[1])
        data, self._pending = bytes(self._pending[:size]), self._pending[size:]
        return data


def _split_image(ref: str) -> tuple[str, str | None]:
    if "@" in ref:
        return ref, None
    name, _, tag = ref.rpartition(":")
    if name and "/" not in tag:
        return name, tag
    return ref, "latest"


def _from_summary(summary: dict[str, Any]) -> ContainerState:
    status = summary.get("Status") or ""
    health_match = _HEALTH_RE.search(status)
    exit_match = _EXIT_RE.match(status)
    ports = {}
    for port in summary.get("Ports") or []:
        if port.get("PublicPort"):
            ports[f"{port['PrivatePort']}/{port.get('Type', 'tcp')}"] = int(port["PublicPort"])
    names = summary.get("Names") or [""]
    return ContainerState(
        id=summary["Id"],
        name=names[0].lstrip("/"),
        labels=summary.get("Labels") or {},
        state=summary.get("State") or "unknown",
        health=health_match.group(1).replace("health: ", "") if health_match else None,
        exit_code=int(exit_match.group(1)) if exit_match else None,
        host_ports=ports,
    )


def stream_socket(stream: Any) -> list[Any]:
    """What holds the socket under a docker-py streaming answer (``CancellableStream``), read while it is open:
    the buffered reader, its ``SocketIO`` and the socket (any of them may be missing)."""
    try:
        reader = stream._response.raw._fp.fp
    except AttributeError:
        return []
    raw = getattr(reader, "raw", None)
    return [reader, raw, getattr(raw, "_sock", None)]


def read_log_stream(stream: Any, action: str) -> Iterator[str]:
    """The lines (:func:`~app.stacks.engine.log_lines`) of a docker-py log stream (its frames' payloads), read as
    they are consumed; what reading raises is translated naming ``action``. The end of the stream, or ``close()``
    (read or not), closes the stream and its socket (:func:`close_stream`)."""
    return _LogLines(stream, action)


class _LogLines:
    """:func:`read_log_stream`'s iterator."""

    def __init__(self, stream: Any, action: str):
        self._stream, self._sock = stream, stream_socket(stream)
        # The pooled connection the answer came on: its socket is closed under it (close_stream), so the connection
        # itself is closed too, or the pool would hand it to the next call with a dead socket (a ValueError in
        # urllib3's liveness check) instead of opening a new one.
        self._connection = getattr(getattr(getattr(stream, "_response", None), "raw", None), "_connection", None)
        self._lines = self._read(action)

    def _close(self) -> None:
        close_stream(self._stream, self._sock)
        if self._connection is not None:
            self._connection.close()

    def _read(self, action: str) -> Iterator[str]:
        try:
            with translate_errors(action):
                try:
                    yield from log_lines(self._stream)
                except (urllib3.exceptions.HTTPError, OSError) as exc:
                    raise EngineUnavailable(f"{action}: the stream broke: {exc}") from exc
        finally:
            self._close()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self._lines)

    def close(self) -> None:
        """Close the engine's stream; from another thread too, while ``next()`` waits (the socket is shut down
        first, which wakes the reader; the generator is closed by its own thread then)."""
        self._close()
        try:
            self._lines.close()
        except ValueError:  # "generator already executing": another thread reads; it ends on the closed socket
            pass


def close_stream(stream: Any, holders: list[Any]) -> None:
    """Close a docker-py streaming answer and its socket, also when the stream broke (docker-py's own ``close()``
    then fails before closing the socket, and a socket closed while its reader is open stays open: one socket
    leaked per broken stream otherwise). ``holders``: :func:`stream_socket`'s."""
    closers = [getattr(stream, "close", None)] + [getattr(holder, "close", None) for holder in holders]
    closers.append(getattr(getattr(stream, "_response", None), "close", None))
    for close in closers:
        if close is None:
            continue
        try:
            close()
        except Exception as exc:  # noqa: BLE001 (closing a broken stream: nothing left to do)
            log.debug("closing a stream: %s", exc)


def _engine_event(raw: dict[str, Any]) -> EngineEvent | None:
    """One decoded ``/events`` message as an :class:`EngineEvent` (None for what is not a container's event)."""
    if (raw.get("Type") or "container") != "container":
        return None
    actor = raw.get("Actor") or {}
    container_id = actor.get("ID") or raw.get("id")
    action = raw.get("Action") or raw.get("status")
    if not container_id or not action:
        return None
    nanos = raw.get("timeNano")
    when = nanos / 1e9 if isinstance(nanos, int) and nanos else float(raw.get("time") or 0)
    attributes = {str(k): str(v) for k, v in (actor.get("Attributes") or {}).items()}
    return EngineEvent(time=when, action=action, container_id=container_id, labels=attributes,
                       attributes=attributes)


def _from_inspect(data: dict[str, Any]) -> ContainerState:
    state = data.get("State") or {}
    ports = {}
    for key, bindings in ((data.get("NetworkSettings") or {}).get("Ports") or {}).items():
        for binding in bindings or []:
            if binding.get("HostPort"):
                ports[key] = int(binding["HostPort"])
                break
    health = (state.get("Health") or {}).get("Status")
    return ContainerState(
        id=data["Id"],
        name=data.get("Name", "").lstrip("/"),
        labels=(data.get("Config") or {}).get("Labels") or {},
        state=state.get("Status") or "unknown",
        health=health,
        exit_code=state.get("ExitCode") if state.get("Status") == "exited" else None,
        host_ports=ports,
    )
