"""Images for the deployment tests, built here from a local Debian base: no image is pulled.

The first build on a machine takes a few minutes (debootstrap, the wheels, the image, PostgreSQL from
Debian's package); afterwards every step is cached (the base image by its recipe label, the rest by the
engine's build cache) and the fixtures take seconds. Tests using them are marked ``image_build``.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from app.config import PROJECT_ROOT
from tests.conftest import unavailable

BRIDGE_IMAGE = "live-bridge:test"
POSTGRES_IMAGE = "live-test/postgres:15"
DOCKER_SOCKET = "/var/run/docker.sock"


def pytest_configure(config):
    config.addinivalue_line("markers", "image_build: builds Docker images from a local Debian base (minutes on a "
                                       "machine's first run, seconds once cached)")


def run_script(*command: str, timeout: float) -> float:
    """Runs a build script from the checkout; its duration in seconds. A failure shows the script's output."""
    started = time.monotonic()
    result = subprocess.run(["bash", *command], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return time.monotonic() - started


@pytest.fixture(scope="session")
def image_tools(docker_engine):
    """What building the images needs: root (debootstrap) and debootstrap, unless the base is there already."""
    if os.environ.get("DOCKER_HOST", "unix://").split("://")[0] not in ("unix", ""):
        unavailable("the deployment tests mount the local Docker socket; DOCKER_HOST names a remote engine")
    if not os.path.exists(DOCKER_SOCKET):
        unavailable(f"no Docker socket at {DOCKER_SOCKET}")
    try:
        docker_engine.images.get("live-base:bookworm")
    except Exception:  # noqa: BLE001 (missing, or any engine answer: the build below tells)
        if not shutil.which("debootstrap") or os.geteuid() != 0:
            unavailable("building live-base:bookworm needs root and debootstrap (apt-get install debootstrap)")
    return docker_engine


@pytest.fixture(scope="session")
def bridge_image(image_tools):
    """The bridge image from the working tree, on the local base, its wheels installed offline."""
    seconds = run_script("scripts/build-image.sh", "--local-base", "--wheels", BRIDGE_IMAGE, timeout=900)
    print(f"\n{BRIDGE_IMAGE}: base, wheels and image in {seconds:.0f} s")
    return BRIDGE_IMAGE


@pytest.fixture(scope="session")
def postgres_image(image_tools):
    seconds = run_script("tests/images/build-postgres-image.sh", POSTGRES_IMAGE, timeout=900)
    print(f"\n{POSTGRES_IMAGE}: {seconds:.0f} s")
    return POSTGRES_IMAGE


def docker_socket_gid() -> int:
    return os.stat(DOCKER_SOCKET).st_gid
