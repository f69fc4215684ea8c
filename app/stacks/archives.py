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


class TarStreamCheck:
    """Follows the framing of a tar stream as it passes, in flat memory (what a restore extracts is checked
    on the way, so a stream that is not a whole tar archive is caught even where the extractor accepts it).

    :meth:`feed` takes the stream's bytes in order; each 512-byte header is parsed (checksum, size in octal
    or base-256, a pax ``size`` record for the next member) and the member's data skipped. :attr:`ended`
    tells whether the end-of-archive block (a block of zeros where a header belongs) was reached; bytes after
    it (record padding) are ignored. An empty stream is no archive: :attr:`ended` stays false.

    Raises ``ValueError`` (reason, with the byte offset) when a block where a header belongs is not one.
    """

    #: The largest pax extended header read for its ``size`` record (real ones are a few hundred bytes).
    PAX_HEADER_LIMIT = 1024 * 1024
    _HEADER_ONLY = (tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.DIRTYPE,
                    tarfile.FIFOTYPE)
    #: Headers that describe the next member (GNU long names and links) or the archive (pax global): no member.
    _META = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XGLTYPE)

    def __init__(self):
        self.ended = False
        self.members = 0
        self.offset = 0  # bytes fed
        self._header = bytearray()
        self._skip = 0  # bytes of the current member (data and padding) still to pass
        self._pax: bytearray | None = None  # a pax extended header's data, while it passes
        self._pax_left = 0
        self._next_size: int | None = None  # from a pax record, for the next member

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        position = 0
        while position < len(view) and not self.ended:
            if self._skip:
                step = min(self._skip, len(view) - position)
                if self._pax is not None and self._pax_left:
                    taken = min(step, self._pax_left)
                    self._pax += view[position:position + taken]
                    self._pax_left -= taken
                self._skip -= step
                position += step
                if not self._skip and self._pax is not None:
                    self._next_size = _pax_size(bytes(self._pax))
                    self._pax = None
                continue
            step = min(512 - len(self._header), len(view) - position)
            self._header += view[position:position + step]
            position += step
            if len(self._header) == 512:
                self._on_header(bytes(self._header), self.offset + position - 512)
                self._header.clear()
        self.offset += len(view)

    def _on_header(self, block: bytes, at: int) -> None:
        if block == tarfile.NUL * 512:
            self.ended = True
            return
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            raise ValueError(f"no tar header at byte {at}: {exc}") from exc
        size = info.size
        if info.type == tarfile.XHDTYPE:
            if size > self.PAX_HEADER_LIMIT:
                raise ValueError(f"a pax header of {size} bytes at byte {at}")
            self._pax, self._pax_left = bytearray(), size
        elif info.type not in self._META:
            if self._next_size is not None:
                size, self._next_size = self._next_size, None
            if info.type in self._HEADER_ONLY:
                size = 0
            self.members += 1
        self._skip = -(-size // 512) * 512
        if not self._skip and self._pax is not None:
            self._next_size, self._pax = _pax_size(b""), None


def _pax_size(data: bytes) -> int | None:
    """The ``size`` record of a pax extended header's data (``"<length> <key>=<value>\\n"`` records), if any."""
    position, size = 0, None
    while position < len(data):
        length_text, space, _ = data[position:position + 20].partition(b" ")
        if not space or not length_text.isdigit() or int(length_text) <= 0:
            raise ValueError("a pax header that is not a list of records")
        record = data[position:position + int(length_text)]
        key, _, value = record[len(length_text) + 1:].rstrip(b"\n").partition(b"=")
        if key == b"size":
            if not value.isdigit():
                raise ValueError(f"a pax size record that is no number: {value[:40]!r}")
            size = int(value)
        position += int(length_text)
    return size
