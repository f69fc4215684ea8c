"""The catalog read from GitLab with python-gitlab, against an emulation of the REST API v4."""
from __future__ import annotations

import dataclasses

import pytest

from app import create_app
from app.apikeys import create_key
from app.bootstrap import bootstrap
from app.catalog.gitlab_source import CatalogSourceError, GitLabSource
from app.config import PROJECT_ROOT
from app.db import upgrade
from app.models import CatalogSync, Order, Product, ProductRevision
from tests.conftest import customer
from tests.support.gitlab_emulator import GitLabEmulator, blob_id

EXAMPLES = PROJECT_ROOT / "examples" / "config-repo"


def example_files() -> dict[str, str]:
    return {str(path.relative_to(EXAMPLES)): path.read_text() for path in EXAMPLES.rglob("*") if path.is_file()}


@pytest.fixture
def gitlab():
    emulator = GitLabEmulator().start()
    emulator.repo.commit(example_files(), message="initial catalog")
    yield emulator
    emulator.stop()


@pytest.fixture
def gitlab_settings(settings, gitlab):
    return dataclasses.replace(settings, gitlab_url=gitlab.url, gitlab_token=gitlab.token,
                               gitlab_project=gitlab.project_path, gitlab_ref="main", gitlab_timeout=2.0,
                               gitlab_webhook_secret="hook-secret")


@pytest.fixture
def live(gitlab_settings):
    live = bootstrap(gitlab_settings)
    upgrade(live.db)
    yield live
    if not live.db.is_closed():
        live.db.close()


def change(gitlab: GitLabEmulator, path: str, old: str, new: str, message: str = "change") -> str:
    files = {p: c.decode() for p, c in gitlab.repo.commits[gitlab.repo.branches["main"]]["files"].items()}
    assert old in files[path]
    files[path] = files[path].replace(old, new, 1)
    return gitlab.repo.commit(files, message=message)


def test_first_sync_records_every_product_with_commit_and_blob_ids(live, gitlab):
    report = live.catalog.sync()
    assert sorted(report.added) == ["busybox-demo", "geonetwork", "geoserver-postgis", "sdi"]
    head = gitlab.repo.branches["main"]
    demo = Product.get(Product.slug == "busybox-demo").current_revision
    assert demo.commit == head
    manifest = (EXAMPLES / "products" / "busybox-demo" / "product.yml").read_bytes()
    assert demo.manifest_blob == blob_id(manifest) and demo.manifest == manifest.decode()
    state = CatalogSync.get()
    assert state.commit == head and state.last_error is None and "GitLab" in state.source


def test_a_change_in_one_product_makes_one_new_revision(live, gitlab):
    live.catalog.sync()
    before = {p.slug: p.current_revision_id for p in Product.select()}
    gitlab.reset_counts()
    change(gitlab, "products/busybox-demo/product.yml", "APP_GREETING: hello", "APP_GREETING: bonjour")
    report = live.catalog.sync()
    assert report.changed == ["busybox-demo"]
    assert sorted(report.unchanged) == ["geonetwork", "geoserver-postgis", "sdi"]
    after = {p.slug: p.current_revision_id for p in Product.select()}
    assert after["busybox-demo"] != before["busybox-demo"]
    assert {k: v for k, v in after.items() if k != "busybox-demo"} == {k: v for k, v in before.items() if k != "busybox-demo"}
    # One commit lookup, one tree page, and only the one changed file.
    assert gitlab.count("/repository/commits/") == 1
    assert gitlab.count("/repository/tree") == 1
    assert gitlab.count("/repository/blobs/") == 1


def test_an_invalid_change_keeps_the_valid_revision(live, gitlab):
    live.catalog.sync()
    valid = Product.get(Product.slug == "busybox-demo").current_revision_id
    change(gitlab, "products/busybox-demo/docker-compose.yml", "init: true", "privileged: true")
    report = live.catalog.sync()
    product = Product.get(Product.slug == "busybox-demo")
    assert "busybox-demo" in report.invalid and not product.valid
    assert product.current_revision_id == valid
    invalid = ProductRevision.select().where((ProductRevision.product == product) & (ProductRevision.valid == False))  # noqa: E712
    assert invalid.count() == 1 and "service db: privileged" in " ".join(invalid.get().errors)


def test_a_tag_ref_is_followed(gitlab_settings, gitlab):
    tagged = gitlab.repo.branches["main"]
    gitlab.repo.tag("v1.0", tagged)
    change(gitlab, "products/busybox-demo/product.yml", "APP_GREETING: hello", "APP_GREETING: later")
    live = bootstrap(dataclasses.replace(gitlab_settings, gitlab_ref="v1.0"))
    upgrade(live.db)
    live.catalog.sync()
    revision = Product.get(Product.slug == "busybox-demo").current_revision
    assert revision.commit == tagged and "APP_GREETING: hello" in revision.manifest


def test_unchanged_repository_costs_a_constant_number_of_requests(live, gitlab, gitlab_settings):
    files = example_files()
    demo = {p: t for p, t in files.items() if p.startswith("products/busybox-demo/")}
    for number in range(60):  # 60 more products: 180 tree entries, two pages of 100
        files.update({p.replace("busybox-demo", f"demo-{number:02d}"): t for p, t in demo.items()})
    gitlab.repo.commit(files, message="many products")
    gitlab.reset_counts()
    live.catalog.sync()
    assert gitlab.count("/repository/tree") == 2
    assert gitlab.count("/repository/blobs/") == len({blob_id(t.encode()) for p, t in files.items() if p.startswith("products/")})

    for _ in range(3):
        gitlab.reset_counts()
        live.catalog.sync()
        assert gitlab.requests == [("GET", f"/api/v4/projects/{gitlab.project_path.replace('/', '%2F')}/repository/commits/main")]

    # A restarted process knows the blobs from the database: it lists the tree but fetches nothing.
    restarted = bootstrap(gitlab_settings)
    gitlab.reset_counts()
    restarted.catalog.sync()
    assert gitlab.count("/repository/blobs/") == 0 and gitlab.count("/repository/tree") == 2


def test_gitlab_down_keeps_the_last_good_catalog(live, gitlab, gitlab_settings):
    live.catalog.sync()
    revisions = {p.slug: p.current_revision_id for p in Product.select()}
    gitlab.stop()
    with pytest.raises(CatalogSourceError, match="unreachable"):
        live.catalog.sync()
    assert {p.slug: p.current_revision_id for p in Product.select()} == revisions
    state = CatalogSync.get()
    assert "unreachable" in state.last_error and state.last_success_at is not None
    # Provisioning keeps working from the last good catalog.
    outcome = live.orders.create(service_id=70, customer=customer(), product="geoserver-postgis", plan="small")
    assert outcome.created and outcome.order.revision_id == revisions["geoserver-postgis"]

    # The service says so, and keeps answering with what it has.
    app = create_app(gitlab_settings)
    token = create_key("reader", "read")[1]
    admin = create_key("operator", "admin")[1]
    client = app.test_client()
    ready = client.get("/readyz")
    assert ready.status_code in (200, 503)  # 503 only if the engine is missing; the catalog alone never fails it
    assert ready.json["checks"]["catalog"]["ok"] is False
    assert "serving the last good catalog" in ready.json["checks"]["catalog"]["detail"]
    status = client.get("/api/v1/catalog", headers={"Authorization": f"Bearer {token}"}).json
    assert status["last_error"] and "unreachable" not in status["last_error"] and "last_error_detail" not in status
    status = client.get("/api/v1/catalog", headers={"Authorization": f"Bearer {admin}"}).json
    assert "unreachable" in status["last_error_detail"]
    assert len(client.get("/api/v1/products", headers={"Authorization": f"Bearer {token}"}).json["items"]) == 4


def test_slow_gitlab_times_out_instead_of_hanging(live, gitlab):
    gitlab.delay = 5.0  # more than the 2 s timeout
    with pytest.raises(CatalogSourceError):
        live.catalog.sync()


def test_wrong_token_and_unknown_project_are_named(gitlab, gitlab_settings):
    wrong = GitLabSource(gitlab.url, "not-the-token", gitlab.project_path, "main")
    with pytest.raises(CatalogSourceError, match="rejected the token"):
        wrong.read()
    missing = GitLabSource(gitlab.url, gitlab.token, "geocat/nope", "main")
    with pytest.raises(CatalogSourceError, match="not found"):
        missing.read()


def test_webhook_checks_the_secret_and_requests_a_sync(live, gitlab, gitlab_settings):
    live.catalog.sync()
    client = create_app(gitlab_settings).test_client()
    project = {"id": gitlab.project_id, "path_with_namespace": gitlab.project_path}
    push = {"object_kind": "push", "ref": "refs/heads/main", "commits": [], "project": project}
    event = {"X-Gitlab-Event": "Push Hook"}
    assert client.post("/hooks/gitlab", json=push, headers=event).status_code == 401
    assert client.post("/hooks/gitlab", json=push, headers={**event, "X-Gitlab-Token": "wrong"}).status_code == 401
    other = client.post("/hooks/gitlab", json={**push, "ref": "refs/heads/feature"}, headers={**event, "X-Gitlab-Token": "hook-secret"})
    assert other.status_code == 200 and other.json["sync"] == "ignored"
    assert not live.catalog.sync_requested()

    change(gitlab, "products/busybox-demo/product.yml", "APP_GREETING: hello", "APP_GREETING: hooked")
    accepted = client.post("/hooks/gitlab", json=push, headers={**event, "X-Gitlab-Token": "hook-secret"})
    assert accepted.status_code == 202 and accepted.json["sync"] == "requested"
    assert live.catalog.sync_requested()
    tag = client.post("/hooks/gitlab", json={"ref": "refs/tags/main", "project": project}, headers={"X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Token": "hook-secret"})
    assert tag.status_code == 202

    live.worker().dispatch_safely()  # the worker notices the request and syncs
    assert not live.catalog.sync_requested()
    assert "APP_GREETING: hooked" in Product.get(Product.slug == "busybox-demo").current_revision.manifest


def test_webhook_is_404_when_not_configured(settings):
    client = create_app(settings).test_client()
    response = client.post("/hooks/gitlab", json={"ref": "main"}, headers={"X-Gitlab-Token": "x", "X-Gitlab-Event": "Push Hook"})
    assert response.status_code == 404 and "not configured" in response.json["error"]["message"]


@pytest.mark.usefixtures("docker_engine", "stack_cleanup")
def test_orders_keep_their_revision_until_moved_and_can_roll_back(live, gitlab, docker_engine, settings, make_customer):
    live.catalog.sync()
    outcome = live.orders.create(service_id=61, customer=make_customer(), product="busybox-demo", plan="small", username="pinned")
    live.worker().run_until_idle(timeout=120)
    order = Order.get_by_id(outcome.order.id)
    first = order.revision
    ids = {c.labels["live.service"]: c.id for c in docker_engine.containers.list(filters={"label": f"live.deployment={settings.deployment}"})}

    change(gitlab, "products/busybox-demo/product.yml", "APP_GREETING: hello", "APP_GREETING: v2")
    live.catalog.sync()
    second = Product.get(Product.slug == "busybox-demo").current_revision
    assert second.id != first.id
    live.catalog.sync()
    assert Order.get_by_id(order.id).revision_id == first.id, "a sync never moves an order"

    preview = live.runner.preview(order, second)
    assert preview["services"] == {"app": "recreate", "db": "noop", "web": "noop"} and preview["removed"] == []
    assert Order.get_by_id(order.id).revision_id == first.id, "a dry run changes nothing"

    live.orders.upgrade(order)
    live.worker().run_until_idle(timeout=120)
    order = Order.get_by_id(order.id)
    assert order.revision_id == second.id and order.status == "active"
    now = {c.labels["live.service"]: c.id for c in docker_engine.containers.list(filters={"label": f"live.deployment={settings.deployment}"})}
    assert now["db"] == ids["db"] and now["web"] == ids["web"] and now["app"] != ids["app"]
    app_env = docker_engine.containers.get(now["app"]).attrs["Config"]["Env"]
    assert "GREETING=v2" in app_env

    # Rolling back is the same operation, naming the older revision (by commit here).
    live.orders.upgrade(order, first.commit[:10])
    live.worker().run_until_idle(timeout=120)
    order = Order.get_by_id(order.id)
    assert order.revision_id == first.id
    back = {c.labels["live.service"]: c for c in docker_engine.containers.list(filters={"label": f"live.deployment={settings.deployment}"})}
    assert "GREETING=hello" in back["app"].attrs["Config"]["Env"]
    assert live.orders.upgrade(order, first.content_hash[:12]).message == f"order already at revision {first.label}"


@pytest.mark.usefixtures("docker_engine", "stack_cleanup")
def test_upgrade_through_the_api_and_cli(live, gitlab, gitlab_settings, make_customer):
    live.catalog.sync()
    outcome = live.orders.create(service_id=62, customer=make_customer(), product="busybox-demo", plan="small", username="viaapi")
    live.worker().run_until_idle(timeout=120)
    change(gitlab, "products/busybox-demo/product.yml", "APP_GREETING: hello", "APP_GREETING: api")
    live.catalog.sync()
    app = create_app(gitlab_settings)
    client = app.test_client()
    admin = {"Authorization": f"Bearer {create_key('admin', 'admin')[1]}"}
    preview = client.post(f"/api/v1/orders/{outcome.order.id}/upgrade", json={"dry_run": True}, headers=admin)
    assert preview.status_code == 200 and preview.json["preview"]["services"]["app"] == "recreate"
    product_preview = client.post("/api/v1/products/busybox-demo/upgrade", json={"dry_run": True}, headers=admin)
    assert [o["preview"]["instance"] for o in product_preview.json["orders"]] == ["viaapi"]
    cli = app.test_cli_runner().invoke(args=["live", "orders", "upgrade", "viaapi", "--dry-run"])
    assert "app                      recreate" in cli.output
    moved = client.post("/api/v1/products/busybox-demo/upgrade", json={}, headers=admin)
    assert moved.json["orders"][0]["result"] == "queued"
    bad = client.post(f"/api/v1/orders/{outcome.order.id}/upgrade", json={"revision": "0000000000"}, headers=admin)
    assert bad.status_code == 404 and "has no revision" in bad.json["error"]["message"]
