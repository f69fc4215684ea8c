"""A second Docker engine on this machine, joined to the local swarm as a worker, for two-node tests.

Drives scripts/swarm-test-node.sh (how it works and why: docs/SWARM-TEST-NODE.md). The worker's
engine runs in the network namespace ``live-<name>``; its socket is also its node label ``live.engine``,
the address a swarm-mode bridge uses for the node's data operations (exec, volumes).

    node = start_node(manager)       # -> SwarmNode; raises SwarmNodeUnavailable (with the script's reason)
    ...
    stop_node(node)                  # leave, remove the node on the manager, stop dockerd, remove netns + data
    with second_node(manager) as node: ...   # the same as a context manager

tests/conftest.py exposes it as the session fixture ``swarm_worker``. Needs root, a swarm manager as
DOCKER_HOST whose advertised address is an address of this machine, and the test images on the manager
(copied into the node by the script). LIVE_TEST_SWARM_NODE_KEEP=1 leaves the node up after the session
(the next ``up`` reuses it in well under a second; ``scripts/swarm-test-node.sh down`` removes it).
"""
from __future__ import annotations

import logging
import os
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import docker

from app.config import PROJECT_ROOT

logger = logging.getLogger(__name__)

SCRIPT = PROJECT_ROOT / "scripts" / "swarm-test-node.sh"
SCRIPT_TIMEOUT_SECONDS = 180  # up: dockerd start, join, Ready, image load; down: leave, stop, clean


class SwarmNodeUnavailable(Exception):
    """The second engine could not be started here; the message has the script's reason (its stderr)."""


@dataclass(frozen=True)
class SwarmNode:
    """A worker node of the local swarm and a client of its own engine.

    name: the script's NAME (network namespace ``live-<name>``); node_id: its swarm node id;
    hostname: the node's Description.Hostname on the manager (``live-<name>``); socket_url:
    ``unix:///run/live-<name>/docker.sock`` (equal to its node label ``live.engine``); address: its
    advertise address (the netns end of the veth, e.g. 172.31.250.2); client: docker.DockerClient of
    that engine (API version negotiated).
    """

    name: str
    node_id: str
    hostname: str
    socket_url: str
    address: str
    client: docker.DockerClient


def _run(action: str, name: str) -> str:
    """Runs ``swarm-test-node.sh ACTION NAME``; returns stdout; raises SwarmNodeUnavailable on failure."""
    try:
        result = subprocess.run(["bash", str(SCRIPT), action, name], capture_output=True, text=True,
                                timeout=SCRIPT_TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SwarmNodeUnavailable(f"{SCRIPT.name} {action} {name}: {exc}") from exc
    if result.returncode != 0:
        raise SwarmNodeUnavailable(f"{SCRIPT.name} {action} {name} exited {result.returncode}: "
                                   f"{result.stderr.strip()}")
    return result.stdout


def start_node(manager: docker.DockerClient, name: str = "node2") -> SwarmNode:
    """Brings node ``name`` up (idempotent) and returns it, Ready on ``manager`` with the test images.

    On failure whatever was started is torn down again and SwarmNodeUnavailable is raised.
    """
    try:
        node_id = _run("up", name).split()[-1]
        socket_url = f"unix:///run/live-{name}/docker.sock"
        client = docker.DockerClient(base_url=socket_url, version="auto", timeout=60)
        attrs = manager.nodes.get(node_id).attrs
    except Exception as exc:
        try:
            _run("down", name)
        except SwarmNodeUnavailable as cleanup:
            logger.warning("cleaning up after a failed start of %s: %s", name, cleanup)
        if isinstance(exc, SwarmNodeUnavailable):
            raise
        raise SwarmNodeUnavailable(f"node {name} started but cannot be used: {exc}") from exc
    return SwarmNode(name=name, node_id=node_id, hostname=attrs["Description"]["Hostname"],
                     socket_url=socket_url, address=attrs["Status"]["Addr"], client=client)


def stop_node(node: SwarmNode) -> None:
    """Removes the node entirely (see the script's ``down``); raises SwarmNodeUnavailable on failure."""
    node.client.close()
    _run("down", node.name)


@contextmanager
def second_node(manager: docker.DockerClient, name: str = "node2") -> Iterator[SwarmNode]:
    """start_node, then stop_node on exit unless LIVE_TEST_SWARM_NODE_KEEP=1."""
    node = start_node(manager, name)
    try:
        yield node
    finally:
        if os.environ.get("LIVE_TEST_SWARM_NODE_KEEP") == "1":
            node.client.close()
        else:
            stop_node(node)
