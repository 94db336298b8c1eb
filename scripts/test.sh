#!/usr/bin/env bash
# README command 2: install what is missing, fetch the real-data fixtures into
# a cache outside the clone, and run every test in one cargo invocation.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
SCENEQL_REAL_DATA="$(scripts/fetch-real-data.sh)"
export SCENEQL_REAL_DATA
cargo test --workspace --locked
