#!/usr/bin/env bash
# README command 1: install what is missing, build, generate the sample
# archive (512 x 512 pixels, 24 dates, planted NDVI trend, clouds) and run
# sql/ndvi_trend.sql over it, writing Parquet and printing a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --locked --bin sceneql
sceneql="$CARGO_TARGET_DIR/debug/sceneql"
out="${1:-sample}"
[ -d "$out/archive" ] || "$sceneql" gen-sample "$out/archive" --size 512 --dates 24 --tile 256 --seed 1
"$sceneql" -f sql/ndvi_trend.sql -D archive="$out/archive/" -D out="$out/trend.parquet"
