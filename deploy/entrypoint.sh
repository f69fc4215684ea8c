#!/bin/sh
# Entry point of the bridge image: one image, one role per container (docs/OPERATIONS.md, "Running the bridge
# with Docker Compose").
#   web      wait for the database, then gunicorn (config/gunicorn.conf.py) in place of this shell
#   worker   wait for the database, then the operation worker: exactly one per database
#   migrate  wait for the database, then `live db upgrade`: once per deploy, before web and worker start
#   live ... any `flask --app wsgi live` command, e.g. `live apikey create whmcs-prod --scope whmcs`
# Anything else runs as given (`sh`, `python`, ...).
# `exec` hands PID 1 to the service itself, so `docker stop` sends its SIGTERM there: gunicorn stops its
# workers gracefully, the worker lets running operations finish.
set -eu
cd /opt/live

wait_for_database() {
  python /opt/live/deploy/wait_for_database.py
}

role="${1:-web}"
[ "$#" -gt 0 ] && shift
case "$role" in
  web)
    wait_for_database
    # gunicorn's control socket (for gunicornc) would go to $HOME/.gunicorn, which is read-only here.
    exec gunicorn -c config/gunicorn.conf.py --control-socket /tmp/gunicorn.ctl "$@" wsgi:app
    ;;
  worker)
    wait_for_database
    exec flask --app wsgi live worker "$@"
    ;;
  migrate)
    wait_for_database
    exec flask --app wsgi live db upgrade "$@"
    ;;
  live)
    exec flask --app wsgi live "$@"
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
