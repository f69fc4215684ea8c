#!/usr/bin/env bash
# Runs the operation worker and the gunicorn web service together (what `make run` does
# after migrating). In production run them as two services instead (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV:-.venv}/bin"
if ! docker info >/dev/null 2>&1; then
  echo "warning: the Docker engine is not reachable; orders will wait until it is (see /readyz)" >&2
fi
"$BIN/flask" --app wsgi live worker &
worker=$!
trap 'kill "$worker" 2>/dev/null; wait "$worker" 2>/dev/null' EXIT INT TERM
echo "GeoCat Live bridge on http://${GUNICORN_BIND:-127.0.0.1:8000} (worker pid $worker)"
"$BIN/gunicorn" -c config/gunicorn.conf.py wsgi:app
