#!/usr/bin/env bash
# Runs the operation worker and the gunicorn web service together (what `make run` does
# after migrating). In production run them as two services instead (see README).
#
# Supervision: when either process exits, the script says which one and how (exit status or
# signal), stops the other one (SIGTERM; the worker first lets running operations finish) and
# exits with status 1. It never restarts anything: a bridge whose worker is gone only records
# operations, so it is better stopped and seen than left half running; restarting is systemd's
# job in production (config/systemd/). Ctrl-C (SIGINT) or SIGTERM stops both, with status 0.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV:-.venv}/bin"
if ! docker info >/dev/null 2>&1; then
  echo "warning: the Docker engine is not reachable; orders will wait until it is (see /readyz)" >&2
fi

worker="" web=""

say() { echo "run.sh: $*" >&2; }

# "exited with status 3", "was killed by signal 9 (KILL)"
how() {
  if [ "$1" -gt 128 ]; then
    echo "was killed by signal $(($1 - 128)) ($(kill -l "$(($1 - 128))" 2>/dev/null || echo '?'))"
  else
    echo "exited with status $1"
  fi
}

# Stop one process (name, pid) with SIGTERM and wait for it.
stop() {
  if [ -n "$2" ] && kill -0 "$2" 2>/dev/null; then
    say "stopping $1 (pid $2)"
    kill -TERM "$2" 2>/dev/null || true
    wait "$2" 2>/dev/null || true
  fi
}

on_signal() {
  trap - INT TERM
  say "$1: stopping gunicorn and the worker"
  stop gunicorn "$web"
  stop worker "$worker"
  exit 0
}
trap 'on_signal SIGINT' INT
trap 'on_signal SIGTERM' TERM

"$BIN/flask" --app wsgi live worker &
worker=$!
"$BIN/gunicorn" -c config/gunicorn.conf.py wsgi:app &
web=$!
echo "GeoCat Live bridge on http://${GUNICORN_BIND:-127.0.0.1:8000} (worker pid $worker, gunicorn pid $web)"

# Wait for the first of the two to exit (a trapped signal interrupts the wait and runs on_signal);
# -p names the one that did (bash 5.1, Debian 12 has 5.2).
status=0 exited=""
wait -n -p exited "$worker" "$web" || status=$?
if [ "$exited" = "$worker" ]; then
  say "the worker (pid $worker) $(how "$status"); stopping gunicorn, since no operation would run"
  stop gunicorn "$web"
else
  say "gunicorn (pid $web) $(how "$status"); stopping the worker"
  stop worker "$worker"
fi
say "stopped; see the output above for why, then start it again (make run)"
exit 1
