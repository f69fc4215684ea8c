"""The backup store: where backups' artefacts and manifests live (issue 13), behind one port.

:class:`BackupStore` is the port; :mod:`app.backups.file_store` (a folder) and :mod:`app.backups.s3_store`
(an S3-compatible bucket) are its adapters. Every key has the same layout in both::

    <prefix>/<instance>/<backup_id>/<artefact name>     one file or object per artefact
    <prefix>/<instance>/<backup_id>/manifest.json       written last, by commit

The manifests are the listing: a backup is listed only once its manifest exists, and commit writes the manifest
only after every artefact was read back and matched its size and sha256. A backup folder without a manifest is
an upload in progress or an abandoned one (a killed worker, a failed commit, a half-finished delete), never a
backup; :meth:`BackupStore.clean_up_abandoned` removes those older than a given age.

A backup id is ``<UTC time>-<8 hex digits>``, e.g. ``20261201T083452Z-3f2a9c1b``: ids sort by time, and the
time they start with is when the backup began.

Artefacts stream in :data:`CHUNK_SIZE` pieces (the S3 adapter in its multipart part size): memory stays flat
whatever their size. Every failure of the store is a :class:`~app.errors.BackupStoreError` naming the store's
location and the cause; a backup id that is not in the store is :class:`~app.errors.NotFound`.
"""
from __future__ import annotations

import abc
import hashlib
import json
import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import BinaryIO, Callable, Iterable, Iterator

from app.errors import BackupStoreError, InvalidRequest, NotFound
from app.stacks.engine import Readable  # noqa: F401  (the protocol lives with the engine port, which streams too)

log = logging.getLogger(__name__)

#: The manifest's ``format``: readers refuse a manifest of another format rather than guess.
MANIFEST_FORMAT = "geocat-live-backup/1"
MANIFEST_NAME = "manifest.json"
#: Bytes read from an artefact's stream at a time (and hashed, and written).
CHUNK_SIZE = 1024 * 1024
_ID_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
_BACKUP_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")
#: Artefact names: one path segment of letters, digits, ``.``, ``_`` and ``-``, not starting with a dot.
_ARTEFACT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_INSTANCE_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


# -- values ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Artefact:
    """One file of a backup: ``name`` (its key's last segment), ``size`` in bytes, ``sha256`` in lowercase hex."""

    name: str
    size: int
    sha256: str

    def as_dict(self) -> dict:
        return {"name": self.name, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class BackupHeader:
    """What the caller knows of a backup before it starts: everything of the :class:`Manifest` but its id, time
    and artefacts. ``kind`` says why it was taken (``scheduled``, ``on_demand``, ``pre_change``, ``final``...);
    ``services`` names the product's services it covers; ``contents`` says what each artefact is, so a backup
    can be restored from the store alone (JSON-able: ``{"volumes": [{"volume", "artefact"}], "dumps":
    [{"service", "artefact", "restore": [argv]}], "after_restore": [{"service", "command": [argv]}]}``)."""

    order_id: int
    instance: str
    product: str
    revision: str
    plan: str
    kind: str
    services: tuple[str, ...] = ()
    contents: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "services", tuple(self.services))
        if not _INSTANCE_RE.match(self.instance or ""):
            raise InvalidRequest(f"backup of instance {self.instance!r}: not an instance identifier")


@dataclass(frozen=True)
class Manifest:
    """A committed backup, as ``manifest.json`` records it (see :meth:`to_json`).

    ``created_at`` is when the backup began (UTC, aware); ``artefacts`` are in the order they were written.
    """

    backup_id: str
    order_id: int
    instance: str
    product: str
    revision: str
    plan: str
    kind: str
    created_at: datetime
    services: tuple[str, ...] = ()
    artefacts: tuple[Artefact, ...] = field(default_factory=tuple)
    contents: dict = field(default_factory=dict, compare=False)  # see BackupHeader.contents

    @property
    def size(self) -> int:
        """Bytes of all artefacts together."""
        return sum(artefact.size for artefact in self.artefacts)

    def artefact(self, name: str) -> Artefact:
        """The artefact called ``name``; NotFound when the backup has none."""
        for artefact in self.artefacts:
            if artefact.name == name:
                return artefact
        raise NotFound(f"backup {self.backup_id} has no artefact {name!r}")

    def to_dict(self) -> dict:
        return {
            "format": MANIFEST_FORMAT,
            "backup_id": self.backup_id,
            "created_at": _iso_millis(self.created_at),
            "order_id": self.order_id,
            "instance": self.instance,
            "product": self.product,
            "revision": self.revision,
            "plan": self.plan,
            "kind": self.kind,
            "services": list(self.services),
            "artefacts": [artefact.as_dict() for artefact in self.artefacts],
            "contents": self.contents,
        }

    def to_json(self) -> str:
        """The manifest's text: indented JSON with a ``format`` key (:data:`MANIFEST_FORMAT`), UTF-8, ending with
        a newline; ``created_at`` as ``YYYY-MM-DDTHH:MM:SS.mmmZ``; each artefact with ``name``, ``size`` (bytes) and
        ``sha256`` (hex)."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "manifest") -> Manifest:
        """Read a manifest written by :meth:`to_json`. Raises BackupStoreError naming ``where`` when the text is
        not JSON, is of another format, or misses a key."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
                found = data.get("format") if isinstance(data, dict) else type(data).__name__
                raise BackupStoreError(f"{where} is not a {MANIFEST_FORMAT} manifest (format {found!r})")
            return cls(
                backup_id=str(data["backup_id"]),
                order_id=int(data["order_id"]),
                instance=str(data["instance"]),
                product=str(data["product"]),
                revision=str(data["revision"]),
                plan=str(data["plan"]),
                kind=str(data["kind"]),
                created_at=_parse_time(data["created_at"]),
                services=tuple(str(name) for name in data["services"]),
                artefacts=tuple(Artefact(str(item["name"]), int(item["size"]), str(item["sha256"]))
                                for item in data["artefacts"]),
                contents=dict(data.get("contents") or {}),
            )
        except BackupStoreError:
            raise
        except (ValueError, KeyError, TypeError) as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise BackupStoreError(f"{where} cannot be read: {type(exc).__name__}: {exc}") from None


def _iso_millis(value: datetime) -> str:
    """``2026-12-01T08:34:52.123Z``: UTC to the millisecond, so backups begun in the same second still sort."""
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S") + f".{value.microsecond // 1000:03d}Z"


def _parse_time(text: str) -> datetime:
    """A manifest's ``created_at``: with milliseconds, or to the second (the first manifests)."""
    for layout in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text, layout).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    raise ValueError(f"created_at {text!r} is not a UTC time like 2026-12-01T08:34:52.123Z")


# -- ids and names ------------------------------------------------------------------------------------------------
def new_backup_id(now: datetime) -> str:
    """A new backup id for a backup beginning at ``now``: ``20261201T083452Z-3f2a9c1b`` (sorts by time)."""
    return f"{now.astimezone(timezone.utc).strftime(_ID_TIME_FORMAT)}-{secrets.token_hex(4)}"


def is_backup_id(value: str) -> bool:
    return bool(_BACKUP_ID_RE.match(value or ""))


def backup_id_time(backup_id: str) -> datetime:
    """When the backup ``backup_id`` began (UTC, to the second)."""
    return datetime.strptime(backup_id.split("-", 1)[0], _ID_TIME_FORMAT).replace(tzinfo=timezone.utc)


def check_backup_id(backup_id: str) -> str:
    if not is_backup_id(backup_id):
        raise NotFound(f"no backup {backup_id!r}: not a backup id")
    return backup_id


def check_instance(instance: str | None) -> str | None:
    """``instance`` (None: every instance); InvalidRequest unless it is an instance identifier."""
    if instance is not None and not _INSTANCE_RE.match(instance):
        raise InvalidRequest(f"{instance!r} is not an instance identifier")
    return instance


def check_artefact_name(name: str) -> str:
    if not _ARTEFACT_RE.match(name or "") or name == MANIFEST_NAME or ".partial" in name:
        raise InvalidRequest(f"artefact name {name!r}: use letters, digits, '.', '_' and '-' (not {MANIFEST_NAME})")
    return name


# -- streaming ----------------------------------------------------------------------------------------------------
class HashingReader:
    """Wraps a readable stream; every ``read`` also feeds the sha256 and the byte count (``size``).

    Not seekable on purpose: consumers (``shutil``, s3transfer) then read it front to back, once.
    """

    def __init__(self, stream: Readable):
        self._stream = stream
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes, fewer only at the end of the stream: a short read of the stream underneath (a
        socket, an exec frame) is filled up, because some consumers take a short read for the end (boto3's
        multipart upload does)."""
        if size is None or size < 0:
            size = CHUNK_SIZE  # never read a stream whole: callers loop until b""
        data = self._stream.read(size) or b""
        if data and len(data) < size:
            pieces = [data]
            missing = size - len(data)
            while missing > 0:
                more = self._stream.read(missing)
                if not more:
                    break
                pieces.append(more)
                missing -= len(more)
            data = b"".join(pieces)
        if data:
            self._hash.update(data)
            self.size += len(data)
        return data

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


def digest(stream: Readable, chunk_size: int = CHUNK_SIZE) -> tuple[int, str]:
    """``(size, sha256 hex)`` of everything ``stream`` holds, read ``chunk_size`` bytes at a time."""
    reader = HashingReader(stream)
    while reader.read(chunk_size):
        pass
    return reader.size, reader.sha256


@dataclass(frozen=True)
class StoredBackup:
    """One ``<instance>/<backup_id>/`` folder of the store, committed (with a manifest) or not."""

    instance: str
    backup_id: str
    committed: bool


# -- the port -----------------------------------------------------------------------------------------------------
class BackupStore(abc.ABC):
    """Where backups live. Implementations provide the storage primitives (the ``_`` methods); this class
    holds the rules every store keeps: streaming with sha256, read-back before commit, manifest last on write and
    first on delete.

    ``clock`` returns the current time (aware, UTC); tests pass their own.
    """

    #: Where the store is, for messages (``file:///srv/backups``, ``s3://bucket/prefix at https://...``).
    location: str = ""

    def __init__(self, clock: Callable[[], datetime] | None = None):
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    # -- writing --------------------------------------------------------------------------------------------------
    def begin(self, header: BackupHeader) -> BackupWriter:
        """Start a backup described by ``header``: returns the :class:`BackupWriter` that takes its artefacts and
        commits it. Nothing is listed until :meth:`BackupWriter.commit`. Raises BackupStoreError."""
        now = self.clock()
        now = now.astimezone(timezone.utc)
        writer = BackupWriter(self, header, new_backup_id(now), now.replace(microsecond=now.microsecond // 1000 * 1000))
        self._prepare(header.instance, writer.backup_id)
        return writer

    def check(self) -> None:
        """Return when the store answers (one listing request, whatever it holds); BackupStoreError otherwise.
        For ``/readyz`` and ``live doctor``."""
        self._ping()

    def _ping(self) -> None:
        """One cheap request that proves the store is there (adapters with a cheaper one override it)."""
        next(iter(self._backups(None)), None)

    # -- reading --------------------------------------------------------------------------------------------------
    def list(self, order_id: int | None = None, *, instance: str | None = None) -> list[Manifest]:
        """The committed backups, oldest first; only those of ``order_id`` and/or ``instance`` when given.

        Only manifests are read. A manifest that cannot be read is left out (``verify`` names it).
        Raises BackupStoreError when the store cannot be listed.
        """
        manifests = []
        for stored in self._backups(check_instance(instance)):
            if not stored.committed:
                continue
            try:
                manifest = self._manifest(stored.instance, stored.backup_id)
            except NotFound:
                continue  # deleted since the listing
            except BackupStoreError as exc:
                if exc.transient:
                    raise
                log.warning("backup %s/%s is left out of the listing: %s", stored.instance, stored.backup_id, exc)
                continue
            if order_id is None or manifest.order_id == order_id:
                manifests.append(manifest)
        return sorted(manifests, key=lambda m: (m.created_at, m.backup_id))

    def manifest(self, backup_id: str, *, instance: str | None = None) -> Manifest:
        """The manifest of ``backup_id``. NotFound when the store has no committed backup of that id;
        BackupStoreError when it cannot be read. ``instance``, when known, saves a search."""
        instance = self._locate(check_backup_id(backup_id), instance)
        return self._manifest(instance, backup_id)

    def open_artefact(self, backup_id: str, name: str, *, instance: str | None = None) -> BinaryIO:
        """A stream of the artefact ``name`` of the committed backup ``backup_id``: ``read(n)`` until ``b""``,
        then ``close()``. The caller checks the bytes against the manifest's sha256 (or runs :meth:`verify`
        first). NotFound when there is no such backup or artefact; BackupStoreError."""
        manifest = self.manifest(backup_id, instance=instance)
        manifest.artefact(name)
        return self._open(manifest.instance, backup_id, name)

    def verify(self, backup_id: str, *, instance: str | None = None) -> list[str]:
        """Read every artefact of ``backup_id`` back and compare it with the manifest: the problems found, one
        sentence each (``[]``: the backup is whole). A missing or unreadable manifest, a missing artefact and a
        size or sha256 that differ are problems; so is an artefact the store cannot read. NotFound when there
        is no backup of that id at all. Raises BackupStoreError only when the store cannot be reached."""
        check_backup_id(backup_id)
        instance = self._locate(backup_id, instance, committed_only=False)
        try:
            manifest = self._manifest(instance, backup_id)
        except NotFound:
            return [f"backup {backup_id} has no manifest: it was never committed or is being deleted"]
        except BackupStoreError as exc:
            if exc.transient:
                raise
            return [f"the manifest of backup {backup_id} cannot be read: {exc}"]
        problems = []
        for artefact in manifest.artefacts:
            try:
                problems.extend(self._check_artefact(instance, backup_id, artefact))
            except NotFound:
                problems.append(f"artefact {artefact.name} is missing")
            except BackupStoreError as exc:
                if exc.transient:
                    raise
                problems.append(f"artefact {artefact.name} cannot be read: {exc}")
        return problems

    def _check_artefact(self, instance: str, backup_id: str, artefact: Artefact) -> list[str]:
        """Problems of one stored artefact against the manifest's record of it; adapters may add their own."""
        with self._open(instance, backup_id, artefact.name) as stream:
            size, sha256 = digest(stream)
        problems = []
        if size != artefact.size:
            problems.append(f"artefact {artefact.name} has {size} bytes, the manifest says {artefact.size}")
        if sha256 != artefact.sha256:
            problems.append(f"artefact {artefact.name} has sha256 {sha256}, the manifest says {artefact.sha256}")
        return problems

    # -- removing -------------------------------------------------------------------------------------------------
    def delete(self, backup_id: str, *, instance: str | None = None) -> None:
        """Delete backup ``backup_id``: its manifest first (from then on it is not listed), then its artefacts.
        A backup that is not there is already deleted (no error). Raises BackupStoreError; a delete stopped
        half-way leaves a folder without a manifest, which :meth:`clean_up_abandoned` removes."""
        check_backup_id(backup_id)
        try:
            instance = self._locate(backup_id, instance, committed_only=False)
        except NotFound:
            return
        self._delete_manifest(instance, backup_id)
        self._delete_folder(instance, backup_id)

    def clean_up_abandoned(self, older_than_hours: float) -> list[str]:
        """Remove uncommitted backups (folders without a manifest) that began more than ``older_than_hours``
        ago, and whatever else the store keeps of abandoned uploads (S3: incomplete multipart uploads). Returns
        the ``<instance>/<backup_id>`` removed. Keep the age above the longest backup a worker may still be
        writing. Raises BackupStoreError."""
        if older_than_hours < 0:
            raise InvalidRequest(f"older_than_hours must be at least 0, got {older_than_hours}")
        cutoff = self.clock() - timedelta(hours=older_than_hours)
        removed = []
        for stored in self._backups(None):
            if not stored.committed and backup_id_time(stored.backup_id) < cutoff:
                self._delete_folder(stored.instance, stored.backup_id)
                removed.append(f"{stored.instance}/{stored.backup_id}")
        self._clean_up_uploads(cutoff)
        return removed

    # -- helpers --------------------------------------------------------------------------------------------------
    def _locate(self, backup_id: str, instance: str | None, committed_only: bool = True) -> str:
        """The instance that holds ``backup_id`` (``instance`` when given and right). NotFound otherwise."""
        for stored in self._backups(check_instance(instance)):
            if stored.backup_id == backup_id and (stored.committed or not committed_only):
                return stored.instance
        raise NotFound(f"no backup {backup_id} in {self.location}")

    # -- primitives of each store ------------------------------------------------------------------------------------
    @abc.abstractmethod
    def _prepare(self, instance: str, backup_id: str) -> None:
        """Make sure the store can take a backup's artefacts (folders, bucket reachable)."""

    @abc.abstractmethod
    def _put_artefact(self, instance: str, backup_id: str, name: str, reader: HashingReader) -> None:
        """Store everything ``reader`` yields under the artefact's key; ``reader`` is read to its end, in
        bounded pieces. Afterwards ``reader.size`` and ``reader.sha256`` describe what was stored."""

    @abc.abstractmethod
    def _open(self, instance: str, backup_id: str, name: str) -> BinaryIO:
        """A stream of a stored artefact; NotFound when it is missing."""

    @abc.abstractmethod
    def _put_manifest(self, instance: str, backup_id: str, text: bytes) -> None:
        """Write ``manifest.json`` at once: readers see all of it or nothing."""

    @abc.abstractmethod
    def _get_manifest(self, instance: str, backup_id: str) -> bytes:
        """The bytes of ``manifest.json``; NotFound when it is missing."""

    def _manifest(self, instance: str, backup_id: str) -> Manifest:
        where = f"{self.location}/{instance}/{backup_id}/{MANIFEST_NAME}"
        manifest = Manifest.from_json(self._get_manifest(instance, backup_id), where)
        if (manifest.backup_id, manifest.instance) != (backup_id, instance):
            raise BackupStoreError(f"{where} describes backup {manifest.instance}/{manifest.backup_id}")
        return manifest

    @abc.abstractmethod
    def _backups(self, instance: str | None) -> Iterable[StoredBackup]:
        """Every backup folder (of ``instance`` when given), committed or not."""

    @abc.abstractmethod
    def _delete_manifest(self, instance: str, backup_id: str) -> None:
        """Remove ``manifest.json`` (nothing when it is missing); durable before returning."""

    @abc.abstractmethod
    def _delete_folder(self, instance: str, backup_id: str) -> None:
        """Remove everything under ``<instance>/<backup_id>/`` (nothing when it is missing)."""

    def _clean_up_uploads(self, cutoff: datetime) -> None:
        """Remove what the store keeps of uploads begun before ``cutoff`` besides their folders (nothing here)."""


class BackupWriter:
    """One backup being written: :meth:`write_artefact` for each artefact, then :meth:`commit` (or
    :meth:`abort`). Made by :meth:`BackupStore.begin`; not thread-safe."""

    def __init__(self, store: BackupStore, header: BackupHeader, backup_id: str, created_at: datetime):
        self.store = store
        self.header = header
        self.backup_id = backup_id
        self.created_at = created_at
        self.artefacts: list[Artefact] = []
        self.committed: Manifest | None = None

    def write_artefact(self, name: str, stream: Readable) -> Artefact:
        """Stream ``stream`` (``read(n)`` until ``b""``) into the artefact ``name``, computing its size (bytes) and
        sha256 on the way, :data:`CHUNK_SIZE` (S3: one part) at a time. Returns the :class:`Artefact`. An
        artefact written twice is refused (InvalidRequest). Raises BackupStoreError; errors of ``stream`` itself
        propagate unchanged."""
        check_artefact_name(name)
        if self.committed is not None:
            raise InvalidRequest(f"backup {self.backup_id} is committed: no more artefacts")
        if any(artefact.name == name for artefact in self.artefacts):
            raise InvalidRequest(f"backup {self.backup_id} already has an artefact {name!r}")
        reader = HashingReader(stream)
        self.store._put_artefact(self.header.instance, self.backup_id, name, reader)
        artefact = Artefact(name, reader.size, reader.sha256)
        self.artefacts.append(artefact)
        return artefact

    def commit(self) -> Manifest:
        """Read every artefact back from the store, check its size and sha256, and only then write the manifest:
        from that moment the backup is listed. Returns the manifest. Raises BackupStoreError when an artefact
        does not match (the backup stays unlisted; :meth:`abort` or the clean-up removes it)."""
        if self.committed is not None:
            return self.committed
        header = self.header
        manifest = Manifest(backup_id=self.backup_id, order_id=header.order_id, instance=header.instance,
                            product=header.product, revision=header.revision, plan=header.plan, kind=header.kind,
                            created_at=self.created_at, services=header.services, artefacts=tuple(self.artefacts),
                            contents=header.contents)
        problems = []
        for artefact in self.artefacts:
            try:
                problems.extend(self.store._check_artefact(header.instance, self.backup_id, artefact))
            except NotFound:
                problems.append(f"artefact {artefact.name} is missing")
        if problems:
            raise BackupStoreError(f"backup {header.instance}/{self.backup_id} in {self.store.location} is not "
                                   "committed: " + "; ".join(problems) + " after writing")
        self.store._put_manifest(header.instance, self.backup_id, manifest.to_json().encode())
        self.committed = manifest
        return manifest

    def abort(self) -> None:
        """Remove what was written of an uncommitted backup (nothing after a commit). Raises BackupStoreError."""
        if self.committed is None:
            self.store._delete_folder(self.header.instance, self.backup_id)


def chunks(stream: Readable, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The bytes of ``stream``, ``chunk_size`` at a time."""
    while True:
        data = stream.read(chunk_size)
        if not data:
            return
        yield data
