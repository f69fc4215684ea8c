"""Reading a config repository's ``products/`` folder: one set of rules for every source.

A source (the local folder, GitLab) only says what the repository holds: the
names in ``products/``, what kind each path is, a symbolic link's target, and
a file's raw bytes. Everything else happens here, the same way for every
source (:func:`app.catalog.source.read_products`):

* **Bytes to text** (:func:`decode_product_file`): at most
  :data:`MAX_FILE_BYTES`; UTF-8 (a byte order mark is allowed); no control
  characters besides tab, CR and LF (a NUL means binary content).
* **Symbolic links** (:func:`resolve`): a link, to a file or to a product
  folder, is followed only while every step stays inside ``products/``
  (chains allowed, at most :data:`MAX_LINKS` links; more is a loop).
  Anything else makes the product invalid, naming the link and its target.
* **Folder names** become printable text (:func:`printable_name`): bytes that
  are not UTF-8 and invisible characters are escaped, so every name can be
  stored and shown; the catalog then reports a name that is not a valid slug.

A problem with one product's files never stops the others: it becomes an
error of that product (``product <slug>: product.yml: ...``). Only a
``products/`` folder that cannot be listed at all is the source's failure.
"""
from __future__ import annotations

import codecs
import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Protocol

# Defined with every Live error in app.errors (one tree, one HTTP mapping); importable from here too.
from app.errors import CatalogSourceError, UnreadableFile  # noqa: F401

log = logging.getLogger(__name__)

MANIFEST, COMPOSE = "product.yml", "docker-compose.yml"
PRODUCTS = "products"
#: Largest product file read, in bytes (512 KiB); a source reads at most one byte more.
MAX_FILE_BYTES = 512 * 1024
#: Most symbolic links followed for one path (as Linux's MAXSYMLINKS); more is reported as a loop.
MAX_LINKS = 40
#: Longest stored product name, in characters (the ``product.slug`` column).
MAX_NAME_CHARS = 255
#: Longest link target read (Linux's PATH_MAX).
MAX_LINK_BYTES = 4096
#: The problem of a file that is not there.
MISSING = "is missing"

# What YAML accepts as text (YAML 1.1, section 5.1, as PyYAML's reader): anything else is binary content.
_NOT_TEXT = re.compile("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")


# -- bytes to text ------------------------------------------------------------------------

def decode_product_file(data: bytes) -> str:
    """The text of a product file from its raw bytes (at most :data:`MAX_FILE_BYTES` + 1 of them).

    Raises :class:`UnreadableFile` naming the problem and its position: more
    than :data:`MAX_FILE_BYTES` bytes, a UTF-16/UTF-32 byte order mark, a NUL
    byte (binary content), a byte sequence that is not UTF-8 (byte offset,
    line and column), or a character YAML does not accept as text (control
    characters besides tab, CR and LF; YAML 1.1 section 5.1).
    A UTF-8 byte order mark is dropped.
    """
    if len(data) > MAX_FILE_BYTES:
        raise UnreadableFile(f"larger than {MAX_FILE_BYTES // 1024} KiB ({MAX_FILE_BYTES:,} bytes), the most a product "
                             "file may have")
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise UnreadableFile("is UTF-16 or UTF-32 (it starts with a byte order mark); save it as UTF-8")
    nul = data.find(b"\x00")
    if nul >= 0:  # before decoding: a NUL says binary (an image, an archive) better than its first odd byte does
        line, column = _position(data, nul, b"\n")
        raise UnreadableFile(f"binary content: a NUL byte at line {line}, column {column} (byte offset {nul}); "
                             "a product file is YAML text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position(data, exc.start, b"\n")
        raise UnreadableFile(f"not UTF-8: byte 0x{data[exc.start]:02X} at line {line}, column {column} (byte offset "
                             f"{exc.start}) is not valid UTF-8; save the file as UTF-8") from None
    text = text.removeprefix("\ufeff")
    bad = _NOT_TEXT.search(text)
    if bad:
        line, column = _position(text, bad.start(), "\n")
        raise UnreadableFile(f"binary content: U+{ord(bad.group()):04X} (a control character) at line {line}, "
                             f"column {column}; a product file is YAML text")
    return text


def _position(data, offset: int, newline) -> tuple[int, int]:
    """1-based line and column of ``offset`` in ``data`` (bytes or str)."""
    line = data.count(newline, 0, offset) + 1
    return line, offset - (data.rfind(newline, 0, offset) + 1) + 1


# -- names --------------------------------------------------------------------------------

def printable_name(name: str) -> str:
    """A folder name as printable text of at most :data:`MAX_NAME_CHARS` characters, the same for every source.

    ``name`` is what the platform gave (``os.listdir`` keeps bytes that are
    not UTF-8 as surrogate escapes, and so does JSON with ``\\udcXX``). Such
    bytes become ``\\xNN``, other invisible or unprintable characters
    ``\\xNN``/``\\uNNNN``, a backslash ``\\\\`` (so two names never collide).
    A longer result is cut and ends with ``…`` and 12 hex digits of its SHA-256.
    """
    out = []
    for char in name:
        code = ord(char)
        if char == "\\":
            out.append("\\\\")
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, kept by surrogateescape
            out.append(f"\\x{code - 0xDC00:02x}")
        elif char.isprintable() and not 0xD800 <= code <= 0xDFFF:
            out.append(char)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    text = "".join(out)
    if len(text) > MAX_NAME_CHARS:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        text = text[: MAX_NAME_CHARS - 13] + "…" + digest
    return text


# -- the repository seen by a source ----------------------------------------------------------

FILE, DIR, LINK, SUBMODULE = "file", "folder", "symbolic link", "git submodule"


class RepositoryView(Protocol):
    """What a source knows about the repository; paths are ``products/...`` with ``/`` separators.

    Names are ``str`` as the platform gives them (surrogate escapes for bytes
    that are not UTF-8).
    """

    def product_names(self) -> list[str]:
        """Names directly inside ``products/``; :class:`CatalogSourceError` when it cannot be listed."""

    def kind(self, path: str) -> str | None:
        """:data:`FILE`, :data:`DIR`, :data:`LINK`, :data:`SUBMODULE`, another description (``"a FIFO"``)
        for something that is none of these, or ``None`` when nothing is there. Never follows a link.
        Raises :class:`UnreadableFile` when the path cannot be examined."""

    def link_target(self, path: str) -> str:
        """The target text of the link at ``path``; :class:`UnreadableFile` when it cannot be read."""

    def read(self, path: str) -> tuple[str, str | None]:
        """The decoded text of the file at ``path`` (:func:`decode_product_file`) and its git blob id when
        known; :class:`UnreadableFile` when it cannot be read."""


def resolve(view: RepositoryView, path: str) -> str:
    """The path ``path`` leads to after following symbolic links, every step inside ``products/``.

    Works like the kernel's path lookup, on the repository's own listing: a
    relative link target is read from the link's folder, ``..`` steps up, and
    a step to the repository root may only come back into ``products/``.
    Returns a ``products/...`` path without links; raises
    :class:`UnreadableFile` (for the whole path) when a link leaves
    ``products/`` or is absolute, when links loop (more than
    :data:`MAX_LINKS`), and when a link leads nowhere.
    """
    parts = path.split("/")
    if parts[0] != PRODUCTS:
        raise ValueError(f"not a path in {PRODUCTS}/: {path}")
    resolved, pending, chain = [PRODUCTS], parts[1:], []

    def outside(target: str) -> UnreadableFile:
        return UnreadableFile(f"is a symbolic link to {_chain(chain)}, outside {PRODUCTS}/"
                              if chain else f"is outside {PRODUCTS}/ ({printable_name(target)})")

    while pending:
        name = pending.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            if not resolved:
                raise outside(name)  # above the repository root
            resolved.pop()
            continue
        if not resolved:  # at the repository root: only products/ is part of the catalog
            if name != PRODUCTS:
                raise outside(name)
            resolved.append(name)
            continue
        candidate = "/".join(resolved + [name])
        kind = view.kind(candidate)
        if kind == LINK:
            if len(chain) >= MAX_LINKS:
                raise UnreadableFile(f"is a symbolic link loop ({_chain(chain[:3])} -> ...)")
            target = view.link_target(candidate)
            chain.append(target)
            if target.startswith("/"):
                raise outside(target)
            pending = target.split("/") + pending
            continue
        if kind is None or (pending and kind != DIR):
            if chain:
                raise UnreadableFile(f"is a symbolic link to {_chain(chain)}, which does not exist")
            raise UnreadableFile(MISSING)
        resolved.append(name)
    if len(resolved) < 2:
        raise outside("/".join(resolved))
    return "/".join(resolved)


def _chain(targets: list[str]) -> str:
    return " -> ".join(printable_name(target) for target in targets)


@dataclass(frozen=True)
class FileRead:
    """One product file: its text, or the reason it cannot be used (``problem``, without the file name).

    A problem starts with ``is`` (``is missing``, ``is a symbolic link to ...``)
    or names what is wrong (``not UTF-8: ...``), so a message reads
    ``product.yml is missing`` or ``product.yml: not UTF-8: ...``.
    """

    text: str = ""
    blob_id: str | None = None
    problem: str | None = None

    @property
    def missing(self) -> bool:
        return self.problem == MISSING


def read_file(view: RepositoryView, path: str) -> FileRead:
    """Read the product file at ``path`` (following links inside ``products/``), never raising for content."""
    try:
        target = resolve(view, path)
        kind = view.kind(target)
        if kind == DIR:
            raise UnreadableFile("is a folder, not a file")
        if kind != FILE:
            raise UnreadableFile(f"is not a regular file ({'a ' + kind if kind == SUBMODULE else kind})")
        text, blob_id = view.read(target)
    except UnreadableFile as exc:
        return FileRead(problem=str(exc))
    return FileRead(text=text, blob_id=blob_id)


def product_folders(view: RepositoryView, only: list[str] | None = None) -> list[tuple[str, str | None, str | None]]:
    """The product folders of ``products/``: ``(raw name, resolved folder path or None, problem or None)``.

    Hidden names (``.git``, ``.keep``) and plain files are not products; a
    symbolic link is one when it leads to a folder inside ``products/``, and an
    invalid one (with the problem) when it leads outside or nowhere. ``only``
    limits the result to those names (hidden ones included).
    """
    folders = []
    for name in sorted(view.product_names()) if only is None else only:
        if only is None and name.startswith("."):
            continue
        path = f"{PRODUCTS}/{name}"
        try:
            kind = view.kind(path)
            if kind == LINK:
                target = resolve(view, path)
                kind = view.kind(target)
            else:
                target = path
        except UnreadableFile as exc:
            folders.append((name, None, str(exc)))
            continue
        if kind == DIR:
            folders.append((name, target, None))
        elif kind == SUBMODULE:
            folders.append((name, None, "is a git submodule; Live reads only folders of this repository"))
        # Plain files (a README), and links to them, are not products.
    return folders
