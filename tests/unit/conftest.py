"""Unit-tier fixtures: the composed application on the in-memory engine and a SQLite file; no Docker, no server.

:func:`fake_live` is :func:`app.bootstrap.bootstrap` with a :class:`tests.fakes.FakeEngine` injected. Its
database is a copy of one made once per session (migrated, catalog synced), so a test starts in
milliseconds; its catalog is a private copy of ``busybox-demo`` that the test may change and sync. Its
files are in memory (``/dev/shm``) where the machine has it: the worker commits at every step and writes
backups with fsync, which a busy disk makes slower than the whole test.
"""
from __future__ import annotations

import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from app.config import PROJECT_ROOT, Settings, load_settings
from tests.conftest import HELPER_IMAGE, TEST_IMAGE
from tests.fakes import FakeEngine

PRODUCT = "busybox-demo"


def _config_repo(folder: Path) -> Path:
    repo = folder / "config-repo"
    shutil.copytree(PROJECT_ROOT / "examples" / "config-repo" / "products" / PRODUCT, repo / "products" / PRODUCT)
    return repo


def _settings(folder: Path, repo: Path) -> Settings:
    return load_settings({
        "LIVE_DATABASE_URL": f"sqlite:///{folder / 'live.db'}",
        "LIVE_CONFIG_REPO": str(repo),
        "LIVE_BASE_DOMAIN": "test.local",
        "LIVE_BACKUP_DIR": str(folder / "backups"),
        "LIVE_HEALTH_TIMEOUT_SECONDS": "1",
        "LIVE_RETRY_BASE_SECONDS": "0.01",
        "LIVE_WORKER_POLL_SECONDS": "0.05",
        "LIVE_OPERATION_MAX_ATTEMPTS": "3",
        "LIVE_DEPLOYMENT": "t" + secrets.token_hex(4),
    })


MEMORY = Path("/dev/shm")


def _folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="live-unit-", dir=MEMORY if MEMORY.is_dir() else None))


@pytest.fixture(scope="session")
def catalog_database() -> Iterator[Path]:
    """A migrated SQLite file whose catalog holds busybox-demo (made once; :func:`fake_live` copies it)."""
    from app.bootstrap import bootstrap
    from app.db import upgrade

    folder = _folder()
    live = bootstrap(_settings(folder, _config_repo(folder)), engine=FakeEngine())
    upgrade(live.db)
    live.catalog.sync()
    live.db.close()
    yield folder / "live.db"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def fake_engine() -> FakeEngine:
    """The in-memory engine with the product's image and the archive helper."""
    return FakeEngine([TEST_IMAGE, HELPER_IMAGE])


@pytest.fixture
def fake_live(catalog_database, fake_engine):
    """The composed application (catalog, orders, runner, deployer) on ``fake_engine`` and a fresh SQLite file."""
    from app.bootstrap import bootstrap

    folder = _folder()
    repo = _config_repo(folder)
    shutil.copy(catalog_database, folder / "live.db")
    live = bootstrap(_settings(folder, repo), engine=fake_engine)
    yield live
    if not live.db.is_closed():
        live.db.close()
    shutil.rmtree(folder, ignore_errors=True)
