"""Where product definitions come from.

:class:`CatalogSource` is the port; :class:`LocalFolderSource` reads a local
folder or git checkout (``products/<slug>/product.yml`` + ``docker-compose.yml``).
:class:`app.catalog.gitlab_source.GitLabSource` reads the same layout from GitLab.

Both describe the repository through a :class:`app.catalog.files.RepositoryView`
and hand it to :func:`read_products`, so encodings, sizes, binary content,
symbolic links and folder names follow the same rules (``app/catalog/files.py``)
whatever the source.
"""
from __future__ import annotations

import logging
import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from app.catalog.files import (
    COMPOSE,
    DIR,
    FILE,
    LINK,
    MANIFEST,
    MAX_FILE_BYTES,
    PRODUCTS,
    RepositoryView,
    decode_product_file,
    printable_name,
    product_folders,
    read_file,
)
from app.catalog.product import ProductDefinition, load_product
from app.errors import CatalogSourceError, UnreadableFile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceProduct:
    """One product folder as a source read it.

    ``slug`` is the folder name as printable text (:func:`printable_name`).
    A file that could not be read has empty text, is listed in ``unreadable``
    (and in ``missing`` when it is absent), and its reason is in ``problems``:
    complete messages naming product and file (``product x: product.yml: not
    UTF-8: ...``), or the folder (``product x: products/x is a symbolic link to
    /etc, outside products/``).
    """

    slug: str
    manifest_text: str
    compose_text: str
    commit: str | None = None
    missing: tuple[str, ...] = ()  # files that are absent from the folder
    manifest_blob: str | None = None  # git blob ids, when the source knows them
    compose_blob: str | None = None
    problems: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()

    def load(self, orchestrator: str = "docker") -> ProductDefinition:
        """Parse and validate what was read for ``orchestrator`` (LIVE_ORCHESTRATOR); never raises (see
        :func:`app.catalog.product.load_product`)."""
        return load_product(self.slug, self.manifest_text, self.compose_text,
                            problems=self.problems, unreadable=self.unreadable, orchestrator=orchestrator)


def read_products(view: RepositoryView, commit: str | None, only: list[str] | None = None) -> list[SourceProduct]:
    """Every product folder of ``view`` (or the folders named in ``only``), read with the rules of ``files.py``.

    Never raises for a product's content; :class:`CatalogSourceError` when
    ``products/`` itself cannot be listed, and whatever the view raises for
    the source being unreachable.
    """
    products = []
    for name, folder, problem in product_folders(view, only):
        slug = printable_name(name)
        if folder is None:
            message = f"product {slug}: {PRODUCTS}/{slug} {problem}"
            products.append(SourceProduct(slug, "", "", commit, problems=(message,), unreadable=(MANIFEST, COMPOSE)))
            continue
        texts, blobs, problems, unreadable, missing = {}, {}, [], [], []
        for filename in (MANIFEST, COMPOSE):
            result = read_file(view, f"{folder}/{filename}")
            texts[filename], blobs[filename] = result.text, result.blob_id
            if result.problem is not None:
                unreadable.append(filename)
                if result.missing:
                    missing.append(filename)
                separator = " " if result.problem.startswith("is ") else ": "
                problems.append(f"product {slug}: {filename}{separator}{result.problem}")
        products.append(SourceProduct(slug, texts[MANIFEST], texts[COMPOSE], commit, tuple(missing),
                                      blobs[MANIFEST], blobs[COMPOSE], tuple(problems), tuple(unreadable)))
    return products


class CatalogSource(Protocol):
    def describe(self) -> str: ...

    def read(self) -> list[SourceProduct]: ...


class LocalFolderSource:
    """Products from ``<root>/products/`` on this machine (a plain folder or a git checkout)."""

    MANIFEST = MANIFEST
    COMPOSE = COMPOSE

    def __init__(self, root: Path):
        self.root = Path(root)

    def describe(self) -> str:
        return f"folder {self.root}"

    def read(self) -> list[SourceProduct]:
        """Every product folder; :class:`CatalogSourceError` when ``products/`` cannot be listed."""
        return read_products(LocalRepositoryView(self.root / PRODUCTS), self._git_commit())

    @staticmethod
    def read_folder(folder: Path) -> SourceProduct | None:
        """One product folder anywhere (``products validate path/to/x``), with the catalog's rules.

        The folder's parent plays the part of ``products/`` (symbolic links must
        stay inside it). ``None`` when ``folder`` is a link to a file, not a folder.
        """
        folder = Path(os.path.abspath(folder))  # normalises '..' without following links
        found = read_products(LocalRepositoryView(folder.parent), None, only=[folder.name])
        return found[0] if found else None

    def _git_commit(self) -> str | None:
        """The checkout's HEAD when the folder is a git work tree and clean for products/."""
        try:
            head = subprocess.run(["git", "-C", str(self.root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
            if head.returncode != 0:
                return None
            dirty = subprocess.run(["git", "-C", str(self.root), "status", "--porcelain", "--", "products"],
                                   capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        # A dirty tree is not what the commit says: record the content hash alone.
        return head.stdout.strip() if dirty.returncode == 0 and not dirty.stdout.strip() else None


class LocalRepositoryView:
    """A :class:`RepositoryView` of a folder on this machine; ``products/...`` paths map below ``products_dir``.

    Paths are examined with ``lstat`` (links are never followed by the
    operating system: :func:`app.catalog.files.resolve` follows them), and a
    file is opened with ``O_NOFOLLOW | O_NONBLOCK`` and read up to
    :data:`MAX_FILE_BYTES` + 1 bytes, so neither a FIFO nor a huge file can
    block or exhaust the process.
    """

    def __init__(self, products_dir: Path):
        self.products_dir = Path(products_dir)

    def _path(self, path: str) -> Path:
        parts = path.split("/", 1)
        return self.products_dir if len(parts) == 1 else self.products_dir / parts[1]

    def product_names(self) -> list[str]:
        try:
            return os.listdir(self.products_dir)
        except FileNotFoundError:
            raise CatalogSourceError(f"{self.products_dir} does not exist: the config repository needs a "
                                     f"{PRODUCTS}/ folder") from None
        except NotADirectoryError:
            raise CatalogSourceError(f"{self.products_dir} is not a folder") from None
        except OSError as exc:
            raise CatalogSourceError(f"cannot list {self.products_dir}: {_reason(exc)}") from None

    def kind(self, path: str) -> str | None:
        try:
            mode = os.lstat(self._path(path)).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise UnreadableFile(f"cannot be read: {_reason(exc)}") from None
        if stat.S_ISLNK(mode):
            return LINK
        if stat.S_ISDIR(mode):
            return DIR
        if stat.S_ISREG(mode):
            return FILE
        if stat.S_ISFIFO(mode):
            return "a FIFO"
        if stat.S_ISSOCK(mode):
            return "a socket"
        return "a device"

    def link_target(self, path: str) -> str:
        try:
            return os.readlink(self._path(path))
        except OSError as exc:
            raise UnreadableFile(f"cannot be read: {_reason(exc)}") from None

    def read(self, path: str) -> tuple[str, None]:
        try:
            fd = os.open(self._path(path), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise UnreadableFile(f"cannot be read: {_reason(exc)}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced since it was examined
                raise UnreadableFile("is not a regular file")
            chunks, size = [], 0
            while size <= MAX_FILE_BYTES:
                chunk = os.read(fd, MAX_FILE_BYTES + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except OSError as exc:
            raise UnreadableFile(f"cannot be read: {_reason(exc)}") from None
        finally:
            os.close(fd)
        return decode_product_file(b"".join(chunks)), None


def _reason(exc: OSError) -> str:
    """``Permission denied`` -> ``permission denied`` (the operating system's words, without paths)."""
    text = exc.strerror or type(exc).__name__
    return text[:1].lower() + text[1:]
