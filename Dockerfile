# GeoCat Live Bridge: one image, one role per container (deploy/entrypoint.sh).
#   docker run IMAGE migrate     `live db upgrade`: once per deploy, before the others
#   docker run IMAGE worker      the operation worker: exactly one per database
#   docker run IMAGE [web]       gunicorn on 0.0.0.0:8000 (the default)
#   docker run IMAGE live ...    any `flask --app wsgi live` command (apikey create, orders show, ...)
# deploy/compose.yml runs the three with PostgreSQL; docs/OPERATIONS.md, "Running the bridge with Docker Compose".
#
# The production base is the official python:3.11-slim-bookworm. A machine that cannot pull it builds a local
# Debian 12 base (scripts/build-base-image.sh) and builds with --build-arg BASE_IMAGE=live-base:bookworm;
# `scripts/build-image.sh --local-base` does both. Any base with python3 (3.11) and its venv module will do.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# Stage 1: the virtualenv. Its own stage, so that the image carries neither requirements.txt nor the wheels,
# and cached on its own: it is built again only when requirements.txt (or the wheels) change.
FROM ${BASE_IMAGE} AS venv
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# With wheels in deploy/wheels (scripts/build-image.sh --wheels) nothing is fetched: pip installs them with
# --no-index. Otherwise pip installs from PyPI. Bytecode is compiled afterwards on every core (pip does it on one).
COPY requirements.txt deploy/wheels/ /tmp/build/
RUN python3 -m venv /opt/live/venv \
 && if ls /tmp/build/*.whl >/dev/null 2>&1; then \
      /opt/live/venv/bin/pip install --no-compile --no-index --find-links /tmp/build -r /tmp/build/requirements.txt; \
    else \
      /opt/live/venv/bin/pip install --no-compile -r /tmp/build/requirements.txt; \
    fi \
 && /opt/live/venv/bin/python -m compileall -q -j 0 /opt/live/venv/lib

# Stage 2: the image.
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="GeoCat Live Bridge" \
      org.opencontainers.image.description="WHMCS to Docker bridge: web service, operation worker, migrations"

# A fixed uid/gid, so that volumes and file permissions on the host are predictable. The code is root's and
# read-only to the service; it writes only to /var/lib/live (backups; a SQLite file if one is used) and /tmp.
RUN groupadd --gid 10001 live \
 && useradd --no-log-init --uid 10001 --gid live --home-dir /var/lib/live --no-create-home \
      --shell /usr/sbin/nologin live \
 && install -d -o live -g live -m 0750 /var/lib/live /var/lib/live/backups

ENV LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/live/venv \
    PATH=/opt/live/venv/bin:$PATH
COPY --from=venv /opt/live/venv /opt/live/venv

WORKDIR /opt/live
COPY wsgi.py ./
COPY config/gunicorn.conf.py config/
COPY migrations/ migrations/
COPY examples/ examples/
COPY deploy/entrypoint.sh deploy/healthcheck.py deploy/wait_for_database.py deploy/
COPY app/ app/
# Compiled now: the service user cannot write next to the code, and every start would compile it again.
RUN python -m compileall -q app migrations wsgi.py deploy

# In the image: the service listens on every interface of its container (publish the port on the host's
# loopback, behind the TLS proxy), and state lives under /var/lib/live (mount a volume there): archives in
# backups/, and the SQLite file of a trial run. deploy/compose.yml sets LIVE_DATABASE_URL to its PostgreSQL.
ENV GUNICORN_BIND=0.0.0.0:8000 \
    LIVE_DATABASE_URL=sqlite:////var/lib/live/live.db \
    LIVE_BACKUP_DIR=/var/lib/live/backups \
    PYTHONDONTWRITEBYTECODE=1

USER 10001:10001
EXPOSE 8000
# web: GET /healthz answers; worker and migrate: healthy while they run (deploy/healthcheck.py).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "/opt/live/deploy/healthcheck.py"]
ENTRYPOINT ["/opt/live/deploy/entrypoint.sh"]
CMD ["web"]
