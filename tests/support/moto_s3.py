"""An S3 endpoint for tests: moto's server mode over real HTTP on a free loopback port, and the dummy credentials
every S3 test uses (never a developer's real AWS settings). Fixtures are imported into the test modules."""
from __future__ import annotations

import os

import pytest
from moto.server import ThreadedMotoServer

ACCESS_KEY = "AKIDLIVETESTDUMMY0001"
SECRET_KEY = "live-test-dummy-secret-do-not-print"


@pytest.fixture(autouse=True)
def dummy_credentials(monkeypatch):
    """Only the dummy keys: never a developer's real AWS settings (a profile, a region, an endpoint)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


@pytest.fixture(scope="module")
def endpoint():
    """``http://127.0.0.1:<port>`` of a moto S3 server running for the test module."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
