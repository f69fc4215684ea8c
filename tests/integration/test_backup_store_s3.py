"""The backup store in an S3 bucket (app/backups/s3_store.py) against moto's S3 server over real HTTP.

No mock of boto3: :class:`moto.server.ThreadedMotoServer` listens on a free loopback port and the store talks to
it like to any S3-compatible service (path-style addressing, dummy credentials). The shared contract runs first,
then what is S3's own: the sha256 in the objects' metadata, multipart uploads, paginated listings, aborted
multipart uploads, and the errors of a store that cannot be reached or refuses.
"""
from __future__ import annotations

import socket
import uuid
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.config import Config

from app.backups.s3_store import PART_SIZE, S3BackupStore
from app.backups.store import HashingReader
from app.errors import BackupStoreError
from tests.support.moto_s3 import ACCESS_KEY, SECRET_KEY, dummy_credentials, endpoint  # noqa: F401 (fixtures)
from tests.support.backup_store_contract import (
    BackupStoreContract, Chunks, Clock, GeneratedStream, backup, header,
)

@pytest.fixture
def s3(endpoint, dummy_credentials):
    """A plain boto3 client of the same server: the test's own view of the bucket, behind the store's back."""
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}))


@pytest.fixture
def bucket(s3):
    name = f"live-backups-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def _raw_keys_of(s3):
    def raw_keys(store: S3BackupStore) -> list[str]:
        keys = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=store.bucket, Prefix=store.prefix + "/"):
            keys.extend(item["Key"][len(store.prefix) + 1:] for item in page.get("Contents", ()))
        return sorted(keys)
    return raw_keys


class TestS3Store(BackupStoreContract):
    max_read = PART_SIZE  # s3transfer reads one part at a time

    @pytest.fixture
    def make_store(self, endpoint, bucket):
        return lambda clock: S3BackupStore(bucket, "live/prod", endpoint_url=endpoint, clock=clock)

    @pytest.fixture
    def tamper(self, s3):
        def tamper(store, instance, backup_id, name, data):
            key = f"{store.prefix}/{instance}/{backup_id}/{name}"
            try:
                metadata = s3.head_object(Bucket=store.bucket, Key=key)["Metadata"]
            except s3.exceptions.ClientError:
                metadata = {}
            s3.put_object(Bucket=store.bucket, Key=key, Body=data, Metadata=metadata)
        return tamper

    @pytest.fixture
    def raw_keys(self, s3):
        return _raw_keys_of(s3)


@pytest.fixture
def store(endpoint, bucket):
    return S3BackupStore(bucket, "live", endpoint_url=endpoint)


def test_each_object_carries_its_own_sha256_and_a_large_one_went_up_in_parts(store, s3):
    stream = GeneratedStream(PART_SIZE * 2 + 5)
    writer = store.begin(header())
    artefact = writer.write_artefact("volume.tar", stream)
    manifest = writer.commit()
    head = s3.head_object(Bucket=store.bucket, Key=f"live/acme-maps/{manifest.backup_id}/volume.tar")
    assert head["Metadata"]["sha256"] == artefact.sha256 == stream.sha256
    assert head["ContentLength"] == stream.size
    assert head["ETag"].strip('"').endswith("-3"), "uploaded (and copied) as a multipart object of 3 parts"
    manifest_key = f"live/acme-maps/{manifest.backup_id}/manifest.json"
    text = s3.get_object(Bucket=store.bucket, Key=manifest_key)["Body"].read()
    assert b'"format": "geocat-live-backup/1"' in text and artefact.sha256.encode() in text


def test_verify_finds_an_object_whose_metadata_disagrees(store, s3):
    manifest = backup(store, {"db.dump": b"dump"})
    key = f"live/acme-maps/{manifest.backup_id}/db.dump"
    s3.put_object(Bucket=store.bucket, Key=key, Body=b"dump")  # same bytes, metadata gone
    assert store.verify(manifest.backup_id) == [
        f"artefact db.dump's object metadata says sha256 None, the manifest says {manifest.artefacts[0].sha256}"]


def test_listings_cross_pages(store):
    store.page_size = 2
    store.clock = clock = Clock()
    made = []
    for n in range(3):
        made.append(backup(store, {"a": b"1", "b": b"2"}, instance=f"order-{n}", order_id=n))
        clock.advance(minutes=1)
    assert store.list() == made
    assert store.list(order_id=1) == [made[1]]


def test_clean_up_aborts_old_multipart_uploads_under_the_prefix(store, s3, bucket):
    mine = s3.create_multipart_upload(Bucket=bucket, Key="live/acme-maps/20261201T000000Z-0000abcd/volume.tar")
    other = s3.create_multipart_upload(Bucket=bucket, Key="elsewhere/file")
    # moto dates every upload 2010-11-10 (S3 dates them when they begin): a clock before that sees them as recent.
    store.clock = Clock(datetime(2010, 1, 1, tzinfo=timezone.utc))
    assert store.clean_up_abandoned(older_than_hours=1) == []
    assert len(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 2
    store.clock = Clock(datetime.now(timezone.utc) + timedelta(hours=2))
    store.clean_up_abandoned(older_than_hours=1)
    left = [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    assert left == [other["UploadId"]] and mine["UploadId"] not in left


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_store_fails_transiently_naming_the_endpoint_and_no_secret():
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    store = S3BackupStore("live-backups", "prod", endpoint_url=endpoint, connect_timeout=2, max_attempts=1)
    for call in (lambda: store.begin(header()), store.list, lambda: store.clean_up_abandoned(24),
                 lambda: store._put_artefact("acme-maps", "20261201T000000Z-0000abcd", "a", HashingReader(Chunks(b"x"))),
                 lambda: store.open_artefact("20261201T000000Z-0000abcd", "a", instance="acme-maps")):
        with pytest.raises(BackupStoreError) as error:
            call()
        message = str(error.value)
        assert error.value.transient, message
        assert "s3://live-backups/prod" in message and endpoint in message, message
        assert SECRET_KEY not in message and ACCESS_KEY not in message, message
        assert error.value.public == "the backup storage cannot be used right now"


def test_a_missing_bucket_is_a_lasting_error(endpoint):
    store = S3BackupStore("no-such-bucket-here", endpoint_url=endpoint, max_attempts=1)
    with pytest.raises(BackupStoreError, match="no-such-bucket-here") as error:
        store.begin(header())
    assert not error.value.transient
    with pytest.raises(BackupStoreError, match="NoSuchBucket") as error:
        store.list()
    assert not error.value.transient


def test_no_credentials_is_a_lasting_error_that_says_where_they_come_from(endpoint, bucket, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    store = S3BackupStore(bucket, endpoint_url=endpoint, max_attempts=1)
    with pytest.raises(BackupStoreError, match="no credentials") as error:
        store.list()
    assert not error.value.transient and "AWS_ACCESS_KEY_ID" in str(error.value)


def test_the_readiness_probe_of_a_store_that_hangs_gives_up_after_one_attempt():
    """/readyz and `live doctor` call check(): a store that accepts connections and never answers must not hold
    them for the upload's timeouts and retries (60 s x 3)."""
    import threading

    from app.backups.s3_store import PROBE_TIMEOUT

    accepted = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])  # kept open, never answered
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        store = S3BackupStore("live-backups", "prod", endpoint_url=f"http://127.0.0.1:{server.getsockname()[1]}")
        assert store.probe_client.meta.config.read_timeout == PROBE_TIMEOUT
        with pytest.raises(BackupStoreError) as caught:
            store.check()
        assert caught.value.transient and "127.0.0.1" in str(caught.value)
        assert len(accepted) == 1, "one attempt: no retry"
    finally:
        stop.set()
        thread.join()
        for connection in accepted:
            connection.close()
        server.close()
