"""Request bodies that broke the rules after item 11 (QA findings): chunked bodies past the limit, lone
surrogates, numbers too long for Python, bodies that are not UTF-8."""
from __future__ import annotations

import json
import socket

import pytest

from tests.api.conftest import client_payload
from tests.conftest import write_product
from tests.support.live_service import MINI_COMPOSE, MINI_MANIFEST, Service


def chunked(body: bytes, size: int = 4096) -> bytes:
    pieces = [body[i:i + size] for i in range(0, len(body), size)]
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces) + b"0\r\n\r\n"


def raw_post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    """POST ``body`` with Transfer-Encoding: chunked; returns the status and the JSON answer."""
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Transfer-Encoding: chunked", "Connection: close",
            "Content-Type: application/json"] + [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        try:
            conn.sendall(chunked(body))
        except OSError:
            pass  # the server may answer and close before the whole body is sent
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head_part, _, rest = answer.partition(b"\r\n\r\n")
    status = int(head_part.split()[1])
    if b"transfer-encoding: chunked" in head_part.lower():
        body_bytes, rest = b"", rest
        while rest:
            length, _, rest = rest.partition(b"\r\n")
            size = int(length, 16)
            if size == 0:
                break
            body_bytes, rest = body_bytes + rest[:size], rest[size + 2:]
        rest = body_bytes
    return status, json.loads(rest) if rest.strip() else {}


@pytest.fixture
def service(settings, config_repo, tmp_path):
    write_product(config_repo, "mini", MINI_MANIFEST, MINI_COMPOSE)
    running = Service(settings, tmp_path)
    running.start(worker=False)
    yield running
    running.stop()


def test_a_chunked_body_past_the_routes_limit_is_a_413_not_cut_and_parsed(service):
    auth = {"Authorization": f"Bearer {service.token}"}
    padded = b'{"wait": 0}' + b" " * 70_000 + b"GARBAGE"
    status, answer = raw_post(service.port, "/whmcs/v1/services/1/terminate", padded, auth)
    assert status == 413 and answer["error"]["code"] == "payload_too_large", answer
    status, answer = raw_post(service.port, "/whmcs/v1/services/1/terminate", b'{"wait": 0}', auth)
    assert status == 200 and answer["result"] == "unchanged", "a small chunked body is read as usual"


def test_lone_surrogates_are_a_422_naming_the_field_never_a_500(api):
    body = client_payload(username="sur\ud800x")
    body["client"]["firstname"] = "\ud800"
    answer = api.call("POST", "/whmcs/v1/services/901/create", data=json.dumps(body),
                      headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.json
    assert "is not valid Unicode" in answer.json["error"]["message"]
    [(field, problems)] = answer.json["error"]["details"]["json"].items()
    assert field in ("client.firstname", "username") and problems == ["is not valid Unicode"]


def test_a_number_too_long_for_python_is_a_400_without_python_internals(api):
    answer = api.call("POST", "/whmcs/v1/services/1/terminate", data='{"wait": ' + "9" * 5001 + "}",
                      headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    message = answer.json["error"]["message"]
    assert message == "the body is not valid JSON: a number has more than 4300 digits"
    assert "sys." not in message and "set_int_max_str_digits" not in message


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_json_bodies_are_utf8(api, encoding):
    answer = api.call("POST", "/whmcs/v1/services/1/terminate", data=json.dumps({"wait": 0}).encode(encoding),
                      headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and "not UTF-8" in answer.json["error"]["message"]
