#!/usr/bin/env bash
# Install what sceneql needs on Debian (GDAL headers and tools, pkg-config,
# Python venv) if missing, and point cargo at a build cache outside the clone.
# Sourced by scripts/demo.sh and scripts/test.sh.
set -euo pipefail
need=()
dpkg -s libgdal-dev >/dev/null 2>&1 || need+=(libgdal-dev)
command -v gdallocationinfo >/dev/null 2>&1 || need+=(gdal-bin)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv python3-pip)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >&2
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "Rust >= 1.94 is required: install it with rustup (https://rustup.rs) and re-run" >&2
  exit 1
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sceneql/target}"
