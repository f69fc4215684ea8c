"""``Engine.stream_logs`` on the real engine, one engine and a swarm (issue 16): the last lines of a container (a
swarm service) that stopped, ``since`` keeping only lines written from a time on, a followed stream that is
closed while the container still writes, one closed from another thread while its reader waits for the engine
(what a deadline does), and a swarm service with a TTY (raw text, no frames)."""
from __future__ import annotations

import contextlib
import secrets
import threading
from datetime import datetime

import docker.errors
import pytest
from docker.types import RestartPolicy

from app.stacks.docker_engine import DockerEngine
from app.stacks.swarm_engine import SwarmEngine
from tests.conftest import TEST_IMAGE, require_swarm_manager
from tests.support.waiting import wait_for

#: 300 early lines, a pause, one on standard error, a pause, 3 late ones; then it ends. (The engine timestamps each
#: stream's lines as it reads them, so only a pause orders lines of the two streams.)
SCRIPT = ["sh", "-c", "i=1; while [ $i -le 300 ]; do echo early $i; i=$((i+1)); done; sleep 1; echo oops >&2; "
                      "sleep 1; echo late 1; echo late 2; echo late 3"]
PREFIX = "logs16t"


@pytest.fixture(scope="module", params=["docker", "swarm"])
def stopped(request, docker_engine):
    """``(engine, id)`` of a container (a swarm service) that ran :data:`SCRIPT` to its end; removed afterwards."""
    name, labels = f"{PREFIX}-{secrets.token_hex(4)}", {"live.deployment": PREFIX}
    if request.param == "swarm":
        require_swarm_manager(docker_engine)
        target = docker_engine.services.create(TEST_IMAGE, SCRIPT, name=name, labels=labels, container_labels=labels,
                                               init=True, restart_policy=RestartPolicy(condition="none"))
        engine = SwarmEngine()
    else:
        target = docker_engine.containers.run(TEST_IMAGE, SCRIPT, name=name, detach=True, labels=labels, init=True,
                                              network_mode="none")
        target.wait(timeout=60)
        engine = DockerEngine()
    try:
        wait_for(lambda: list(engine.stream_logs(target.id, tail=1)) == ["late 3"], timeout=60, what="the last line")
        yield engine, target.id
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            if request.param == "swarm":
                target.remove()  # its task's container goes with it
            else:
                target.remove(force=True)


def test_the_last_lines_of_a_stopped_container_standard_error_included(stopped):
    engine, target = stopped
    assert list(engine.stream_logs(target, tail=5)) == ["early 300", "oops", "late 1", "late 2", "late 3"]
    assert len(list(engine.stream_logs(target, tail=1000))) == 304


def test_since_keeps_the_lines_written_from_then_on(stopped, docker_engine):
    engine, target = stopped
    # When "late 1" was written, as the engine timestamps it (a pause keeps the earlier lines before it).
    api = docker_engine.api
    raw = (b"".join(api.service_logs(target, stdout=True, stderr=True, timestamps=True, is_tty=False))
           if isinstance(engine, SwarmEngine) else api.logs(target, timestamps=True))
    stamp = next(line for line in raw.decode().splitlines() if line.endswith(" late 1")).split(" ")[0]
    since = datetime.fromisoformat(stamp[:26].rstrip("Z") + "+00:00")
    assert list(engine.stream_logs(target, tail=1000, since=since)) == ["late 1", "late 2", "late 3"]


@pytest.fixture
def chatty(docker_engine):
    container = docker_engine.containers.run(TEST_IMAGE, ["sh", "-c", "i=0; while true; do echo tick $i; "
                                                                      "i=$((i+1)); sleep 0.2; done"],
                                             name=f"{PREFIX}-{secrets.token_hex(4)}", detach=True, init=True,
                                             labels={"live.deployment": PREFIX}, network_mode="none")
    yield container
    container.remove(force=True)


def test_a_followed_stream_gives_new_lines_and_closes(chatty):
    stream = DockerEngine().stream_logs(chatty.id, tail=0, follow=True)
    first = [next(stream) for _ in range(3)]
    stream.close()
    numbers = [int(line.split()[1]) for line in first]
    assert [line.split()[0] for line in first] == ["tick"] * 3 and numbers == sorted(numbers)
    with pytest.raises(StopIteration):
        next(stream)


def test_a_stream_closed_from_another_thread_wakes_its_waiting_reader(docker_engine):
    container = docker_engine.containers.run(TEST_IMAGE, ["sh", "-c", "echo ready; sleep 600"],
                                             name=f"{PREFIX}-{secrets.token_hex(4)}", detach=True, init=True,
                                             labels={"live.deployment": PREFIX}, network_mode="none")
    try:
        stream = DockerEngine().stream_logs(container.id, tail=10, follow=True)
        read: list[str] = []
        reader = threading.Thread(target=lambda: read.extend(stream), name="logs16t-reader", daemon=True)
        reader.start()
        wait_for(lambda: read == ["ready"], timeout=30, what="the first line")
        stream.close()  # the reader waits in the socket for a line that never comes
        reader.join(timeout=30)
        assert not reader.is_alive() and read == ["ready"]
    finally:
        container.remove(force=True)


def test_a_swarm_service_with_a_tty_is_read_as_text(docker_engine):
    require_swarm_manager(docker_engine)
    labels = {"live.deployment": PREFIX}
    service = docker_engine.services.create(TEST_IMAGE, ["sh", "-c", "echo tty one; echo tty two"],
                                            name=f"{PREFIX}-{secrets.token_hex(4)}", labels=labels,
                                            container_labels=labels, init=True, tty=True,
                                            restart_policy=RestartPolicy(condition="none"))
    try:
        engine = SwarmEngine()
        wait_for(lambda: list(engine.stream_logs(service.id, tail=10)) == ["tty one", "tty two"], timeout=60,
                 what="the TTY service's two lines")
        assert engine.container_logs(service.id, tail=10).splitlines() == ["tty one", "tty two"]
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            service.remove()
