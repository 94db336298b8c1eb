#!/usr/bin/env bash
# Benchmark "per-pixel OLS slope of cloud-masked NDVI" on one archive, in one
# run, side by side (machines here are noisy: compare the ratios):
#   sceneql (sql/ndvi_trend.sql, release build, result to Parquet)
#   sceneql with DataFusion's built-in regr_slope (benches/sql/ndvi_regr_slope.sql)
#   numpy closed form (one process), xarray + dask polyfit (2 threads)
#   sceneql on one core (taskset), for the 1 -> 2 core scaling
#   the I/O floor: GDAL read + decode of the same bands by two processes side by side
# Prints seconds, M obs/s, peak RSS and ratios; see BENCHMARKS.md.
# Every run but xarray+dask is repeated (--repeat, default 3) in rounds (each
# round runs each command once, so a slow phase of the machine falls on all
# of them alike) and its fastest wall time kept, with that run's peak RSS:
# single runs on this machine vary by +-20%.
# Usage: scripts/bench.sh [--size 1024] [--dates 46] [--tile 512] [--repeat 3] [--skip-xarray]
set -euo pipefail
cd "$(dirname "$0")/.."
size=1024 dates=46 tile=512 xarray=1 repeat=3
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=$2; shift 2 ;;
    --dates) dates=$2; shift 2 ;;
    --tile) tile=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --skip-xarray) xarray=0; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
source scripts/setup.sh
command -v /usr/bin/time >/dev/null 2>&1 || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo; $sudo apt-get install -y -qq time >&2; }
command -v taskset >/dev/null 2>&1 || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo; $sudo apt-get install -y -qq util-linux >&2; }
cache="${SCENEQL_CACHE:-$HOME/.cache/sceneql}"
venv="$cache/venv-bench"
# (Re)made when the pinned versions change: the venv keeps a copy of the
# requirements it was made from.
if ! cmp -s benches/python/requirements.txt "$venv/requirements.txt" \
  || ! "$venv/bin/python" -c 'import rasterio, xarray, dask, rioxarray' >/dev/null 2>&1; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r benches/python/requirements.txt
  cp benches/python/requirements.txt "$venv/requirements.txt"
fi
cargo build --release --locked --bin sceneql >&2
sceneql="$CARGO_TARGET_DIR/release/sceneql"
archive="$cache/bench/archive-${size}x${dates}-t${tile}"
[ -d "$archive" ] || "$sceneql" gen-sample "$archive" --size "$size" --dates "$dates" --tile "$tile" --seed 7
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
obs=$((size * size * dates))
# Every run reads the archive from the page cache: one untimed pass first.
find "$archive" -type f -exec cat {} + > /dev/null

# run NAME CMD...: time one run of CMD; keep NAME's fastest wall seconds
# and that run's peak RSS (MB, children included).
declare -A secs rss
run() {
  local name=$1 s k; shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  read -r s k < "$work/time"
  if [ -z "${secs[$name]:-}" ] || awk -v a="$s" -v b="${secs[$name]}" 'BEGIN { exit !(a < b) }'; then
    secs[$name]=$s
    rss[$name]=$((k / 1024))
  fi
  echo "$name: ${s}s" >&2
}
floor2() {
  "$venv/bin/python" benches/python/baselines.py floor "$archive" 0 2 &
  "$venv/bin/python" benches/python/baselines.py floor "$archive" 1 2
  wait
}
export -f floor2; export venv archive
for _ in $(seq "$repeat"); do
  run floor_2proc bash -c floor2
  run floor_1proc "$venv/bin/python" benches/python/baselines.py floor "$archive" 0 1
  run sceneql "$sceneql" -q -f sql/ndvi_trend.sql -D archive="$archive/" -D out="$work/trend.parquet"
  run sceneql_1core taskset -c 0 "$sceneql" -q -f sql/ndvi_trend.sql -D archive="$archive/" -D out="$work/trend1.parquet"
  run sceneql_regr_slope "$sceneql" -q -f benches/sql/ndvi_regr_slope.sql -D archive="$archive/" -D out="$work/regr.parquet"
  run numpy "$venv/bin/python" benches/python/baselines.py numpy "$archive" "$work/numpy.npy"
done
# xarray + dask once (a minute or more per run), right after the rounds.
[ "$xarray" = 1 ] && run xarray_dask "$venv/bin/python" benches/python/baselines.py xarray "$archive" "$work/xarray.npy"

echo
echo "archive: ${size}x${size} px, ${dates} dates, 3 uint16 bands (DEFLATE + predictor 2, ${tile}x${tile} tiles): $obs pixel-observations"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(date -u +%Y-%m-%d)"
printf '| %-20s | %8s | %8s | %9s | %13s | %9s |\n' run seconds "M obs/s" "peak RSS" "vs 2-proc floor" "vs numpy"
printf '|%s|%s|%s|%s|%s|%s|\n' ---------------------- ---------: ---------: ----------: ---------------: ----------:
for name in floor_2proc floor_1proc sceneql sceneql_1core sceneql_regr_slope numpy xarray_dask; do
  [ -n "${secs[$name]:-}" ] || continue
  awk -v n="$name" -v s="${secs[$name]}" -v r="${rss[$name]}" -v o="$obs" -v f="${secs[floor_2proc]}" -v np="${secs[numpy]}" \
    'BEGIN { printf "| %-20s | %8.2f | %8.1f | %6d MB | %13.2fx | %8.2fx |\n", n, s, o / s / 1e6, r, f / s, np / s }'
done
echo
awk -v one="${secs[sceneql_1core]}" -v two="${secs[sceneql]}" -v rs="${secs[sceneql_regr_slope]}" \
  'BEGIN { printf "sceneql 2 cores vs 1 core: %.2fx; vs regr_slope: %.2fx\n", one / two, rs / two }'
[ -n "${secs[xarray_dask]:-}" ] && awk -v x="${secs[xarray_dask]}" -v s="${secs[sceneql]}" \
  'BEGIN { printf "sceneql vs xarray+dask: %.1fx\n", x / s }'
exit 0
