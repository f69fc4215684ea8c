"""The archive helper image: its setting, its build script, and the check `live doctor` calls."""
from __future__ import annotations

import secrets
import subprocess

import pytest

from app.config import PROJECT_ROOT, load_settings
from app.errors import ConfigError
from app.stacks.docker_engine import DockerEngine

SCRIPT = PROJECT_ROOT / "scripts" / "build-helper-image.sh"


def test_the_setting_defaults_to_the_scripts_image_and_refuses_what_is_no_image_reference():
    assert load_settings({}).helper_image == "live/archive-helper:2"
    for ref in ("registry.example.org:5000/ops/archive-helper:2", "archive-helper",
                "live/archive-helper@sha256:" + "a" * 64):
        assert load_settings({"LIVE_HELPER_IMAGE": ref}).helper_image == ref
    for bad in ("Live/Helper:1", "live/archive helper:1", "live/archive-helper:", "-x"):
        with pytest.raises(ConfigError, match="^LIVE_HELPER_IMAGE must be a Docker image reference"):
            load_settings({"LIVE_HELPER_IMAGE": bad})


@pytest.mark.usefixtures("docker_engine")
def test_the_script_builds_a_labelled_helper_that_can_read_and_restore_archives(docker_engine):
    image = f"live-test/archive-helper:{secrets.token_hex(4)}"
    engine = DockerEngine()
    try:
        assert engine.image_present(image) is False
        built = subprocess.run(["bash", str(SCRIPT), image], capture_output=True, text=True, timeout=120)
        assert built.returncode == 0, built.stderr
        assert built.stdout.strip() == f"built {image}"
        assert engine.image_present(image) is True
        labels = docker_engine.images.get(image).labels
        assert labels["org.opencontainers.image.title"] == "GeoCat Live archive helper"
        assert labels["live.image"] == "archive-helper"
        # The restore command of docs/OPERATIONS.md needs tar in it.
        output = docker_engine.containers.run(image, ["tar", "--help"], remove=True, stderr=True)
        assert b"tar" in output
        # A restore empties the volume and sets its root's owner, mode and time (DockerEngine.import_volume).
        for applet in ("rm", "find", "chown", "chmod", "touch"):
            output = docker_engine.containers.run(image, [applet, "--help"], remove=True, stderr=True)
            assert f"Usage: {applet}".encode() in output, applet
        again = subprocess.run(["bash", str(SCRIPT), image], capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and again.stdout.strip() == f"{image} already present"
    finally:
        subprocess.run(["docker", "image", "rm", "-f", image], capture_output=True, check=False)
    assert engine.image_present(image) is False
