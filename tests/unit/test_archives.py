"""Archive files on the backup destination: modes, checks before anything is deleted, and every OSError named."""
from __future__ import annotations

import errno
import io
import os
import stat
import tarfile
from types import SimpleNamespace

import pytest

from app.errors import ArchiveDestinationError, ArchiveError, EngineUnavailable
from app.stacks import archives
from app.stacks.archives import FREE_SPACE_MARGIN_BYTES, destination_error, prepare_folder, write_archive

PUBLIC = "the data archive could not be written to the backup storage; nothing was deleted"


def tar_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask():
    """A umask that would leave files readable by everyone: the modes must not depend on it."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_folders_are_created_0700_and_an_existing_instance_folder_is_tightened(tmp_path, open_umask):
    backups = tmp_path / "srv" / "backups"
    folder = prepare_folder(backups, "acme", volume_bytes=10)
    assert folder == backups / "acme"
    assert (mode(backups), mode(folder)) == (0o700, 0o700)
    assert list(folder.iterdir()) == [], "the write check leaves nothing behind"

    os.chmod(folder, 0o755)  # made by an older bridge
    os.chmod(backups, 0o750)  # the operator's choice: kept
    prepare_folder(backups, "acme", volume_bytes=10)
    assert (mode(backups), mode(folder)) == (0o750, 0o700)


def test_archive_and_its_partial_file_are_0600_from_the_start(tmp_path, open_umask):
    destination = prepare_folder(tmp_path, "acme", 0) / "x-data.tar"
    partial = destination.with_name("x-data.tar.partial")
    seen = []

    def chunks():
        data = tar_bytes({"customer.txt": b"precious\n"})
        yield data[:512]
        seen.append(mode(partial))  # while it is written
        yield data[512:]

    size = write_archive(destination, chunks())
    assert seen == [0o600]
    assert mode(destination) == 0o600 and size == destination.stat().st_size
    assert not partial.exists()
    with tarfile.open(destination) as archive:
        assert archive.extractfile("customer.txt").read() == b"precious\n"


def test_a_stale_partial_file_is_replaced(tmp_path):
    destination = tmp_path / "x.tar"
    stale = tmp_path / "x.tar.partial"
    stale.write_bytes(b"left by a killed worker")
    os.chmod(stale, 0o644)
    write_archive(destination, [tar_bytes({"a": b"1"})])
    assert not stale.exists() and mode(destination) == 0o600


def test_backup_dir_that_is_a_file_is_named_as_such(tmp_path):
    backups = tmp_path / "backups"
    backups.write_text("not a folder")
    with pytest.raises(ArchiveDestinationError) as refused:
        prepare_folder(backups, "acme", 0)
    assert str(refused.value) == f"cannot use the backup folder {backups}: Not a directory (ENOTDIR)"
    assert refused.value.public == PUBLIC and not refused.value.transient
    assert backups.read_text() == "not a folder"


def test_backup_dir_under_a_file_is_named_as_such(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArchiveDestinationError, match=r"cannot create the backup folder .*/file/backups: "
                                                      r"Not a directory \(ENOTDIR\)"):
        prepare_folder(tmp_path / "file" / "backups", "acme", 0)


def test_an_instance_path_that_is_a_file_is_named(tmp_path):
    (tmp_path / "acme").write_text("x")
    with pytest.raises(ArchiveDestinationError, match=r"cannot use the backup folder .*/acme: Not a directory"):
        prepare_folder(tmp_path, "acme", 0)


def test_not_enough_free_space_is_refused_with_the_sizes(tmp_path, monkeypatch):
    monkeypatch.setattr(archives.os, "statvfs", lambda path: SimpleNamespace(f_bavail=256, f_frsize=4096))  # 1 MiB
    with pytest.raises(ArchiveDestinationError) as refused:
        prepare_folder(tmp_path, "acme", volume_bytes=3 * 1048576)
    message = str(refused.value)
    assert message.startswith(f"cannot write archives to {tmp_path / 'acme'}: No space left on device (ENOSPC): "
                              "1.0 MiB free, ")
    assert "(3.0 MiB of volumes and a margin of 8.0 MiB)" in message
    assert refused.value.details["needed_bytes"] > 3 * 1048576 + FREE_SPACE_MARGIN_BYTES - 1


def test_unknown_volume_sizes_still_need_the_margin(tmp_path, monkeypatch):
    free = FREE_SPACE_MARGIN_BYTES - 4096
    monkeypatch.setattr(archives.os, "statvfs", lambda path: SimpleNamespace(f_bavail=free // 4096, f_frsize=4096))
    with pytest.raises(ArchiveDestinationError, match="volumes of unknown size and a margin of 8.0 MiB"):
        prepare_folder(tmp_path, "acme", volume_bytes=None)


def test_a_folder_that_refuses_writes_is_found_before_anything_is_written(tmp_path, monkeypatch):
    real_open = os.open

    def read_only(path, flags, *args):
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_open(path, flags, *args)

    monkeypatch.setattr(archives.os, "open", read_only)
    with pytest.raises(ArchiveDestinationError, match=r"cannot write archives to .*/acme: Read-only file system "
                                                      r"\(EROFS\)"):
        prepare_folder(tmp_path, "acme", 0)


@pytest.mark.parametrize("code", ["ENOSPC", "EROFS", "EACCES", "ENOTDIR", "EEXIST", "EDQUOT", "EIO", "EPERM"])
def test_every_cause_is_named_with_the_path_and_never_public(code):
    number = getattr(errno, code)
    error = destination_error(OSError(number, os.strerror(number)), "/srv/backups/acme/x.tar.partial",
                              "write the archive")
    assert str(error) == f"cannot write the archive /srv/backups/acme/x.tar.partial: {os.strerror(number)} ({code})"
    assert error.public == PUBLIC and "/srv" not in error.public
    assert not error.transient and error.details == {"path": "/srv/backups/acme/x.tar.partial", "errno": code}


class FullDisk(io.RawIOBase):
    """A file whose writes fail as on a full file system, after ``room`` bytes."""

    def __init__(self, fd: int, room: int):
        self._file = io.FileIO(fd, "wb")
        self.room = room

    def writable(self):
        return True

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self._file.write(data)

    def fileno(self):
        return self._file.fileno()

    def close(self):
        self._file.close()
        super().close()


def test_a_file_system_that_fills_up_midway_fails_with_the_cause_and_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(archives.os, "fdopen", lambda fd, mode: FullDisk(fd, room=1024))
    destination = tmp_path / "x.tar"
    data = tar_bytes({"big": b"x" * 20000})
    with pytest.raises(ArchiveDestinationError) as refused:
        write_archive(destination, (data[i:i + 1000] for i in range(0, len(data), 1000)))
    assert str(refused.value) == f"cannot write the archive {destination}.partial: No space left on device (ENOSPC)"
    assert list(tmp_path.iterdir()) == []


def test_an_engine_failure_midway_passes_through_and_leaves_no_file(tmp_path):
    def chunks():
        yield b"\0" * 512
        raise EngineUnavailable("read volume v: the Docker engine's stream broke: connection reset")

    with pytest.raises(EngineUnavailable, match="stream broke"):
        write_archive(tmp_path / "x.tar", chunks())
    assert list(tmp_path.iterdir()) == []


def test_a_stream_that_is_not_a_tar_file_is_refused(tmp_path):
    with pytest.raises(ArchiveError, match="is not a readable tar file") as refused:
        write_archive(tmp_path / "x.tar", [b"<html>not a tar</html>" * 50])
    assert type(refused.value) is ArchiveError
    assert refused.value.public == "a data volume could not be archived; it was kept"
    assert list(tmp_path.iterdir()) == []


def test_a_disk_that_fills_up_while_the_buffer_is_flushed_names_the_archive_not_an_internal_error(tmp_path, monkeypatch):
    # The last chunk fits the write buffer; ENOSPC comes at flush and again when the file closes. The
    # second error must not replace the first (found by an operator: "internal error", no path).
    real_open = os.open
    monkeypatch.setattr(archives.os, "open", lambda path, flags, mode=0o777: real_open("/dev/full", os.O_WRONLY))
    destination = tmp_path / "x.tar"
    with pytest.raises(ArchiveDestinationError) as refused:
        write_archive(destination, [b"\0" * 100])  # smaller than the write buffer: ENOSPC comes at flush
    assert str(refused.value) == f"cannot write the archive {destination}.partial: No space left on device (ENOSPC)"
    assert list(tmp_path.iterdir()) == []
