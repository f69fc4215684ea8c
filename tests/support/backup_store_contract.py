"""What every backup store does (app/backups/store.py), whatever holds its bytes.

:class:`BackupStoreContract` is inherited by one test class per store (``tests/unit/test_backup_store_file.py``,
``tests/integration/test_backup_store_s3.py``), which provides three fixtures:

- ``make_store(clock)``: a new, empty store whose ``clock`` is the given callable;
- ``tamper(store, instance, backup_id, name, data)``: replace a stored artefact's bytes behind the store's back
  (a disk or a bucket corrupting it), keeping whatever the store recorded besides the bytes;
- ``raw_keys(store)``: every file or key the store holds, as ``<instance>/<backup_id>/<name>``.
"""
from __future__ import annotations

import hashlib
import json
import random
from datetime import datetime, timedelta, timezone

import pytest

from app.backups.store import (
    CHUNK_SIZE, MANIFEST_FORMAT, BackupHeader, Manifest, backup_id_time, is_backup_id,
)
from app.errors import BackupStoreError, InvalidRequest, NotFound

MB = 1024 * 1024
T0 = datetime(2026, 12, 1, 8, 0, 0, tzinfo=timezone.utc)


class Clock:
    """A settable clock, aware UTC."""

    def __init__(self, now: datetime = T0):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


class GeneratedStream:
    """``size`` pseudo-random bytes made on demand, block by block; records the largest read asked and served.

    Never holds more than one block: a store that read it whole would show ``largest_read == size``.
    """

    def __init__(self, size: int, seed: int = 7, block: int = 64 * 1024):
        self.size = size
        self.remaining = size
        self.random = random.Random(seed)
        self.block = block
        self.largest_read = 0
        self.reads = 0
        self._pending = b""
        self._hash = hashlib.sha256()

    def _blocks(self, wanted: int) -> bytes:
        while len(self._pending) < wanted and self.remaining > 0:
            n = min(self.block, self.remaining)
            data = self.random.randbytes(n)
            self._hash.update(data)
            self.remaining -= n
            self._pending += data
        out, self._pending = self._pending[:wanted], self._pending[wanted:]
        return out

    def read(self, size: int = -1) -> bytes:
        assert size is not None and size > 0, f"the store asked for the whole stream (read({size}))"
        self.reads += 1
        data = self._blocks(size)
        self.largest_read = max(self.largest_read, len(data))
        return data

    @property
    def sha256(self) -> str:
        """The sha256 of everything produced (complete once the stream was read to its end)."""
        return self._hash.hexdigest()


class ShortReads:
    """A stream that never gives more than ``piece`` bytes per read, like a socket: ``inner``'s bytes."""

    def __init__(self, inner, piece: int):
        self.inner, self.piece = inner, piece

    def read(self, size: int = -1) -> bytes:
        return self.inner.read(min(self.piece, size if size is not None and size >= 0 else self.piece))


class Chunks:
    """A stream of the given byte strings."""

    def __init__(self, *parts: bytes):
        self.data = b"".join(parts)

    def read(self, size: int = -1) -> bytes:
        out, self.data = self.data[:size], self.data[size:]
        return out


def header(order_id: int = 42, instance: str = "acme-maps", kind: str = "on_demand") -> BackupHeader:
    return BackupHeader(order_id=order_id, instance=instance, product="geoserver-postgis", revision="3f2a9c1",
                        plan="small", kind=kind, services=("geoserver", "db"))


def backup(store, artefacts: dict[str, bytes], **kwargs) -> Manifest:
    writer = store.begin(header(**kwargs))
    for name, data in artefacts.items():
        writer.write_artefact(name, Chunks(data))
    return writer.commit()


def read_all(stream) -> bytes:
    with stream:
        parts = []
        while data := stream.read(256 * 1024):
            parts.append(data)
    return b"".join(parts)


class BackupStoreContract:
    """The behaviour every :class:`~app.backups.store.BackupStore` shares."""

    #: The largest read a store may ask of an artefact's stream (the S3 store reads a part at a time).
    max_read = CHUNK_SIZE

    @pytest.fixture
    def clock(self) -> Clock:
        return Clock()

    @pytest.fixture
    def store(self, make_store, clock):
        return make_store(clock)

    # -- writing and reading back ---------------------------------------------------------------------------------
    def test_a_multi_megabyte_artefact_streams_in_and_out_unchanged(self, store):
        stream = GeneratedStream(20 * MB + 12345)
        writer = store.begin(header())
        artefact = writer.write_artefact("geoserver-data.tar", stream)
        assert stream.remaining == 0 and artefact.size == stream.size and artefact.sha256 == stream.sha256
        assert stream.largest_read <= self.max_read < stream.size, "the stream was read in bounded pieces"
        manifest = writer.commit()
        assert manifest.artefacts == (artefact,)
        with store.open_artefact(manifest.backup_id, "geoserver-data.tar") as body:
            digest, size, largest = hashlib.sha256(), 0, 0
            while data := body.read(CHUNK_SIZE):
                digest.update(data)
                size += len(data)
                largest = max(largest, len(data))
        assert (size, digest.hexdigest()) == (stream.size, stream.sha256)
        assert store.verify(manifest.backup_id) == []

    def test_a_stream_that_answers_in_short_reads_is_stored_whole(self, store):
        # A socket or an exec's frames give fewer bytes than asked long before their end; a consumer that takes a
        # short read for the end (boto3's multipart upload) stored only the first piece, and called it a success.
        stream = ShortReads(GeneratedStream(9 * MB + 777), piece=8192)
        writer = store.begin(header())
        artefact = writer.write_artefact("dump.db", stream)
        assert artefact.size == stream.inner.size and artefact.sha256 == stream.inner.sha256
        manifest = writer.commit()
        assert store.verify(manifest.backup_id) == []
        with store.open_artefact(manifest.backup_id, "dump.db") as body:
            digest, size = hashlib.sha256(), 0
            while data := body.read(CHUNK_SIZE):
                digest.update(data)
                size += len(data)
        assert (size, digest.hexdigest()) == (stream.inner.size, stream.inner.sha256)

    def test_the_manifest_records_everything_and_reads_back_from_its_json(self, store, clock):
        manifest = backup(store, {"db.dump": b"PGDMP" + b"x" * 1000, "empty.tar": b""})
        assert is_backup_id(manifest.backup_id) and manifest.created_at == T0
        assert backup_id_time(manifest.backup_id) == T0
        assert [(a.name, a.size, a.sha256) for a in manifest.artefacts] == [
            ("db.dump", 1005, hashlib.sha256(b"PGDMP" + b"x" * 1000).hexdigest()),
            ("empty.tar", 0, hashlib.sha256(b"").hexdigest())]
        assert (manifest.order_id, manifest.instance, manifest.product, manifest.revision, manifest.plan,
                manifest.kind, manifest.services) == (42, "acme-maps", "geoserver-postgis", "3f2a9c1", "small",
                                                      "on_demand", ("geoserver", "db"))
        data = json.loads(manifest.to_json())
        assert data["format"] == MANIFEST_FORMAT and data["created_at"] == "2026-12-01T08:00:00.000Z"
        assert Manifest.from_json(manifest.to_json()) == manifest
        assert store.list() == [manifest] and store.manifest(manifest.backup_id) == manifest
        assert manifest.size == 1005

    def test_list_is_oldest_first_and_filters_by_order(self, store, clock):
        first = backup(store, {"a": b"1"}, order_id=1, instance="one")
        clock.advance(hours=1)
        second = backup(store, {"a": b"2"}, order_id=2, instance="two")
        clock.advance(hours=1)
        third = backup(store, {"a": b"3"}, order_id=1, instance="one")
        assert [m.backup_id for m in store.list()] == [first.backup_id, second.backup_id, third.backup_id]
        assert store.list(order_id=1) == [first, third]
        assert store.list(instance="two") == [second] and store.list(order_id=3) == []
        assert read_all(store.open_artefact(third.backup_id, "a", instance="one")) == b"3"

    # -- never a half-made backup ---------------------------------------------------------------------------------
    def test_an_uncommitted_backup_is_never_listed(self, store, raw_keys):
        writer = store.begin(header())
        writer.write_artefact("volume.tar", Chunks(b"data"))
        assert store.list() == [] and f"acme-maps/{writer.backup_id}/volume.tar" in raw_keys(store)
        with pytest.raises(NotFound):
            store.open_artefact(writer.backup_id, "volume.tar")
        assert "no manifest" in store.verify(writer.backup_id)[0]
        manifest = writer.commit()
        assert store.list() == [manifest]
        assert f"acme-maps/{writer.backup_id}/manifest.json" in raw_keys(store)

    def test_a_stream_that_fails_leaves_nothing_listed_and_abort_removes_the_rest(self, store, raw_keys):
        class Broken(Chunks):
            def read(self, size=-1):
                if not self.data:
                    raise OSError("the volume went away")
                return super().read(size)

        writer = store.begin(header())
        writer.write_artefact("first.tar", Chunks(b"ok"))
        with pytest.raises(OSError, match="the volume went away"):
            writer.write_artefact("second.tar", Broken(b"x" * 10))
        assert store.list() == []
        assert [key for key in raw_keys(store) if "second.tar" in key] == []
        writer.abort()
        assert raw_keys(store) == []

    def test_commit_reads_every_artefact_back_and_refuses_one_that_changed(self, store, tamper):
        writer = store.begin(header())
        writer.write_artefact("db.dump", Chunks(b"the real dump"))
        tamper(store, "acme-maps", writer.backup_id, "db.dump", b"the real dumq")
        with pytest.raises(BackupStoreError, match="db.dump has sha256") as error:
            writer.commit()
        assert store.location in str(error.value) and not error.value.transient
        assert store.list() == []

    def test_verify_finds_a_corrupted_or_missing_artefact(self, store, tamper, raw_keys):
        manifest = backup(store, {"db.dump": b"0123456789", "data.tar": b"abc"})
        tamper(store, "acme-maps", manifest.backup_id, "db.dump", b"0123456789!")
        problems = store.verify(manifest.backup_id)
        assert any("db.dump has 11 bytes, the manifest says 10" in p for p in problems), problems
        assert any("db.dump has sha256" in p for p in problems), problems
        assert not any("data.tar" in p for p in problems), problems
        tamper(store, "acme-maps", manifest.backup_id, "db.dump", b"0123456788")  # same size, other bytes
        assert [p for p in store.verify(manifest.backup_id) if "size" in p or "bytes" in p] == []
        assert any("db.dump has sha256" in p for p in store.verify(manifest.backup_id))

    def test_a_manifest_that_cannot_be_read_is_not_listed_and_verify_says_so(self, store, tamper):
        good = backup(store, {"a": b"1"}, instance="good")
        bad = backup(store, {"a": b"2"}, instance="bad")
        tamper(store, "bad", bad.backup_id, "manifest.json", b'{"format": "something/9"}')
        assert store.list() == [good]
        assert "not a geocat-live-backup/1 manifest" in store.verify(bad.backup_id)[0]

    # -- removing -------------------------------------------------------------------------------------------------
    def test_delete_removes_the_manifest_first_then_the_artefacts(self, store, raw_keys, monkeypatch):
        keep = backup(store, {"a": b"1"})
        manifest = backup(store, {"db.dump": b"dump", "data.tar": b"tar"})
        # Stop the delete right after the manifest went: the backup is no longer listed.
        monkeypatch.setattr(store, "_delete_folder", lambda *a: (_ for _ in ()).throw(BackupStoreError("cut")))
        with pytest.raises(BackupStoreError, match="cut"):
            store.delete(manifest.backup_id)
        assert store.list() == [keep]
        assert f"acme-maps/{manifest.backup_id}/db.dump" in raw_keys(store)
        monkeypatch.undo()
        store.delete(manifest.backup_id)  # a second delete finishes the job
        assert not [key for key in raw_keys(store) if manifest.backup_id in key]
        store.delete(manifest.backup_id)  # and a third is a no-op
        with pytest.raises(NotFound):
            store.verify(manifest.backup_id)
        assert store.list() == [keep]

    def test_clean_up_removes_only_abandoned_uploads_older_than_the_age(self, store, clock, raw_keys):
        abandoned = store.begin(header(instance="old"))
        abandoned.write_artefact("volume.tar", Chunks(b"half"))
        committed = backup(store, {"a": b"1"}, instance="old")
        clock.advance(hours=23)
        recent = store.begin(header(instance="new"))
        recent.write_artefact("volume.tar", Chunks(b"in progress"))
        clock.advance(hours=2)
        assert store.clean_up_abandoned(older_than_hours=24) == [f"old/{abandoned.backup_id}"]
        keys = raw_keys(store)
        assert not [key for key in keys if abandoned.backup_id in key]
        assert f"new/{recent.backup_id}/volume.tar" in keys
        assert store.list() == [committed]
        assert store.clean_up_abandoned(older_than_hours=24) == []

    # -- what is refused ------------------------------------------------------------------------------------------
    @pytest.mark.parametrize("name", ["", "manifest.json", "../etc", "a/b", ".hidden", "x.partial-1234"])
    def test_artefact_names_are_single_plain_segments(self, store, name):
        with pytest.raises(InvalidRequest):
            store.begin(header()).write_artefact(name, Chunks(b""))

    def test_an_artefact_is_written_once_and_not_after_the_commit(self, store):
        writer = store.begin(header())
        writer.write_artefact("a", Chunks(b"1"))
        with pytest.raises(InvalidRequest, match="already has"):
            writer.write_artefact("a", Chunks(b"2"))
        writer.commit()
        with pytest.raises(InvalidRequest, match="committed"):
            writer.write_artefact("b", Chunks(b"3"))

    def test_an_instance_is_an_identifier_never_a_path(self, store):
        backup(store, {"a": b"1"})
        for call in (lambda: store.list(instance="../acme-maps"), lambda: store.list(instance="a/b"),
                     lambda: store.verify("20261201T080000Z-00000000", instance=".."),
                     lambda: store.begin(header(instance="../escape"))):
            with pytest.raises(InvalidRequest):
                call()

    def test_unknown_backups_and_artefacts_are_not_found(self, store):
        manifest = backup(store, {"a": b"1"})
        for call in (lambda: store.open_artefact("20990101T000000Z-00000000", "a"),
                     lambda: store.open_artefact(manifest.backup_id, "b"),
                     lambda: store.open_artefact("../../etc", "passwd"),
                     lambda: store.verify("20990101T000000Z-00000000")):
            with pytest.raises(NotFound):
                call()
