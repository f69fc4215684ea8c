"""`live doctor` (app/doctor.py): every check's ok branch and the ways it fails, each with its fix."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil

import pytest

from app import create_app
from app.apikeys import create_key
from app.bootstrap import bootstrap
from app.config import PROJECT_ROOT
from app.db import connect_database, database
from app.doctor import FAIL, OK, SKIP, WARN, Doctor, Finding, exit_code, render_text, worst
from app.bootstrap import route_table
from app.ingress.service import IngressService
from app.models import ApiKey, CatalogSync, Customer, EngineMirror, Order, Product, utcnow
from app.orders.heartbeat import Heartbeat
from app.stacks.docker_engine import DockerEngine
from tests.conftest import TEST_IMAGE, write_product
from tests.fakes import FakeRouteTable
from tests.support.gitlab_emulator import GitLabEmulator
from tests.support.live_service import free_port

CHECKS = ["engine", "address-pools", "helper-image", "database", "worker", "mirror", "backup-store", "catalog",
          "catalog-source", "api-keys", "ingress"]


def doctor(live, engine=None, now=utcnow, **changes) -> Doctor:
    changes = {"helper_image": TEST_IMAGE, "backup_min_free_gb": 0.001, **changes}
    settings = dataclasses.replace(live.settings, **changes)
    return Doctor(settings, live.db, engine or DockerEngine(settings.docker_host, timeout=10), live.catalog, now=now)


def by_name(findings: list[Finding]) -> dict[str, Finding]:
    return {finding.check: finding for finding in findings}


def healthy(live) -> None:
    """What a running installation has: a worker beating and following the engine, WHMCS calling with its key."""
    Heartbeat("host:1", poll_seconds=1.0, concurrency=4).start()
    following(live.settings.deployment)
    key, _ = create_key("whmcs-prod", "whmcs")
    ApiKey.update(last_used_at=utcnow()).where(ApiKey.id == key.id).execute()


def following(deployment: str) -> None:
    """The engine mirror's row as a worker following the engine keeps it (app/stacks/mirror.py)."""
    EngineMirror.create(deployment=deployment, follower="host:1", connected=True, beat_at=utcnow(),
                        last_listing_at=utcnow())


class FakeApi:
    """The engine's answers the address-pools check reads."""

    def __init__(self, pools, networks=0):
        self.pools = pools
        self.count = networks

    def version(self):
        return {"Version": "27.0.1", "ApiVersion": "1.46"}

    def info(self):
        return {} if self.pools is None else {"DefaultAddressPools": self.pools}

    def networks(self):
        return [{"Name": "bridge", "Driver": "bridge"}, {"Name": "host", "Driver": "host"}] + [
            {"Name": f"live-o{i}_default", "Driver": "bridge"} for i in range(self.count)]


class FakeDockerApi(DockerEngine):
    """The Docker adapter with docker-py's client answering as ``FakeApi`` does."""

    def __init__(self, pools, networks=0):
        super().__init__(None)
        self.fake_api = FakeApi(pools, networks)

    @property
    def api(self):
        return self.fake_api

    def image_present(self, ref):
        return True


# -- the whole run ----------------------------------------------------------------------------------------
@pytest.mark.usefixtures("docker_engine")
def test_a_healthy_installation_is_all_ok_and_exits_0(live):
    healthy(live)
    findings = doctor(live).run()
    assert [f.check for f in findings] == CHECKS
    assert {f.check: f.status for f in findings} == {name: OK for name in CHECKS}, render_text(findings)
    assert exit_code(findings) == 0 and all(f.fix == "" for f in findings)
    found = by_name(findings)
    assert found["engine"].finding.startswith("Docker ") and "(API 1." in found["engine"].finding
    assert found["worker"].finding.startswith("worker host:1 alive: last heartbeat ")
    assert "4 valid product(s), 0 invalid" in found["catalog"].finding
    assert found["catalog-source"].finding.startswith("the folder LIVE_CONFIG_REPO=")
    assert found["api-keys"].finding.startswith("1 whmcs, 0 read, 0 admin key(s) active; WHMCS last called ")


def test_worst_and_exit_code():
    assert (worst([]), exit_code([])) == (OK, 0)
    assert exit_code([Finding("a", OK, ""), Finding("b", SKIP, "")]) == 0
    assert exit_code([Finding("a", OK, ""), Finding("b", WARN, "")]) == 1
    assert exit_code([Finding("a", WARN, ""), Finding("b", FAIL, ""), Finding("c", SKIP, "")]) == 2


# -- the engine ---------------------------------------------------------------------------------------------
def test_an_unreachable_engine_fails_and_skips_what_needs_it(live):
    healthy(live)
    found = by_name(doctor(live, engine=DockerEngine("tcp://127.0.0.1:9", timeout=2)).run())
    assert found["engine"].status == FAIL and "tcp://" not in found["engine"].fix
    assert "does not answer" in found["engine"].finding and "systemctl start docker" in found["engine"].fix
    assert (found["address-pools"].status, found["helper-image"].status) == (SKIP, SKIP)
    assert found["database"].status == OK, "the other checks still run"


@pytest.mark.parametrize(("pools", "networks", "status", "words"), [
    (None, 12, WARN, "no default-address-pools configured: the engine's built-in pools hold about 30 networks"),
    ([], 0, WARN, "no default-address-pools configured"),
    ([{"Base": "172.80.0.0/16", "Size": 24}], 3, OK, "172.80.0.0/16 in /24 networks: room for 256 networks (3 exist)"),
    ([{"Base": "10.240.0.0/12", "Size": 24}], 40, OK, "room for 4096 networks (40 exist)"),
    ([{"Base": "192.168.0.0/16", "Size": 20}], 0, WARN, "hold only 16 networks"),
    ([{"Base": "172.80.0.0/16", "Size": 24}], 230, WARN, "230 of the 256 networks"),
    ([{"Base": "not an address", "Size": 24}, {"Base": "10.0.0.0/8", "Size": 4}], 0, WARN, "hold only 0 networks"),
])
def test_address_pools(live, pools, networks, status, words):
    finding = doctor(live, engine=FakeDockerApi(pools, networks)).check_address_pools()
    assert finding.status == status and words in finding.finding, finding
    if status != OK:
        assert '"default-address-pools": [{"base": "10.240.0.0/12", "size": 24}]' in finding.fix
        assert "/etc/docker/daemon.json" in finding.fix


@pytest.mark.usefixtures("docker_engine")
def test_a_missing_helper_image_fails_with_the_build_command(live):
    found = doctor(live, helper_image="live-test/no-such-helper:1").check_helper_image()
    assert found.status == FAIL
    assert "live-test/no-such-helper:1 (LIVE_HELPER_IMAGE) is not on the engine" in found.finding
    assert found.fix == ("build it there: `bash scripts/build-helper-image.sh live-test/no-such-helper:1` "
                         "(it is never pulled)")


# -- the database -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_database_without_migrations_fails_and_skips_what_needs_its_schema(settings):
    live = bootstrap(settings)
    live.db.connect()  # an empty database file, as a first start leaves it
    live.db.close()
    try:
        findings = Doctor(settings, live.db, DockerEngine(None, timeout=10), live.catalog).run()
    finally:
        live.db.close()
    found = by_name(findings)
    count = len(list((PROJECT_ROOT / "migrations").glob("0*.py")))
    assert found["database"].status == FAIL and f"{count} migration(s) pending: 0001_initial, " in found["database"].finding
    assert found["database"].fix.startswith("apply them: `flask --app wsgi live db upgrade`")
    assert [found[name].status for name in ("worker", "catalog", "api-keys", "ingress")] == [SKIP, SKIP, SKIP, SKIP]
    assert exit_code(findings) == 2


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_missing_sqlite_file_is_named_and_not_created(settings):
    live = bootstrap(settings)
    path = settings.database_url.split(":///", 1)[1]
    found = Doctor(settings, live.db, DockerEngine(None, timeout=10), live.catalog).check_database()
    assert found.status == FAIL and found.finding == f"SQLite {path} does not exist"
    assert not os.path.exists(path)


def test_an_unreachable_postgresql_fails_without_its_password(live):
    settings = dataclasses.replace(live.settings, database_url="postgresql://live:s3cret@127.0.0.1:9/live")
    db = connect_database(settings.database_url)
    try:
        found = Doctor(settings, db, DockerEngine(None, timeout=10), live.catalog).check_database()
    finally:
        database.initialize(live.db)  # give the models their database back
    assert found.status == FAIL and found.finding.startswith("PostgreSQL live@127.0.0.1:9/live cannot be used: ")
    assert "s3cret" not in found.finding and "LIVE_DATABASE_URL" in found.fix


# -- the worker ---------------------------------------------------------------------------------------------
def test_worker_none_alive_and_stale(live, make_customer):
    live.orders.create(service_id=801, customer=make_customer(), product="busybox-demo", plan="small", username="q")
    none = doctor(live).check_worker()
    assert none.status == FAIL
    assert none.finding == ("no worker is running: none has a heartbeat (never started, or stopped); 1 operation(s) "
                            "queued, 0 running")
    assert none.fix.startswith("start it: `flask --app wsgi live worker` (systemd: `systemctl start live-worker`)")

    Heartbeat("host:9", poll_seconds=1.0, concurrency=4).start()
    assert doctor(live).check_worker().status == OK
    later = utcnow() + dt.timedelta(minutes=5)
    stale = doctor(live, now=lambda: later).check_worker()
    assert stale.status == FAIL and stale.finding.startswith("worker host:9 has not beaten for 5 min (alive means "
                                                             "within 15 s): it was killed, hangs")
    assert "journalctl -u live-worker" in stale.fix


# -- the backup store ---------------------------------------------------------------------------------------------
def store_at(live, folder, **changes) -> Doctor:
    """The doctor of ``live`` with LIVE_BACKUP_STORE=file://<folder>, as load_settings writes it."""
    return doctor(live, backup_store=f"file://{folder}", **changes)


def test_backup_store_folder_ok_missing_file_and_unwritable(live, tmp_path, monkeypatch):
    folder = tmp_path / "archives"
    folder.mkdir()
    ok = store_at(live, folder).check_backup_store()
    assert ok.status == OK and ok.finding.startswith(f"LIVE_BACKUP_STORE=file://{folder}: writable, ")
    assert ok.finding.endswith(" GB free")
    assert list(folder.iterdir()) == [], "the probe file is removed"

    later = store_at(live, folder / "not" / "yet").check_backup_store()
    assert later.status == OK and f"(created at the first backup, in {folder})" in later.finding
    assert not (folder / "not").exists(), "the doctor creates nothing"

    afile = tmp_path / "afile"
    afile.write_text("x")
    assert store_at(live, afile).check_backup_store() == Finding(
        "backup-store", FAIL, f"LIVE_BACKUP_STORE=file://{afile}: {afile} is a file, not a folder: every backup "
                              "fails, and terminates stop before deleting anything",
        "point LIVE_BACKUP_STORE (or LIVE_BACKUP_DIR, its default) at a folder, or move that file away")
    below = store_at(live, afile / "sub").check_backup_store()
    assert below.status == FAIL and f"cannot be created: {afile} is a file" in below.finding

    def refuse(**_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("app.doctor.tempfile.mkstemp", refuse)
    denied = store_at(live, folder).check_backup_store()
    assert denied == Finding("backup-store", FAIL, f"LIVE_BACKUP_STORE=file://{folder}: {folder} is not writable: "
                                                   "Permission denied",
                             f"let the bridge's user write there: `chown -R <user> {folder}`")

    def read_only(**_kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr("app.doctor.tempfile.mkstemp", read_only)
    mounted_ro = store_at(live, folder).check_backup_store()
    assert mounted_ro == Finding("backup-store", FAIL, f"LIVE_BACKUP_STORE=file://{folder}: {folder} is not writable: "
                                 "Read-only file system", f"remount {folder}'s file system read-write, or point "
                                 "LIVE_BACKUP_STORE at a writable disk"), "no chown helps a read-only file system"


def test_backup_store_free_space_below_the_minimum(live, tmp_path):
    free_gb = shutil.disk_usage(tmp_path).free / 1000 ** 3
    low = store_at(live, tmp_path, backup_min_free_gb=free_gb * 2).check_backup_store()
    assert low.status == WARN and "GB free (LIVE_BACKUP_MIN_FREE_GB is " in low.finding
    assert low.fix == "free space there (`live backups prune`), or move the store to a larger disk"
    assert store_at(live, tmp_path, backup_min_free_gb=free_gb * 20).check_backup_store().status == FAIL


def test_an_s3_store_that_does_not_answer_fails_with_the_cause(live, monkeypatch):
    from app.backups.s3_store import S3BackupStore

    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_CONFIG_FILE", "/nonexistent"),
                        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")):
        monkeypatch.setenv(name, value)

    port = free_port()  # nothing listens there
    store = S3BackupStore("live-backups", "prod", endpoint_url=f"http://127.0.0.1:{port}")
    found = Doctor(live.settings, live.db, DockerEngine(None, timeout=10), live.catalog, store=store).check_backup_store()
    assert found.status == FAIL
    assert found.finding.startswith("LIVE_BACKUP_STORE=s3://live-backups/prod cannot be used: ")
    assert f"127.0.0.1:{port}" in found.finding, "the operator sees where it tried"
    assert found.finding.endswith("every backup fails (orders keep running)")
    assert "LIVE_S3_ENDPOINT_URL" in found.fix


# -- the catalog ----------------------------------------------------------------------------------------------
def test_catalog_invalid_products_failed_sync_none_valid_and_never_synced(live, config_repo):
    write_product(config_repo, "broken", "name: Broken\nplans: {a: {}}\n",
                  "services:\n  x:\n    image: busybox\n    privileged: true\n")
    live.catalog.sync()
    invalid = doctor(live).check_catalog()
    assert invalid.status == WARN and "4 valid product(s), 1 invalid (broken)" in invalid.finding
    assert "`flask --app wsgi live products list`" in invalid.fix

    shutil.rmtree(config_repo / "products" / "broken")
    live.catalog.sync()
    retired = doctor(live).check_catalog()
    assert retired.status == OK, retired.finding
    assert retired.finding.endswith("4 valid product(s), 0 invalid, 1 retired (broken: removed from the catalog "
                                    "source, kept for their orders)")

    CatalogSync.update(last_error="GitLab at https://gitlab.example.org is unreachable").execute()
    failed = doctor(live).check_catalog()
    assert failed.status == WARN and failed.finding.startswith(
        "the last sync failed: GitLab at https://gitlab.example.org is unreachable; serving the last good catalog")

    Product.update(valid=False).execute()
    none = doctor(live).check_catalog()
    assert none.status == FAIL and "0 valid product(s), 4 invalid" in none.finding, none.finding
    assert none.finding.endswith("WHMCS cannot create any order")

    CatalogSync.delete().execute()
    never = doctor(live).check_catalog()
    assert never.status == WARN and never.finding.startswith("never synced; ")
    assert "live products sync" in never.fix


def test_catalog_source_gitlab_reachable_stopped_and_token_rejected(live):
    emulator = GitLabEmulator().start()
    try:
        sha = emulator.repo.commit({"products/.keep": ""}, message="empty")
        gitlab = {"gitlab_url": emulator.url, "gitlab_token": emulator.token, "gitlab_project": emulator.project_path,
                  "gitlab_ref": "main", "gitlab_timeout": 2.0}
        ok = doctor(live, **gitlab).check_catalog_source()
        assert ok.status == OK and ok.finding == (f"GitLab {emulator.url}, project {emulator.project_path} at main: "
                                                  f"answers, main is {sha[:12]}")
        wrong = doctor(live, **{**gitlab, "gitlab_token": "not-the-token"}).check_catalog_source()
        assert wrong.status == FAIL and wrong.finding.endswith("the token is rejected (401)")
        missing = doctor(live, **{**gitlab, "gitlab_ref": "no-such-branch"}).check_catalog_source()
        assert missing.status == FAIL and missing.finding.endswith("project or ref not found")
    finally:
        emulator.stop()
    stopped = doctor(live, **gitlab).check_catalog_source()
    assert stopped.status == WARN
    assert "unreachable (ConnectionError); the last good catalog keeps serving" in stopped.finding
    assert "LIVE_GITLAB_URL" in stopped.fix


# -- API keys -------------------------------------------------------------------------------------------------
def test_api_keys(live):
    none = doctor(live).check_api_keys()
    assert none.status == FAIL and none.finding.startswith("no active key with the whmcs scope")
    assert "apikey create whmcs-prod --scope whmcs" in none.fix

    whmcs, _ = create_key("whmcs-prod", "whmcs")
    unused = doctor(live).check_api_keys()
    assert unused.status == WARN and unused.finding.startswith("WHMCS has never called with whmcs-prod")
    assert "Test Connection" in unused.fix
    ApiKey.update(last_used_at=utcnow()).where(ApiKey.id == whmcs.id).execute()
    assert doctor(live).check_api_keys().status == OK

    create_key("ops-fresh", "admin")  # created today: not flagged yet
    assert doctor(live).check_api_keys().status == OK
    old, _ = create_key("ops-old", "admin")
    idle, _ = create_key("ops-idle", "admin")
    ApiKey.update(created_at=utcnow() - dt.timedelta(days=3)).where(ApiKey.id == old.id).execute()
    ApiKey.update(last_used_at=utcnow() - dt.timedelta(days=120)).where(ApiKey.id == idle.id).execute()
    warned = doctor(live).check_api_keys()
    assert warned.status == WARN
    assert warned.finding == ("admin key(s) never used: ops-old; admin key(s) unused for more than 90 days: ops-idle "
                              "(1 whmcs, 0 read, 3 admin key(s) active)")
    assert "apikey revoke NAME" in warned.fix


def test_ingress_off_unreachable_pending_and_applied(live):
    assert doctor(live).check_ingress().finding.startswith("off: LIVE_CADDY_ADMIN_URL is not set")
    # Caddy's adapter against a port nothing listens on: the real "does not answer".
    settings = dataclasses.replace(live.settings, caddy_admin_url=f"http://127.0.0.1:{free_port()}")
    down = IngressService(route_table(settings), live.catalog, settings.base_domain)
    found = Doctor(settings, live.db, None, live.catalog, ingress=down).check_ingress()
    assert found.status == FAIL and "does not answer" in found.finding and "caddy-api" in found.fix
    table = FakeRouteTable()
    memory = IngressService(table, live.catalog, settings.base_domain)
    customer = Customer.create(whmcs_client_id=1, email="ops@example.org")
    product = Product.get(Product.slug == "busybox-demo")
    order = Order.create(whmcs_service_id=1, customer=customer, product=product, revision=product.current_revision,
                         plan="small", instance="acme", hostname="acme.test.local")
    pending = Doctor(settings, live.db, None, live.catalog, ingress=memory).check_ingress()
    assert pending.status == WARN and "1 order route(s) pending" in pending.finding
    memory.resync()
    assert table.routes[order.id].hostname == "acme.test.local"
    assert Doctor(settings, live.db, None, live.catalog, ingress=memory).check_ingress().status == OK
    remote = dataclasses.replace(settings, caddy_admin_url="http://10.0.0.5:2019")
    exposed = Doctor(remote, live.db, None, live.catalog, ingress=memory).check_ingress()
    assert exposed.status == WARN and "not on the loopback" in exposed.finding


def test_a_check_that_crashes_is_a_failed_finding(live, monkeypatch):
    monkeypatch.setattr(Doctor, "check_catalog", lambda self: 1 / 0)
    found = by_name(doctor(live, engine=FakeDockerApi([{"Base": "10.240.0.0/12", "Size": 24}])).run())
    assert found["catalog"] == Finding("catalog", FAIL, "the check itself failed: ZeroDivisionError: division by zero",
                                       "run again with LIVE_LOG_LEVEL=DEBUG for the traceback, and report it")


# -- the command ----------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("docker_engine")
def test_the_command_prints_each_check_with_its_fix_and_exits_by_the_worst(settings):
    app = create_app(dataclasses.replace(settings, helper_image=TEST_IMAGE, backup_min_free_gb=0.001))
    runner = app.test_cli_runner()
    assert runner.invoke(args=["live", "db", "upgrade"]).exit_code == 0
    assert runner.invoke(args=["live", "products", "sync"]).exit_code == 0
    text = runner.invoke(args=["live", "doctor"])
    assert text.exit_code == 2, text.output  # no worker, no whmcs key
    lines = text.output.splitlines()
    assert lines[0].startswith("ok    engine          Docker ")
    assert "FAIL  worker          no worker is running: none has a heartbeat" in text.output
    assert "WARN  mirror          no worker has followed the engine yet" in text.output
    assert "                      fix: start it: `flask --app wsgi live worker`" in text.output
    assert lines[-1] == "11 checks: 8 ok, 1 warning(s), 2 failed, 0 skipped"

    as_json = runner.invoke(args=["live", "doctor", "--json"])
    assert as_json.exit_code == 2
    report = json.loads(as_json.output)
    assert report["status"] == "fail" and report["exit_code"] == 2
    assert [check["check"] for check in report["checks"]] == CHECKS
    assert {check["check"] for check in report["checks"] if check["status"] == "fail"} == {"worker", "api-keys"}

    with app.app_context():
        Heartbeat("host:1", poll_seconds=1.0, concurrency=4).start()
        following(settings.deployment)
        key, _ = create_key("whmcs-prod", "whmcs")
        ApiKey.update(last_used_at=utcnow()).where(ApiKey.id == key.id).execute()
    assert runner.invoke(args=["live", "doctor"]).exit_code == 0


def test_swarm_mode_reports_the_nodes_that_take_orders(live, docker_engine):
    from tests.conftest import require_swarm_manager

    require_swarm_manager(docker_engine)
    found = by_name(doctor(live, orchestrator="swarm").run())["swarm"]
    assert found.status == OK, found
    assert "taking orders" in found.finding and "GiB free" in found.finding
    nowhere = by_name(doctor(live, orchestrator="swarm", swarm_pool="nowhere").run())["swarm"]
    assert nowhere.status == FAIL and "0 taking orders in pool 'nowhere'" in nowhere.finding
    assert "live.pool=nowhere" in nowhere.fix
    assert "swarm" not in by_name(doctor(live).run())  # one engine: no such check
