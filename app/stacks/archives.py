"""Archive files on the backup destination (``LIVE_BACKUP_DIR``): checked before anything is deleted.

Volume archives hold customer data and generated passwords, so every folder this
module creates has mode 0700 and every file mode 0600, the ``.partial`` file
included (created with that mode, never loosened then tightened).

Any failure of the destination (full, read-only, missing, not a folder, no
permission, an I/O error) becomes an :class:`~app.errors.ArchiveDestinationError`
whose message names the path and the cause, e.g. ``cannot write the archive
/srv/backups/acme/x.tar.partial: No space left on device (ENOSPC)``. It is not
transient: the worker fails the operation at once instead of retrying.

The engine side (reading a volume) is :meth:`app.stacks.engine.Engine.archive_volume`;
it hands its stream of bytes to :func:`write_archive`.
"""
from __future__ import annotations

import errno
import os
import stat
import tarfile
import uuid
from pathlib import Path
from typing import Iterable

from app.errors import ArchiveDestinationError, ArchiveError

FOLDER_MODE = 0o700
FILE_MODE = 0o600
#: Free space the backup folder must keep beyond the volumes' own size (tar headers, file system slack).
FREE_SPACE_MARGIN_BYTES = 8 * 1024 * 1024
#: Tar adds a 512-byte header per file and pads each file to 512 bytes: count the volumes' size this much higher.
TAR_OVERHEAD_RATIO = 0.05
_PARTIAL_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def destination_error(exc: OSError, path: Path | str, doing: str) -> ArchiveDestinationError:
    """The Live error for ``exc``, raised while ``doing`` (e.g. ``write the archive``) at ``path``.

    The message (private) names the action, the path and the cause with its errno name:
    ``cannot write the archive /b/x.tar.partial: No space left on device (ENOSPC)``.
    """
    code = errno.errorcode.get(exc.errno or 0)
    cause = exc.strerror or str(exc) or type(exc).__name__
    return ArchiveDestinationError(f"cannot {doing} {path}: {cause}" + (f" ({code})" if code else ""),
                                   path=str(path), errno=code)


def _close_quietly(out) -> None:
    """Close ``out`` after a failure: a second error while flushing the rest is the same cause, already reported."""
    try:
        out.close()
    except OSError:
        pass


def required_free_bytes(volume_bytes: int | None) -> int:
    """Free bytes the backup folder needs for volumes holding ``volume_bytes`` (``None``: size unknown)."""
    return int((volume_bytes or 0) * (1 + TAR_OVERHEAD_RATIO)) + FREE_SPACE_MARGIN_BYTES


def prepare_folder(backup_dir: Path, instance: str, volume_bytes: int | None) -> Path:
    """Make sure ``<backup_dir>/<instance>/`` can take archives of ``volume_bytes`` bytes; returns the folder.

    Creates the backup folder when missing (mode 0700; a folder that exists keeps its mode) and the
    instance folder (mode 0700; an existing one is tightened to 0700), proves it is writable by creating
    and removing a small file, and checks its file system has :func:`required_free_bytes` free
    (``volume_bytes`` ``None``: the size is unknown, only the margin is checked).

    Raises :class:`~app.errors.ArchiveDestinationError` naming the path and the cause. Changes nothing
    but the two folders.
    """
    backup_dir = Path(backup_dir)
    folder = backup_dir / instance
    _make_folder(backup_dir, tighten=False)
    _make_folder(folder, tighten=True)
    probe = folder / f".write-check-{uuid.uuid4().hex[:12]}"
    try:
        fd = os.open(probe, _PARTIAL_FLAGS, FILE_MODE)
        try:
            os.write(fd, b"\0" * 4096)  # a full file system refuses data, not always an empty file
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise destination_error(exc, folder, "write archives to") from exc
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass
    try:
        usage = os.statvfs(folder)
    except OSError as exc:
        raise destination_error(exc, folder, "read the free space of") from exc
    free = usage.f_bavail * usage.f_frsize
    needed = required_free_bytes(volume_bytes)
    if free < needed:
        what = f"{_mib(volume_bytes)} of volumes and" if volume_bytes else "volumes of unknown size and"
        raise ArchiveDestinationError(
            f"cannot write archives to {folder}: No space left on device (ENOSPC): {_mib(free)} free, "
            f"{_mib(needed)} needed ({what} a margin of {_mib(FREE_SPACE_MARGIN_BYTES)})",
            path=str(folder), errno="ENOSPC", free_bytes=free, needed_bytes=needed)
    return folder


def write_archive(destination: Path, chunks: Iterable[bytes]) -> int:
    """Write ``chunks`` (a tar stream) to ``destination`` through ``<destination>.partial``; returns its size in bytes.

    The partial file is created with mode 0600 (a stale one is replaced), synced, read back as a tar
    file, then renamed; the folder is synced too. On any failure the partial file is removed and
    ``destination`` is left as it was.

    Errors raised by iterating ``chunks`` (the engine's, already Live errors) pass through unchanged.
    Raises :class:`~app.errors.ArchiveDestinationError` when the file system fails (full, read-only, ...)
    and :class:`~app.errors.ArchiveError` when what was written is not a readable tar file.
    """
    destination = Path(destination)
    partial = destination.with_name(destination.name + ".partial")
    done = False
    try:
        try:
            partial.unlink(missing_ok=True)  # left by an interrupted attempt
            fd = os.open(partial, _PARTIAL_FLAGS, FILE_MODE)
        except OSError as exc:
            raise destination_error(exc, partial, "create the archive") from exc
        out = os.fdopen(fd, "wb")
        try:
            for chunk in chunks:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        except OSError as exc:
            _close_quietly(out)  # its flush would fail again and hide this error's path (ENOSPC while closing)
            raise destination_error(exc, partial, "write the archive") from exc
        except BaseException:
            _close_quietly(out)
            raise
        try:
            out.close()
        except OSError as exc:
            raise destination_error(exc, partial, "write the archive") from exc
        try:
            with tarfile.open(partial) as archive:  # prove it is readable before anything is deleted
                archive.getmembers()
        except tarfile.TarError as exc:
            raise ArchiveError(f"the archive {partial} is not a readable tar file: {exc}", path=str(partial)) from exc
        except OSError as exc:
            raise destination_error(exc, partial, "read back the archive") from exc
        try:
            os.replace(partial, destination)
            _sync_folder(destination.parent)
            size = destination.stat().st_size
        except OSError as exc:
            raise destination_error(exc, destination, "store the archive") from exc
        done = True
        return size
    finally:
        if not done:
            try:
                partial.unlink(missing_ok=True)
            except OSError:
                pass  # the folder itself is gone or unwritable: nothing more to clean


def _make_folder(folder: Path, *, tighten: bool) -> None:
    """Create ``folder`` (and missing parents) with mode 0700, or check the existing one is a folder."""
    try:
        folder.mkdir(mode=FOLDER_MODE, parents=True)
        return
    except FileExistsError:
        pass
    except OSError as exc:
        raise destination_error(exc, folder, "create the backup folder") from exc
    try:
        info = folder.stat()
    except OSError as exc:
        raise destination_error(exc, folder, "read the backup folder") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise destination_error(OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)), folder, "use the backup folder")
    if tighten and stat.S_IMODE(info.st_mode) & 0o077:
        try:
            os.chmod(folder, FOLDER_MODE)
        except OSError as exc:
            raise destination_error(exc, folder, "set mode 0700 on the backup folder") from exc


def _sync_folder(folder: Path) -> None:
    """fsync a folder so a rename in it survives a crash (ignored where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _mib(value: int | None) -> str:
    return f"{(value or 0) / 1048576:.1f} MiB"
