"""Service logs on the in-memory engine (app/orders/logs.py): masking, ``tail`` and ``since``, unknown services, a
stopped container's lines, a stream that breaks midway; the two HTTP routes and ``live orders logs``."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

import app as app_package
from app.apikeys import create_key
from app.errors import Conflict, EngineUnavailable, InvalidRequest, NotFound
from app.models import Order
from app.orders.drift import MASK
from app.orders.logs import BROKEN, MAX_TAIL, parse_since
from app.stacks.engine import LOG_LINE_MAX_CHARS, log_lines
from tests.support.cli_runner import live_cli_runner
from tests.unit.test_drift import container
from tests.unit.test_operations_fake import SERVICES, create, engine, live, run  # noqa: F401 (fixtures)

T0 = 1_800_000_000.0


def write(engine, order: Order, service: str, lines: list[str], start: float = T0) -> None:
    """``lines`` as the service's log, one second apart from ``start``."""
    key = container(engine, order, service).id
    engine.logs[key] = "".join(line + "\n" for line in lines)
    engine.log_times[key] = [start + n for n in range(len(lines))]


def at(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()


@pytest.fixture
def order(live, engine):
    order = create(live)
    secret = order.secrets["DB_PASSWORD"]
    for service in SERVICES:
        write(engine, order, service, [f"{service} line {n}" for n in range(1500)]
              + [f"{service}: login with password {secret} failed"])
    return order


# -- the service ---------------------------------------------------------------------------------------------------
def test_one_service_gives_its_last_lines_with_every_secret_masked(live, order):
    secret = order.secrets["DB_PASSWORD"]
    stream = live.logs.open(order, service="db", tail=3)
    lines = list(stream)
    assert lines == ["db line 1498", "db line 1499", f"db: login with password {MASK} failed"]
    assert stream.services == ["db"] and stream.order_services == SERVICES
    assert all(secret not in line for line in lines)


def test_every_service_one_after_another_each_line_prefixed(live, order):
    lines = list(live.logs.open(order, tail=2))
    assert lines == [line for service in SERVICES for line in (
        f"{service} | {service} line 1499", f"{service} | {service}: login with password {MASK} failed")]


def test_the_customers_password_in_the_secrets_is_masked_too(live, engine, order):
    Order.update(secrets={**order.secrets, "CUSTOMER_PASSWORD": "Tr0ub4dor&3"}).where(Order.id == order.id).execute()
    write(engine, order, "web", ["admin logged in with Tr0ub4dor&3"])
    assert list(live.logs.open(Order.get_by_id(order.id), service="web")) == [f"admin logged in with {MASK}"]


@pytest.mark.parametrize("tail", [-1, MAX_TAIL + 1])
def test_tail_is_0_to_1000(live, order, tail):
    with pytest.raises(InvalidRequest, match="^tail: "):
        live.logs.open(order, tail=tail)


def test_tail_1000_is_the_most_and_0_none(live, order):
    assert len(list(live.logs.open(order, service="app", tail=MAX_TAIL))) == MAX_TAIL
    assert list(live.logs.open(order, service="app", tail=0)) == []


def test_since_keeps_the_lines_written_from_then_on(live, order):
    lines = list(live.logs.open(order, service="web", tail=MAX_TAIL, since=at(T0 + 1497)))
    assert lines == ["web line 1497", "web line 1498", "web line 1499", f"web: login with password {MASK} failed"]


def test_since_reads_iso_times_and_durations():
    now = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
    assert parse_since("2026-12-01T08:00:00Z") == datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
    assert parse_since("2026-12-01T08:00:00") == datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)  # UTC
    assert parse_since("2026-12-01T10:00:00+02:00") == datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
    assert parse_since("15m", now) == now - timedelta(minutes=15)
    assert parse_since("2d", now) == now - timedelta(days=2)
    assert parse_since(None) is None and parse_since("") is None
    for bad in ("yesterday", "15 minutes", "-5m", "2026-13-01"):
        with pytest.raises(InvalidRequest, match="^since: "):
            parse_since(bad, now)


def test_an_unknown_service_is_not_found_and_names_the_services(live, order):
    with pytest.raises(NotFound, match="no service 'nope'; its services: app, db, web") as raised:
        live.logs.open(order, service="nope")
    assert raised.value.public == str(raised.value)  # no internals in it: WHMCS may show it


def test_a_stopped_containers_lines_are_read(live, engine, order):
    live.orders.suspend(order, requested_by="test")
    run(live)
    assert container(engine, order, "db").state == "exited"
    assert list(live.logs.open(order, service="db", tail=1)) == [f"db: login with password {MASK} failed"]


def test_an_order_without_containers_is_a_conflict(live, engine):
    order = create(live, run_it=False)
    with pytest.raises(Conflict, match="has no containers"):
        live.logs.open(order)


def test_the_engine_down_is_an_error_of_the_call(live, engine, order):
    engine.reachable = False
    with pytest.raises(EngineUnavailable):
        live.logs.open(order, service="db")


def test_a_stream_that_breaks_ends_with_a_line_saying_so_in_public_words_and_the_next_service_is_read(
        live, engine, order):
    engine.stream_failures[("stream_logs", "app")] = EngineUnavailable("socket to 10.0.0.7 reset")
    lines = list(live.logs.open(order, tail=1))
    broken = "app | " + BROKEN.format(reason=EngineUnavailable.default_public)
    assert lines[:2] == [f"app | app: login with password {MASK} failed", broken]
    assert lines[2:] == [f"{service} | {service}: login with password {MASK} failed" for service in ("db", "web")]
    engine.stream_failures[("stream_logs", "app")] = EngineUnavailable("socket to 10.0.0.7 reset")
    private = list(live.logs.open(order, service="app", tail=1, include_private=True))
    assert private[-1] == BROKEN.format(reason="socket to 10.0.0.7 reset")


def test_followed_services_are_merged_as_their_lines_come(live, order):
    stream = live.logs.open(order, tail=1, follow=True)
    lines = sorted(stream)
    stream.close()
    assert lines == sorted(f"{service} | {service}: login with password {MASK} failed" for service in SERVICES)


def test_log_lines_splits_frames_into_lines_whatever_their_boundaries():
    frames = [b"one\ntw", b"o\r\n\nd\xc3", b"\xa9j\xff\n", b"x" * (LOG_LINE_MAX_CHARS + 5), b"\nlast"]
    assert list(log_lines(frames)) == ["one", "two", "", "d\u00e9j\ufffd", "x" * LOG_LINE_MAX_CHARS, "x" * 5, "last"]


# -- HTTP and CLI ----------------------------------------------------------------------------------------------------
@pytest.fixture
def client(live, monkeypatch):
    monkeypatch.setattr(app_package, "bootstrap", lambda settings: live)
    flask_app = app_package.create_app(live.settings)
    tokens = {scope: create_key(f"logs-{scope}", scope)[1] for scope in ("whmcs", "read")}
    test_client = flask_app.test_client()

    def get(path: str, scope: str = "read", **query):
        return test_client.get(path, query_string=query, headers={"Authorization": f"Bearer {tokens[scope]}"})
    return get


def test_the_api_streams_plain_text_with_the_services_in_headers(client, order):
    answer = client(f"/api/v1/orders/{order.id}/logs", tail=2, service="db")
    assert answer.status_code == 200 and answer.mimetype == "text/plain"
    assert answer.is_streamed
    assert answer.get_data(as_text=True) == f"db line 1499\ndb: login with password {MASK} failed\n"
    assert answer.headers["X-Live-Services"] == "db" and answer.headers["X-Live-Order-Services"] == "app,db,web"


def test_the_whmcs_route_gives_the_last_100_lines_of_a_service_by_default(client, order):
    answer = client(f"/whmcs/v1/services/{order.whmcs_service_id}/logs", scope="whmcs", service="web")
    lines = answer.get_data(as_text=True).splitlines()
    assert answer.status_code == 200 and len(lines) == 100 and lines[-1].endswith(f"password {MASK} failed")
    assert client(f"/whmcs/v1/services/{order.whmcs_service_id}/logs", scope="read").status_code == 403


@pytest.mark.parametrize("query, status, words", [
    ({"tail": 1001}, 422, "tail"), ({"tail": "x"}, 422, "tail"), ({"since": "soon"}, 422, "since"),
    ({"service": "nope"}, 404, "its services: app, db, web"),
])
def test_bad_parameters_are_4xx_naming_the_parameter(client, order, query, status, words):
    for path, scope in ((f"/api/v1/orders/{order.id}/logs", "read"),
                        (f"/whmcs/v1/services/{order.whmcs_service_id}/logs", "whmcs")):
        answer = client(path, scope=scope, **query)
        assert answer.status_code == status and words in answer.json["error"]["message"], answer.json


def test_unknown_orders_and_services_are_404(client, order):
    assert client("/api/v1/orders/999999/logs").status_code == 404
    assert client("/whmcs/v1/services/999999/logs", scope="whmcs").json["error"]["code"] == "order_not_found"


def test_the_engine_down_is_a_503_without_internals_for_whmcs(client, engine, order):
    engine.reachable = False
    answer = client(f"/whmcs/v1/services/{order.whmcs_service_id}/logs", scope="whmcs")
    assert answer.status_code == 503 and answer.json["error"]["message"] == EngineUnavailable.default_public


def test_the_cli_prints_the_lines(live, order):
    runner = live_cli_runner(live)
    result = runner.invoke(args=["live", "orders", "logs", order.instance, "--service", "app", "--tail", "2"],
                           catch_exceptions=False)
    assert result.exit_code == 0 and result.output == f"app line 1499\napp: login with password {MASK} failed\n"
    result = runner.invoke(args=["live", "orders", "logs", order.instance, "--service", "nope"])
    assert result.exit_code == 1 and "its services: app, db, web" in result.output
    result = runner.invoke(args=["live", "orders", "logs", order.instance, "--tail", "5000"])
    assert result.exit_code == 1 and "tail: 5000 is not between 0 and 1000" in result.output
