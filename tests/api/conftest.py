"""The HTTP API with real keys, a real database and (where needed) a worker running alongside."""
from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from app import create_app
from app.apikeys import create_key
from app.db import upgrade


@dataclass
class Api:
    app: object
    client: object
    tokens: dict[str, str]

    def headers(self, scope: str | None = "whmcs", **extra) -> dict[str, str]:
        headers = dict(extra)
        if scope:
            headers["Authorization"] = f"Bearer {self.tokens[scope]}"
        return headers

    def call(self, method: str, path: str, scope: str | None = "whmcs", **kwargs):
        return self.client.open(path, method=method, headers=self.headers(scope, **kwargs.pop("headers", {})), **kwargs)

    def post(self, path: str, json=None, scope: str | None = "whmcs", **kwargs):
        return self.call("POST", path, scope, json=json if json is not None else {}, **kwargs)

    def get(self, path: str, scope: str | None = "whmcs", **kwargs):
        return self.call("GET", path, scope, **kwargs)


@pytest.fixture
def api(settings):
    app = create_app(settings)
    live = app.extensions["live"]
    upgrade(live.db)
    live.catalog.sync()
    tokens = {scope: create_key(f"test-{scope}", scope)[1] for scope in ("whmcs", "read", "admin")}
    yield Api(app=app, client=app.test_client(), tokens=tokens)
    if not live.db.is_closed():
        live.db.close()


@pytest.fixture
def background_worker(api):
    """The real worker's dispatch loop in a thread, as `live worker` runs it, and its engine mirror's follower."""
    worker = api.app.extensions["live"].worker()
    worker.mirror.start()
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            worker.dispatch_safely()
            stop.wait(0.05)

    thread = threading.Thread(target=loop, name="test-worker", daemon=True)
    thread.start()
    yield worker
    stop.set()
    thread.join(timeout=10)
    worker.run_until_idle(timeout=120)
    worker.mirror.stop()


def client_payload(product="busybox-demo", plan="small", client_id=1, **extra):
    body = {"client": {"id": client_id, "email": f"client{client_id}@example.org", "firstname": "Ada",
                       "lastname": "Lovelace", "companyname": "Analytical Maps"},
            "product": product, "plan": plan}
    body.update(extra)
    return body
