"""The ceiling of figure 1: the bridge's own app plus one bench-only route that authenticates and answers a constant.

``gunicorn -c config/gunicorn.conf.py bench.ceiling:app``: ``create_app()`` with its settings read from the
environment as wsgi.py reads them (the same middleware, APIFlask, database hooks and bearer-key authentication),
then ``GET /bench/ceiling`` behind the same whmcs-scope check as the WHMCS routes (app/web/whmcs.py). It answers
``{"status": "ok"}`` without a database query of its own (the request still opens and closes its pooled
connection, as every bridge request does, and each process reads the key's row again once its verification is
older than ``app.apikeys.CACHE_SECONDS``, as for the status call). No status answer of this framework can be
faster: figure 1 (bench/run.py ``figure1``) reports it between hello and the status call.

In process (bench/accounts.py): ``add_ceiling(app)`` on an app of the bench's own, before its first request; the
module's ``app`` is made only when gunicorn asks for it, so importing the module creates no app.
"""
from app import create_app
from app.web.auth import auth

PATH = "/bench/ceiling"


def add_ceiling(app):
    """``app`` (an APIFlask app of ``create_app``, before its first request) with ``GET /bench/ceiling``; returns it."""
    @app.get(PATH)
    @app.auth_required(auth, roles=["whmcs"])
    def ceiling() -> dict[str, str]:
        """``{"status": "ok"}``: authentication and framework only."""
        return {"status": "ok"}
    return app


def __getattr__(name: str):
    """``app``: ``create_app()`` (settings from the environment) with the ceiling route, made on first use."""
    if name != "app":
        raise AttributeError(name)
    made = globals()["app"] = add_ceiling(create_app())
    return made
