"""Close the connection after answering a request whose body was not read.

The service answers many requests without reading their body: a 401 or 403 (the body
is only read after authentication), a 404, a 413 refused on its ``Content-Length``.
To keep such a connection alive, the server must first read and discard the rest of
the body, and a client that sends it at one byte a second holds a thread meanwhile.
gunicorn 27's gthread worker does exactly that: after the response it calls
``parser.finish_body()`` in the worker thread (``ThreadWorker._keepalive_after``,
bounded by ``DEFAULT_WORKER_DATA_TIMEOUT``, 5 s), and only then closes a connection
it could not drain.

RFC 9112 §9.6 and RFC 9110 §15.5.14 let a server close the connection instead.
gunicorn closes after the response when the ``Response`` says so
(``Response.should_close()``, true after ``Response.force_close()``); a WSGI
application must not send ``Connection`` itself (a hop-by-hop header, PEP 3333),
and gunicorn drops it anyway (``Response.process_headers``). So this middleware
tracks how much of ``wsgi.input`` the application read and, when a request that
declared a body (``Content-Length`` > 0, or chunked) is answered before its end,
calls ``force_close()`` on gunicorn's ``Response``, the object whose bound method
``start_response`` is. The worker thread is then free as soon as the response is
written; gunicorn sends ``Connection: close`` and closes the socket. (It closes it on
the worker's main thread with a lingering close; the ``post_request`` hook of
config/gunicorn.conf.py shuts the read side first, so that never waits for the client.)

Under another server (Flask's test client, the development server) nothing changes.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterable

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


def declared_body_length(environ: dict) -> int | None:
    """The body the request announces: its ``Content-Length``; -1 when chunked; ``None`` or 0 for no body."""
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return -1
    try:
        return int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None


class TrackedInput:
    """``wsgi.input`` that knows whether the application read it to the end.

    ``exhausted`` turns true when the bytes read reach ``length`` (a ``Content-Length``),
    or a read returns nothing (the end of a chunked body), or an unbounded ``read()``
    returned. Reading methods are those of PEP 3333's input stream.
    """

    def __init__(self, stream: Any, length: int):
        self._stream = stream
        self._left = length if length >= 0 else None
        self.exhausted = length == 0

    def _seen(self, data: bytes, unbounded: bool) -> bytes:
        if self._left is not None:
            self._left -= len(data)
        if not data or unbounded or (self._left is not None and self._left <= 0):
            self.exhausted = True
        return data

    def read(self, size: int | None = None) -> bytes:
        """Up to ``size`` bytes (all that is left when ``size`` is ``None`` or negative)."""
        unbounded = size is None or size < 0
        data = self._stream.read() if unbounded else self._stream.read(size)
        return self._seen(data, unbounded)

    def readline(self, size: int | None = None) -> bytes:
        """One line, of at most ``size`` bytes when given."""
        data = self._stream.readline() if size is None or size < 0 else self._stream.readline(size)
        return self._seen(data, False)

    def readlines(self, hint: int | None = None) -> list[bytes]:
        """Every line left (``hint`` is passed on; PEP 3333 lets servers ignore it)."""
        lines = self._stream.readlines() if hint is None else self._stream.readlines(hint)
        self._seen(b"".join(lines), hint is None or hint <= 0)
        return lines

    def __iter__(self):
        for line in self._stream:
            yield self._seen(line, False)
        self.exhausted = True


class CloseUnreadBody:
    """WSGI middleware: an answer that leaves the request body unread closes the connection (see the module)."""

    def __init__(self, app: WSGIApp):
        self.app = app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        length = declared_body_length(environ)
        if not length:  # no body (or an unreadable Content-Length, which the server refused already)
            return self.app(environ, start_response)
        tracked = TrackedInput(environ["wsgi.input"], length)
        environ["wsgi.input"] = tracked

        def start(status: str, headers: list, exc_info=None):
            if not tracked.exhausted:
                force_close = getattr(getattr(start_response, "__self__", None), "force_close", None)
                if callable(force_close):
                    force_close()
                    log.debug("closing the connection: %s answered before the request body was read", status)
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return self.app(environ, start)
