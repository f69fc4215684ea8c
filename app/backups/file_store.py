"""The backup store in a folder (``LIVE_BACKUP_STORE=file:///srv/backups``).

``<root>/<instance>/<backup_id>/<artefact>`` and ``.../manifest.json`` (see :mod:`app.backups.store`). Every
file is written as ``<name>.partial-<random>`` (mode 0600, created exclusively), fsynced, renamed to its name,
and the folder fsynced: a reader sees a whole file or none. Folders are 0700: backups hold customer data.

Every OSError becomes a :class:`~app.errors.BackupStoreError` naming the path and the cause with its errno
name (``No space left on device (ENOSPC)``); not transient.
"""
from __future__ import annotations

import errno
import os
import secrets
import shutil
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from app.backups.store import (
    CHUNK_SIZE, MANIFEST_NAME, BackupStore, HashingReader, StoredBackup, chunks, is_backup_id,
)
from app.errors import BackupStoreError, NotFound

FOLDER_MODE = 0o700
FILE_MODE = 0o600
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _error(exc: OSError, doing: str, path: Path) -> BackupStoreError:
    code = errno.errorcode.get(exc.errno or 0)
    cause = exc.strerror or str(exc) or type(exc).__name__
    return BackupStoreError(f"backup store: cannot {doing} {path}: {cause}" + (f" ({code})" if code else ""),
                            path=str(path), errno=code)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileBackupStore(BackupStore):
    """Backups as files under ``root`` (an absolute path; created, mode 0700, when missing)."""

    def __init__(self, root: Path | str, clock: Callable[[], datetime] | None = None):
        super().__init__(clock)
        self.root = Path(root)
        self.location = f"file://{self.root}"

    def _folder(self, instance: str, backup_id: str) -> Path:
        return self.root / instance / backup_id

    # -- writing --------------------------------------------------------------------------------------------------
    def _prepare(self, instance: str, backup_id: str) -> None:
        for path in (self.root, self.root / instance, self._folder(instance, backup_id)):
            try:
                path.mkdir(mode=FOLDER_MODE, parents=path == self.root, exist_ok=True)
            except OSError as exc:
                raise _error(exc, "create the folder", path) from None

    def nearest_existing(self) -> Path:
        """The root, or its nearest parent that exists when the root does not yet (it is made at the first backup)."""
        path = self.root
        while not path.exists() and path != path.parent:
            path = path.parent
        return path

    def _ping(self) -> None:
        """The root is a writable folder, or one can be made there: its nearest existing parent is a writable
        folder. Raises BackupStoreError naming the path otherwise (nothing is created)."""
        path = self.nearest_existing()
        if not path.is_dir():
            raise _error(OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)), "use the folder", path)
        if not os.access(path, os.W_OK | os.X_OK):
            raise _error(OSError(errno.EACCES, os.strerror(errno.EACCES)), "write to", path)

    def _write_file(self, path: Path, pieces: Iterable[bytes]) -> None:
        """Write ``pieces`` to ``path`` atomically: a temporary file, fsync, rename, fsync of the folder."""
        partial = path.with_name(f"{path.name}.partial-{secrets.token_hex(4)}")
        try:
            fd = os.open(partial, _CREATE_FLAGS, FILE_MODE)
        except OSError as exc:
            raise _error(exc, "create", partial) from None
        stage = "read"  # an error of the source stream propagates unchanged; one of the folder is translated
        try:
            with os.fdopen(fd, "wb") as out:
                for piece in pieces:
                    stage = "write"
                    out.write(piece)
                    stage = "read"
                stage = "write"
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, path)
            _fsync_folder(path.parent)
        except BaseException as exc:
            partial.unlink(missing_ok=True)
            if isinstance(exc, OSError) and stage == "write":
                raise _error(exc, "write", partial) from None
            raise

    def _put_artefact(self, instance: str, backup_id: str, name: str, reader: HashingReader) -> None:
        self._write_file(self._folder(instance, backup_id) / name, chunks(reader, CHUNK_SIZE))

    def _put_manifest(self, instance: str, backup_id: str, text: bytes) -> None:
        self._write_file(self._folder(instance, backup_id) / MANIFEST_NAME, [text])

    # -- reading --------------------------------------------------------------------------------------------------
    def _open(self, instance: str, backup_id: str, name: str) -> BinaryIO:
        path = self._folder(instance, backup_id) / name
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise NotFound(f"no artefact {path}") from None
        except OSError as exc:
            raise _error(exc, "read", path) from None

    def _get_manifest(self, instance: str, backup_id: str) -> bytes:
        path = self._folder(instance, backup_id) / MANIFEST_NAME
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no manifest {path}") from None
        except OSError as exc:
            raise _error(exc, "read", path) from None

    def _backups(self, instance: str | None) -> Iterable[StoredBackup]:
        try:
            if not self.root.exists():
                return []
            if not self.root.is_dir():  # a store that is a file holds no backups: never answer "none"
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(self.root))
            instances = [self.root / instance] if instance else sorted(p for p in self.root.iterdir() if p.is_dir())
            found = []
            for folder in instances:
                if not folder.exists():
                    continue
                if not folder.is_dir():
                    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder))
                for backup in sorted(folder.iterdir()):
                    if backup.is_dir() and is_backup_id(backup.name):
                        found.append(StoredBackup(folder.name, backup.name, (backup / MANIFEST_NAME).is_file()))
            return found
        except OSError as exc:
            raise _error(exc, "list", Path(exc.filename or self.root)) from None

    # -- removing -------------------------------------------------------------------------------------------------
    def _delete_manifest(self, instance: str, backup_id: str) -> None:
        path = self._folder(instance, backup_id) / MANIFEST_NAME
        try:
            path.unlink(missing_ok=True)
            if path.parent.is_dir():
                _fsync_folder(path.parent)
        except OSError as exc:
            raise _error(exc, "delete", path) from None

    def _delete_folder(self, instance: str, backup_id: str) -> None:
        folder = self._folder(instance, backup_id)
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _error(exc, "delete", Path(exc.filename or folder)) from None

    def __repr__(self) -> str:
        return f"FileBackupStore({str(self.root)!r})"
