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
# Azurite (npm), the Azure Blob Storage emulator tests/it/clouds.rs starts:
# installed outside the clone, reinstalled when its version changes (keep in
# step with AZURITE_VERSION there).
azurite_version=3.35.0
azurite="${SCENEQL_CACHE:-$HOME/.cache/sceneql}/azurite"
if [ "$("$azurite/node_modules/.bin/azurite-blob" --version 2>/dev/null)" != "$azurite_version" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq npm >&2
  fi
  npm install --prefix "$azurite" --no-audit --no-fund --loglevel=error "azurite@$azurite_version" >/dev/null
fi
export SCENEQL_AZURITE="$azurite/node_modules/.bin/azurite-blob"
cargo test --workspace --locked
