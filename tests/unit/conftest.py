"""Unit-tier fixtures: the composed application on the in-memory engine and a SQLite file; no Docker, no server.

:func:`fake_live` is :func:`app.bootstrap.bootstrap` with a :class:`tests.fakes.FakeEngine` injected. Its
database is a copy of one made once per session (migrated, catalog synced), so a test starts in
milliseconds; its catalog is a private copy of ``busybox-demo`` that the test may change and sync.
"""
from __future__ import annotations

import secrets
import shutil
from pathlib import Path

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


@pytest.fixture(scope="session")
def catalog_database(tmp_path_factory) -> Path:
    """A migrated SQLite file whose catalog holds busybox-demo (made once; :func:`fake_live` copies it)."""
    from app.bootstrap import bootstrap
    from app.db import upgrade

    folder = tmp_path_factory.mktemp("catalog")
    live = bootstrap(_settings(folder, _config_repo(folder)), engine=FakeEngine())
    upgrade(live.db)
    live.catalog.sync()
    live.db.close()
    return folder / "live.db"


@pytest.fixture
def fake_engine() -> FakeEngine:
    """The in-memory engine with the product's image and the archive helper."""
    return FakeEngine([TEST_IMAGE, HELPER_IMAGE])


@pytest.fixture
def fake_live(tmp_path, catalog_database, fake_engine):
    """The composed application (catalog, orders, runner, deployer) on ``fake_engine`` and a fresh SQLite file."""
    from app.bootstrap import bootstrap

    repo = _config_repo(tmp_path)
    shutil.copy(catalog_database, tmp_path / "live.db")
    live = bootstrap(_settings(tmp_path, repo), engine=fake_engine)
    yield live
    if not live.db.is_closed():
        live.db.close()
