"""Shared fixtures: the real Docker engine, real SQLite and PostgreSQL databases.

Locally, tests that need an engine or PostgreSQL are skipped with a reason
when those are missing; in CI (CI=true) a missing one is a failure.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from app.config import PROJECT_ROOT, Settings, load_settings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TEST_IMAGE = "live-test/busybox:latest"
HELPER_IMAGE = Settings.helper_image  # LIVE_HELPER_IMAGE's default, which the tests' settings keep
POSTGRES_ADMIN_URL = os.environ.get("LIVE_TEST_POSTGRES_URL", "postgresql://live:live@127.0.0.1:5432/postgres")


def xdist_scope(nodeid: str) -> str:
    """Which tests must run one after the other in one process under ``make test`` (two pytest-xdist workers):
    tests with the same answer do; any other test answers its own ``nodeid`` and goes to whichever worker is free.

    - ``swarm``: every test that runs orders on the local swarm or adds a second node to it (the test_swarm_*
      modules' ``swarm_worker``, tests/support/swarm_node.py), i.e. its module is test_swarm_* or "swarm" is in its
      name or parameters. While a module's second node is up, swarm may place any swarm order on it, and those
      modules assume a one-node swarm outside them.
    - ``deploy``: tests/deploy builds the bridge's image and runs compose and systemd on the host.

    Everything else is isolated by construction (its own ``live.deployment`` namespace, database and ports).
    tests/reliability restarts the engine and runs on its own, after (the Makefile).
    """
    path, _, name = nodeid.partition("::")
    if path.startswith("tests/deploy/"):
        return "deploy"
    if path.rsplit("/", 1)[-1].startswith("test_swarm") or "swarm" in name:
        return "swarm"
    return nodeid


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's ``loadscope`` distribution over :func:`xdist_scope`'s scopes. (Its ``loadgroup`` marks do not
    reach the scheduler with pytest 9, which keeps node ids in ``_id`` where xdist 3.8 writes ``_nodeid``.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ScopeScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_scope(nodeid)

    return ScopeScheduling(config, log)


def _utf8_safe(text: str) -> str:
    """``text`` with lone surrogates written as ``\\udcXX`` (UTF-8 encodable)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Reports carry only UTF-8 encodable text: pytest-xdist sends them between processes as UTF-8, and a test about
    lone surrogates (tests/integration/test_catalog_bad_files.py) logs one, which killed the worker that ran it."""
    report = yield
    report.sections = [(name, _utf8_safe(text)) for name, text in report.sections]
    if report.longrepr is not None and not isinstance(report.longrepr, tuple):
        text = str(report.longrepr)
        if _utf8_safe(text) != text:
            report.longrepr = _utf8_safe(text)
    return report


def unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: required, not skipped)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_engine():
    import docker

    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:  # any failure to reach the engine means "no engine" here
        unavailable(f"no Docker engine reachable: {exc}")
    images = ((TEST_IMAGE, PROJECT_ROOT / "tests" / "images" / "build-busybox-image.sh"),
              (HELPER_IMAGE, PROJECT_ROOT / "scripts" / "build-helper-image.sh"))
    for image, script in images:
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            result = subprocess.run(["bash", str(script), image], capture_output=True, text=True)
            if result.returncode != 0:
                unavailable(f"cannot build {image}: {result.stderr.strip()}")
    yield client
    client.close()


@pytest.fixture(scope="module")
def swarm_worker(docker_engine):
    """A second engine joined to the local swarm as a worker: tests/support/swarm_node.py SwarmNode.

    Module-scoped (up about 1 s, down about 2 s): outside the modules that use it the swarm has one node, so
    orders of other tests are never placed on it.

    Needs root and DOCKER_HOST a swarm manager on this machine; otherwise unavailable (CI: a failure).
    """
    from tests.support.swarm_node import SwarmNodeUnavailable, second_node

    with contextlib.ExitStack() as stack:
        try:
            node = stack.enter_context(second_node(docker_engine))
        except SwarmNodeUnavailable as exc:
            unavailable(f"no second swarm node: {exc}")
        yield node


def _postgres_available() -> str | None:
    import psycopg2

    try:
        psycopg2.connect(POSTGRES_ADMIN_URL, connect_timeout=3).close()
    except psycopg2.Error as exc:
        return str(exc).strip()
    return None


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'live.db'}"
        return
    problem = _postgres_available()
    if problem:
        unavailable(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {problem}")
    import psycopg2

    name = f"live_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(POSTGRES_ADMIN_URL)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    from app.db import database

    if database.obj is not None and not database.obj.is_closed():
        database.obj.close()
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


@pytest.fixture
def config_repo(tmp_path):
    """A private copy of the example config repository that a test may change."""
    target = tmp_path / "config-repo"
    shutil.copytree(PROJECT_ROOT / "examples" / "config-repo", target)
    return target


@pytest.fixture
def orchestrator():
    """LIVE_ORCHESTRATOR of the ``settings`` fixture: one engine. A module that runs in both modes overrides it
    with ``@pytest.fixture(params=ORCHESTRATORS)`` (and uses :func:`swarm_manager` for swarm)."""
    return "docker"


#: The values of LIVE_ORCHESTRATOR a test module runs in both modes with.
ORCHESTRATORS = ["docker", "swarm"]

#: A test run in both modes: on one engine with each database, and on a swarm with PostgreSQL (what production
#: uses; the database does not change what the swarm does, and each swarm case costs tens of seconds).
BOTH_MODES = pytest.mark.parametrize("database_url,orchestrator", [("sqlite", "docker"), ("postgresql", "docker"),
                                                                   ("postgresql", "swarm")],
                                     indirect=["database_url"])


def require_swarm_manager(client) -> None:
    """Fail (CI) or skip unless the engine is a swarm manager (.ci/run runs `docker swarm init`)."""
    swarm = client.info().get("Swarm") or {}
    if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
        unavailable("the Docker engine is not a swarm manager (`docker swarm init`; .ci/run does it)")


@pytest.fixture
def settings(database_url, config_repo, tmp_path, orchestrator, request):
    if orchestrator == "swarm":
        require_swarm_manager(request.getfixturevalue("docker_engine"))
    return load_settings({
        "LIVE_DATABASE_URL": database_url,
        "LIVE_CONFIG_REPO": str(config_repo),
        "LIVE_BASE_DOMAIN": "test.local",
        "LIVE_BACKUP_DIR": str(tmp_path / "backups"),
        "LIVE_HEALTH_TIMEOUT_SECONDS": "30",
        "LIVE_RETRY_BASE_SECONDS": "0.2",
        "LIVE_WORKER_POLL_SECONDS": "0.1",
        "LIVE_OPERATION_MAX_ATTEMPTS": "3",
        # Its own namespace, so the test never touches objects of a real installation.
        "LIVE_DEPLOYMENT": "t" + secrets.token_hex(4),
        "LIVE_ORCHESTRATOR": orchestrator,
    })


@pytest.fixture
def live(settings):
    """The composed application (catalog, orders, deployer) on a migrated database."""
    from app.bootstrap import bootstrap
    from app.db import upgrade

    live = bootstrap(settings)
    upgrade(live.db)
    live.catalog.sync()
    yield live
    if not live.db.is_closed():
        live.db.close()


def remove_deployment_objects(client, deployment: str) -> None:
    """Removes every container, network and volume labelled ``live.deployment=<deployment>``."""
    import docker.errors

    selector = {"label": f"live.deployment={deployment}"}
    if (client.info().get("Swarm") or {}).get("ControlAvailable"):
        for service in client.services.list(filters=selector):
            service.remove()
    # A swarm removes a removed service's task containers soon after; until then networks and volumes are in use.
    deadline = time.monotonic() + 60
    while True:
        try:
            for container in client.containers.list(all=True, filters=selector):
                container.remove(force=True)
            for network in client.networks.list(filters=selector):
                network.remove()
            for volume in client.volumes.list(filters=selector):
                volume.remove(force=True)
            return
        except docker.errors.NotFound:
            if time.monotonic() > deadline:
                raise
            continue  # gone meanwhile (a task container swarm removed itself): look again
        except docker.errors.APIError as exc:
            # "in use"/"active endpoints": a task container still holds the network or volume; "already in progress":
            # swarm is removing a removed service's task container itself (a 409 to our own remove).
            if time.monotonic() > deadline or not any(
                    word in str(exc) for word in ("in use", "active endpoints", "already in progress")):
                raise
            time.sleep(0.5)


@pytest.fixture
def stack_cleanup(docker_engine, settings):
    """Removes every object of the test's deployment namespace, whatever the test left."""
    yield
    remove_deployment_objects(docker_engine, settings.deployment)


@pytest.fixture
def deployed_objects(docker_engine, settings):
    """A function returning the names of the deployment's containers, networks and volumes."""
    selector = {"label": f"live.deployment={settings.deployment}"}

    def objects():
        return {
            "containers": sorted(c.name for c in docker_engine.containers.list(all=True, filters=selector)),
            "networks": sorted(n.name for n in docker_engine.networks.list(filters=selector)),
            "volumes": sorted(v.name for v in docker_engine.volumes.list(filters=selector)),
        }

    return objects


def customer(email: str = "ops@example.org", client_id: int | None = None):
    from app.orders.service import CustomerInfo

    return CustomerInfo(email=email, whmcs_client_id=client_id, first_name="Ada", last_name="Lovelace")


@pytest.fixture
def make_customer():
    return customer


def write_product(config_repo: Path, slug: str, manifest: str, compose: str) -> Path:
    folder = config_repo / "products" / slug
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "product.yml").write_text(manifest)
    (folder / "docker-compose.yml").write_text(compose)
    return folder
