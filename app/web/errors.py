"""One JSON error format for every failure: ``{"error": {"code", "message", "details"}}``.

Domain errors are mapped to HTTP here and only here; anything unexpected is
a 500 whose body names the request id (the log has the traceback), never
the exception text, so no secret can leak through an error message.
"""
from __future__ import annotations

import logging

import peewee
from apiflask import APIFlask, HTTPError
from flask import g, jsonify
from werkzeug.exceptions import HTTPException

from app.errors import (
    Conflict,
    InterpolationError,
    InvalidRequest,
    LiveError,
    NamingError,
    NotFound,
    ProductError,
    RuntimeUnavailable,
)

log = logging.getLogger(__name__)

CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_error",
    429: "too_many_requests", 500: "internal_error", 503: "unavailable",
}

DOMAIN_STATUS = [
    (NotFound, 404),
    (Conflict, 409),
    (ProductError, 422),
    (InvalidRequest, 422),
    (NamingError, 422),
    (InterpolationError, 422),
    (RuntimeUnavailable, 503),
]


def error_response(status: int, message: str, details: dict | None = None, code: str | None = None, headers=None):
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
        if error.status_code == 422 and ("json" in details or "query" in details):
            message = "the request is invalid: " + _summarize(details)
        return error_response(error.status_code, message, details, headers=error.headers)

    @app.errorhandler(LiveError)
    def live_error(error: LiveError):
        for cls, status in DOMAIN_STATUS:
            if isinstance(error, cls):
                details = {"errors": error.errors} if isinstance(error, ProductError) else {}
                return error_response(status, error.message, details)
        log.exception("unmapped domain error")
        return error_response(500, f"internal error (request {g.get('request_id', '-')})")

    @app.errorhandler(peewee.OperationalError)
    @app.errorhandler(peewee.InterfaceError)
    def database_down(error):
        log.error("database unavailable: %s", error)
        return error_response(503, "the database is unavailable; try again shortly", headers={"Retry-After": "5"})

    @app.errorhandler(HTTPException)
    def werkzeug_error(error: HTTPException):
        return error_response(error.code or 500, error.description or error.name)

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unhandled error in request %s", g.get("request_id", "-"))
        return error_response(500, f"internal error (request {g.get('request_id', '-')})")


def _summarize(details: dict) -> str:
    parts = []
    for location, fields in details.items():
        if isinstance(fields, dict):
            for name, problems in fields.items():
                text = "; ".join(str(p) for p in problems) if isinstance(problems, list) else str(problems)
                parts.append(f"{name}: {text}")
    return ", ".join(parts) or "see details"
