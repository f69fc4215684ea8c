"""Outbound webhooks (app/alerts.py): alerts queued with their event, signed, delivered to a real HTTP receiver
(a thread running ``http.server`` that checks the HMAC as docs/OPERATIONS.md tells receivers to), retried with
backoff while the receiver is down, and never changing how the operation that caused them ends.

The application runs on the in-memory engine (``fake_live``); the deliverer is the worker's, with a clock the
tests move instead of waiting for the backoff.
"""
from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from pathlib import Path

import peewee
import pytest

from app import alerts
from app.alerts import AlertDeliverer, WebhookSettings
from app.config import load_settings
from app.errors import ConfigError, EngineOperationError
from app.models import AlertDelivery, Event, Operation, database, record_event, utcnow
from tests.support.cli_runner import live_cli_runner
from tests.support.live_service import free_port
from tests.support.waiting import wait_for
from tests.support.webhook_receiver import SECRET, Receiver
from tests.unit.test_operations_fake import create, engine, last_operation, live, run  # noqa: F401 (fixtures)

class Clock:
    def __init__(self):
        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, seconds: float):
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def hooks(live, *urls, **overrides) -> WebhookSettings:
    """Send this process's alerts to ``urls`` (reset after the test by ``reset_targets``)."""
    settings = WebhookSettings(urls=tuple(urls), secret=SECRET, max_attempts=overrides.pop("max_attempts", 4),
                               retry_seconds=10.0, timeout_seconds=overrides.pop("timeout_seconds", 5.0),
                               deployment=live.settings.deployment,
                               **overrides)
    alerts.configure(settings)
    return settings


@pytest.fixture(autouse=True)
def reset_targets():
    yield
    alerts.configure(WebhookSettings())


def fail_create(live, engine, name="broken"):
    engine.failures[("create_container", "web")] = EngineOperationError("create container: refused by the engine")
    return create(live, name)


def test_a_failed_operation_is_posted_once_signed_and_verified_by_the_receiver(live, engine, receiver):
    hooks(live, receiver.url)
    order = fail_create(live, engine)
    [row] = AlertDelivery.select()
    assert (row.alert, row.state, row.url, row.attempts) == ("operation_failed", "pending", receiver.url, 0)

    deliverer = AlertDeliverer(alerts._current)
    assert deliverer.tick() == 1
    [(headers, _, signed)] = receiver.received
    assert signed, "the receiver's HMAC check passes"
    [body] = receiver.bodies()
    assert body["alert"] == "operation_failed" and body["deployment"] == live.settings.deployment
    assert body["order"]["instance"] == order.instance and body["order"]["status"] == "failed"
    assert body["operation"] == {"id": last_operation(order).id, "kind": "create", "state": "failed", "attempts": 1}
    assert body["event"]["kind"] == "operation.failed" and "refused" in body["event"]["message"]
    assert headers["X-Live-Delivery"] == f"{live.settings.deployment}-{row.id}"
    assert headers["X-Live-Alert"] == "operation_failed" and headers["Content-Type"] == "application/json"
    row = AlertDelivery.get_by_id(row.id)
    assert (row.state, row.attempts, row.last_status, row.last_error) == ("delivered", 1, 200, None)
    assert [entry["status"] for entry in row.history] == [200]
    assert deliverer.tick() == 0, "a delivered alert is not sent again"


def test_a_wrong_secret_fails_the_receivers_check(live, engine, receiver):
    hooks(live, receiver.url)
    fail_create(live, engine)
    AlertDeliverer(WebhookSettings(urls=(receiver.url,), secret="another-secret-of-16+chars",
                                   deployment=live.settings.deployment)).tick()
    [(_, _, signed)] = receiver.received
    assert signed is False


def test_receiver_down_retries_with_doubling_delays_and_the_operation_ends_as_without_webhooks(live, engine):
    port = free_port()  # nothing listens there yet
    settings = hooks(live, f"http://127.0.0.1:{port}/hooks/live", max_attempts=5)
    order = fail_create(live, engine)
    clock = Clock()  # from now on the deliverer's time is the test's
    deliverer = AlertDeliverer(settings, clock=clock)
    operation = last_operation(order)
    assert (operation.state, order.status, operation.attempts) == ("failed", "failed", 1), "as without webhooks"

    delays = []
    for attempt in (1, 2, 3):
        assert deliverer.tick() == 1
        row = AlertDelivery.get()
        assert (row.state, row.attempts, row.last_status) == ("pending", attempt, None)
        assert row.last_error.startswith("ConnectionError") and SECRET not in row.last_error
        delays.append((row.next_attempt_at - clock.now).total_seconds())
        assert deliverer.tick() == 0, "not due before its backoff"
        clock.advance(delays[-1])
    assert delays == [10.0, 20.0, 40.0]

    server = Receiver(port=port)  # the receiver comes back: the next attempt delivers
    try:
        assert deliverer.tick() == 1
        assert [signed for _, _, signed in server.received] == [True]
    finally:
        server.close()
    row = AlertDelivery.get()
    assert (row.state, row.attempts, row.last_status) == ("delivered", 4, 200)
    assert [entry["status"] for entry in row.history] == [None, None, None, 200]
    assert Operation.get_by_id(operation.id).state == "failed"


def test_error_answers_are_retried_until_the_attempts_run_out_then_retry_queues_again(live, engine, receiver):
    settings = hooks(live, receiver.url, max_attempts=2)
    fail_create(live, engine)
    clock = Clock()
    deliverer = AlertDeliverer(settings, clock=clock)
    receiver.statuses = [500, 503]
    deliverer.tick()
    clock.advance(10)
    deliverer.tick()
    row = AlertDelivery.get()
    assert (row.state, row.attempts, row.last_status, row.last_error) == ("failed", 2, 503, "HTTP 503")
    clock.advance(3600)
    assert deliverer.tick() == 0, "a failed delivery waits for `live webhooks retry`"

    assert alerts.retry(clock=clock) == 1
    assert deliverer.tick() == 1
    row = AlertDelivery.get()
    assert (row.state, row.attempts) == ("delivered", 1)
    assert [entry["status"] for entry in row.history] == [500, 503, 200], "the history is kept"


def test_one_row_per_url_and_none_without_urls(live, engine, receiver):
    fail_create(live, engine, "quiet")
    assert AlertDelivery.select().count() == 0, "no LIVE_WEBHOOK_URLS: nothing queued"
    second = Receiver()
    try:
        hooks(live, receiver.url, second.url)
        fail_create(live, engine, "loud")
        assert sorted(row.url for row in AlertDelivery.select()) == sorted([receiver.url, second.url])
        AlertDeliverer(alerts._current).tick()
        assert [signed for _, _, signed in receiver.received + second.received] == [True, True]
    finally:
        second.close()


def test_the_delivery_is_queued_in_the_events_transaction(live):
    hooks(live, "http://127.0.0.1:9/hooks")
    with database.atomic() as transaction:
        record_event("drift_detected", "order x drifted: web exited")
        assert AlertDelivery.select().count() == 1
        transaction.rollback()
    assert AlertDelivery.select().count() == 0 and not Event.select().where(Event.kind == "drift_detected").exists()
    record_event("drift_failing", "order x is failing: crash loop")
    record_event("order.active", "not an alert")
    assert [row.alert for row in AlertDelivery.select()] == ["drift_failing"]


def test_drift_detected_by_the_checker_alerts(live, engine, receiver):
    from tests.unit.test_drift import checker, container, mirror

    hooks(live, receiver.url)
    order = create(live)
    engine.stop_container(container(engine, order, "web").id, timeout=1)
    mirror(live, engine)
    checker(live).check()
    assert "drift_detected" in [row.alert for row in AlertDelivery.select()]
    AlertDeliverer(alerts._current).tick()
    body = next(body for body in receiver.bodies() if body["alert"] == "drift_detected")
    assert body["order"]["instance"] == order.instance and "web" in body["event"]["message"]


def test_a_failed_backup_operation_is_a_backup_failed_alert(live, engine):
    hooks(live, "http://127.0.0.1:9/hooks")
    order = create(live)
    engine.stream_failures[("export_volume", f"{live.settings.deployment}-acme_db-data")] = \
        EngineOperationError("read volume: refused by the engine")
    live.orders.back_up(order)
    run(live)
    assert last_operation(order).state == "failed"
    [row] = AlertDelivery.select()
    assert row.alert == "backup_failed" and json.loads(row.body)["operation"]["kind"] == "backup"


def test_an_operation_running_past_the_stuck_threshold_alerts_once_per_attempt(live):
    clock = Clock()
    settings = hooks(live, "http://127.0.0.1:9/hooks", stuck_seconds=600)
    deliverer = AlertDeliverer(settings, clock=clock)
    order = create(live, run_it=False)
    Operation.update(state="running", attempts=1, started_at=clock.now).execute()
    assert deliverer.record_stuck() == []
    clock.advance(601)
    [stuck] = deliverer.record_stuck()
    assert deliverer.record_stuck() == [], "one alert per attempt"
    [row] = AlertDelivery.select()
    assert row.alert == "operation_stuck" and json.loads(row.body)["order"]["instance"] == order.instance
    Operation.update(attempts=2).execute()
    assert deliverer.record_stuck() == [stuck], "the next attempt stuck too: alerted again"


def test_undelivered_rows_are_sent_by_the_next_worker(live, engine, receiver):
    """A worker killed before (or during) an attempt leaves its rows pending in the database: the next one sends
    them. The worker's own job runs the deliverer."""
    hooks(live, receiver.url)
    fail_create(live, engine)
    assert AlertDelivery.get().state == "pending"
    worker = live.worker()  # a new process's worker, built from the settings
    worker.alerts = AlertDeliverer(alerts._current)
    worker.deliver_alerts_safely()
    wait_for(lambda: AlertDelivery.get().state == "delivered", timeout=10, what="delivered")
    assert [signed for _, _, signed in receiver.received] == [True]


def test_cli_lists_and_retries_deliveries(live, engine, receiver):
    settings = hooks(live, receiver.url.replace("127.0.0.1", "ops:pw@127.0.0.1"), max_attempts=1)
    receiver.statuses = [500]
    fail_create(live, engine)
    AlertDeliverer(settings).tick()
    cli = live_cli_runner(live)
    listed = cli.invoke(args=["live", "webhooks", "list"], catch_exceptions=False).output
    assert "operation_failed" in listed and "failed" in listed and "HTTP 500" in listed
    port = receiver.url.split(":")[2].split("/")[0]
    assert f" http://127.0.0.1:{port}/…" in listed and "ops" not in listed and "pw@" not in listed, \
        "neither a user, a password nor a path is shown"
    shown = json.loads(cli.invoke(args=["live", "webhooks", "list", "--json"], catch_exceptions=False).output)
    assert [row["state"] for row in shown] == ["failed"]
    assert [(attempt["status"], attempt["error"]) for attempt in shown[0]["history"]] == [(500, "HTTP 500")], \
        "every attempt is shown"
    retried = cli.invoke(args=["live", "webhooks", "retry"], catch_exceptions=False)
    assert retried.exit_code == 0 and "1 delivery queued again" in retried.output
    assert AlertDelivery.get().state == "pending"
    unknown = cli.invoke(args=["live", "webhooks", "retry", "999"])
    assert unknown.exit_code != 0 and "no failed delivery" in unknown.output
    huge = cli.invoke(args=["live", "webhooks", "retry", "99999999999999999999"])
    assert huge.exit_code == 2 and "is not in the range 1<=x<=2147483647" in huge.output, "refused before the database"


@pytest.mark.parametrize("environ, message", [
    ({"LIVE_WEBHOOK_URLS": "ftp://alerts.example.org"}, "LIVE_WEBHOOK_URLS must be comma-separated http(s) URLs"),
    ({"LIVE_WEBHOOK_URLS": "https://ok.example.org,not a url"}, "got 'not a url'"),
    ({"LIVE_WEBHOOK_URLS": "http://x.example.org:port/"}, "LIVE_WEBHOOK_URLS"),
    ({"LIVE_WEBHOOK_URLS": "http://a..b/x,https://ok.example.org/h"}, "got 'http://a..b/…'"),
    ({"LIVE_WEBHOOK_URLS": "https://hooks.example.org/services/T0/B0/TOKEN 2"}, "got 'https://hooks.example.org/…'"),
    ({"LIVE_WEBHOOK_URLS": "https://ops:PASSWORD@-bad.example.org/x"}, "got 'https://-bad.example.org/…'"),
    ({"LIVE_WEBHOOK_URLS": "http://-bad.example.org/"}, "LIVE_WEBHOOK_URLS"),
    ({"LIVE_WEBHOOK_URLS": "http://[::1"}, "LIVE_WEBHOOK_URLS"),
    ({"LIVE_WEBHOOK_URLS": "http://x.example.org:70000/"}, "LIVE_WEBHOOK_URLS"),
    ({"LIVE_WEBHOOK_MAX_ATTEMPTS": "51"}, "LIVE_WEBHOOK_MAX_ATTEMPTS must be at most 50"),
    ({"LIVE_WEBHOOK_URLS": "https://alerts.example.org"}, "LIVE_WEBHOOK_SECRET must be set"),
    ({"LIVE_WEBHOOK_URLS": "https://alerts.example.org", "LIVE_WEBHOOK_SECRET": "short"}, "at least 16"),
    ({"LIVE_WEBHOOK_MAX_ATTEMPTS": "0"}, "LIVE_WEBHOOK_MAX_ATTEMPTS"),
    ({"LIVE_WEBHOOK_TIMEOUT_SECONDS": "9999"}, "LIVE_WEBHOOK_TIMEOUT_SECONDS"),
    ({"LIVE_OPERATION_STUCK_SECONDS": "abc"}, "LIVE_OPERATION_STUCK_SECONDS"),
])
def test_bad_webhook_settings_are_one_line_naming_the_setting(environ, message):
    with pytest.raises(ConfigError) as raised:
        load_settings(environ)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert "TOKEN" not in str(raised.value) and "PASSWORD" not in str(raised.value), "a URL's token or password is hidden"


def test_webhook_settings_are_read():
    settings = load_settings({"LIVE_WEBHOOK_URLS": " https://a.example.org/h , http://b.example.org:8080/x,",
                              "LIVE_WEBHOOK_SECRET": SECRET, "LIVE_WEBHOOK_MAX_ATTEMPTS": "3"})
    assert settings.webhook_urls == ("https://a.example.org/h", "http://b.example.org:8080/x")
    assert (settings.webhook_secret, settings.webhook_max_attempts) == (SECRET, 3)
    assert load_settings({}).webhook_urls == ()
    hosts = load_settings({"LIVE_WEBHOOK_URLS": "http://[::1]:8080/x,http://web_1/h,https://bücher.example/",
                           "LIVE_WEBHOOK_SECRET": SECRET, "LIVE_WEBHOOK_MAX_ATTEMPTS": "50"})
    assert len(hosts.webhook_urls) == 3 and hosts.webhook_max_attempts == 50


def test_the_backoff_is_capped_whatever_the_count_of_attempts():
    assert [alerts.retry_delay(n, 10.0) for n in (1, 2, 3)] == [10.0, 20.0, 40.0]
    assert alerts.retry_delay(1025, 10.0) == alerts.retry_delay(10**9, 0.01) == alerts.MAX_RETRY_SECONDS


def test_finished_deliveries_are_pruned_after_30_days_and_pending_ones_kept(live, engine, receiver):
    settings = hooks(live, receiver.url, "http://127.0.0.1:9/down")
    fail_create(live, engine)
    AlertDeliverer(settings).deliver_due()
    assert sorted(row.state for row in AlertDelivery.select()) == ["delivered", "pending"]
    clock = Clock()
    clock.advance(31 * 24 * 3600)
    assert AlertDeliverer(settings, clock=clock).prune() == 1
    assert [row.state for row in AlertDelivery.select()] == ["pending"]


def test_an_attempts_error_never_holds_the_secret_or_a_password_of_the_url(live):
    settings = hooks(live, f"http://ops:pa55word@127.0.0.1:{free_port()}/{SECRET}")
    record_event("drift_detected", "order x drifted")
    AlertDeliverer(settings).tick()
    row = AlertDelivery.get()
    assert row.last_error and SECRET not in row.last_error and "pa55word" not in row.last_error
    assert SECRET not in json.dumps(row.history) and "pa55word" not in json.dumps(row.history)


def test_a_url_the_http_client_refuses_is_a_failed_attempt_and_the_other_urls_still_get_theirs(live, receiver):
    """``http://a..b/x`` passes a naive check but the HTTP client raises (not a ``requests`` error) when sending:
    recorded as a failed attempt, retried later, and the other URL's alert goes out in the same pass."""
    settings = hooks(live, "http://a..b/x", receiver.url)
    record_event("drift_detected", "order x drifted")
    clock = Clock()
    deliverer = AlertDeliverer(settings, clock=clock)
    assert deliverer.tick() == 2
    bad, good = AlertDelivery.select().order_by(AlertDelivery.id)
    assert (good.state, bad.state, bad.attempts) == ("delivered", "pending", 1)
    assert bad.last_error and "\n" not in bad.last_error and SECRET not in bad.last_error
    assert bad.next_attempt_at > clock.now and len(bad.history) == 1
    clock.advance(11)
    assert deliverer.tick() == 1 and AlertDelivery.get_by_id(bad.id).attempts == 2, "retried, not stuck first"


class Dripping:
    """A TCP server that answers a request's status line, then one header line every 0.2 s, never ending the
    headers: each read gets bytes within any read timeout, so only a total deadline ends the request."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hooks/T0K3N"
        self.closed = threading.Event()
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn):
        with conn:
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                while not self.closed.wait(0.2):
                    conn.sendall(b"X-Slow: 1\r\n")
            except OSError:
                pass

    def close(self):
        self.closed.set()
        self.sock.close()


def test_a_slow_receiver_costs_one_total_timeout_per_pass_and_the_other_urls_are_sent(live, receiver):
    slow = Dripping()
    try:
        settings = hooks(live, slow.url, receiver.url, timeout_seconds=0.5)
        record_event("drift_detected", "order x drifted")
        record_event("drift_detected", "order y drifted")
        clock = Clock()
        first_slow, first_good, second_slow, second_good = AlertDelivery.select().order_by(AlertDelivery.id)
        deliverer = AlertDeliverer(settings, clock=clock)
        assert deliverer.send() == 3, "the slow URL once, then its other row waits for the next pass"
        due_at = second_slow.next_attempt_at
        first_slow, second_slow = AlertDelivery.get_by_id(first_slow.id), AlertDelivery.get_by_id(second_slow.id)
        assert first_slow.attempts == 1 and first_slow.last_error == "DeadlineExceeded: no answer within 0.5s"
        assert (second_slow.attempts, second_slow.next_attempt_at) == (0, due_at), "its schedule is kept"
        assert {AlertDelivery.get_by_id(row.id).state for row in (first_good, second_good)} == {"delivered"}
        assert slow.connections == 1
    finally:
        slow.close()


def test_the_worker_finds_stuck_operations_in_a_job_of_its_own(live):
    clock = Clock()
    settings = hooks(live, "http://127.0.0.1:9/hooks", stuck_seconds=600)
    create(live, run_it=False)
    Operation.update(state="running", attempts=1, started_at=clock.now - dt.timedelta(seconds=601)).execute()
    worker = live.worker()
    worker.alerts = AlertDeliverer(settings, clock=clock)
    worker.find_stuck_safely()
    assert [row.alert for row in AlertDelivery.select()] == ["operation_stuck"]
    assert AlertDelivery.get().attempts == 0, "finding stuck operations sends nothing"


def test_a_failed_operation_is_never_left_without_its_event_and_alert(live, monkeypatch):
    """The operation's ``failed`` state, its ``operation.failed`` event and its delivery rows are one transaction:
    when queueing the alert fails, the operation is not left failed (recovery runs it again)."""
    hooks(live, "http://127.0.0.1:9/hooks")
    order = create(live, run_it=False)
    Operation.update(state="running", attempts=1, started_at=utcnow()).execute()
    operation = last_operation(order)
    worker = live.worker()

    def broken(event):
        raise peewee.OperationalError("the database went away while queueing")

    monkeypatch.setattr(alerts, "queue", broken)
    with pytest.raises(peewee.OperationalError):
        worker._finish_failed(operation, "create failed")
    assert last_operation(order).state == "running"
    assert not Event.select().where(Event.kind == "operation.failed").exists()
    monkeypatch.undo()
    worker._finish_failed(operation, "create failed")
    assert last_operation(order).state == "failed"
    [event] = Event.select().where(Event.kind == "operation.failed")
    assert [row.event_id for row in AlertDelivery.select()] == [event.id]


def test_listings_and_logs_hide_a_urls_path_and_query(live, caplog):
    """Slack- and Discord-style URLs hold their token in the path or query: shown as ``scheme://host/…``."""
    url = f"http://user:pa55@127.0.0.1:{free_port()}/services/T0K3N?token=Q5ECRET"
    settings = hooks(live, url)
    record_event("drift_detected", "order x drifted")
    with caplog.at_level("WARNING", logger="app.alerts"):
        AlertDeliverer(settings).tick()
    [row] = alerts.listing()
    shown = json.dumps(row) + caplog.text
    assert "attempt 1 failed" in caplog.text and row["url"].endswith("/…")
    for hidden in ("T0K3N", "Q5ECRET", "pa55", "user", "services"):
        assert hidden not in shown
    assert alerts.redact_url("https://ops:pw@hooks.example.org:8443/a/b?c=d") == "https://hooks.example.org:8443/…"
    assert alerts.redact_url("https://hooks.example.org/") == "https://hooks.example.org/"
    assert alerts.redact_url("http://[::1") == "<invalid URL>"


def test_the_documented_verify_function_refuses_missing_or_bad_timestamps_and_accepts_a_good_one():
    """The snippet of docs/OPERATIONS.md ("Alerts"), run as a receiver would."""
    text = (Path(__file__).parents[2] / "docs" / "OPERATIONS.md").read_text()
    snippet = text.split("**Verifying a signature**", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(snippet, namespace)  # noqa: S102 (the project's own documentation)
    verify = namespace["verify"]
    body, now = b'{"alert":"drift_detected"}', str(int(time.time()))
    good = {"X-Live-Timestamp": now, "X-Live-Signature": alerts.sign(SECRET, now, body)}
    assert verify(SECRET, good, body) is True
    assert verify(SECRET, {**good, "X-Live-Signature": "sha256=00"}, body) is False
    assert verify(SECRET, {"X-Live-Signature": good["X-Live-Signature"]}, body) is False
    assert verify(SECRET, {**good, "X-Live-Timestamp": "soon"}, body) is False
    assert verify(SECRET, {"X-Live-Timestamp": now}, body) is False
    old = str(int(time.time()) - 3600)
    assert verify(SECRET, {"X-Live-Timestamp": old, "X-Live-Signature": alerts.sign(SECRET, old, body)}, body) is False
