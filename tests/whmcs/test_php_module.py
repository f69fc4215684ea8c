"""The WHMCS module (PHP, whmcs_module/): `php -l` on every file, and its PHPUnit suite
against the real bridge (gunicorn + worker + Docker) started here.

Needs Debian's php-cli, php-curl, phpunit and smarty4: skipped with a reason when
they are missing, a failure in CI (CI=true).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from app.config import PROJECT_ROOT
from tests.conftest import unavailable, write_product
from tests.support.live_service import Service

MODULE = PROJECT_ROOT / "whmcs_module"
PACKAGES = "apt-get install php-cli php-curl phpunit smarty4"
# A product whose deployment fails in the worker, after the module's call returned.
FAILING_MANIFEST = "name: Ghost\nplans: {basic: {}}\n"
FAILING_COMPOSE = "services:\n  app:\n    image: live-test/no-such-image:1\n"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed (Debian: {PACKAGES})")
    return path


def test_every_php_file_is_valid_php():
    php = tool("php")
    files = sorted(MODULE.rglob("*.php"))
    assert len(files) >= 10, files
    errors = []
    for path in files:
        result = subprocess.run([php, "-l", str(path)], capture_output=True, text=True, timeout=60)
        if result.returncode != 0 or "No syntax errors detected" not in result.stdout:
            errors.append(f"{path.relative_to(PROJECT_ROOT)}: {(result.stdout + result.stderr).strip()}")
    assert errors == []


@pytest.mark.timeout(900)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.usefixtures("docker_engine", "stack_cleanup")
def test_phpunit_suite_against_the_real_bridge(settings, config_repo, tmp_path):
    php = tool("php")
    phpunit = tool("phpunit")
    modules = subprocess.run([php, "-m"], capture_output=True, text=True, timeout=60).stdout.split()
    if "curl" not in modules:
        unavailable(f"PHP has no curl extension (Debian: {PACKAGES})")

    write_product(config_repo, "ghost", FAILING_MANIFEST, FAILING_COMPOSE)
    service = Service(settings, tmp_path)
    # The failing product should fail fast: one retry, short back-off.
    service.env.update(LIVE_OPERATION_MAX_ATTEMPTS="2", LIVE_RETRY_BASE_SECONDS="0.2")
    try:
        service.start(worker=True)
        token = service.flask("apikey", "create", "whmcs-php", "--scope", "whmcs").strip().splitlines()[-1]
        service.flask("products", "sync")
        env = dict(os.environ, GEOCATLIVE_BRIDGE_URL=service.url, GEOCATLIVE_TOKEN=token,
                   GEOCATLIVE_FAILING_PRODUCT="ghost", GEOCATLIVE_SERVICE_ID_BASE="9000")
        result = subprocess.run([phpunit, "-c", str(MODULE / "phpunit.xml.dist")], cwd=PROJECT_ROOT, env=env,
                                capture_output=True, text=True, timeout=840)
    finally:
        service.stop()

    output = (result.stdout + result.stderr)[-8000:]
    print(output)
    assert result.returncode == 0, output
    # "OK (N tests, M assertions)" only when nothing was skipped, incomplete or risky.
    summary = re.search(r"^OK \((\d+) tests?, (\d+) assertions?\)$", result.stdout, re.MULTILINE)
    assert summary, "PHPUnit skipped tests or reported problems:\n" + output
    assert int(summary.group(1)) >= 80, output
