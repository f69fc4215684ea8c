"""DockerEngine.export_volume and import_volume on the real engine (issue 13): a volume's files leave as a tar
stream and come back exactly (owners, modes, times, links, empty folders), the target emptied first, in flat
memory; streams that are no whole tar archive are refused naming the volume."""
from __future__ import annotations

import hashlib
import io
import json
import secrets
import subprocess
import sys
import tarfile
import textwrap

import pytest

from app.config import PROJECT_ROOT
from app.errors import ArchiveError, EngineOperationError, ImageMissing, NotFound
from app.stacks.docker_engine import DockerEngine
from app.stacks.engine import VolumeRequest
from tests.conftest import HELPER_IMAGE, TEST_IMAGE, remove_deployment_objects

# Files of every kind a service's volume holds; times are set last (creating a child changes a folder's time).
POPULATE = """
set -e
mkdir -p /v/a/b/c /v/empty /v/a/emptier /v/private
echo hello > /v/a/b/c/deep.txt
echo secret > /v/owned && chown 999:999 /v/owned && chmod 0600 /v/owned
printf x > /v/private/f && chown 999:998 /v/private/f /v/private && chmod 0750 /v/private
printf '#!/bin/sh\\n' > /v/run.sh && chmod 4755 /v/run.sh
ln -s a/b/c/deep.txt /v/link && ln -s /nowhere /v/dangling && ln /v/a/b/c/deep.txt /v/hard
echo h > /v/.hidden
chown 999:999 /v && chmod 0751 /v
touch -d '2020-01-02 03:04:05' /v/a/b/c/deep.txt /v/owned /v/a/b/c /v/empty /v/private /v/a /v
"""
# What is compared: every path with its type, owner, mode, size, mtime, link target and content hash.
SNAPSHOT = """
cd /v && find . | sort | while read -r f; do
  printf '%s|%s|%s' "$f" "$(stat -c '%F|%u|%g|%a|%Y' "$f")" "$(readlink "$f")"
  [ -f "$f" ] && [ ! -L "$f" ] && printf '|%s|%s' "$(stat -c %s "$f")" "$(md5sum < "$f" | cut -c1-32)"
  echo
done
"""


@pytest.fixture
def namespace(docker_engine):
    """A label value of this test's objects (volumes, helpers, containers), all removed afterwards."""
    token = "t" + secrets.token_hex(4)
    yield token
    remove_deployment_objects(docker_engine, token)


@pytest.fixture
def engine():
    return DockerEngine()


def make_volume(engine: DockerEngine, namespace: str, name: str) -> str:
    volume = f"{namespace}-{name}"
    engine.create_volume(VolumeRequest(volume, {"live.deployment": namespace}))
    return volume


def run(docker_engine, volume: str, script: str) -> str:
    return docker_engine.containers.run(TEST_IMAGE, ["sh", "-c", script], volumes={volume: {"bind": "/v"}},
                                        remove=True, init=True).decode()


def export_bytes(engine: DockerEngine, volume: str, namespace: str) -> bytes:
    with engine.export_volume(volume, HELPER_IMAGE, f"{namespace}-export", {"live.deployment": namespace}) as stream:
        data = bytearray()
        while piece := stream.read(65536):
            data += piece
    return bytes(data)


def helpers_left(docker_engine, namespace: str) -> list[str]:
    return [c.name for c in docker_engine.containers.list(all=True, filters={"label": f"live.deployment={namespace}"})]


def test_a_volume_round_trips_exactly_and_the_target_is_emptied_first(docker_engine, engine, namespace):
    source = make_volume(engine, namespace, "source")
    run(docker_engine, source, POPULATE)
    data = export_bytes(engine, source, namespace)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["."].isdir() and members["./a/b/c/deep.txt"].isfile()
    assert (members["./owned"].uid, members["./owned"].gid, members["./owned"].mode & 0o7777) == (999, 999, 0o600)
    assert members["./link"].issym() and members["./link"].linkname == "a/b/c/deep.txt"

    target = make_volume(engine, namespace, "target")
    run(docker_engine, target, "mkdir -p /v/stale/dir /v/a/b && echo old > /v/stale/dir/f && echo old > /v/.old "
                               "&& echo old > /v/a/b/old && ln -s x /v/oldlink")
    read = engine.import_volume(target, HELPER_IMAGE, f"{namespace}-import", {"live.deployment": namespace},
                                io.BytesIO(data))
    assert read == len(data)
    expected = run(docker_engine, source, SNAPSHOT)
    assert "./owned|regular file|999|999|600|1577934245|" in expected  # 2020-01-02 03:04:05 UTC
    assert expected.startswith(".|directory|999|999|751|1577934245|\n")  # the engine skips the root's entry
    assert "./private|directory|999|998|750|1577934245|" in expected and "./run.sh|regular file|0|0|4755|" in expected
    assert "./link|symbolic link|0|0|777|" in expected and "./empty|directory|" in expected
    assert run(docker_engine, target, SNAPSHOT) == expected
    assert run(docker_engine, target, "stat -c %h /v/hard").strip() == "2"  # the hard link is one again
    assert helpers_left(docker_engine, namespace) == []


def test_streams_that_are_no_whole_tar_archive_are_refused_naming_the_volume(docker_engine, engine, namespace):
    source = make_volume(engine, namespace, "source")
    run(docker_engine, source, POPULATE)
    data = export_bytes(engine, source, namespace)
    target = make_volume(engine, namespace, "target")
    run(docker_engine, target, "echo keep > /v/keep")
    helper = f"{namespace}-import"

    for junk in (b"", b"short", secrets.token_bytes(100_000)):  # not even a first tar header: volume untouched
        with pytest.raises(ArchiveError, match=f"^restore volume {target}: the stream is not a tar archive"):
            engine.import_volume(target, HELPER_IMAGE, helper, {"live.deployment": namespace}, io.BytesIO(junk))
        assert run(docker_engine, target, "ls -A /v") == "keep\n"

    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        boundary = tar.getmembers()[5].offset  # cut where the engine's extractor sees a clean end
        inside = tar.getmembers()[-1].offset_data + 1  # cut inside a file: the engine's extractor fails
    with pytest.raises(ArchiveError, match=f"^restore volume {target}: the stream ends before the end of the tar "
                                           "archive"):
        engine.import_volume(target, HELPER_IMAGE, helper, {}, io.BytesIO(data[:boundary]))
    with pytest.raises(ArchiveError, match=f"^restore volume {target}: "):
        engine.import_volume(target, HELPER_IMAGE, helper, {}, io.BytesIO(data[:inside]))
    assert helpers_left(docker_engine, namespace) == []
    assert docker_engine.containers.list(all=True, filters={"name": helper}) == []


def test_errors_of_the_callers_stream_pass_unchanged_and_the_helper_is_removed(docker_engine, engine, namespace):
    source = make_volume(engine, namespace, "source")
    run(docker_engine, source, "head -c 3000000 /dev/urandom > /v/big")
    data = export_bytes(engine, source, namespace)

    class Breaks:
        def __init__(self):
            self.position = 0

        def read(self, size=-1):
            if self.position > 1_000_000:
                raise ConnectionResetError("the backup store went away")
            piece = data[self.position:self.position + 65536]
            self.position += len(piece)
            return piece

    helper = f"{namespace}-import"
    with pytest.raises(ConnectionResetError, match="the backup store went away"):
        engine.import_volume(source, HELPER_IMAGE, helper, {"live.deployment": namespace}, Breaks())
    assert docker_engine.containers.list(all=True, filters={"name": helper}) == []


def test_a_missing_volume_or_image_is_refused_and_no_volume_is_created(docker_engine, engine, namespace):
    missing = f"{namespace}-missing"
    with pytest.raises(NotFound, match=missing):
        with engine.export_volume(missing, HELPER_IMAGE, f"{namespace}-h", {"live.deployment": namespace}):
            pass
    with pytest.raises(NotFound, match=missing):
        engine.import_volume(missing, HELPER_IMAGE, f"{namespace}-h", {"live.deployment": namespace},
                             io.BytesIO(b"\0" * 1024))
    assert engine.volume_exists(missing) is False
    volume = make_volume(engine, namespace, "v")
    with pytest.raises(ImageMissing):
        with engine.export_volume(volume, "live-test/absent:1", f"{namespace}-h", {"live.deployment": namespace}):
            pass
    assert helpers_left(docker_engine, namespace) == []


# Run in a fresh interpreter, so its peak RSS is this round trip's own and not the test session's.
ROUND_TRIP = textwrap.dedent("""
    import json, resource, sys
    from app.stacks.docker_engine import DockerEngine
    source, target, image, namespace = sys.argv[1:5]
    engine = DockerEngine()
    engine.ping()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    labels = {"live.deployment": namespace}
    with engine.export_volume(source, image, namespace + "-export", labels) as stream:
        read = engine.import_volume(target, image, namespace + "-import", labels, stream)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"read": read, "before_kib": before, "after_kib": after}))
""")


def test_a_200_mb_volume_streams_into_another_in_flat_memory(docker_engine, engine, namespace):
    source = make_volume(engine, namespace, "source")
    run(docker_engine, source, "mkdir /v/d && head -c 150000000 /dev/urandom > /v/d/big && "
                               "for i in $(seq 1 50); do head -c 1000000 /dev/urandom > /v/d/f$i; done")
    target = make_volume(engine, namespace, "target")
    run(docker_engine, target, "echo stale > /v/stale")
    result = subprocess.run([sys.executable, "-c", ROUND_TRIP, source, target, HELPER_IMAGE, namespace],
                            capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["read"] > 200_000_000
    growth_mib = (figures["after_kib"] - figures["before_kib"]) / 1024
    assert growth_mib < 64, f"peak RSS grew by {growth_mib:.0f} MiB while streaming 200 MB"
    checksums = "cd /v && find . -type f | sort | xargs md5sum"
    assert run(docker_engine, target, checksums) == run(docker_engine, source, checksums)
    assert helpers_left(docker_engine, namespace) == []


def test_the_exported_archive_is_plain_tar_not_compressed(engine, namespace, docker_engine):
    volume = make_volume(engine, namespace, "v")
    run(docker_engine, volume, "head -c 100000 /dev/zero > /v/zeros")
    data = export_bytes(engine, volume, namespace)
    assert len(data) > 100_000 and data[257:262] == b"ustar"  # the engine gzips for clients that accept it
    assert hashlib.md5(data[1024:1024 + 100_000]).digest() == hashlib.md5(b"\0" * 100_000).digest()


def test_a_full_volume_is_an_engine_refusal_not_a_bad_archive(docker_engine, engine, namespace):
    source = make_volume(engine, namespace, "source")
    run(docker_engine, source, "head -c 60000000 /dev/urandom > /v/big")  # far beyond the socket's buffers
    data = export_bytes(engine, source, namespace)
    small = f"{namespace}-small"
    docker_engine.volumes.create(small, driver="local", labels={"live.deployment": namespace},
                                 driver_opts={"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    with pytest.raises(EngineOperationError, match=f"^restore volume {small}: the engine could not write the files: "
                                                   ".*no space left on device") as refused:
        engine.import_volume(small, HELPER_IMAGE, f"{namespace}-import", {"live.deployment": namespace},
                             io.BytesIO(data))
    assert not isinstance(refused.value, ArchiveError)
    assert helpers_left(docker_engine, namespace) == []


def test_an_archive_from_another_tar_with_padding_after_its_end_is_read_to_its_end(docker_engine, engine, namespace):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:  # no "." member first
        info = tarfile.TarInfo("sub/file.txt")
        info.size, info.uid, info.mode, info.mtime = 5, 70, 0o640, 1_600_000_000
        tar.addfile(info, io.BytesIO(b"hello"))
    data = buffer.getvalue() + b"\0" * 2_000_000  # record padding, and far more than the engine reads after the end
    target = make_volume(engine, namespace, "target")
    run(docker_engine, target, "echo old > /v/old")
    assert engine.import_volume(target, HELPER_IMAGE, f"{namespace}-import", {"live.deployment": namespace},
                                io.BytesIO(data)) == len(data)
    assert run(docker_engine, target, "cd /v && find . | sort && stat -c '%u %a %Y' sub/file.txt && cat sub/file.txt && echo") \
        == ".\n./sub\n./sub/file.txt\n70 640 1600000000\nhello\n"
