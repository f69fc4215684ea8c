"""The real worker process delivers alerts on PostgreSQL; killed with SIGKILL while the receiver is down, its
undelivered alert is sent, signed, by the next worker (docs/OPERATIONS.md, "Alerts")."""
from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from app import alerts
from app.alerts import WebhookSettings
from app.config import PROJECT_ROOT
from app.models import AlertDelivery, record_event
from tests.support.live_service import free_port, settings_env
from tests.support.waiting import wait_for
from tests.support.webhook_receiver import SECRET, Receiver

pytestmark = pytest.mark.usefixtures("docker_engine")


def start_worker(settings, url: str, log_path):
    env = settings_env(settings, LIVE_WORKER_POLL_SECONDS="0.1", LIVE_WEBHOOK_URLS=url, LIVE_WEBHOOK_SECRET=SECRET,
                       LIVE_WEBHOOK_RETRY_SECONDS="0.1", LIVE_WEBHOOK_MAX_ATTEMPTS="50")
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "live", "worker"], cwd=PROJECT_ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_alert_survives_a_killed_worker_and_reaches_the_receiver_signed(live, settings, tmp_path):
    port = free_port()  # the receiver is down at first
    url = f"http://127.0.0.1:{port}/hooks/live"
    alerts.configure(WebhookSettings(urls=(url,), secret=SECRET, deployment=settings.deployment))
    try:
        event = record_event("drift_failing", "order x is failing: crash loop")
    finally:
        alerts.configure(WebhookSettings())
    log_path = tmp_path / "worker.log"

    worker = start_worker(settings, url, log_path)
    try:
        wait_for(lambda: AlertDelivery.get().attempts >= 2, timeout=60, what="two failed attempts")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    row = AlertDelivery.get()
    assert row.state == "pending" and row.last_status is None and row.last_error, log_path.read_text()[-2000:]

    receiver = Receiver(port=port)
    worker = start_worker(settings, url, log_path)
    try:
        delivered = wait_for(lambda: (r := AlertDelivery.get()).state == "delivered" and r, timeout=60,
                             what="delivered after the restart")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        receiver.close()
    headers, body, signed = receiver.received[0]
    assert signed and len(receiver.received) == 1
    assert json.loads(body)["alert"] == "drift_failing" and json.loads(body)["event"]["id"] == event.id
    assert headers["X-Live-Delivery"] == f"{settings.deployment}-{delivered.id}"
    assert [entry["status"] for entry in delivered.history][-1] == 200
    assert all(entry["status"] is None for entry in delivered.history[:-1]) and len(delivered.history) >= 3
