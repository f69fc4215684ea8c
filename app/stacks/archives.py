"""Tar archives as they stream (volume artefacts of backups, app/backups/service.py).

:class:`TarStreamCheck` follows the framing of a tar stream in flat memory, so a restore
(:meth:`app.stacks.docker_engine.DockerEngine.import_volume`) catches a stream that is not a whole tar
archive even where the engine's extractor would accept it.
"""
from __future__ import annotations

import tarfile


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
