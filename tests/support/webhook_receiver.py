"""A webhook receiver for tests: a real HTTP server in a thread that checks each alert's signature as
docs/OPERATIONS.md ("Alerts") tells receivers to."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: The LIVE_WEBHOOK_SECRET the tests sign with (at least 16 characters, as the settings require).
SECRET = "s3cret-for-the-receiver-0123456789"


class Receiver:
    """An HTTP server in a thread: answers each POST with the next of ``statuses`` (then 200), and keeps
    ``(headers, body, signature_ok)`` of every request. Verifies signatures as a receiver should."""

    def __init__(self, secret: str = SECRET, port: int = 0):
        self.secret, self.statuses, self.received = secret, [], []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body, receiver.verify(self.headers, body)))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/live"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def verify(self, headers, body: bytes) -> bool:
        """The check docs/OPERATIONS.md gives receivers: HMAC-SHA256 of ``<timestamp>.<body>``."""
        timestamp = headers["X-Live-Timestamp"]
        expected = "sha256=" + hmac.new(self.secret.encode(), timestamp.encode() + b"." + body,
                                        hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, headers["X-Live-Signature"])

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _, body, _ in self.received]
