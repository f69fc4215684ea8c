"""WSGI entry point: `gunicorn -c config/gunicorn.conf.py wsgi:app`, `flask --app wsgi live ...`."""
import json
import sys

from app import create_app
from app.errors import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    if {"doctor", "--json"} <= set(sys.argv):
        # `live doctor --json` is read by monitoring: the configuration is its first check, in its format.
        from app.doctor import FAIL, Finding, render_json

        finding = Finding("configuration", FAIL, str(exc), "fix the setting in the bridge's environment "
                                                           "(config/live.env.example lists every setting)")
        sys.stdout.write(json.dumps(render_json([finding]), indent=2) + "\n")
    # One clear line instead of a traceback: the operator fixes the environment.
    sys.stderr.write(f"GeoCat Live: configuration error: {exc}\n")
    raise SystemExit(2) from None
