#!/usr/bin/env bash
# README command 2: install what is missing, fetch the real-data fixtures into
# a cache outside the clone, and run every test in one cargo invocation.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
SCENEQL_REAL_DATA="$(scripts/fetch-real-data.sh)"
export SCENEQL_REAL_DATA
# The tests' Python venv: numpy for the pipelines' reference computations
# (tests/reference/models.py), moto's S3 server and rustac's STAC API server.
# Reinstalled when tests/reference/requirements.txt changes.
venv="${SCENEQL_CACHE:-$HOME/.cache/sceneql}/venv-test"
stamp="$venv/requirements.sha256"
want="$(sha256sum tests/reference/requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! "$venv/bin/python" -c 'import numpy' >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r tests/reference/requirements.txt
  echo "$want" > "$stamp"
fi
export SCENEQL_PYTHON="$venv/bin/python"
cargo test --workspace --locked
