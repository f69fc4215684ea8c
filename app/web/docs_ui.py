"""The API docs page (``/api/v1/docs``) without the internet: Swagger UI served by the bridge itself.

APIFlask's Swagger UI page loads its script, stylesheet and icon from public CDNs by
default, so on a host without internet access the page stays blank. The files come
instead from the pinned ``flask-swagger-ui`` package (which ships Swagger UI's
``dist/`` folder; only its files are used, not its blueprint), served from
:data:`ASSETS_RULE`, a route hidden from the OpenAPI document.

The page names the files with URLs relative to itself (``docs/assets/...`` from
``/api/v1/docs``), so it works as well behind a proxy that adds a path prefix. APIFlask
writes these settings into the page as they are; the spec URL it builds itself with
``url_for``. Swagger UI's online validator badge is switched off: it would call a
public service.
"""
from __future__ import annotations

from pathlib import Path

import flask_swagger_ui
from apiflask import APIFlask
from flask import abort, send_from_directory

#: Swagger UI's distribution, as the pinned package ships it.
DIST = Path(flask_swagger_ui.__file__).resolve().parent / "dist"
#: The files the page loads; nothing else of the folder is served.
ASSETS = ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css", "favicon-32x32.png")
#: Where they are served: beside the docs page (``APIFlask(docs_path="/api/v1/docs")``).
ASSETS_RULE = "/api/v1/docs/assets/<filename>"
#: How long browsers may keep a file; the URLs carry Swagger UI's version, so an upgrade is fetched at once.
CACHE_SECONDS = 24 * 3600


def swagger_ui_version() -> str:
    """The Swagger UI version the package ships (its ``dist/VERSION``, e.g. ``5.34.0``)."""
    return (DIST / "VERSION").read_text(encoding="utf-8").strip().lstrip("v")


def asset_url(filename: str, version: str) -> str:
    """The URL of an asset relative to the docs page, with the version against stale browser caches."""
    return f"docs/assets/{filename}?v={version}"


def init_docs_ui(app: APIFlask) -> None:
    """Serve Swagger UI's files from the bridge and point APIFlask's docs page at them.

    Raises ``RuntimeError`` at start-up when the package lacks a file the page needs (a broken
    or changed installation), rather than serving a blank page.
    """
    missing = [name for name in ASSETS if not (DIST / name).is_file()]
    if missing:
        raise RuntimeError(f"flask-swagger-ui at {DIST} lacks {', '.join(missing)}: reinstall requirements.txt")
    version = swagger_ui_version()
    app.config.update(
        SWAGGER_UI_BUNDLE_JS=asset_url("swagger-ui-bundle.js", version),
        SWAGGER_UI_STANDALONE_PRESET_JS=asset_url("swagger-ui-standalone-preset.js", version),
        SWAGGER_UI_CSS=asset_url("swagger-ui.css", version),
        DOCS_FAVICON=asset_url("favicon-32x32.png", version),
        # Swagger UI's default validatorUrl is a public service; null switches the badge off.
        SWAGGER_UI_CONFIG={**(app.config.get("SWAGGER_UI_CONFIG") or {}), "validatorUrl": None},
    )

    @app.get(ASSETS_RULE)
    @app.doc(hide=True)
    def docs_asset(filename: str):
        """One of Swagger UI's files (public, like the docs page)."""
        if filename not in ASSETS:
            abort(404)
        return send_from_directory(DIST, filename, max_age=CACHE_SECONDS)
