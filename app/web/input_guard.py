"""What the service accepts before a view runs, and how a JSON body is loaded.

Nothing here reads a request body before the view's authentication ran:

- **Up front** (``before_request``, no body read): the route's body limit is
  applied to the request, a declared ``Content-Length`` above it is a 413 at
  once (RFC 9110 §15.5.14), and a NUL character in the path or query string is
  a 422 (PostgreSQL cannot store NUL in text, and no field of this API needs it).
- **In the view**, after its ``auth_required`` decorator: APIFlask's ``@input``
  loads the body through :func:`load_json_location`, which uses
  ``request.get_json()`` and so :class:`GuardedJSONProvider`: the one JSON
  loading path of the service. Malformed JSON, invalid UTF-8, ``NaN`` and
  ``Infinity`` (not JSON, RFC 8259 §6) and nesting deeper than
  :data:`MAX_JSON_DEPTH` are 400s; a NUL character is a 422 naming the field.
  None of them is a 500 or logs a traceback. A non-empty body sent without
  ``Content-Type: application/json`` is a 415 saying so; an empty one is no body.

Body limits are per route: the app's ``MAX_CONTENT_LENGTH`` (``app.MAX_BODY_BYTES``,
64 KiB) unless the view is decorated with :func:`body_limit` (the GitLab webhook
takes larger pushes).
"""
from __future__ import annotations

import json
import re
import sys
from typing import Any, Callable, TypeVar

from apiflask import APIFlask, HTTPError
from apiflask.schema_adapters.marshmallow import parser as webargs_parser
from flask import Request, request
from flask.json.provider import DefaultJSONProvider
from webargs import missing
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from app.web.errors import error_response

# Arrays and objects inside each other; this API's deepest body has 3 levels, a GitLab push about 5.
MAX_JSON_DEPTH = 64

View = TypeVar("View", bound=Callable[..., Any])


# A "\ud800" escape decodes to a lone surrogate: not a character (RFC 8259 section 8.2), not storable in
# PostgreSQL text, not encodable as UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")
NOT_UNICODE = "the request holds text that is not valid Unicode (a lone surrogate escape such as \\ud800) (json)"


class JSONRejected(ValueError):
    """A body that is not acceptable JSON: ``status`` 400 (cannot be read) or 422 (``field`` has a NUL or a
    lone surrogate; ``problem`` says which)."""

    def __init__(self, status: int, message: str, field: str | None = None,
                 problem: str = "contains a NUL character"):
        self.problem = problem
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


def body_limit(max_bytes: int) -> Callable[[View], View]:
    """Let a view accept request bodies of up to ``max_bytes`` bytes instead of the app's ``MAX_CONTENT_LENGTH``.

    Put it directly under the route decorator. The limit is applied before anything reads
    the body (Flask 3.1's per-request ``request.max_content_length``): a larger declared
    ``Content-Length`` is a 413 before the view runs, a larger chunked body a 413 while read.
    Raises ``ValueError`` for a limit below one byte.
    """
    if max_bytes < 1:
        raise ValueError("a body limit is a positive number of bytes")

    def decorate(view: View) -> View:
        view.max_body_bytes = max_bytes  # type: ignore[attr-defined]  # functools.wraps copies it to wrappers
        return view

    return decorate


def _path(trail: tuple | None) -> str:
    """``client.firstname`` or ``items.3`` from the (parent, key) trail of the walk; ``(body)`` at the top."""
    keys = []
    while trail is not None:
        trail, key = trail
        keys.append(str(key))
    return ".".join(reversed(keys)) or "(body)"


def inspect_json(value: Any) -> None:
    """Refuse a decoded document nested deeper than :data:`MAX_JSON_DEPTH` or holding a NUL character.

    Walks the document with an explicit stack, never recursion, so any depth the decoder
    produced is safe to inspect; O(number of values). Raises :class:`JSONRejected`: 400 for
    the depth, 422 naming the first field found with a NUL character (in a key or a string).
    """
    stack: list[tuple[Any, int, tuple | None]] = [(value, 1, None)]
    while stack:
        item, depth, trail = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise JSONRejected(422, "NUL characters are not allowed in the request (json)", _path(trail))
            if _SURROGATE.search(item):
                raise JSONRejected(422, NOT_UNICODE, _path(trail), problem="is not valid Unicode")
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth > MAX_JSON_DEPTH:
            raise JSONRejected(400, f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key:
                    raise JSONRejected(422, "NUL characters are not allowed in the request (json)",
                                       _path((trail, key.replace("\x00", "\\u0000"))))
                if _SURROGATE.search(key):
                    raise JSONRejected(422, NOT_UNICODE, _path((trail, key.encode("utf-8", "backslashreplace")
                                                               .decode())), problem="is not valid Unicode")
                stack.append((child, depth + 1, (trail, key)))
        else:
            stack.extend((child, depth + 1, (trail, index)) for index, child in enumerate(item))


def _no_constant(name: str):
    raise JSONRejected(400, f"the body is not valid JSON: {name} is not a JSON number (RFC 8259 section 6)")


class GuardedJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, loading with the service's rules (:func:`inspect_json`).

    ``loads`` raises :class:`JSONRejected`, a ``ValueError``, so ``get_json(silent=True)``
    still answers ``None``; ``dumps`` is Flask's.
    """

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Decode ``s`` (str, or UTF-8/16/32 bytes as ``json.loads`` detects them) and inspect the result."""
        try:
            if isinstance(s, (bytes, bytearray)):
                # JSON between systems is UTF-8 (RFC 8259 section 8.1); json.loads would also guess UTF-16/32.
                s = bytes(s).decode("utf-8")
            value = json.loads(s, parse_constant=_no_constant, **kwargs)
        except JSONRejected:
            raise
        except RecursionError:  # the C decoder recurses per level, up to the interpreter's limit
            raise JSONRejected(400, f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels") from None
        except UnicodeDecodeError:
            raise JSONRejected(400, "the body is not valid JSON: it is not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise JSONRejected(400, f"the body is not valid JSON: {exc}") from None
        except ValueError:  # int() refusing a number of more than sys.get_int_max_str_digits() digits
            raise JSONRejected(400, f"the body is not valid JSON: a number has more than "
                                    f"{sys.get_int_max_str_digits()} digits") from None
        inspect_json(value)
        return value


class GuardedRequest(Request):
    """Flask's request, answering JSON loading failures with the service's 400, 415 and 422."""

    def get_data(self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False):
        """The body, as werkzeug gives it, except that a chunked body past the route's limit is a 413.

        werkzeug's limited stream raises 413 on bounded reads past ``max_content_length`` but its
        unbounded ``read()`` stops at the limit without a word, so a chunked body (no
        ``Content-Length``) was cut there and the cut part parsed. Reading in bounded pieces makes the
        limit an error for every body.
        """
        if getattr(self, "_cached_data", None) is None and self.content_length is None and not parse_form_data:
            pieces = []
            while piece := self.stream.read(64 * 1024):
                pieces.append(piece)
            self._cached_data = b"".join(pieces)  # werkzeug's own cache of the body, which get_data reads
        return super().get_data(cache=cache, as_text=as_text, parse_form_data=parse_form_data)

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        """Raise the HTTP error for ``e`` (``None``: the body is not declared as JSON)."""
        if e is None:
            raise UnsupportedMediaType(not_json_message(self.mimetype))
        if isinstance(e, JSONRejected):
            if e.status == 422:
                raise HTTPError(422, e.message, {"json": {e.field: [e.problem]}})
            raise HTTPError(e.status, e.message)
        raise BadRequest(f"the body is not valid JSON: {e}")


def load_json_location(req: Request, schema: Any) -> Any:
    """webargs' loader for ``location="json"``: the body through ``request.get_json()``.

    Replaces webargs' own loader, which parses with ``json.loads`` directly (its
    ``RecursionError`` escaped as a 500). An empty body is ``missing`` whatever its
    Content-Type, so the schema names its required fields (or, where every field is
    optional, takes the defaults). A non-empty body not declared as JSON is a 415 saying to
    send ``Content-Type: application/json``: read as "no body", it would be answered with
    a misleading list of missing fields, or its fields silently ignored. Raises the errors of
    :meth:`GuardedRequest.on_json_loading_failed`, and 413 past the route's body limit.
    """
    if not req.get_data(cache=True):
        return missing
    if not req.is_json:
        raise HTTPError(415, not_json_message(req.mimetype), {"content_type": req.mimetype or None})
    return req.get_json()


def not_json_message(mimetype: str) -> str:
    """The 415 message for a body sent with Content-Type ``mimetype`` (empty: none) instead of JSON."""
    sent = f"Content-Type: {mimetype[:100]}" if mimetype else "no Content-Type"
    return f"the request body is not declared as JSON: send Content-Type: application/json (this request has {sent})"


def init_input_guard(app: APIFlask) -> None:
    """Install the JSON rules, the request class and the up-front checks (no body read) on ``app``."""
    app.json = GuardedJSONProvider(app)
    app.request_class = GuardedRequest
    # webargs' documented extension point; APIFlask registers its own locations on this parser the same way.
    webargs_parser.location_loader("json")(load_json_location)

    @app.before_request
    def guard_request():
        view = app.view_functions.get(request.endpoint) if request.endpoint else None
        limit = getattr(view, "max_body_bytes", app.config["MAX_CONTENT_LENGTH"])
        request.max_content_length = limit
        if request.content_length is not None and request.content_length > limit:
            return error_response(413, f"the request body is larger than this route's limit of {limit} bytes",
                                  {"max_bytes": limit})
        where = None
        if "\x00" in request.path:
            where = "path"
        elif any("\x00" in key or "\x00" in value for key, value in request.args.items(multi=True)):
            where = "query"
        if where is not None:
            return error_response(422, f"NUL characters are not allowed in the request ({where})",
                                  {where: ["contains a NUL character"]})
        return None
