"""The WHMCS module (PHP, whmcs_module/): `php -l` on every file, and its PHPUnit suite
against the real bridge (gunicorn + worker + Docker) started here.

Needs Debian's php-cli, php-curl, phpunit and smarty4: skipped with a reason when
they are missing, a failure in CI (CI=true).
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import time

import pytest

from app.config import PROJECT_ROOT
from tests.conftest import unavailable, write_product
from tests.support.accounts_seed import seed_accounts
from tests.support.live_service import BIN, Service

MODULE = PROJECT_ROOT / "whmcs_module"
PACKAGES = "apt-get install php-cli php-curl phpunit smarty4"
# A product whose deployment fails in the worker, after the module's call returned.
FAILING_MANIFEST = "name: Ghost\nplans: {basic: {}}\n"
FAILING_COMPOSE = "services:\n  app:\n    image: live-test/no-such-image:1\n"
# Issue 16 (ChangePassword): products whose service "app" holds the customer's password (APP_PASSWORD), applied by a
# recreate or by a command; it writes the SHA-256 of the value it has to its log (ChangePasswordLiveTest.php reads it
# back through the logs route), and the value itself (which the bridge masks).
KEYED_MANIFEST = """name: Keyed
variables:
  APP_PASSWORD: {{generate: password, length: 20}}
plans: {{basic: {{}}}}
credential:
  variable: APP_PASSWORD
  apply:
    {apply}
"""
KEYED_COMPOSE = """services:
  app:
    image: live-test/busybox:latest
    init: true
    environment: {APP_PASSWORD: "${APP_PASSWORD}"}
    command: ["sh", "-c", "echo \\"started with $$APP_PASSWORD\\"; printf %s \\"$$APP_PASSWORD\\" | sha256sum; exec sleep 2147483647"]
    stop_grace_period: 1s
"""
KEYED_APPLY = {"keyed": "recreate: [app]",
               "keyedcmd": "command: {service: app, run: 'printf %s \"$APP_PASSWORD\" | sha256sum > /proc/1/fd/1'}"}


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
    for slug, apply in KEYED_APPLY.items():
        write_product(config_repo, slug, KEYED_MANIFEST.format(apply=apply), KEYED_COMPOSE)
    passwords = [f"Pw1-{secrets.token_hex(8)}!", f"Pw2-{secrets.token_hex(8)}#"]
    service = Service(settings, tmp_path)
    # The failing product should fail fast: one retry, short back-off.
    service.env.update(LIVE_OPERATION_MAX_ATTEMPTS="2", LIVE_RETRY_BASE_SECONDS="0.2",
                       # UsageUpdate reads what the worker's sampler measured: measure often.
                       LIVE_USAGE_SAMPLE_SECONDS="1", LIVE_USAGE_DISK_SECONDS="10")
    try:
        service.start(worker=True)
        token = service.flask("apikey", "create", "whmcs-php", "--scope", "whmcs").strip().splitlines()[-1]
        service.flask("products", "sync")
        env = dict(os.environ, GEOCATLIVE_BRIDGE_URL=service.url, GEOCATLIVE_TOKEN=token,
                   GEOCATLIVE_FAILING_PRODUCT="ghost", GEOCATLIVE_SERVICE_ID_BASE="9000",
                   GEOCATLIVE_PASSWORD_PRODUCTS=",".join(KEYED_APPLY), GEOCATLIVE_PASSWORDS=",".join(passwords))
        # Issue 16: 250 orders for ListAccounts, written straight into the database (tests/support/accounts_seed.py).
        env.update(seed_accounts(settings, 20001, 250))
        # The no-worker group needs a bridge without a worker: the next test runs it.
        result = subprocess.run([phpunit, "-c", str(MODULE / "phpunit.xml.dist"), "--exclude-group", "no-worker"],
                                cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=840)
        said = _everything_the_bridge_said(service, service_ids=(10601, 10602, 10604))
    finally:
        service.stop()
    # The customer's passwords (ChangePasswordLiveTest.php) are in no event, operation or answer, nor in the
    # bridge's own logs (gunicorn's and the worker's).
    said += "".join(path.read_text(errors="replace") for path in sorted(tmp_path.glob("*.log")))
    leaked = [password for password in passwords if password in said]
    assert leaked == [], "a customer password reached the bridge's events, operations or logs"

    output = (result.stdout + result.stderr)[-8000:]
    print(output)
    assert result.returncode == 0, output
    # "OK (N tests, M assertions)" only when nothing was skipped, incomplete or risky.
    summary = re.search(r"^OK \((\d+) tests?, (\d+) assertions?\)$", result.stdout, re.MULTILINE)
    assert summary, "PHPUnit skipped tests or reported problems:\n" + output
    assert int(summary.group(1)) >= 80, output


def _everything_the_bridge_said(service: Service, service_ids: tuple[int, ...]) -> str:
    """The orders of ``service_ids``, their operations and their events, as the developer API answers them (an admin
    key: secrets and private details included), as one text."""
    parts = []
    for service_id in service_ids:
        for order in service.get(f"/api/v1/orders?service_id={service_id}").json()["items"]:
            parts.append(service.get(f"/api/v1/orders/{order['id']}").text)
            parts.append(service.get(f"/api/v1/orders/{order['id']}/operations").text)
            parts.append(service.get(f"/api/v1/orders/{order['id']}/events").text)
    assert len(parts) == 3 * len(service_ids), "the ChangePassword services were not created"
    return "".join(parts)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.usefixtures("docker_engine", "stack_cleanup")
def test_without_a_worker_the_module_reports_a_retryable_error_and_nothing_is_lost(settings, tmp_path):
    """Issue 10: gunicorn answers, no worker runs. The module must not report success (WHMCS would mark the
    service Active and send the welcome email); once a worker runs, the recorded create is carried out."""
    php = tool("php")
    phpunit = tool("phpunit")
    if "curl" not in subprocess.run([php, "-m"], capture_output=True, text=True, timeout=60).stdout.split():
        unavailable(f"PHP has no curl extension (Debian: {PACKAGES})")
    service = Service(settings, tmp_path)
    try:
        service.start(worker=False)
        token = service.flask("apikey", "create", "whmcs-php", "--scope", "whmcs").strip().splitlines()[-1]
        env = dict(os.environ, GEOCATLIVE_IDLE_BRIDGE_URL=service.url, GEOCATLIVE_IDLE_TOKEN=token,
                   GEOCATLIVE_SERVICE_ID_BASE="9500")
        result = subprocess.run([phpunit, "-c", str(MODULE / "phpunit.xml.dist"), "--group", "no-worker"],
                                cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=240)
        output = (result.stdout + result.stderr)[-8000:]
        assert result.returncode == 0, output
        assert re.search(r"^OK \(1 test, \d+ assertions\)$", result.stdout, re.MULTILINE), output

        # Nothing was lost: a worker started now runs the create the module's call recorded.
        service.spawn("worker", str(BIN / "flask"), "--app", "wsgi", "live", "worker")
        service.wait_for_worker()
        deadline = time.monotonic() + 120
        while (order := service.get("/api/v1/orders?service_id=9501").json()["items"][0])["status"] == "pending":
            assert time.monotonic() < deadline, order
            time.sleep(0.5)
        assert order["status"] == "active", order
        operations = service.get(f"/api/v1/orders/{order['id']}/operations").json()["items"]
        assert [(op["kind"], op["state"]) for op in operations] == [("create", "succeeded")]
    finally:
        service.stop()
