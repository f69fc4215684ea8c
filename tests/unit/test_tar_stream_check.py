"""TarStreamCheck (app/stacks/archives.py): the framing of a tar stream followed as it passes, so a restore
catches a stream that is no whole tar archive even where the engine's extractor would accept it."""
from __future__ import annotations

import io
import random
import tarfile

import pytest

from app.stacks.archives import TarStreamCheck

FORMATS = {"ustar": tarfile.USTAR_FORMAT, "gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT}


def archive(fmt: int, long_names: bool = True) -> bytes:
    """Directories, files of sizes around the block size, a symlink, a hard link, a FIFO, long names."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        def add(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **fields):
            info = tarfile.TarInfo(name)
            info.type, info.size, info.uid, info.mode = kind, len(data), 999, 0o640
            for key, value in fields.items():
                setattr(info, key, value)
            tar.addfile(info, io.BytesIO(data) if data else None)

        add(".", tarfile.DIRTYPE)
        add("./a", tarfile.DIRTYPE)
        for size in (0, 1, 511, 512, 513, 20_000):
            add(f"./a/f{size}", data=bytes(random.Random(size).randrange(256) for _ in range(size)))
        add("./link", tarfile.SYMTYPE, linkname="a/f1")
        add("./hard", tarfile.LNKTYPE, linkname="./a/f1")
        add("./fifo", tarfile.FIFOTYPE)
        if long_names:
            add("./" + "d" * 120 + "/" + "n" * 150, data=b"long")
            add("./x", tarfile.SYMTYPE, linkname="t" * 200)
    return buffer.getvalue()


def fed(data: bytes, pieces: int | None) -> TarStreamCheck:
    check = TarStreamCheck()
    if pieces is None:
        check.feed(data)
        return check
    position, rng = 0, random.Random(pieces)
    while position < len(data):
        step = rng.randint(1, pieces)
        check.feed(data[position:position + step])
        position += step
    return check


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
@pytest.mark.parametrize("pieces", [None, 3, 600, 5000])
def test_a_whole_archive_of_any_format_ends_with_every_member_counted(fmt, pieces):
    data = archive(FORMATS[fmt], long_names=fmt != "ustar")
    check = fed(data, pieces)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert (check.ended, check.members) == (True, len(tar.getmembers()))
    assert check.offset == len(data)


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_a_stream_cut_at_any_member_boundary_has_not_ended(fmt):
    data = archive(FORMATS[fmt], long_names=fmt != "ustar")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        boundaries = [member.offset for member in tar.getmembers()] + [tar.offset]
    assert len(boundaries) > 10
    for cut in boundaries:
        check = fed(data[:cut], 700)
        assert check.ended is False, cut
    assert fed(data[:boundaries[-1] + 512], None).ended is True  # the first block of zeros is the end


def test_record_padding_after_the_end_is_ignored():
    data = archive(tarfile.GNU_FORMAT) + b"\0" * 10240 + b"whatever follows"
    assert fed(data, 333).ended is True


def test_an_empty_stream_is_no_archive():
    check = TarStreamCheck()
    check.feed(b"")
    assert (check.ended, check.members) == (False, 0)


def test_a_stream_that_is_no_tar_archive_is_refused_at_its_first_block():
    with pytest.raises(ValueError, match=r"^no tar header at byte 0: "):
        TarStreamCheck().feed(random.Random(1).randbytes(4096))


def test_a_broken_header_after_good_members_is_refused_with_its_offset():
    data = bytearray(archive(tarfile.USTAR_FORMAT, long_names=False))
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tar:
        offset = tar.getmembers()[4].offset
    data[offset + 148] ^= 0x01  # its checksum no longer matches
    check = TarStreamCheck()
    with pytest.raises(ValueError, match=rf"^no tar header at byte {offset}: "):
        check.feed(bytes(data))


def header(name: str, size_field: bytes, kind: bytes = tarfile.REGTYPE) -> bytes:
    """A ustar header block with the raw ``size_field`` (12 bytes) and a correct checksum."""
    info = tarfile.TarInfo(name)
    info.type = kind
    block = bytearray(info.tobuf(tarfile.USTAR_FORMAT))
    block[124:136] = size_field
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block[:512])


def test_a_base_256_size_is_read():
    size = 1000
    data = header("./big", b"\x80" + size.to_bytes(11, "big")) + b"x" * 1024 + b"\0" * 1024
    check = fed(data, 100)
    assert (check.ended, check.members) == (True, 1)


def test_a_pax_size_record_gives_the_next_members_size():
    records = b"13 size=1000\n"
    pax = header("./PaxHeaders/big", b"%011o\0" % len(records), tarfile.XHDTYPE) + records.ljust(512, b"\0")
    member = header("./big", b"%011o\0" % 0)  # a size field a writer could not fit: the pax record wins
    data = pax + member + b"y" * 1024 + b"\0" * 1024
    check = fed(data, 50)
    assert (check.ended, check.members) == (True, 1)
    broken = pax.replace(b"13 size=1000", b"13 size=10x0")
    with pytest.raises(ValueError, match="pax size record"):
        TarStreamCheck().feed(broken + member)
