#!/usr/bin/env bash
# Runs the operation worker and the gunicorn web service together (what `make run` does after
# migrating) and, when the `caddy` binary is installed, a Caddy of its own as the ingress: the worker
# programs it through its admin API, so customer URLs open at http://<instance>.localhost:8080/<app>.
# In production run them as separate services instead (see README and docs/OPERATIONS.md).
#
# Supervision: when any of them exits, the script says which one and how (exit status or signal),
# stops the others (SIGTERM; the worker first lets running operations finish; Caddy last) and exits
# with status 1. It never restarts anything: a bridge whose worker is gone only records operations,
# and one whose Caddy is gone hands out URLs that do not open, so it is better stopped and seen than
# left half running; restarting is systemd's job in production (config/systemd/). Ctrl-C (SIGINT) or
# SIGTERM stops them all, with status 0.
#
# The embedded Caddy starts when `caddy` is on PATH and LIVE_CADDY_ADMIN_URL is unset (set, it names
# a Caddy of yours and none is started). It gets these defaults, each kept when already set:
#   LIVE_CADDY_ADMIN_URL=http://127.0.0.1:2080   LIVE_TLS=off   LIVE_BASE_DOMAIN=localhost
#   LIVE_INGRESS_BIND=127.0.0.1   LIVE_INGRESS_HTTP_PORT=8080   LIVE_INGRESS_HTTPS_PORT=8443
#   LIVE_INGRESS_ASK_URL=http://<GUNICORN_BIND>/ingress/v1/ask
# and reads, for itself only:
#   LIVE_EMBEDDED_CADDY_ADMIN  host:port of its admin API, 127.0.0.1:2080. Not Caddy's usual 2019:
#                              Debian's caddy package starts its own caddy.service, which holds 2019.
#                              Keep it on loopback: the admin API has no authentication.
#   LIVE_EMBEDDED_CADDY_DIR    its folder, var/caddy: boot.json, caddy.log, and XDG_DATA_HOME
#                              (certificates) and XDG_CONFIG_HOME (autosave) under it
#   CADDY                      the binary, `caddy` from PATH
# It starts empty every time (no --resume): the worker's resync writes the routes again.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV:-.venv}/bin"
if ! docker info >/dev/null 2>&1; then
  echo "warning: the Docker engine is not reachable; orders will wait until it is (see /readyz)" >&2
fi

worker="" web="" caddy=""

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

# "gunicorn and Caddy", "the worker and Caddy": the processes named, Caddy only when it runs.
and_caddy() {
  if [ -n "$caddy" ]; then echo "$1 and Caddy"; else echo "$1"; fi
}

on_signal() {
  trap - INT TERM
  if [ -n "$caddy" ]; then say "$1: stopping gunicorn, the worker and Caddy"; else say "$1: stopping gunicorn and the worker"; fi
  stop gunicorn "$web"
  stop worker "$worker"
  stop Caddy "$caddy"
  exit 0
}
trap 'on_signal SIGINT' INT
trap 'on_signal SIGTERM' TERM

# need_port HOST PORT VARIABLE EXAMPLE: exits with 1 and a message naming VARIABLE when HOST:PORT cannot be listened
# on now. The probe binds as Caddy will (SO_REUSEADDR: a port in TIME_WAIT is free, a listening one is not).
need_port() {
  local reason
  if ! reason=$("$BIN/python" - "$1" "$2" 2>&1 <<'PY'
import socket, sys
host, port = sys.argv[1].strip("[]"), int(sys.argv[2])
with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((host, port))
    except OSError as error:
        sys.exit(error.strerror)
PY
  ); then
    say "cannot start the embedded Caddy: port $2 of ${1:-every interface} is not available ($reason)"
    say "set $3 to a free port (e.g. \`$4 make run\`), or stop what holds it"
    exit 1
  fi
}

# acme, internal or off: LIVE_TLS, else what the older LIVE_PUBLIC_SCHEME says (as app/config.py reads them).
tls_mode() {
  if [ -n "${LIVE_TLS:-}" ]; then echo "$LIVE_TLS"
  elif [ "${LIVE_PUBLIC_SCHEME:-https}" = http ]; then echo off
  else echo acme; fi
}

# The URL form customers get, from the ingress settings and the bridge's defaults (app/config.py).
url_form() {
  local scheme port default
  if [ "$(tls_mode)" = off ]; then scheme=http port="${LIVE_INGRESS_HTTP_PORT:-80}" default=80
  else scheme=https port="${LIVE_INGRESS_HTTPS_PORT:-443}" default=443; fi
  if [ "$port" = "$default" ]; then port=""; else port=":$port"; fi
  echo "$scheme://<instance>.${LIVE_BASE_DOMAIN:-localhost}$port/<app>"
}

CADDY="${CADDY:-caddy}"
if [ -n "${LIVE_CADDY_ADMIN_URL:-}" ]; then
  echo "Ingress: the Caddy at $LIVE_CADDY_ADMIN_URL (LIVE_CADDY_ADMIN_URL; no embedded Caddy); customer URLs: $(url_form)"
elif ! command -v "$CADDY" >/dev/null 2>&1; then
  echo "note: caddy is not installed, so there is no ingress: orders get only their 127.0.0.1 ports (apt-get install caddy, then make run again)" >&2
else
  admin="${LIVE_EMBEDDED_CADDY_ADMIN:-127.0.0.1:2080}"
  admin_host="${admin%:*}" admin_port="${admin##*:}"
  export LIVE_CADDY_ADMIN_URL="http://$admin"
  if [ -z "${LIVE_PUBLIC_SCHEME:-}" ]; then export LIVE_TLS="${LIVE_TLS:-off}"; fi  # app/config.py reads the older one
  export LIVE_BASE_DOMAIN="${LIVE_BASE_DOMAIN:-localhost}"
  export LIVE_INGRESS_BIND="${LIVE_INGRESS_BIND-127.0.0.1}"  # set and empty: every interface
  export LIVE_INGRESS_HTTP_PORT="${LIVE_INGRESS_HTTP_PORT:-8080}"
  export LIVE_INGRESS_HTTPS_PORT="${LIVE_INGRESS_HTTPS_PORT:-8443}"
  ask_host="${GUNICORN_BIND:-127.0.0.1:8000}"
  ask_host="${ask_host/#0.0.0.0:/127.0.0.1:}" ask_host="${ask_host/#\[::\]:/[::1]:}"  # gunicorn on every interface
  export LIVE_INGRESS_ASK_URL="${LIVE_INGRESS_ASK_URL:-http://$ask_host/ingress/v1/ask}"

  need_port "$admin_host" "$admin_port" LIVE_EMBEDDED_CADDY_ADMIN LIVE_EMBEDDED_CADDY_ADMIN=127.0.0.1:2081
  need_port "$LIVE_INGRESS_BIND" "$LIVE_INGRESS_HTTP_PORT" LIVE_INGRESS_HTTP_PORT LIVE_INGRESS_HTTP_PORT=8081
  if [ "$(tls_mode)" != off ]; then
    need_port "$LIVE_INGRESS_BIND" "$LIVE_INGRESS_HTTPS_PORT" LIVE_INGRESS_HTTPS_PORT LIVE_INGRESS_HTTPS_PORT=8444
  fi

  caddy_dir="$(realpath -m "${LIVE_EMBEDDED_CADDY_DIR:-var/caddy}")"
  mkdir -p "$caddy_dir/data" "$caddy_dir/config"
  printf '{"admin": {"listen": "%s"}}\n' "$admin" >"$caddy_dir/boot.json"
  caddy_log="$caddy_dir/caddy.log"
  XDG_DATA_HOME="$caddy_dir/data" XDG_CONFIG_HOME="$caddy_dir/config" \
    "$CADDY" run --config "$caddy_dir/boot.json" >>"$caddy_log" 2>&1 &
  caddy=$!
  # Until its admin API takes connections (the worker would otherwise find it down and wait for its resync).
  for _ in $(seq 150); do
    if (exec 3<>"/dev/tcp/${admin_host//[\[\]]/}/$admin_port") 2>/dev/null; then break; fi
    if ! kill -0 "$caddy" 2>/dev/null; then
      status=0
      wait "$caddy" || status=$?
      say "Caddy (pid $caddy) $(how "$status") at start; the end of its log ($caddy_log):"
      tail -n 5 "$caddy_log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "Ingress: Caddy (admin $LIVE_CADDY_ADMIN_URL, log $caddy_log); customer URLs: $(url_form)"
  # The CLI in another terminal reads its own environment: without these it would print https:// URLs.
  settings=""
  for name in LIVE_CADDY_ADMIN_URL LIVE_TLS LIVE_BASE_DOMAIN LIVE_INGRESS_BIND LIVE_INGRESS_HTTP_PORT \
              LIVE_INGRESS_HTTPS_PORT LIVE_INGRESS_ASK_URL; do
    if [ -n "${!name+set}" ]; then settings+=" $name=${!name}"; fi
  done
  echo "For the CLI in another terminal to print these URLs: export$settings"
fi

"$BIN/flask" --app wsgi live worker &
worker=$!
"$BIN/gunicorn" -c config/gunicorn.conf.py wsgi:app &
web=$!
echo "GeoCat Live bridge on http://${GUNICORN_BIND:-127.0.0.1:8000} (worker pid $worker, gunicorn pid $web${caddy:+, caddy pid $caddy})"

# Wait for the first one to exit (a trapped signal interrupts the wait and runs on_signal); -p names the one that
# did (bash 5.1, Debian 12 has 5.2).
status=0 exited=""
wait -n -p exited "$worker" "$web" $caddy || status=$?
if [ "$exited" = "$worker" ]; then
  say "the worker (pid $worker) $(how "$status"); stopping $(and_caddy gunicorn), since no operation would run"
  stop gunicorn "$web"
  stop Caddy "$caddy"
elif [ "$exited" = "$web" ]; then
  say "gunicorn (pid $web) $(how "$status"); stopping $(and_caddy "the worker")"
  stop worker "$worker"
  stop Caddy "$caddy"
else
  say "Caddy (pid $caddy) $(how "$status"); stopping gunicorn and the worker, since no customer URL would open"
  say "the end of its log ($caddy_log):"
  tail -n 5 "$caddy_log" >&2
  stop gunicorn "$web"
  stop worker "$worker"
fi
say "stopped; see the output above for why, then start it again (make run)"
exit 1
