"""gunicorn settings; every value can be overridden with the GUNICORN_* variables below."""
import os
import shutil
import tempfile

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
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
