"""Service logs on the in-memory engine (app/orders/logs.py): masking, ``tail`` and ``since``, unknown services, a
stopped container's lines, a stream that breaks midway; the two HTTP routes and ``live orders logs``."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

import app as app_package
from app.apikeys import create_key
from app.config import ConfigError, load_settings
from app.errors import Conflict, EngineUnavailable, InvalidRequest, NotFound
from app.models import Order
from app.orders.drift import MASK
from app.orders.logs import BROKEN, CUT, MAX_TAIL, OrderLogs, masked, parse_since
from app.stacks.engine import LOG_LINE_MAX_CHARS, LinePiece, log_lines
from app.stacks.swarm_engine import SwarmEngine
from tests.support.cli_runner import live_cli_runner
from tests.unit.test_drift import container
from tests.unit.test_operations_fake import SERVICES, create, engine, live, run  # noqa: F401 (fixtures)

T0 = 1_700_000_000.0  # 2023-11-14: a since must not be in the future


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


def test_any_value_stored_in_the_secrets_is_masked_as_the_customers_password_will_be(live, engine, order):
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


@pytest.mark.parametrize("text, words", [
    ("1000000d", "reaches back to 1970-01-01 or earlier"), ("999999999d", "reaches back to 1970-01-01 or earlier"),
    ("1970-01-01T00:00:00Z", "is not after 1970-01-01"), ("1969-12-31T23:59:59Z", "is not after 1970-01-01"),
    ("0001-01-01T00:00:00+01:00", "is not an ISO 8601 time"), ("2026-12-01T12:00:01Z", "is in the future"),
    ("9999-12-31T23:59:59-01:00", "is not an ISO 8601 time"),
])
def test_since_is_after_1970_and_not_in_the_future(text, words):
    now = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
    with pytest.raises(InvalidRequest, match=f"^since: .*{words}") as raised:
        parse_since(text, now)
    assert raised.value.public == str(raised.value)
    assert parse_since("1970-01-01T00:00:01Z", now) == datetime(1970, 1, 1, 0, 0, 1, tzinfo=timezone.utc)
    assert parse_since("2026-12-01T12:00:00Z", now) == now


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


def test_a_read_that_is_not_over_by_its_deadline_is_closed_and_ends_with_a_line_saying_so(live, engine, order):
    engine.hung_logs = {"db"}  # the engine sends db's lines, then nothing, and never ends the answer
    logs = OrderLogs(engine, live.settings.deployment, timeout_seconds=0.2)
    lines = list(logs.open(order, tail=1))
    assert lines == [f"app | app: login with password {MASK} failed", f"db | db: login with password {MASK} failed",
                     "db | " + CUT.format(seconds=0.2)]  # web is not read: the deadline is the whole read's
    assert engine.open_log_streams == []
    assert list(logs.open(order, service="web", tail=1)) == [f"web: login with password {MASK} failed"]


def test_the_deadline_reaches_the_http_answer(client, live, engine, order):
    engine.hung_logs = {"web"}
    live.logs.timeout_seconds = 0.2
    answer = client(f"/whmcs/v1/services/{order.whmcs_service_id}/logs", scope="whmcs", service="web", tail=1)
    assert answer.status_code == 200
    assert answer.get_data(as_text=True).splitlines() == [f"web: login with password {MASK} failed",
                                                          CUT.format(seconds=0.2)]
    assert engine.open_log_streams == []


@pytest.mark.parametrize("before", [LOG_LINE_MAX_CHARS - n for n in (1, 5, 11)] + [LOG_LINE_MAX_CHARS * 2 - 6])
def test_a_secret_across_the_cut_of_a_long_line_is_masked(live, engine, order, before):
    secret = order.secrets["DB_PASSWORD"]
    assert len(secret) > 6
    write(engine, order, "app", ["x" * before + secret + " and after", "next line"])
    pieces = list(live.logs.open(order, service="app", tail=2))
    assert all(secret not in piece for piece in pieces)
    assert "".join(pieces[:-1]) == "x" * before + MASK + " and after" and pieces[-1] == "next line"
    assert all(len(piece) <= LOG_LINE_MAX_CHARS for piece in pieces)


def test_masked_holds_back_what_may_begin_a_secret_and_passes_short_lines_as_they_are():
    secrets = {"A": "abcdefgh", "B": "zz", "C": None}  # "zz" is shorter than anything masked
    pieces = [LinePiece("1234abcd"), LinePiece("efgh5678ab"), "cdefgh", "plain zz line"]
    # the last 7 characters of a piece (the longest secret's length - 1) wait for the next; so does a secret that
    # crosses the cut ("abcdefgh" from "234abcdefgh5678ab": cut at 10, moved back to 3)
    assert list(masked(iter(pieces), secrets)) == ["1", "234", f"{MASK}5678{MASK}", "plain zz line"]
    assert list(masked(iter([LinePiece("abc")]), secrets)) == ["abc"]  # a stream that ends in a piece: flushed


def test_closing_followed_services_closes_their_engine_streams_and_ends_their_threads(live, engine, order):
    engine.hung_logs = set(SERVICES)  # followed: each stream waits for new lines
    stream = live.logs.open(order, tail=1, follow=True)
    lines = sorted(next(stream) for _ in SERVICES)
    assert lines == sorted(f"{service} | {service}: login with password {MASK} failed" for service in SERVICES)
    assert len(engine.open_log_streams) == len(SERVICES)
    stream.close()  # what the CLI does on Ctrl-C
    assert engine.open_log_streams == []
    assert [t.name for t in threading.enumerate() if t.name.startswith("logs-")] == []


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
    ({"since": "1000000d"}, 422, "since: '1000000d' reaches back"), ({"since": "1970-01-01T00:00:00Z"}, 422, "since"),
    ({"since": "2999-01-01T00:00:00Z"}, 422, "since: '2999-01-01T00:00:00Z' is in the future"),
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


@pytest.mark.parametrize("reference", ["99999999999999999999", "service:99999999999999999999", "2147483648", "²",
                                       "service:²"])
def test_an_order_reference_no_id_can_be_is_not_found_not_a_traceback(live, order, reference):
    """A number above the database's 32-bit ids (SQLite: OverflowError; PostgreSQL: integer out of range) and a digit
    int() does not read ('²') are references to no order, as the CLI's every ORDER argument says."""
    result = live_cli_runner(live).invoke(args=["live", "orders", "logs", reference])
    assert (result.exit_code, result.output) == (1, f"Error: no order {reference!r}\n")


# -- TTY services in a swarm (app/stacks/swarm_engine.py) -----------------------------------------------------------
class TtyManagerApi:
    """GET /services/{id} and GET /services/{id}/logs as docker-py's APIClient answers them: a service with
    ``tty: true`` has ``Spec.TaskTemplate.ContainerSpec.TTY`` and its logs are raw text; without, frames."""

    def __init__(self, tty: bool | None):
        spec = {} if tty is None else {"TTY": tty}
        self.spec = {"Spec": {"TaskTemplate": {"ContainerSpec": spec}}}
        self.readers: list[bool] = []  # the is_tty of every log read

    def inspect_service(self, service_id):
        return self.spec

    def _url(self, path, *args):
        return path.format(*args)

    def _get(self, url, params, stream):
        return SimpleNamespace(raw=SimpleNamespace(closed=True))

    def _raise_for_status(self, response):
        pass

    def _get_result_tty(self, stream, response, is_tty):
        self.readers.append(is_tty)
        return iter([b"raw text line\n" if is_tty else b"a frame's payload\n"])

    def service_logs(self, service_id, is_tty=None, **params):
        self.readers.append(is_tty)
        return iter([b"raw text line\n" if is_tty else b"a frame's payload\n"])


@pytest.mark.parametrize("tty", [True, False, None])
def test_swarm_log_reads_follow_the_services_tty(monkeypatch, tty):
    api = TtyManagerApi(tty)
    monkeypatch.setattr(SwarmEngine, "api", property(lambda self: api))
    engine = SwarmEngine("unix:///nonexistent.sock")
    expected = "raw text line" if tty else "a frame's payload"
    assert list(engine.stream_logs("s1", tail=5)) == [expected]
    assert engine.container_logs("s1", tail=5) == expected + "\n"
    assert api.readers == [bool(tty), bool(tty)]


@pytest.mark.parametrize("value, words", [("0.5", "at least 1"), ("3601", "at most 3600"), ("soon", "a number")])
def test_the_logs_timeout_setting_is_checked(value, words):
    with pytest.raises(ConfigError, match=f"LIVE_LOGS_TIMEOUT_SECONDS must be {words}"):
        load_settings({"LIVE_LOGS_TIMEOUT_SECONDS": value})
