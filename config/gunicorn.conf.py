"""gunicorn settings; every value can be overridden with the GUNICORN_* variables below."""
import os
import shutil
import socket
import tempfile

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
# 16, not 8: up to LIVE_WAIT_SLOTS (default 4) threads per worker may each hold a lifecycle call that waits for
# up to 120 s, and the other 12 keep /healthz and the calls that answer at once fast. The threads mostly wait on
# the database or a sleep, so they cost memory, not CPU; the PostgreSQL pool allows 32 connections per process
# (app/db.py). app/config.py refuses LIVE_WAIT_SLOTS >= GUNICORN_THREADS and knows this default.
threads = int(os.environ.get("GUNICORN_THREADS", "16"))
worker_class = "gthread"
# Above the longest `wait` a lifecycle call may ask for (120 s).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "150"))
graceful_timeout = 30
keepalive = 5
limit_request_line = 8190  # the largest gunicorn allows; longer lines get its own 400
accesslog = None  # the app writes one structured line per request (with its request id)
errorlog = "-"
# Migrations run once per deploy (`live db upgrade`), never in gunicorn workers,
# and the operation worker is its own process (`live worker`).
preload_app = False

# Prometheus: aggregate the workers' metrics in one directory, fresh at each start.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="live-metrics-")
_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]


def on_starting(server):
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_request(worker, req, environ, resp):
    """After a response that ends the connection, shut its read side (runs in the worker thread).

    gunicorn 27's gthread worker closes such a connection on its main thread, the one that
    accepts and polls every connection, with ``util.close_graceful``: it half-closes, then reads
    until the client closes or 2 s pass (RFC 9112 section 9.6 lingering close). A client that
    never closes, or that sends one byte a second, holds that thread for the full 2 s, once per
    connection: twenty of them reconnecting keep ``/healthz`` from being accepted at all. With
    the read side shut, that loop still reads what already arrived, then sees the end at once.
    The response was written before this hook runs. A client still sending its body then may
    get a reset after the answer (the app closes only when it answers without reading the body:
    401, 404, 413...); the buffering proxy in front (docs/OPERATIONS.md) never does that.
    """
    if environ.get("SERVER_PROTOCOL") not in ("HTTP/1.0", "HTTP/1.1"):
        return  # an HTTP/2 stream shares its connection with others
    try:
        closing = resp is None or resp.should_close()
    except AttributeError:  # no status: the application failed before answering, gunicorn closes
        closing = True
    sock = environ.get("gunicorn.socket")
    if closing and sock is not None:
        try:
            socket.socket.shutdown(sock, socket.SHUT_RD)  # the plain socket's method: never unwraps TLS
        except OSError:  # already gone
            pass
