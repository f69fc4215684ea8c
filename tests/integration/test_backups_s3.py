"""The backup lifecycle with the store in S3 (moto's S3 server over real HTTP, no mock of boto3) and the real engine:
a backup, a restore over destroyed data, the final backup at terminate; and a store that cannot be reached
failing the backup visibly while the order keeps running.
"""
from __future__ import annotations

import socket
import uuid

import boto3
import pytest
from botocore.config import Config

from app.config import load_settings
from app.models import Backup, Order
from tests.integration.test_backups_engine import back_up, create, read, restore, run, write
from tests.support.moto_s3 import dummy_credentials, endpoint  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("docker_engine", "stack_cleanup")


def s3_settings(settings, store: str, endpoint: str):
    env = {"LIVE_DATABASE_URL": settings.database_url, "LIVE_CONFIG_REPO": str(settings.config_repo),
           "LIVE_BASE_DOMAIN": settings.base_domain, "LIVE_BACKUP_DIR": str(settings.backup_dir),
           "LIVE_DEPLOYMENT": settings.deployment, "LIVE_HEALTH_TIMEOUT_SECONDS": "30",
           "LIVE_RETRY_BASE_SECONDS": "0.05", "LIVE_WORKER_POLL_SECONDS": "0.1", "LIVE_OPERATION_MAX_ATTEMPTS": "3",
           "LIVE_BACKUP_STORE": store, "LIVE_S3_ENDPOINT_URL": endpoint}
    return load_settings(env)


@pytest.fixture
def s3_live(settings, endpoint, dummy_credentials):
    from app.bootstrap import bootstrap
    from app.db import upgrade

    bucket = f"live-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                 config=Config(s3={"addressing_style": "path"})).create_bucket(Bucket=bucket)
    live = bootstrap(s3_settings(settings, f"s3://{bucket}/prod", endpoint))
    upgrade(live.db)
    live.catalog.sync()
    yield live
    live.db.close()


def test_backup_restore_and_the_final_backup_live_in_the_bucket(s3_live, make_customer, docker_engine):
    live = s3_live
    order = create(live, make_customer, 801, "in-s3")
    write(docker_engine, live, order, "db", "/data/records", "kept in a bucket")
    backup_id = back_up(live, order)
    assert live.backups.store.location.startswith("s3://")
    write(docker_engine, live, order, "db", "/data/records", "overwritten")
    operation = restore(live, order, backup_id)
    assert operation.state == "succeeded", operation.error_detail
    assert read(docker_engine, live, order, "db", "/data/records") == "kept in a bucket"
    terminated = run(live, lambda: live.orders.terminate(Order.get_by_id(order.id)))
    assert terminated.state == "succeeded", terminated.error_detail
    [final] = live.backups.list(order)  # the terminated order keeps its final backup only
    assert final.kind == "final" and live.backups.store.verify(final.backup_id) == []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_store_fails_the_backup_visibly_and_the_order_keeps_running(settings, make_customer,
                                                                                   docker_engine, dummy_credentials):
    from app.bootstrap import bootstrap
    from app.db import upgrade

    live = bootstrap(s3_settings(settings, "s3://nowhere/prod", f"http://127.0.0.1:{free_port()}"))
    upgrade(live.db)
    live.catalog.sync()
    try:
        order = create(live, make_customer, 802, "store-down")
        operation = run(live, lambda: live.orders.back_up(Order.get_by_id(order.id)))
        assert operation.state == "failed" and operation.attempts == 3, "transient: retried, then failed"
        assert operation.error.startswith("the backup storage cannot be used right now")
        assert "127.0.0.1" in operation.error_detail  # operators see where
        assert [row.state for row in Backup.select().where(Backup.order == order.id)] == ["failed"] * 3
        assert Order.get_by_id(order.id).status == "active"
        states = {c.status for c in docker_engine.containers.list(all=True, filters={"label": [
            f"live.order={order.id}", f"live.deployment={live.settings.deployment}"]})}
        assert states == {"running"}
    finally:
        live.db.close()
