"""Completes the generated OpenAPI document with the error responses every route can give."""
from __future__ import annotations

from apiflask import APIFlask

ERROR_REF = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}


def _error(description: str) -> dict:
    return {"description": description, "content": ERROR_REF}


def register_spec_processor(app: APIFlask) -> None:
    @app.spec_processor
    def add_error_responses(spec: dict) -> dict:
        for path, item in spec.get("paths", {}).items():
            for operation in item.values():
                responses = operation.setdefault("responses", {})
                # gunicorn itself answers 400 to a request line over its limit (8190 bytes).
                responses.setdefault("400", _error("Malformed request: invalid JSON body, or a request line too long"))
                if operation.get("requestBody"):
                    responses.setdefault("413", _error("Body larger than the limit"))
                if operation.get("security"):
                    responses.setdefault("403", _error("The key's scope does not allow this"))
                if "{" in path:
                    responses.setdefault("404", _error("Not found (including identifiers out of range)"))
                if path != "/healthz":
                    responses.setdefault("503", _error("Database unavailable"))
        return spec
