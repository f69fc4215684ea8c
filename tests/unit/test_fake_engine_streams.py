"""The in-memory engine's volume streams and command runs (tests/fakes.py), as the engine adapter behaves:
what the backup and restore code is unit-tested against."""
from __future__ import annotations

import io
import tarfile

import pytest

from app.errors import ArchiveError, CommandFailed, EngineOperationError, EngineUnavailable, ImageMissing, NotFound
from app.stacks.engine import ContainerRequest, VolumeRequest
from tests.fakes import FakeEngine, Killed

HELPER = "live/archive-helper:2"


@pytest.fixture
def engine():
    engine = FakeEngine(images=["busybox", HELPER])
    engine.create_volume(VolumeRequest("data", {"live.order": "1"}))
    engine.write_file("data", "conf/a.xml", b"<a/>")
    engine.write_file("data", "b.bin", bytes(range(256)) * 100)
    return engine


def read_all(stream, size: int = 1000) -> bytes:
    out = b""
    while piece := stream.read(size):
        out += piece
    return out


def running(engine: FakeEngine, name: str = "db", service: str = "postgis") -> str:
    request = ContainerRequest(name=name, image="busybox", labels={"live.service": service}, create={},
                               host_config={}, networks={}, stop_grace_seconds=1)
    container_id = engine.create_container(request)
    engine.start_container(container_id)
    return container_id


def test_export_streams_a_tar_of_the_files_through_a_helper_removed_afterwards(engine):
    with engine.export_volume("data", HELPER, "helper-x", {"live.role": "archive-helper"}) as stream:
        assert engine.container("helper-x").labels == {"live.role": "archive-helper"}
        data = read_all(stream)
    assert all(c.name != "helper-x" for c in engine.containers.values())
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert [m.name for m in tar.getmembers()] == [".", "./b.bin", "./conf/a.xml"]
        assert tar.extractfile("./conf/a.xml").read() == b"<a/>"


def test_import_replaces_every_file_and_returns_the_bytes_read(engine):
    with engine.export_volume("data", HELPER, "h", {}) as stream:
        archive = read_all(stream)
    engine.create_volume(VolumeRequest("other", {}))
    engine.write_file("other", "stale", b"old")
    assert engine.import_volume("other", HELPER, "h", {}, io.BytesIO(archive)) == len(archive)
    assert engine.volumes["other"].files == engine.volumes["data"].files
    assert engine.calls_of("import_volume") == ["other"] and not any(c.name == "h" for c in engine.containers.values())


def test_import_of_a_stream_that_is_no_tar_leaves_the_volume_as_it_was(engine):
    before = dict(engine.volumes["data"].files)
    for junk in (b"", b"not a tar archive at all" * 100):
        with pytest.raises(ArchiveError, match="^restore volume data: the stream is not a tar archive"):
            engine.import_volume("data", HELPER, "h", {}, io.BytesIO(junk))
    assert engine.volumes["data"].files == before


def test_missing_volume_and_missing_image_are_refused_before_anything(engine):
    with pytest.raises(NotFound, match="no such volume"):
        with engine.export_volume("nope", HELPER, "h", {}):
            pass
    with pytest.raises(NotFound, match="no such volume"):
        engine.import_volume("nope", HELPER, "h", {}, io.BytesIO(b""))
    assert "nope" not in engine.volumes
    with pytest.raises(ImageMissing):
        with engine.export_volume("data", "absent:1", "h", {}):
            pass
    with pytest.raises(ImageMissing):
        engine.import_volume("data", "absent:1", "h", {}, io.BytesIO(b""))


def test_errors_of_the_callers_stream_pass_unchanged(engine):
    class Broken:
        def read(self, size=-1):
            raise OSError("the store broke")

    with pytest.raises(OSError, match="the store broke"):
        engine.import_volume("data", HELPER, "h", {}, Broken())
    with pytest.raises(OSError, match="the store broke"):
        engine.exec_input(running(engine), ["pg_restore"], Broken())
    assert not any(c.name == "h" for c in engine.containers.values())


def test_failures_and_stream_failures_strike_once(engine):
    engine.failures[("export_volume", "data")] = EngineUnavailable("down")
    with pytest.raises(EngineUnavailable):
        with engine.export_volume("data", HELPER, "h", {}):
            pass
    engine.stream_failures[("export_volume", "data")] = EngineUnavailable("the stream broke")
    with engine.export_volume("data", HELPER, "h", {}) as stream:
        assert stream.read(10)
        with pytest.raises(EngineUnavailable, match="the stream broke"):
            stream.read(10)
    with engine.export_volume("data", HELPER, "h", {}) as stream:
        archive = read_all(stream)
    engine.stream_failures[("import_volume", "data")] = Killed()
    with pytest.raises(Killed):
        engine.import_volume("data", HELPER, "h", {}, io.BytesIO(archive))
    assert engine.volumes["data"].files == {}  # emptied, nothing extracted
    assert engine.import_volume("data", HELPER, "h", {}, io.BytesIO(archive)) == len(archive)


def test_exec_output_streams_stdout_and_checks_the_exit_code_at_its_end(engine):
    db = running(engine)
    engine.exec_handlers["postgis"] = lambda command, stdin, container: (
        (0, b"DUMP" * 5000, b"") if command[0] == "pg_dump" else (2, b"partial", b"pg_dump: error: no database"))
    with engine.exec_output(db, ["pg_dump", "-Fc"]) as stream:
        assert read_all(stream) == b"DUMP" * 5000
    with engine.exec_output(db, ["false"]) as stream:
        assert stream.read(100) == b"partial"
        with pytest.raises(CommandFailed) as failed:
            stream.read(100)
    assert failed.value.details == {"exit_code": 2, "output": "pg_dump: error: no database"}
    assert str(failed.value).endswith("exited with code 2: pg_dump: error: no database")
    assert engine.execs == [("db", ("pg_dump", "-Fc"), None), ("db", ("false",), None)]


def test_exec_input_hands_the_stream_to_the_handler_and_returns_the_output_tail(engine):
    db = running(engine)
    seen = []

    def restore(command, stdin, container):
        seen.append((command, stdin, container.name))
        return 0, b"o" * 5000, b"restored\n"

    engine.exec_handlers["db"] = restore  # by container name, before the service
    assert engine.exec_input(db, ("pg_restore",), io.BytesIO(b"x" * 10000)) == ("o" * 5000 + "restored\n")[-4096:]
    assert engine.exec_input(db, ["reindex"]) == ("o" * 5000 + "restored\n")[-4096:]
    assert seen == [(("pg_restore",), b"x" * 10000, "db"), (("reindex",), None, "db")]


def test_without_a_handler_a_command_is_not_found_and_a_stopped_container_is_refused(engine):
    db = running(engine)
    with pytest.raises(CommandFailed, match="exited with code 127: sh: pg_dump: command not found") as failed:
        engine.exec_input(db, ["pg_dump"])
    assert failed.value.details["exit_code"] == 127
    engine.stop_container(db, 0)
    with pytest.raises(EngineOperationError, match="is not running"):
        engine.exec_input(db, ["true"])
    with pytest.raises(EngineOperationError, match="is not running"):
        with engine.exec_output(db, ["true"]):
            pass
    with pytest.raises(NotFound):
        engine.exec_input("gone", ["true"])
