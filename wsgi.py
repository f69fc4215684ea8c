"""WSGI entry point: `gunicorn -c config/gunicorn.conf.py wsgi:app`, `flask --app wsgi live ...`."""
import sys

from app import create_app
from app.errors import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    # One clear line instead of a traceback: the operator fixes the environment.
    sys.stderr.write(f"GeoCat Live: configuration error: {exc}\n")
    raise SystemExit(2) from None
