"""Where product definitions come from.

:class:`CatalogSource` is the port; :class:`LocalFolderSource` reads a local
folder or git checkout (``products/<slug>/product.yml`` + ``docker-compose.yml``).
:class:`app.catalog.gitlab_source.GitLabSource` reads the same layout from GitLab.
"""
from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceProduct:
    slug: str
    manifest_text: str
    compose_text: str
    commit: str | None = None
    missing: tuple[str, ...] = ()  # files that are absent from the folder
    manifest_blob: str | None = None  # git blob ids, when the source knows them
    compose_blob: str | None = None


class CatalogSource(Protocol):
    def describe(self) -> str: ...

    def read(self) -> list[SourceProduct]: ...


class LocalFolderSource:
    MANIFEST = "product.yml"
    COMPOSE = "docker-compose.yml"

    def __init__(self, root: Path):
        self.root = Path(root)

    def describe(self) -> str:
        return f"folder {self.root}"

    def read(self) -> list[SourceProduct]:
        commit = self._git_commit()
        products = []
        for folder in sorted(p for p in (self.root / "products").iterdir() if p.is_dir() and not p.name.startswith(".")):
            texts, missing = {}, []
            for name in (self.MANIFEST, self.COMPOSE):
                path = folder / name
                if path.is_file():
                    texts[name] = path.read_text(encoding="utf-8")
                else:
                    texts[name] = ""
                    missing.append(name)
            products.append(SourceProduct(folder.name, texts[self.MANIFEST], texts[self.COMPOSE], commit, tuple(missing)))
        return products

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
