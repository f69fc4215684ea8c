"""Products read from the config repository on GitLab, with python-gitlab.

A read resolves the ref to a commit (one request). When the commit is the
one read last time, nothing else is fetched. Otherwise the ``products/`` tree
is listed once (paginated) and only files whose blob id is new are
downloaded. Every python-gitlab or network error becomes a
:class:`CatalogSourceError`; the catalog then keeps its last good state.

The content follows the same rules as a local folder (``app/catalog/files.py``,
through :func:`app.catalog.source.read_products`): blobs are downloaded as a
stream and at most :data:`MAX_FILE_BYTES` + 1 bytes are kept, decoding is the
shared one, and a symbolic link (a tree entry with mode ``120000`` whose blob
is the target path) is resolved against the ``products/`` listing already
fetched, so it is followed only inside ``products/``.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
from typing import Any, Iterator

import gitlab
import gitlab.exceptions
import requests.exceptions

from app.catalog.files import DIR, FILE, LINK, MAX_FILE_BYTES, MAX_LINK_BYTES, PRODUCTS, SUBMODULE, decode_product_file
from app.catalog.source import LocalFolderSource, SourceProduct, read_products
from app.errors import CatalogSourceError, UnreadableFile

log = logging.getLogger(__name__)

MANIFEST, COMPOSE = LocalFolderSource.MANIFEST, LocalFolderSource.COMPOSE
MAX_RETRIES = 2  # python-gitlab's default (10, with backoff) would hold a sync for minutes
CHUNK_BYTES = 64 * 1024
SYMLINK_MODE = "120000"


@contextlib.contextmanager
def _translate(what: str, url: str) -> Iterator[None]:
    """python-gitlab and network errors as :class:`CatalogSourceError`, whose ``details["reason"]`` is
    ``token_rejected``, ``not_found``, ``gitlab_error`` (with ``status`` and ``gitlab_message``) or
    ``unreachable`` (with ``cause``, the exception's type name)."""
    try:
        yield
    except gitlab.exceptions.GitlabAuthenticationError as exc:
        raise CatalogSourceError(f"GitLab at {url} rejected the token while trying to {what} ({exc.response_code})",
                                 reason="token_rejected", status=exc.response_code) from exc
    except gitlab.exceptions.GitlabError as exc:
        code = getattr(exc, "response_code", None)
        if code == 404:
            raise CatalogSourceError(f"GitLab at {url}: not found while trying to {what} (check project and ref)",
                                     reason="not_found", status=code) from exc
        raise CatalogSourceError(f"GitLab at {url} failed to {what}: {code or ''} {exc.error_message}".replace("  ", " "),
                                 reason="gitlab_error", status=code, gitlab_message=str(exc.error_message)) from exc
    except (requests.exceptions.RequestException, OSError) as exc:
        raise CatalogSourceError(f"GitLab at {url} is unreachable while trying to {what}: {type(exc).__name__}",
                                 reason="unreachable", cause=type(exc).__name__) from exc


class GitLabSource:
    def __init__(self, url: str, token: str, project: str, ref: str, timeout: float = 10.0):
        self.url, self.project_id, self.ref = url.rstrip("/"), project, ref
        self._gl = gitlab.Gitlab(self.url, private_token=token or None, timeout=timeout, retry_transient_errors=True)
        self._project = self._gl.projects.get(project, lazy=True)  # lazy: no request until used
        self._blobs: dict[str, str] = {}  # blob id -> decoded text
        self._unreadable: dict[str, str] = {}  # blob id -> why it is not a product file
        self._links: dict[str, str] = {}  # blob id of a symbolic link -> its target
        self._last: tuple[str, list[SourceProduct]] | None = None

    def describe(self) -> str:
        return f"GitLab {self.url} project {self.project_id} at {self.ref}"

    def probe(self) -> str:
        """The commit id the ref points at now: one request, no retry (for health checks such as ``live doctor``).

        Raises :class:`CatalogSourceError` (see :func:`_translate` for its ``reason``).
        """
        with _translate(f"resolve {self.ref}", self.url):
            return self._project.commits.get(self.ref, max_retries=0).id

    def remember(self, blob_id: str, text: str) -> None:
        """Seed the blob cache (from revisions already in the database).

        Only a text whose UTF-8 bytes are that very blob is kept: revisions
        stored before files were decoded strictly may hold a lossy copy.
        """
        data = text.encode("utf-8", "surrogatepass")
        if hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == blob_id:
            self._blobs.setdefault(blob_id, text)

    def read(self) -> list[SourceProduct]:
        with _translate(f"resolve {self.ref}", self.url):
            commit = self._project.commits.get(self.ref, max_retries=MAX_RETRIES).id
        if self._last is not None and self._last[0] == commit:
            return self._last[1]
        with _translate(f"list {PRODUCTS}/ at {commit[:12]}", self.url):
            entries = self._project.repository_tree(path=PRODUCTS, ref=commit, recursive=True, get_all=True,
                                                    per_page=100, max_retries=MAX_RETRIES)
        products = read_products(_GitLabView(self, entries), commit)
        self._last = (commit, products)
        return products

    def file_text(self, blob_id: str) -> str:
        """The decoded text of a product file's blob; :class:`UnreadableFile` when it is not a product file."""
        if blob_id in self._blobs:
            return self._blobs[blob_id]
        if blob_id not in self._unreadable:
            data = self._download(blob_id, MAX_FILE_BYTES)
            try:
                self._blobs[blob_id] = decode_product_file(data)
            except UnreadableFile as exc:
                self._unreadable[blob_id] = str(exc)
        if blob_id in self._unreadable:
            raise UnreadableFile(self._unreadable[blob_id])
        return self._blobs[blob_id]

    def link_target(self, blob_id: str) -> str:
        """The target of a symbolic link's blob, as ``os.readlink`` gives it (bytes that are not UTF-8 escaped)."""
        if blob_id not in self._links:
            data = self._download(blob_id, MAX_LINK_BYTES)
            if len(data) > MAX_LINK_BYTES:
                raise UnreadableFile(f"is a symbolic link with a target longer than {MAX_LINK_BYTES} bytes")
            self._links[blob_id] = data.decode("utf-8", "surrogateescape")
        return self._links[blob_id]

    def _download(self, blob_id: str, limit: int) -> bytes:
        """At most ``limit`` + 1 bytes of a blob, streamed: a huge blob is never loaded whole."""
        data = bytearray()
        with _translate(f"fetch blob {blob_id[:12]}", self.url):
            chunks = self._project.repository_raw_blob(blob_id, streamed=True, iterator=True, chunk_size=CHUNK_BYTES,
                                                       max_retries=MAX_RETRIES)
            try:
                for chunk in chunks:
                    data += chunk
                    if len(data) > limit:
                        break
            finally:
                chunks.close()  # a generator: closing it ends the download
        return bytes(data[: limit + 1])


class _GitLabView:
    """The ``products/`` listing of one commit as a :class:`app.catalog.files.RepositoryView`."""

    def __init__(self, source: GitLabSource, entries: list[dict[str, Any]]):
        self.source = source
        self.entries = {entry["path"]: entry for entry in entries}

    def product_names(self) -> list[str]:
        return [path.split("/")[1] for path in self.entries if path.count("/") == 1]

    def kind(self, path: str) -> str | None:
        entry = self.entries.get(path)
        if entry is None:
            return None
        if entry.get("mode") == SYMLINK_MODE:
            return LINK
        return {"tree": DIR, "blob": FILE, "commit": SUBMODULE}.get(entry["type"], f"a git {entry['type']}")

    def link_target(self, path: str) -> str:
        return self.source.link_target(self.entries[path]["id"])

    def read(self, path: str) -> tuple[str, str]:
        blob_id = self.entries[path]["id"]
        return self.source.file_text(blob_id), blob_id
