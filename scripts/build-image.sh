#!/usr/bin/env bash
# Builds the bridge image (Dockerfile). docs/OPERATIONS.md, "Building the image".
#
# Usage: scripts/build-image.sh [--local-base] [--wheels] [TAG]     (TAG default live-bridge:latest)
#   (no option)    FROM python:3.11-slim-bookworm, the official base; pip installs from PyPI inside the build.
#   --local-base   FROM live-base:bookworm, built here by scripts/build-base-image.sh when missing: for
#                  machines that cannot pull images (CI, the tests). BASE_IMAGE=... names any other base.
#   --wheels       download the wheels of requirements.txt on this machine into deploy/wheels, and let the
#                  build install them offline (pip --no-index): for build containers that cannot reach PyPI,
#                  or reach it only through a proxy whose certificate authority only this host trusts.
# Every build is cache-friendly: the dependency layer is rebuilt only when requirements.txt or the wheels change.
set -euo pipefail
cd "$(dirname "$0")/.."

tag=live-bridge:latest
base="${BASE_IMAGE:-python:3.11-slim-bookworm}"
local_base=""
wheels=""
for arg in "$@"; do
  case "$arg" in
    --local-base) local_base=1 ;;
    --wheels) wheels=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) echo "unknown option $arg (see --help)" >&2; exit 2 ;;
    *) tag="$arg" ;;
  esac
done

if [ -n "$local_base" ]; then
  base="${BASE_IMAGE:-live-base:bookworm}"
  bash scripts/build-base-image.sh "$base"
fi

if [ -n "$wheels" ]; then
  # Wheels only (no source builds in the image, no compiler there), for CPython 3.11 (the image's Python) on
  # this machine's architecture. A stamp of requirements.txt skips the download when nothing changed.
  stamp=deploy/wheels/.requirements.sha256
  wanted="$(sha256sum requirements.txt | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    python="${PYTHON:-python3}"
    log="$(mktemp)"
    rm -f deploy/wheels/*.whl  # wheels of older requirements would be installed too
    if ! "$python" -m pip download --quiet --only-binary=:all: --python-version 3.11 --implementation cp \
        -r requirements.txt -d deploy/wheels >"$log" 2>&1; then
      cat "$log" >&2; rm -f "$log"; exit 1
    fi
    rm -f "$log"
    echo "$wanted" > "$stamp"
  fi
  echo "wheels: $(ls deploy/wheels/*.whl | wc -l) in deploy/wheels"
else
  # Stale wheels would silently win over PyPI: say so when some are there.
  if ls deploy/wheels/*.whl >/dev/null 2>&1; then
    echo "note: deploy/wheels holds wheels: the build installs those, offline" >&2
  fi
fi

started=$SECONDS
docker build --build-arg "BASE_IMAGE=$base" -t "$tag" .
echo "built $tag from $base in $((SECONDS - started)) s"
