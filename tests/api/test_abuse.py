"""Hostile and heavy clients never take the service down (issue 9, item 11).

Against real gunicorn (config/gunicorn.conf.py) on loopback: slow bodies without a key,
deeply nested JSON, many waiting lifecycle calls, big and replayed GitLab webhooks. During
each abuse a probe keeps asking ``/healthz`` (a new connection each time, 5 s timeout) and
every answer must be a 200. The rules themselves (JSON loading, body limits, wait slots,
webhook checks) are also checked with Flask's test client.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import io
import itertools
import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from app import create_app
from app.config import load_settings
from app.db import connect_database, upgrade
from app.errors import ConfigError
from app.models import CatalogSync, Operation, WebhookDelivery, WorkerHeartbeat, utcnow
from app.web.input_guard import MAX_JSON_DEPTH
from app.web.wait_slots import WaitSlots
from tests.api.conftest import client_payload
from tests.conftest import write_product
from tests.support.hostile import HealthProbe, SlowBody, attack, server_errors
from tests.support.live_service import MINI_COMPOSE, MINI_MANIFEST, Service

ON_POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
CREATE = "/whmcs/v1/services/{}/create"
DEEP = "[" * 10_000 + "]" * 10_000
SECRET = "hook-secret"
PROJECT = "geocat/config-repo"


@pytest.fixture
def service(settings, config_repo, tmp_path):
    """The real service, not started yet, without the operation worker: operations stay pending."""
    write_product(config_repo, "mini", MINI_MANIFEST, MINI_COMPOSE)
    running = Service(settings, tmp_path)
    yield running
    running.stop()


def gitlab_push(size: int = 0, project: str = PROJECT, **extra) -> dict:
    """A GitLab push event on main of at least ``size`` bytes: 20 commits with long messages and changed files."""
    commits = [{"id": f"{n:040x}", "message": "", "timestamp": "2026-01-01T00:00:00Z",
                "author": {"name": "Ada", "email": "ada@example.org"}, "added": [], "removed": [],
                "modified": [f"products/busybox-demo/file-{n}-{i}.yml" for i in range(10)]} for n in range(20)]
    event = {"object_kind": "push", "event_name": "push", "ref": "refs/heads/main", "before": "0" * 40,
             "after": "a" * 40, "checkout_sha": "a" * 40, "project_id": 42,
             "project": {"id": 42, "name": "config-repo", "path_with_namespace": project},
             "commits": commits, "total_commits_count": 20, **extra}
    missing = size - len(json.dumps(event))
    if missing > 0:
        sentence = "Describe why the products change. "
        for commit in commits:
            commit["message"] = sentence * (missing // len(commits) // len(sentence) + 1)
    return event


def hook_headers(delivery: str | None = None, token: str = SECRET, **extra) -> dict[str, str]:
    """The headers of a GitLab push delivery, with ``delivery`` as its X-Gitlab-Event-UUID when given."""
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": token, **extra}
    if delivery:
        headers["X-Gitlab-Event-UUID"] = delivery
    return headers


# -- against real gunicorn -------------------------------------------------------------------------------------


@ON_POSTGRESQL
def test_slow_bodies_without_a_key_hold_no_thread(service):
    # The capacity (2 workers x 8 threads): fewer threads than slow clients.
    service.env["GUNICORN_THREADS"] = "8"
    service.start(worker=False)
    with HealthProbe(service.url) as probe:
        # Twenty clients for 8 s, each one connection after another: a JSON POST's head, then a byte a second.
        clients = attack(8, 20, lambda: SlowBody(service.port, CREATE.format(7)).run(seconds=6))
    probe.assert_healthy(at_least=5)
    assert clients and {client.status for client in clients} == {401}
    # Answered before the body ended, and the server closed the connection instead of reading the rest.
    assert all(client.sent < client.declared for client in clients)
    assert all(client.closed and client.header("Connection") == "close" for client in clients)

    # Every answer given without reading the body closes the connection the same way.
    key = {"Authorization": f"Bearer {service.token}"}
    early = [SlowBody(service.port, "/whmcs/v1/nothing-here", key),                        # 404
             SlowBody(service.port, CREATE.format(7), key, declared=100_000),              # 413: over 64 KiB
             SlowBody(service.port, CREATE.format(7), {"Authorization": "Bearer wrong"}),  # 401
             SlowBody(service.port, "/hooks/gitlab", {"X-Gitlab-Token": "x"})]             # 404: not configured
    with ThreadPoolExecutor(max_workers=len(early)) as pool:
        answered = list(pool.map(lambda client: client.run(seconds=6), early))
    assert [client.status for client in answered] == [404, 413, 401, 404]
    assert all(client.closed and client.header("Connection") == "close" for client in answered)
    assert server_errors(service) == []


@ON_POSTGRESQL
def test_clients_that_never_close_hold_no_thread(service):
    """gunicorn closes a connection on its main thread, lingering until the client closes: these never do."""
    service.env["GUNICORN_THREADS"] = "8"
    service.start(worker=False)
    with HealthProbe(service.url) as probe:
        # A complete request asking to close, then one junk byte a second on the connection, never closing it.
        clients = attack(6, 20, lambda: SlowBody(service.port, "/healthz", {"Connection": "close"}, declared=None,
                                                 method="GET").run(seconds=6))
    probe.assert_healthy(at_least=5)
    assert clients and {client.status for client in clients} == {200}
    assert all(client.closed and client.header("Connection") == "close" for client in clients)
    assert server_errors(service) == []


@ON_POSTGRESQL
def test_deeply_nested_json_is_a_400_on_every_route(service):
    service.start(worker=False)
    key = {"Authorization": f"Bearer {service.token}", "Content-Type": "application/json"}
    reading = [CREATE.format(1), "/whmcs/v1/services/1/suspend", "/whmcs/v1/services/1/change-package",
               "/api/v1/orders/1/upgrade", "/api/v1/products/busybox-demo/upgrade"]

    def post(path: str, headers: dict) -> int:
        return requests.post(f"{service.url}{path}", data=DEEP, headers=headers, timeout=30).status_code

    paths = itertools.cycle(reading)  # next() on it is one step under the GIL: safe from several threads

    def one() -> tuple[str, int]:
        path = next(paths)
        return path, post(path, key)

    with HealthProbe(service.url) as probe:
        answers = attack(4, 8, one)
    probe.assert_healthy(at_least=4)
    assert {status for _, status in answers} == {400}
    assert {path for path, _ in answers} == set(reading)
    error = requests.post(f"{service.url}{CREATE.format(1)}", data=DEEP, headers=key, timeout=30).json()["error"]
    assert error == {"code": "bad_request", "message": f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels",
                     "details": {}}
    # Without a key the body is never parsed; routes that take no body ignore it.
    assert post(CREATE.format(1), {"Content-Type": "application/json"}) == 401
    for public in ("/healthz", "/metrics"):
        assert requests.get(f"{service.url}{public}", data=DEEP, timeout=30,
                            headers={"Content-Type": "application/json"}).status_code == 200
    assert server_errors(service) == []


@ON_POSTGRESQL
def test_waiting_calls_past_the_bound_answer_at_once(service, settings):
    # One gunicorn worker, so that the bound (4 waiting calls per process) is the exact count.
    service.env.update({"GUNICORN_WORKERS": "1", "LIVE_WAIT_SLOTS": "4"})
    service.start(worker=False)
    service.flask("products", "sync")
    body = {"client": {"id": 9, "email": "c9@example.org"}, "product": "mini", "plan": "basic", "username": "waits"}
    first = service.post(CREATE.format(900), {**body, "wait": 0})
    assert first.status_code == 202, first.text
    operation = first.json()["operation"]["id"]
    # A worker that is alive but never takes the operation (its heartbeat, no process): calls wait only while
    # a worker is alive. Polling every 60 s, its beat stays fresh for 10 minutes (app/orders/heartbeat.py).
    db = connect_database(settings.database_url)
    try:
        WorkerHeartbeat.create(worker="idle:1", started_at=utcnow(), beat_at=utcnow(), poll_seconds=60.0, concurrency=1)
    finally:
        db.close()

    def end_operation() -> None:
        db = connect_database(settings.database_url)
        try:
            Operation.update(state="failed", error="stopped by the test").where(Operation.id == operation).execute()
        finally:
            db.close()

    with ThreadPoolExecutor(max_workers=20) as pool:
        try:
            with HealthProbe(service.url, interval=0.2) as probe:
                calls = [pool.submit(service.post, CREATE.format(900), {**body, "wait": 120}) for _ in range(20)]
                deadline = time.monotonic() + 60
                while sum(call.done() for call in calls) < 16 and time.monotonic() < deadline:
                    time.sleep(0.1)
                early = [call for call in calls if call.done()]
                # Four calls now wait on the pending operation; the other calls and /healthz have threads.
                info = service.get("/whmcs/v1/services/900")
                while len(probe.answers) < 5 and time.monotonic() < deadline:
                    time.sleep(0.1)
            still_waiting = sum(not call.done() for call in calls)
        finally:
            end_operation()  # the waiting calls see the operation end and answer
    probe.assert_healthy(at_least=5)
    assert info.status_code == 200 and info.json()["operation"]["state"] == "pending"
    at_once = [call.result() for call in early]
    assert len(at_once) == 16 and still_waiting == 4, f"{len(at_once)} of 20 calls answered while pending"
    assert {(r.status_code, r.json()["result"], r.json()["operation"]["id"]) for r in at_once} == \
        {(202, "queued", operation)}
    assert all("not waited" in r.json()["message"] for r in at_once)
    waited = [call.result() for call in calls if call not in early]
    assert {(r.status_code, r.json()["result"]) for r in waited} == {(200, "failed")}
    assert server_errors(service) == []


@ON_POSTGRESQL
def test_gitlab_webhook_takes_big_pushes_and_ignores_other_projects_and_replays(service):
    service.env.update({"LIVE_GITLAB_URL": "http://127.0.0.1:9", "LIVE_GITLAB_PROJECT": PROJECT,
                        "LIVE_GITLAB_WEBHOOK_SECRET": SECRET})
    service.start(worker=False)
    url = f"{service.url}/hooks/gitlab"
    push = gitlab_push(71_000)
    assert len(json.dumps(push)) >= 71_000

    delivery = str(uuid.uuid4())
    accepted = requests.post(url, json=push, headers=hook_headers(delivery), timeout=30)
    assert accepted.status_code == 202 and accepted.json()["sync"] == "requested", accepted.text
    replayed = requests.post(url, json=push, headers=hook_headers(delivery), timeout=30)
    assert replayed.status_code == 200 and replayed.json() == {"sync": "ignored", "reason": "already delivered"}

    other = requests.post(url, json=gitlab_push(project="someone/else"), headers=hook_headers(str(uuid.uuid4())),
                          timeout=30)
    assert other.status_code == 200 and other.json()["sync"] == "ignored"
    assert other.json()["reason"] == f"the event is for project someone/else, not {PROJECT}"
    same_in_capitals = requests.post(url, json=gitlab_push(project=PROJECT.upper()),
                                     headers=hook_headers(str(uuid.uuid4())), timeout=30)
    assert same_in_capitals.status_code == 202

    # The route's own limit (2 MiB) applies, and only after the token was checked.
    assert requests.post(url, json=push, headers=hook_headers(token="wrong"), timeout=30).status_code == 401
    huge = requests.post(url, json=gitlab_push(3_000_000), headers=hook_headers(str(uuid.uuid4())), timeout=30)
    assert huge.status_code == 413 and huge.json()["error"]["details"] == {"max_bytes": 2 * 1024 * 1024}
    deep = requests.post(url, data=DEEP, headers={**hook_headers(), "Content-Type": "application/json"}, timeout=30)
    assert deep.status_code == 400
    assert server_errors(service) == []


# -- the rules, with Flask's test client -----------------------------------------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@ON_SQLITE
def test_json_bodies_are_loaded_by_one_set_of_rules(api, caplog):
    caplog.set_level(logging.INFO)

    def send(data, **kwargs):
        return api.call("POST", CREATE.format(1), data=data, headers={"Content-Type": "application/json"}, **kwargs)

    def error(response, status: int) -> dict:
        assert response.status_code == status, response.get_data(as_text=True)
        return response.json["error"]

    assert "not valid JSON" in error(send("{not json"), 400)["message"]
    assert error(send(DEEP), 400)["message"] == f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels"
    assert error(send(nested(MAX_JSON_DEPTH + 1)), 400)["message"].startswith("the JSON body is nested deeper")
    # As deep as allowed: the JSON rules pass it on, and the schema refuses a list.
    assert error(send(nested(MAX_JSON_DEPTH)), 422)["code"] == "validation_error"
    assert "NaN is not a JSON number" in error(send('{"wait": NaN}'), 400)["message"]
    assert "Infinity" in error(send('{"wait": -Infinity}'), 400)["message"]
    assert error(send(b'{"plan": "gro\xdf"}'), 400)["message"] == "the body is not valid JSON: it is not UTF-8 text"
    assert "not valid JSON" in error(send('{"wait": ' + "9" * 5000 + "}"), 400)["message"]

    payload = client_payload()
    payload["client"]["firstname"] = "Ada\x00"
    nul = error(api.post(CREATE.format(1), payload), 422)
    assert nul["details"] == {"json": {"client.firstname": ["contains a NUL character"]}}
    assert nul["message"] == "the request is invalid: client.firstname: contains a NUL character"
    in_key = error(api.post(CREATE.format(1), {**client_payload(), "a\x00b": [1, "x"]}), 422)
    assert in_key["details"] == {"json": {"a\\u0000b": ["contains a NUL character"]}}
    in_list = error(api.post("/api/v1/orders/1/upgrade", {"revision": ["x", "y\x00"]}, scope="admin"), 422)
    assert in_list["details"] == {"json": {"revision.1": ["contains a NUL character"]}}

    # None of them is a server error, and none leaves a traceback.
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR or record.exc_info]


class UnreadableBody(io.BytesIO):
    """A request body of ``length`` bytes that fails the request (a 500) if anyone reads it."""

    def __init__(self, length: int):
        super().__init__(b"[" * length)

    def read(self, *args):
        raise AssertionError("the body was read")

    read1 = readline = readlines = readinto = read


@ON_SQLITE
def test_bodies_are_read_only_after_authentication(api):
    def post(path: str, scope: str | None, length: int = 20):
        return api.call("POST", path, scope, input_stream=UnreadableBody(length), content_type="application/json")

    assert post(CREATE.format(1), None).status_code == 401
    assert post(CREATE.format(1), "read").status_code == 403
    assert post("/whmcs/v1/nothing-here", "whmcs").status_code == 404
    too_big = post(CREATE.format(1), None, length=64 * 1024 + 1)
    assert too_big.status_code == 413 and too_big.json["error"]["details"] == {"max_bytes": 64 * 1024}
    assert post("/hooks/gitlab", None).status_code == 404  # not configured
    # The control: with the right key the view reads the body, which this one refuses.
    assert post(CREATE.format(1), "whmcs").status_code == 500


@ON_SQLITE
def test_body_limits_are_per_route(api, settings):
    big = {**client_payload(), "username": "x" * 70_000}
    assert api.post(CREATE.format(1), big).status_code == 413
    webhook = hook_app(settings)
    push = gitlab_push(200_000)
    accepted = webhook.post("/hooks/gitlab", json=push, headers=hook_headers(str(uuid.uuid4())))
    assert accepted.status_code == 202, accepted.get_data(as_text=True)


def hook_app(settings, project: str = PROJECT):
    app = create_app(dataclasses.replace(settings, gitlab_url="http://127.0.0.1:9", gitlab_project=project,
                                         gitlab_webhook_secret=SECRET))
    upgrade(app.extensions["live"].db)
    return app.test_client()


@ON_SQLITE
def test_webhook_ignores_other_projects_the_current_commit_and_replays(settings):
    by_id = hook_app(settings, project="42")
    assert by_id.post("/hooks/gitlab", json=gitlab_push(), headers=hook_headers()).status_code == 202
    other = by_id.post("/hooks/gitlab", json={**gitlab_push(), "project_id": 7, "project": {"id": 7}},
                       headers=hook_headers())
    assert other.status_code == 200 and other.json["reason"] == "the event is for project 7, not 42"

    client = hook_app(settings)
    anonymous = {key: value for key, value in gitlab_push().items() if key not in ("project", "project_id")}
    assert client.post("/hooks/gitlab", json=anonymous, headers=hook_headers()).json == {
        "sync": "ignored", "reason": "the event names no project path"}

    state = CatalogSync.get_or_none() or CatalogSync.create()
    state.commit = "b" * 40
    state.save()
    current = client.post("/hooks/gitlab", json=gitlab_push(after="b" * 40, checkout_sha="B" * 40),
                          headers=hook_headers())
    assert current.json == {"sync": "ignored", "reason": f"the catalog is already at commit {'b' * 12}"}

    # GitLab 17.4+ repeats Idempotency-Key on retries; X-Gitlab-Event-UUID names the event.
    retry = {"Idempotency-Key": str(uuid.uuid4())}
    first = client.post("/hooks/gitlab", json=gitlab_push(), headers=hook_headers(str(uuid.uuid4()), **retry))
    again = client.post("/hooks/gitlab", json=gitlab_push(), headers=hook_headers(str(uuid.uuid4()), **retry))
    assert (first.status_code, again.status_code, again.json["reason"]) == (202, 200, "already delivered")
    bad_id = client.post("/hooks/gitlab", json=gitlab_push(), headers=hook_headers("not a uuid; drop table"))
    assert bad_id.status_code == 422 and "X-Gitlab-Event-UUID" in bad_id.json["error"]["message"]

    # Deliveries are kept a week: recording a new one deletes the older ones.
    WebhookDelivery.create(delivery_id="event:old", received_at=dt.datetime(2020, 1, 1))
    assert client.post("/hooks/gitlab", json=gitlab_push(), headers=hook_headers(str(uuid.uuid4()))).status_code == 202
    assert WebhookDelivery.get_or_none(WebhookDelivery.delivery_id == "event:old") is None


def test_wait_slots_bound_concurrent_waits():
    slots = WaitSlots(2)
    with slots.slot() as first, slots.slot() as second, slots.slot() as third:
        assert (first, second, third) == (True, True, False)
    with slots.slot() as again:
        assert again, "slots come back when the waits end"
    with WaitSlots(0).slot() as none:
        assert none is False
    with pytest.raises(ValueError):
        WaitSlots(-1)


def test_wait_slots_setting_stays_below_the_gunicorn_threads(tmp_path):
    base = {"LIVE_DATABASE_URL": f"sqlite:///{tmp_path / 'live.db'}"}
    assert load_settings(base).wait_slots == 4
    assert load_settings({**base, "LIVE_WAIT_SLOTS": "0"}).wait_slots == 0
    assert load_settings({**base, "LIVE_WAIT_SLOTS": "12", "GUNICORN_THREADS": "32"}).wait_slots == 12
    with pytest.raises(ConfigError, match=r"LIVE_WAIT_SLOTS must be below GUNICORN_THREADS \(16\)"):
        load_settings({**base, "LIVE_WAIT_SLOTS": "16"})
    with pytest.raises(ConfigError, match="LIVE_WAIT_SLOTS must be at least 0"):
        load_settings({**base, "LIVE_WAIT_SLOTS": "-1"})
    with pytest.raises(ConfigError, match="LIVE_WAIT_SLOTS must be an integer"):
        load_settings({**base, "LIVE_WAIT_SLOTS": "many"})


@ON_SQLITE
def test_a_webhook_event_without_a_ref_is_refused_whatever_project_it_names(settings):
    """Not a push or tag event at all: 422, also when it names no project (QA finding; docs/API.md)."""
    client = hook_app(settings)
    for payload in ({"object_kind": "push"}, {"ref": None, "project": {"path_with_namespace": PROJECT}},
                    {"ref": 5, "project_id": 99}):
        answer = client.post("/hooks/gitlab", json=payload, headers=hook_headers())
        assert answer.status_code == 422 and answer.json["error"]["message"] == "the event has no ref", payload
