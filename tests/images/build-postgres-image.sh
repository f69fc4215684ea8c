#!/usr/bin/env bash
# Builds live-test/postgres:15, the local stand-in for postgres:15 that tests/deploy runs deploy/compose.yml
# with (tests/images/postgres/Dockerfile): Debian's PostgreSQL 15 on the local base image, which
# scripts/build-base-image.sh builds when missing. Nothing is pulled; apt reaches Debian's mirror.
# Usage: tests/images/build-postgres-image.sh [IMAGE]    (default live-test/postgres:15)
set -euo pipefail
cd "$(dirname "$0")/../.."
image="${1:-live-test/postgres:15}"
base="${BASE_IMAGE:-live-base:bookworm}"
[ "$base" != live-base:bookworm ] || bash scripts/build-base-image.sh "$base"
# Always built: with the base and these files unchanged, every step is in the engine's cache (about 1 s).
started=$SECONDS
docker build -q --build-arg "BASE_IMAGE=$base" -t "$image" tests/images/postgres >/dev/null
echo "built $image in $((SECONDS - started)) s"
