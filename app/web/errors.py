"""One JSON error format for every failure: ``{"error": {"code", "message", "details"}}``.

Errors are mapped to HTTP here and only here. A :class:`~app.errors.LiveError`
maps through the attributes its class declares (``http_status``, ``code``):
its ``message`` is the error's public text; only a caller authenticated with
an admin-scope key also gets the private text, in ``details.detail`` (with
the error's other details). 5xx errors are logged with the private text.
Anything unexpected is a 500 whose body names the request id (the log has the
traceback), never the exception text, so no secret can leak through an error
message.
"""
from __future__ import annotations

import logging
from typing import Any

import peewee
from apiflask import APIFlask, HTTPError
from flask import g, jsonify
from werkzeug.exceptions import HTTPException

from app.errors import DatabaseUnavailable, LiveError

log = logging.getLogger(__name__)

CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_error",
    429: "too_many_requests", 500: "internal_error", 503: "unavailable",
}
RETRY_AFTER_SECONDS = "5"
# webargs' request locations: a 422 whose details are keyed by these gets a message naming every field.
REQUEST_LOCATIONS = {"json", "query", "path", "view_args", "headers", "cookies", "form", "files", "json_or_form"}
# How a message names a whole location (a problem of the body itself, not of one of its fields).
LOCATION_NAMES = {"json": "body", "json_or_form": "body", "form": "body", "query": "query string"}
# marshmallow's key for errors of a whole (nested) object rather than one of its fields.
SCHEMA_KEY = "_schema"


def caller_sees_detail() -> bool:
    """Whether this request's caller may see private error detail: it authenticated with an admin-scope key."""
    principal = g.get("flask_httpauth_user")
    return principal is not None and getattr(principal, "scope", None) == "admin"


def error_response(status: int, message: str, details: dict | None = None, code: str | None = None, headers=None):
    """The uniform JSON error response."""
    body = {"error": {"code": code or CODES.get(status, "error"), "message": message, "details": details or {}}}
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_error_handlers(app: APIFlask) -> None:
    @app.error_processor
    def http_error(error: HTTPError):
        details = error.detail if isinstance(error.detail, dict) else ({"detail": error.detail} if error.detail else {})
        message = error.message
        if error.status_code == 422 and details and set(details) <= REQUEST_LOCATIONS:
            message = "the request is invalid: " + summarize(details)
        return error_response(error.status_code, message, details, headers=error.headers)

    @app.errorhandler(LiveError)
    def live_error(error: LiveError):
        return live_error_response(error)

    @app.errorhandler(peewee.OperationalError)
    @app.errorhandler(peewee.InterfaceError)
    def database_down(error):
        return live_error_response(DatabaseUnavailable(f"database unavailable: {error}"))

    @app.errorhandler(HTTPException)
    def werkzeug_error(error: HTTPException):
        return error_response(error.code or 500, error.description or error.name)

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unhandled error in request %s", g.get("request_id", "-"))
        return error_response(500, f"internal error (request {g.get('request_id', '-')})")


def live_error_response(error: LiveError):
    """The response for a Live error, from its class's ``http_status`` and ``code`` and its public text."""
    request_id = g.get("request_id", "-")
    status, message = error.http_status, error.public
    if status >= 500:
        # The private text goes to the log (5xx need an operator); 500s also get the traceback.
        log.error("request %s: %s %s (%s): %s", request_id, status, error.code, type(error).__name__, error,
                  exc_info=error if status == 500 else None)
    if status == 500:
        message = f"{message} (request {request_id})"
    details = private_details(error) if caller_sees_detail() else {}
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if status == 503 else None
    return error_response(status, message, details, code=error.code, headers=headers)


def private_details(error: LiveError) -> dict[str, Any]:
    """What an admin-scope caller sees in ``details``: the private text and the error's other details."""
    return {**{str(k): _jsonable(v) for k, v in error.details.items()}, "detail": str(error)}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def summarize(details: dict) -> str:
    """One line for people from webargs/marshmallow error messages, keyed by request location.

    ``{"json": {"client": {"id": ["Not a valid integer."]}, "items": {0: ["Not a valid string."]}}}``
    reads ``client.id: Not a valid integer.; items.0: Not a valid string.``: nested fields and list
    indexes are joined with dots (as :func:`app.web.input_guard.inspect_json` names fields), so no
    dict, list or other Python representation ever reaches the message.
    """
    parts = []
    for location, fields in details.items():
        top = LOCATION_NAMES.get(str(location), str(location))
        for path, problem in flatten_messages(fields):
            parts.append(f"{path or top}: {problem}")
    return "; ".join(parts) or "see details"


def flatten_messages(messages: Any, path: str = "") -> list[tuple[str, str]]:
    """``(dotted path, text)`` pairs of a marshmallow error structure, in its order.

    Dicts nest fields (or, with integer keys, list indexes; ``_schema`` is the containing
    value itself), lists hold one field's messages (joined with a space). Anything else is
    rendered as text, never with ``repr``.
    """
    if isinstance(messages, dict):
        pairs = []
        for key, value in messages.items():
            if key == SCHEMA_KEY:
                pairs.extend((path, _schema_text(text)) for _, text in flatten_messages(value, path))
            else:
                pairs.extend(flatten_messages(value, f"{path}.{key}" if path else str(key)))
        return pairs
    if isinstance(messages, (list, tuple)):
        texts, nested = [], []
        for item in messages:
            if isinstance(item, (dict, list, tuple)):
                nested.extend(flatten_messages(item, path))
            else:
                texts.append(str(item))
        return ([(path, " ".join(texts))] if texts else []) + nested
    return [(path, str(messages))]


def _schema_text(text: str) -> str:
    """marshmallow's "Invalid input type." for a value that had to be an object, in this API's words."""
    return "must be a JSON object" if text == "Invalid input type." else text
