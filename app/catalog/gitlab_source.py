"""Products read from the config repository on GitLab, with python-gitlab.

A read resolves the ref to a commit (one request). When the commit is the
one read last time, nothing else is fetched. Otherwise the ``products/`` tree
is listed once (paginated) and only files whose blob id is new are
downloaded. Every python-gitlab or network error becomes a
:class:`CatalogSourceError`; the catalog then keeps its last good state.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Iterator

import gitlab
import gitlab.exceptions
import requests.exceptions

from app.catalog.source import LocalFolderSource, SourceProduct
from app.errors import LiveError

log = logging.getLogger(__name__)

MANIFEST, COMPOSE = LocalFolderSource.MANIFEST, LocalFolderSource.COMPOSE
MAX_RETRIES = 2  # python-gitlab's default (10, with backoff) would hold a sync for minutes


class CatalogSourceError(LiveError):
    """The catalog source cannot be read now; the last good catalog stays in use."""

    transient = True


@contextlib.contextmanager
def _translate(what: str, url: str) -> Iterator[None]:
    try:
        yield
    except gitlab.exceptions.GitlabAuthenticationError as exc:
        raise CatalogSourceError(f"GitLab at {url} rejected the token while trying to {what} ({exc.response_code})") from exc
    except gitlab.exceptions.GitlabError as exc:
        code = getattr(exc, "response_code", None)
        if code == 404:
            raise CatalogSourceError(f"GitLab at {url}: not found while trying to {what} (check project and ref)") from exc
        raise CatalogSourceError(f"GitLab at {url} failed to {what}: {code or ''} {exc.error_message}".replace("  ", " ")) from exc
    except (requests.exceptions.RequestException, OSError) as exc:
        raise CatalogSourceError(f"GitLab at {url} is unreachable while trying to {what}: {type(exc).__name__}") from exc


class GitLabSource:
    def __init__(self, url: str, token: str, project: str, ref: str, timeout: float = 10.0):
        self.url, self.project_id, self.ref = url.rstrip("/"), project, ref
        self._gl = gitlab.Gitlab(self.url, private_token=token or None, timeout=timeout, retry_transient_errors=True)
        self._project = self._gl.projects.get(project, lazy=True)  # lazy: no request until used
        self._blobs: dict[str, str] = {}
        self._last: tuple[str, list[SourceProduct]] | None = None

    def describe(self) -> str:
        return f"GitLab {self.url} project {self.project_id} at {self.ref}"

    def remember(self, blob_id: str, text: str) -> None:
        """Seed the blob cache (from revisions already in the database)."""
        self._blobs.setdefault(blob_id, text)

    def read(self) -> list[SourceProduct]:
        with _translate(f"resolve {self.ref}", self.url):
            commit = self._project.commits.get(self.ref, max_retries=MAX_RETRIES).id
        if self._last is not None and self._last[0] == commit:
            return self._last[1]
        with _translate(f"list products/ at {commit[:12]}", self.url):
            entries = self._project.repository_tree(path="products", ref=commit, recursive=True, get_all=True,
                                                    per_page=100, max_retries=MAX_RETRIES)
        folders: dict[str, dict[str, str]] = {}
        for entry in entries:
            parts = entry["path"].split("/")
            if len(parts) == 2 and entry["type"] == "tree":
                folders.setdefault(parts[1], {})
            elif len(parts) == 3 and entry["type"] == "blob" and parts[2] in (MANIFEST, COMPOSE):
                folders.setdefault(parts[1], {})[parts[2]] = entry["id"]
        products = []
        for slug, files in sorted(folders.items()):
            if slug.startswith("."):
                continue
            products.append(SourceProduct(
                slug=slug,
                manifest_text=self._blob(files.get(MANIFEST)),
                compose_text=self._blob(files.get(COMPOSE)),
                commit=commit,
                missing=tuple(name for name in (MANIFEST, COMPOSE) if name not in files),
                manifest_blob=files.get(MANIFEST),
                compose_blob=files.get(COMPOSE),
            ))
        self._last = (commit, products)
        return products

    def _blob(self, blob_id: str | None) -> str:
        if blob_id is None:
            return ""
        if blob_id not in self._blobs:
            with _translate(f"fetch blob {blob_id[:12]}", self.url):
                raw = self._project.repository_raw_blob(blob_id, max_retries=MAX_RETRIES)
            # Not UTF-8: the YAML parser then reports the product invalid, naming the file.
            self._blobs[blob_id] = raw.decode("utf-8", errors="replace")
        return self._blobs[blob_id]
