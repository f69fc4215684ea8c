"""Where the time of one volume backup goes: ``python -m bench.backup_profile`` (docs/BENCHMARKS.md, "Backups").

On a volume of its own (BENCH_BACKUP_MIB MiB of random bytes, default 1024, in 8 files) it times, twice each:
the engine's archive stream (``DockerEngine.export_volume``) read and thrown away in 1 MiB and in 4 MiB reads,
the stream plus sha256, the stream into a :class:`~app.backups.file_store.FileBackupStore` (sha256, write,
fsync), the store's commit (read-back and sha256 of the artefact), and sha256 of the stored file alone; then a
cProfile of one store write and commit, sorted by own time. Everything it makes is removed at the end.
"""
from __future__ import annotations

import cProfile
import hashlib
import os
import pstats
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import docker

from app.backups.file_store import FileBackupStore
from app.backups.store import CHUNK_SIZE, BackupHeader
from app.config import load_settings
from app.stacks.docker_engine import DockerEngine

MIB = int(os.environ.get("BENCH_BACKUP_MIB", "1024"))


def main() -> None:
    settings = load_settings({})
    helper, name = settings.helper_image, f"bprof-{secrets.token_hex(4)}"
    labels = {"live.bench-profile": name}
    client = docker.from_env(timeout=300)
    client.volumes.create(name, labels=labels)
    root = Path(tempfile.mkdtemp(prefix="live-bench-profile-"))
    try:
        per_file = MIB // 8 * 1024 * 1024
        client.containers.run(helper, ["sh", "-c", f"i=0; while [ $i -lt 8 ]; do i=$((i+1)); "
                                                   f"head -c {per_file} /dev/urandom > /v/random-$i; done"],
                              volumes={name: {"bind": "/v"}}, remove=True, labels=labels)
        engine = DockerEngine(settings.docker_host)
        store = FileBackupStore(root / "store")
        header = BackupHeader(order_id=1, instance="profile", product="p", revision="r", plan="basic", kind="on_demand")
        writers = []

        def export(consume) -> float:
            os.sync()
            started = time.monotonic()
            with engine.export_volume(name, helper, f"{name}-helper", labels) as stream:
                consume(stream)
            return time.monotonic() - started

        def discard(stream, size=CHUNK_SIZE):
            while stream.read(size):
                pass

        def hashing(stream):
            digest = hashlib.sha256()
            while data := stream.read(CHUNK_SIZE):
                digest.update(data)

        def store_write(stream):
            writer = store.begin(header)
            writer.write_artefact("volume.data.tar", stream)
            writers.append(writer)

        def timed(fn) -> float:
            started = time.monotonic()
            fn()
            return time.monotonic() - started

        for _ in range(2):
            print(f"export, discard 1 MiB reads           {export(discard):6.2f} s")
            print(f"export, discard 4 MiB reads           {export(lambda s: discard(s, 4 * CHUNK_SIZE)):6.2f} s")
            print(f"export + sha256                       {export(hashing):6.2f} s")
            print(f"export + store write (sha256, fsync)  {export(store_write):6.2f} s")
            writer = writers.pop()
            print(f"commit (read-back + sha256)           {timed(writer.commit):6.2f} s")
            path = next((root / "store").rglob("volume.data.tar"))
            print(f"sha256 of the stored file             {timed(lambda: hashing(open(path, 'rb'))):6.2f} s")
            store.delete(writer.backup_id, instance="profile")
        profile = cProfile.Profile()
        profile.enable()
        export(store_write)
        writers[-1].commit()
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(10)
    finally:
        for container in client.containers.list(all=True, filters={"label": f"live.bench-profile={name}"}):
            container.remove(force=True)
        client.volumes.get(name).remove(force=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
