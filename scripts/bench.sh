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
# With --store s3: the same job with the archive in a local S3 server
# (s3s-fs, behind a proxy delaying each response's first byte by 20 ms),
# side by side with the job on the local files, with GDAL (rasterio)
# reading the same files through /vsis3/ in 2 processes (the floor), and
# with odc-stac + xarray/dask over a STAC collection of them.
# Usage: scripts/bench.sh [--size 1024] [--dates 46] [--tile 512] [--repeat 3] [--skip-xarray] [--store s3]
set -euo pipefail
cd "$(dirname "$0")/.."
size=1024 dates=46 tile=512 xarray=1 repeat=3 store=""
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=$2; shift 2 ;;
    --dates) dates=$2; shift 2 ;;
    --tile) tile=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --skip-xarray) xarray=0; shift ;;
    --store) store=$2; shift 2 ;;
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

if [ "$store" = s3 ]; then
  # s3s-fs (crates.io), installed outside the clone; each folder of its root
  # is a bucket: "bench" holds the archive.
  s3s="$cache/s3s-fs/bin/s3s-fs"
  [ -x "$s3s" ] || cargo install --quiet s3s-fs@0.14.1 --features binary --root "$cache/s3s-fs" >&2
  mkdir -p "$work/s3root/bench"
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  s3_port=$(free_port); proxy_port=$(free_port)
  "$s3s" --host 127.0.0.1 --port "$s3_port" --access-key bench --secret-key benchsecret "$work/s3root" >"$work/s3s.log" 2>&1 &
  s3s_pid=$!
  python3 benches/python/latency_proxy.py "$proxy_port" "$s3_port" 20 >"$work/proxy.log" 2>&1 &
  proxy_pid=$!
  trap 'kill $s3s_pid $proxy_pid 2>/dev/null; rm -rf "$work"' EXIT
  for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $s3_port)).close(); socket.create_connection(('127.0.0.1', $proxy_port)).close()" 2>/dev/null && break
    sleep 0.1
  done
  # Upload with PUT, as into a real store: s3s-fs then keeps each object's
  # ETag. Files copied into its folder have none, and it would hash the
  # whole file again on every GET and HEAD, on the cores the runs use.
  (cd "$archive/.." && find "$(basename "$archive")" -type f) | while read -r key; do
    curl -sS -f -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" --user bench:benchsecret \
      -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -T "$archive/../$key" "http://127.0.0.1:$s3_port/bench/$key"
  done
  export AWS_ENDPOINT_URL="http://127.0.0.1:$proxy_port" AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=benchsecret
  export AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
  # GDAL's spelling of the same endpoint, for the floor.
  export AWS_S3_ENDPOINT="127.0.0.1:$proxy_port" AWS_HTTPS=NO AWS_VIRTUAL_HOSTING=FALSE
  export GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR
  remote="s3://bench/$(basename "$archive")"
  vsis3="/vsis3/bench/$(basename "$archive")"
  # The floor timed inside its two processes (after start-up and imports):
  # the slower one's read time.
  floor_s3() {
    "$venv/bin/python" benches/python/baselines.py floor "$archive" 0 2 "$vsis3" 2>"$work/f0" >/dev/null &
    local first=$!
    "$venv/bin/python" benches/python/baselines.py floor "$archive" 1 2 "$vsis3" 2>"$work/f1" >/dev/null
    wait "$first"
    s=$(cat "$work/f0" "$work/f1" | awk -F'[: s]+' '/^floor:/ { if ($2 > m) m = $2 } END { print m }')
    if [ -z "${secs[floor_vsis3_2proc]:-}" ] || awk -v a="$s" -v b="${secs[floor_vsis3_2proc]}" 'BEGIN { exit !(a < b) }'; then
      secs[floor_vsis3_2proc]=$s
      rss[floor_vsis3_2proc]=0
    fi
    echo "floor_vsis3_2proc: ${s}s (inside the processes)" >&2
  }
  for _ in $(seq "$repeat"); do
    floor_s3
    run sceneql_local "$sceneql" -q -f sql/ndvi_trend.sql -D archive="$archive/" -D out="$work/local.parquet"
    run sceneql_s3 "$sceneql" -q -f sql/ndvi_trend.sql -D archive="$remote/" -D out="$work/s3.parquet"
  done
  # What a Python user runs on the same files as a STAC collection: odc-stac
  # + xarray/dask (once: a minute or more).
  "$venv/bin/python" benches/python/baselines.py stac-items "$archive" "$remote" "$work/items.json"
  [ "$xarray" = 1 ] && run odc_stac_xarray "$venv/bin/python" benches/python/baselines.py odc "$work/items.json" "$work/odc.npy"
  bytes=$(du -sb "$archive" | cut -f1)
  echo
  echo "archive: ${size}x${size} px, ${dates} dates, 3 uint16 bands (${tile}x${tile} tiles), $((bytes / 1048576)) MB compressed; S3: s3s-fs behind a 20 ms first-byte delay"
  echo "machine: $(nproc) cores, $(date -u +%Y-%m-%d)"
  printf '| %-20s | %8s | %14s | %9s |\n' run seconds "MB/s per core" "peak RSS"
  printf '|%s|%s|%s|%s|\n' ---------------------- ---------: ---------------: ----------:
  for name in floor_vsis3_2proc sceneql_local sceneql_s3 odc_stac_xarray; do
    [ -n "${secs[$name]:-}" ] || continue
    awk -v n="$name" -v s="${secs[$name]}" -v r="${rss[$name]}" -v b="$bytes" -v c="$(nproc)" \
      'BEGIN { printf "| %-20s | %8.2f | %14.1f | %6d MB |\n", n, s, b / s / 1048576 / c, r }'
  done
  echo
  awk -v l="${secs[sceneql_local]}" -v s="${secs[sceneql_s3]}" -v f="${secs[floor_vsis3_2proc]}" \
    'BEGIN { printf "sceneql from S3: %.2fx its local-file speed, %.2fx the /vsis3/ floor\n", l / s, f / s }'
  [ -n "${secs[odc_stac_xarray]:-}" ] && awk -v x="${secs[odc_stac_xarray]}" -v s="${secs[sceneql_s3]}" \
    'BEGIN { printf "sceneql from S3 vs odc-stac + xarray/dask: %.1fx\n", x / s }'
  exit 0
fi

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
