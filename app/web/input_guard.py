"""Refuses NUL characters anywhere in a request before a view sees it.

PostgreSQL cannot store them in text, and no field of this API needs them;
refusing them up front turns a would-be 500 into a clear 422.
"""
from __future__ import annotations

from typing import Any

from flask import Flask, request

from app.web.errors import error_response


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def init_input_guard(app: Flask) -> None:
    @app.before_request
    def reject_nul_characters():
        where = None
        if "\x00" in request.path:
            where = "path"
        elif any(_has_nul(k) or _has_nul(v) for k, v in request.args.items(multi=True)):
            where = "query"
        elif request.is_json and _has_nul(request.get_json(silent=True)):
            where = "json"
        if where is not None:
            return error_response(422, f"NUL characters are not allowed in the request ({where})",
                                  {where: ["contains a NUL character"]})
        return None
