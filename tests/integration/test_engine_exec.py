"""DockerEngine.exec_output and exec_input on the real engine (issue 13): a command's output streamed out with
its exit code checked at the end, input streamed in while a chatty output is read (no deadlock), failures as
CommandFailed with the command's error output, and containers that are not running refused."""
from __future__ import annotations

import hashlib
import secrets
import shlex

import docker.errors
import pytest

from app.errors import CommandFailed, EngineOperationError, NotFound
from app.stacks.docker_engine import DockerEngine
from app.stacks.engine import OUTPUT_TAIL_BYTES
from tests.conftest import TEST_IMAGE


@pytest.fixture
def container(docker_engine):
    """A running busybox container (init: its PID 1 would ignore SIGTERM), removed afterwards."""
    started = docker_engine.containers.run(TEST_IMAGE, ["sleep", "3600"], detach=True, init=True,
                                           name=f"t{secrets.token_hex(4)}-exec", network_mode="none")
    yield started
    try:
        started.remove(force=True)
    except docker.errors.NotFound:
        pass  # the test removed it


@pytest.fixture
def engine():
    return DockerEngine()


class Pattern:
    """``total`` bytes of a repeated random block, handed out as asked; its sha256 computed as it goes."""

    def __init__(self, total: int, block: int = 1 << 20):
        self.left, self.block, self.position = total, secrets.token_bytes(block), 0
        self.hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        size = min(self.left, size if size and size > 0 else 65536, len(self.block) - self.position)
        piece = self.block[self.position:self.position + size]
        self.position = (self.position + size) % len(self.block)
        self.left -= size
        self.hash.update(piece)
        return piece


def read_all(stream, size: int = 65536) -> bytes:
    out = bytearray()
    while piece := stream.read(size):
        out += piece
    return bytes(out)


def test_exec_output_streams_stdout_alone_even_with_chatty_stderr(engine, container):
    command = ["sh", "-c", "seq 1 300000; seq 1 300000 >&2"]
    with engine.exec_output(container.id, command) as stream:
        out = read_all(stream, 1000)
    assert out == "".join(f"{i}\n" for i in range(1, 300001)).encode()


def test_a_failing_command_raises_command_failed_with_its_stderr_once_its_output_ends(engine, container):
    command = ["sh", "-c", "echo partial; seq 1 5000 >&2; echo 'pg_dump: error: connection refused' >&2; exit 3"]
    with engine.exec_output(container.id, command) as stream:
        assert stream.read(100) == b"partial\n"
        with pytest.raises(CommandFailed) as failed:
            stream.read(100)
    error = failed.value
    assert error.details["exit_code"] == 3
    assert error.details["output"].endswith("5000\npg_dump: error: connection refused\n")
    # The last OUTPUT_TAIL_BYTES, from the first whole line (a cut line could start with the end of a secret).
    assert OUTPUT_TAIL_BYTES - 10 < len(error.details["output"].encode()) < OUTPUT_TAIL_BYTES
    assert error.details["output"].split("\n", 1)[0].isdigit()
    assert str(error).startswith(f"command {shlex.join(command)} in container {container.id[:12]} exited with code 3: ")
    assert str(error).endswith("pg_dump: error: connection refused")
    assert isinstance(error, EngineOperationError) and "connection refused" not in error.public


def test_exec_input_streams_50_mb_in_while_the_command_writes_megabytes_out(engine, container):
    data = Pattern(50 * 1024 * 1024)
    # The command writes ~4 MB (beyond every pipe and socket buffer) before it reads its input: reading the output
    # only after sending the input would block both sides.
    output = engine.exec_input(container.id, ["sh", "-c", "seq 1 300000 >&2; seq 1 300000; sha256sum"], data)
    assert data.left == 0
    assert output.endswith(f"300000\n{data.hash.hexdigest()}  -\n")
    assert OUTPUT_TAIL_BYTES - 10 < len(output.encode()) < OUTPUT_TAIL_BYTES


def test_exec_input_of_a_command_that_stops_reading_early(engine, container):
    assert engine.exec_input(container.id, ["sh", "-c", "head -c 10 >/dev/null; echo done"],
                             Pattern(50 * 1024 * 1024)) == "done\n"
    with pytest.raises(CommandFailed, match=r"exited with code 4: psql: FATAL: no such role$") as failed:
        engine.exec_input(container.id, ["sh", "-c", "echo 'psql: FATAL: no such role' >&2; exit 4"],
                          Pattern(50 * 1024 * 1024))
    assert failed.value.details == {"exit_code": 4, "output": "psql: FATAL: no such role\n"}


def test_exec_input_without_a_stream_and_a_missing_command(engine, container):
    assert engine.exec_input(container.id, ["sh", "-c", "cat; echo no input"]) == "no input\n"
    with pytest.raises(CommandFailed) as failed:
        engine.exec_input(container.id, ["pg_restore", "--clean"])
    # The runtime cannot start it: exit code 126, its message as the output (a shell would say 127).
    assert failed.value.details["exit_code"] == 126
    assert "executable file not found" in failed.value.details["output"]


def test_errors_of_the_input_stream_pass_unchanged(engine, container):
    class Breaks(Pattern):
        def read(self, size=-1):
            if self.left < 40 * 1024 * 1024:
                raise TimeoutError("the backup store timed out")
            return super().read(size)

    with pytest.raises(TimeoutError, match="^the backup store timed out$"):
        engine.exec_input(container.id, ["sh", "-c", "cat > /dev/null"], Breaks(50 * 1024 * 1024))
    assert engine.exec_input(container.id, ["echo", "still usable"]) == "still usable\n"


def test_a_container_that_is_not_running_is_refused(engine, container):
    container.stop(timeout=0)
    with pytest.raises(EngineOperationError, match="is not running") as refused:
        engine.exec_input(container.id, ["true"])
    assert not isinstance(refused.value, CommandFailed)
    with pytest.raises(EngineOperationError, match="is not running"):
        with engine.exec_output(container.id, ["true"]):
            pass
    container.remove(force=True)
    with pytest.raises(NotFound):
        engine.exec_input(container.id, ["true"])
