"""gunicorn settings; every value can be overridden with the GUNICORN_* variables below."""
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 20
keepalive = 5
accesslog = "-"
errorlog = "-"
# Migrations run once per deploy (`live db upgrade`), never in gunicorn workers,
# and the operation worker is its own process (`live worker`).
preload_app = False
