"""Bearer API keys for the HTTP API (scopes: whmcs, read, admin).

Refusals say what to do: a ``401`` whether a key was sent at all, a ``403``
which scopes the call needs and which scope the key has. A verified key is
recorded on the request before its scope is checked, so the access log names
the key of a ``403`` too.
"""
from __future__ import annotations

from typing import Any

from apiflask import HTTPError, HTTPTokenAuth
from flask import g, request

from app.apikeys import GRANTS, SCOPES, Principal, verify_token
from app.web.errors import error_response


class ScopedTokenAuth(HTTPTokenAuth):
    """APIFlask's bearer authentication, remembering which grants a refused call needed (for its 403 message)."""

    def authorize(self, role: Any, user: Any, auth: Any) -> bool:
        """Flask-HTTPAuth's check of ``role`` (any of a list; all of a nested list) for ``user``."""
        allowed = super().authorize(role, user, auth)
        if not allowed:
            g.live_required_roles = role
        return allowed


auth = ScopedTokenAuth(scheme="Bearer", description="An API key made with `flask --app wsgi live apikey create`.")


@auth.verify_token
def _verify(token: str) -> Principal | None:
    principal = verify_token(token)
    if principal is not None:
        # Flask-HTTPAuth records the user only once the scope allowed the call; the access log and
        # error handlers read it from here, so a 403 names the (valid) key it refused too.
        g.flask_httpauth_user = principal
    return principal


@auth.get_user_roles
def _roles(principal: Principal) -> list[str]:
    return sorted(principal.grants)


def scopes_granting(required: Any) -> list[str]:
    """The scopes (in :data:`~app.apikeys.SCOPES` order) that satisfy a Flask-HTTPAuth ``role`` requirement.

    ``required`` is a grant, a list of alternatives, or a list holding lists (all of which are needed).
    """
    alternatives = required if isinstance(required, (list, tuple)) else [required]
    needs = [set(item) if isinstance(item, (list, tuple)) else {item} for item in alternatives]
    return [scope for scope in SCOPES if any(need <= GRANTS[scope] for need in needs)]


@auth.error_processor
def _refused(error: HTTPError):
    """The 401 or 403 answer, saying what the caller must send or which key it needs."""
    if error.status_code == 403:
        principal = g.get("flask_httpauth_user")
        needed = scopes_granting(g.get("live_required_roles", []))
        name, scope = getattr(principal, "name", "?"), getattr(principal, "scope", "?")
        message = (f"this call needs a key with the {' or '.join(needed) or 'admin'} scope; "
                   f"key {name!r} has the {scope} scope")
        return error_response(403, message, {"required_scopes": needed, "key": name, "scope": scope})
    if not request.headers.get("Authorization"):
        message = "this call needs an API key: send Authorization: Bearer <token>"
    else:
        message = ("the API key is not valid (unknown, revoked or malformed): send Authorization: Bearer <token> "
                   "with a key made by `flask --app wsgi live apikey create`")
    return error_response(error.status_code, message)


def current_principal() -> Principal:
    return auth.current_user


def actor() -> str:
    """How the event log names the caller."""
    principal = g.get("flask_httpauth_user")
    return f"key:{principal.name}" if principal else "anonymous"
