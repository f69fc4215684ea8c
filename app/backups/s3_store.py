"""The backup store in an S3-compatible bucket (``LIVE_BACKUP_STORE=s3://bucket/prefix``), through boto3.

The only module that imports boto3 or botocore (tests/unit/test_layering.py). Keys follow
:mod:`app.backups.store`'s layout under ``<prefix>/``. Credentials come from boto3's own chain (the standard
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` variables, a profile, an instance role); the endpoint from
``LIVE_S3_ENDPOINT_URL`` (any S3-compatible service; unset: AWS).

- Artefacts stream through ``upload_fileobj`` with a :class:`TransferConfig`: one request below
  :data:`PART_SIZE`, a multipart upload above it; memory holds at most ``CONCURRENCY + 1`` parts (40 MiB),
  whatever the artefact's size.
- A multipart object's ETag is not its MD5, so the store keeps its own sha256 in the object's metadata
  (``x-amz-meta-sha256``). The hash is known only once the stream has ended, so the object is copied onto
  itself with the metadata (a server-side copy, multipart above the part size) before the commit reads it back.
- Requests and responses carry checksums only when the API requires them
  (``request_checksum_calculation="when_required"``): many S3-compatible services refuse boto3's default CRC32.
- Listings are paginated (1000 keys a page); deletes go in batches of 1000 keys.

Every boto3/botocore error becomes a :class:`~app.errors.BackupStoreError` naming ``s3://bucket/prefix``, the
endpoint and the cause, never a credential: transient when the endpoint cannot be reached or answers 5xx
(or asks to slow down), not transient otherwise (no credentials, access denied, no such bucket).
"""
from __future__ import annotations

from datetime import datetime
from typing import BinaryIO, Callable, Iterable

import boto3
import botocore.exceptions
from boto3.exceptions import RetriesExceededError, S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from app.backups.store import MANIFEST_NAME, BackupStore, HashingReader, StoredBackup, is_backup_id
from app.errors import BackupStoreError, NotFound

#: Multipart threshold and part size of uploads and copies (S3's minimum part is 5 MiB).
PART_SIZE = 8 * 1024 * 1024
#: Parts in flight at once, per artefact.
CONCURRENCY = 4
#: Seconds the probe of /readyz and `live doctor` waits to connect, and then for an answer (one attempt).
PROBE_TIMEOUT = 3.0
#: Keys per DeleteObjects request (S3's maximum).
DELETE_BATCH = 1000
SHA256_METADATA = "sha256"
_TRANSIENT_CODES = {"SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable",
                    "Throttling", "ThrottlingException", "RequestLimitExceeded"}
_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}


class S3BackupStore(BackupStore):
    """Backups as objects of ``bucket`` under ``prefix`` (may be empty), at ``endpoint_url`` (None: AWS).

    ``connect_timeout`` and ``read_timeout`` are seconds per request; ``max_attempts`` counts the first try
    (botocore's standard retry mode retries connection errors, 5xx and throttling). ``client`` replaces the
    boto3 client the store builds (tests).
    """

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None, connect_timeout: float = 10.0, read_timeout: float = 60.0,
                 max_attempts: int = 3, part_size: int = PART_SIZE, client=None,
                 clock: Callable[[], datetime] | None = None):
        super().__init__(clock)
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.location = f"s3://{bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self._where = self.location + (f" at {endpoint_url}" if endpoint_url else "")
        config = Config(
            connect_timeout=connect_timeout, read_timeout=read_timeout,
            retries={"mode": "standard", "total_max_attempts": max_attempts},  # botocore: max_attempts excludes the first
            request_checksum_calculation="when_required", response_checksum_validation="when_required",
            # A custom endpoint (MinIO, Ceph, moto) is addressed by path: no bucket in the host name.
            s3={"addressing_style": "path"} if endpoint_url else None,
        )
        self.client = client or boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=config)
        # /readyz and `live doctor` ask whether the store answers: a store that hangs must not hang them. One
        # attempt, short timeouts (seconds).
        probe = config.merge(Config(connect_timeout=PROBE_TIMEOUT, read_timeout=PROBE_TIMEOUT,
                                    retries={"mode": "standard", "total_max_attempts": 1}))
        self.probe_client = client or boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=probe)
        self.page_size = 1000  # keys per listing page (S3's maximum); tests lower it to cross pages
        self.transfer = TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size,
                                       max_concurrency=CONCURRENCY, use_threads=True)
        # Parts of a stream read ahead of their upload (s3transfer's default is 10): with the part size, this bounds
        # an upload's memory, about (CONCURRENCY + 1) x part_size (40 MiB) whatever the artefact's size.
        self.transfer.max_in_memory_upload_chunks = CONCURRENCY + 1

    def __repr__(self) -> str:
        return f"S3BackupStore({self._where!r})"

    # -- keys -----------------------------------------------------------------------------------------------------
    def _base(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    def _folder(self, instance: str, backup_id: str) -> str:
        return f"{self._base()}{instance}/{backup_id}/"

    def _key(self, instance: str, backup_id: str, name: str) -> str:
        return self._folder(instance, backup_id) + name

    # -- errors ---------------------------------------------------------------------------------------------------
    def _translate(self, exc: Exception, doing: str) -> BackupStoreError:
        """The BackupStoreError for ``exc`` raised while ``doing`` (e.g. ``upload db.dump``)."""
        if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, botocore.exceptions.ClientError):
            exc = exc.__context__
        if isinstance(exc, RetriesExceededError) and isinstance(exc.last_exception, Exception):
            exc = exc.last_exception
        transient = False
        if isinstance(exc, botocore.exceptions.ClientError):
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            code = error.get("Code") or str(status)
            transient = status >= 500 or code in _TRANSIENT_CODES
            cause = f"{code} (HTTP {status}): {error.get('Message') or exc}"
        elif isinstance(exc, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)):
            transient = True
            cause = f"cannot reach the endpoint ({type(exc).__name__})"
        elif isinstance(exc, botocore.exceptions.NoCredentialsError):
            cause = "no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile or role)"
        else:
            cause = f"{type(exc).__name__}: {exc}"
        return BackupStoreError(f"backup store {self._where}: cannot {doing}: {cause}", transient=transient,
                                store=self.location)

    @staticmethod
    def _missing(exc: Exception) -> bool:
        return (isinstance(exc, botocore.exceptions.ClientError)
                and str(exc.response.get("Error", {}).get("Code")) in _MISSING_CODES)

    def _call(self, doing: str, method: str, *, missing_is_not_found: bool = True, **kwargs):
        """``client.<method>(Bucket=..., **kwargs)``; a missing key is NotFound (with ``missing_is_not_found``),
        every other error a BackupStoreError."""
        try:
            return getattr(self.client, method)(Bucket=self.bucket, **kwargs)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            if missing_is_not_found and self._missing(exc):
                raise NotFound(f"{self._where}: no {kwargs.get('Key', '')}") from None
            raise self._translate(exc, doing) from None

    # -- writing --------------------------------------------------------------------------------------------------
    def _prepare(self, instance: str, backup_id: str) -> None:
        self._call("reach the bucket", "head_bucket", missing_is_not_found=False)

    def _put_artefact(self, instance: str, backup_id: str, name: str, reader: HashingReader) -> None:
        key = self._key(instance, backup_id, name)
        try:
            self.client.upload_fileobj(reader, self.bucket, key, Config=self.transfer)
            # The sha256 is known now: copy the object onto itself with it in the metadata (server-side).
            self.client.copy({"Bucket": self.bucket, "Key": key}, self.bucket, key,
                             ExtraArgs={"Metadata": {SHA256_METADATA: reader.sha256, "size": str(reader.size)},
                                        "MetadataDirective": "REPLACE"},
                             Config=self.transfer)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, S3UploadFailedError,
                RetriesExceededError) as exc:
            raise self._translate(exc, f"upload {key}") from None

    def _put_manifest(self, instance: str, backup_id: str, text: bytes) -> None:
        key = self._key(instance, backup_id, MANIFEST_NAME)
        self._call(f"write {key}", "put_object", Key=key, Body=text, ContentType="application/json")

    # -- reading --------------------------------------------------------------------------------------------------
    def _open(self, instance: str, backup_id: str, name: str) -> BinaryIO:
        key = self._key(instance, backup_id, name)
        response = self._call(f"read {key}", "get_object", Key=key)
        return _Body(response["Body"], self, f"read {key}")

    def _get_manifest(self, instance: str, backup_id: str) -> bytes:
        with self._open(instance, backup_id, MANIFEST_NAME) as body:
            return body.read()

    def _check_artefact(self, instance, backup_id, artefact) -> list[str]:
        key = self._key(instance, backup_id, artefact.name)
        head = self._call(f"read {key}", "head_object", Key=key)
        recorded = (head.get("Metadata") or {}).get(SHA256_METADATA)
        problems = super()._check_artefact(instance, backup_id, artefact)
        if recorded != artefact.sha256:
            problems.append(f"artefact {artefact.name}'s object metadata says sha256 {recorded}, "
                            f"the manifest says {artefact.sha256}")
        return problems

    def _keys(self, prefix: str) -> Iterable[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix,
                                           PaginationConfig={"PageSize": self.page_size}):
                for item in page.get("Contents", ()):
                    yield item["Key"]
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._translate(exc, f"list {prefix or '/'}") from None

    def _ping(self) -> None:
        """One listing of at most one key, one attempt of at most :data:`PROBE_TIMEOUT` seconds per step: the
        bucket exists, the credentials may list it, and it answers in time."""
        try:
            self.probe_client.list_objects_v2(Bucket=self.bucket, Prefix=self._base(), MaxKeys=1)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._translate(exc, f"list {self._base() or '/'}") from None

    def _backups(self, instance: str | None) -> Iterable[StoredBackup]:
        base = self._base()
        folders: dict[tuple[str, str], bool] = {}
        for key in self._keys(base + (f"{instance}/" if instance else "")):
            parts = key[len(base):].split("/")
            if len(parts) != 3 or not is_backup_id(parts[1]):
                continue
            folder = (parts[0], parts[1])
            folders[folder] = folders.get(folder, False) or parts[2] == MANIFEST_NAME
        return [StoredBackup(inst, backup_id, committed) for (inst, backup_id), committed in sorted(folders.items())]

    # -- removing -------------------------------------------------------------------------------------------------
    def _delete_manifest(self, instance: str, backup_id: str) -> None:
        key = self._key(instance, backup_id, MANIFEST_NAME)
        self._call(f"delete {key}", "delete_object", Key=key)

    def _delete_folder(self, instance: str, backup_id: str) -> None:
        folder = self._folder(instance, backup_id)
        keys = list(self._keys(folder))
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start:start + DELETE_BATCH]
            answer = self._call(f"delete {folder}", "delete_objects",
                                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True})
            errors = answer.get("Errors") or []
            if errors:
                first = errors[0]
                raise BackupStoreError(f"backup store {self._where}: cannot delete {first.get('Key')}: "
                                       f"{first.get('Code')}: {first.get('Message')} ({len(errors)} keys failed)",
                                       store=self.location)

    def _clean_up_uploads(self, cutoff: datetime) -> None:
        """Abort multipart uploads under the prefix begun before ``cutoff`` (a killed worker leaves them; their
        parts are stored, and billed, until then)."""
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            old = [upload for page in paginator.paginate(Bucket=self.bucket, Prefix=self._base())
                   for upload in page.get("Uploads", ()) if upload["Initiated"] < cutoff]
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._translate(exc, "list multipart uploads") from None
        for upload in old:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            except botocore.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":  # aborted meanwhile
                    raise self._translate(exc, f"abort the multipart upload of {upload['Key']}") from None
            except botocore.exceptions.BotoCoreError as exc:
                raise self._translate(exc, f"abort the multipart upload of {upload['Key']}") from None


class _Body:
    """An object's body as a stream whose errors are BackupStoreErrors."""

    def __init__(self, body, store: S3BackupStore, doing: str):
        self._body = body
        self._store = store
        self._doing = doing

    def read(self, size: int = -1) -> bytes:
        try:
            return self._body.read(None if size is None or size < 0 else size)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._store._translate(exc, self._doing) from None
        except OSError as exc:  # urllib3's protocol errors are OSErrors
            raise BackupStoreError(f"backup store {self._store._where}: cannot {self._doing}: "
                                   f"{type(exc).__name__}: {exc}", transient=True,
                                   store=self._store.location) from None

    def close(self) -> None:
        self._body.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
