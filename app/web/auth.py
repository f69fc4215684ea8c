"""Bearer API keys for the HTTP API (scopes: whmcs, read, admin)."""
from __future__ import annotations

from apiflask import HTTPTokenAuth
from flask import g

from app.apikeys import Principal, verify_token

auth = HTTPTokenAuth(scheme="Bearer", description="An API key made with `flask --app wsgi live apikey create`.")


@auth.verify_token
def _verify(token: str) -> Principal | None:
    return verify_token(token)


@auth.get_user_roles
def _roles(principal: Principal) -> list[str]:
    return sorted(principal.grants)


def current_principal() -> Principal:
    return auth.current_user


def actor() -> str:
    """How the event log names the caller."""
    principal = g.get("flask_httpauth_user")
    return f"key:{principal.name}" if principal else "anonymous"
