"""The HTTP answer of a log read (``GET /api/v1/orders/{id}/logs``, ``GET /whmcs/v1/services/{id}/logs``).

The lines of an :class:`~app.orders.logs.LogStream` are sent as they are read from the engine (a chunked
``text/plain`` body, one line each, ``\\n``-terminated), never gathered first; a client that goes away closes
the engine's streams (WSGI calls the body's ``close()``). ``X-Live-Services`` names the services the lines come
from, ``X-Live-Order-Services`` every service of the order (the client area makes one button per service).
"""
from __future__ import annotations

from typing import Iterator

from apiflask.schemas import FileSchema
from flask import Response

from app.orders.logs import LogStream

#: The ``output()`` arguments of both log routes: a text body, described as such in the OpenAPI document.
LOG_OUTPUT = {"schema": FileSchema(type="string"), "content_type": "text/plain",
              "description": "The lines as plain text (UTF-8), streamed; the order's secrets masked. Headers "
                             "X-Live-Services and X-Live-Order-Services list the services (comma-separated)"}
#: The error answers of both log routes (the 401 is added by the spec processor).
LOG_ERRORS = {404: "No such order (not_found / order_not_found), or no such service: the message names the order's",
              409: "The order has no containers: not deployed yet, or terminated (code conflict)",
              422: "A bad `tail` (0 to 1000) or `since`: the message names the parameter",
              503: "The container engine cannot be reached (code unavailable)"}


def log_answer(stream: LogStream) -> Response:
    """A streamed ``text/plain`` response of ``stream``'s lines; closing the response closes the stream."""

    def body() -> Iterator[bytes]:
        for line in stream:
            yield (line + "\n").encode("utf-8", errors="replace")

    response = Response(body(), mimetype="text/plain")
    response.call_on_close(stream.close)
    response.headers["X-Live-Services"] = ",".join(stream.services)
    response.headers["X-Live-Order-Services"] = ",".join(stream.order_services)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # a front proxy (nginx) passes lines on as they come
    return response
