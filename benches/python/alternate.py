"""A/B runs of `sql/ndvi_trend.sql` under different session settings.

    python3 benches/python/alternate.py BINARY ARCHIVE ROUNDS VARIANT...

A VARIANT is a comma-separated list of settings (`sceneql.steal_reads=false`),
`-` for none, optionally prefixed with `1core:` to run pinned to one core
(`taskset -c 0`) and/or `bin=PATH:` to run another binary than BINARY (two
builds side by side, e.g. `- bin=/tmp/sceneql-old:-`). Each round runs every variant once, in turn, so a slow
phase of the machine falls on all of them alike; the medians of the wall
seconds, CPU seconds (user + system) and peak RSS of each variant are
printed, with every run's wall seconds. Example (BENCHMARKS.md, sixteenth
round):

    python3 benches/python/alternate.py $CARGO_TARGET_DIR/release/sceneql \
        ~/.cache/sceneql/bench/archive-1024x46-t512 12 \
        - sceneql.steal_reads=false 1core:-
"""

import os
import statistics
import subprocess
import sys
import tempfile

SQL = os.path.join(os.path.dirname(__file__), "..", "..", "sql", "ndvi_trend.sql")


def sql_file(settings, folder):
    """`sql/ndvi_trend.sql` after a `SET` for each of `settings`."""
    lines = []
    if settings != "-":
        for setting in settings.split(","):
            key, value = setting.split("=", 1)
            lines.append(f"SET {key.strip()} = {value.strip()};\n")
    with open(SQL) as f:
        lines.append(f.read())
    fd, path = tempfile.mkstemp(suffix=".sql", dir=folder)
    with os.fdopen(fd, "w") as f:
        f.writelines(lines)
    return path


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    binary, archive, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    variants = sys.argv[4:]
    with tempfile.TemporaryDirectory() as folder:
        runs = {}
        for v in variants:
            settings, exe = v, binary
            if settings.startswith("bin="):
                exe, settings = settings[len("bin="):].split(":", 1)
            pinned = settings.startswith("1core:")
            settings = settings[len("1core:"):] if pinned else settings
            prefix = ["taskset", "-c", "0"] if pinned else []
            runs[v] = ([*prefix, exe], sql_file(settings, folder), [])
        out = os.path.join(folder, "out.parquet")
        for _ in range(rounds):
            for v, (prefix, path, results) in runs.items():
                cmd = ["/usr/bin/time", "-f", "%e %U %S %M", *prefix, "-q", "-f", path,
                       "-D", f"archive={archive.rstrip('/')}/", "-D", f"out={out}"]
                r = subprocess.run(cmd, capture_output=True, text=True)
                if r.returncode != 0:
                    sys.exit(f"{v}: {r.stderr}")
                wall, user, system, kb = r.stderr.strip().splitlines()[-1].split()
                results.append((float(wall), float(user) + float(system), int(kb) / 1024))
        for v, (_, _, results) in runs.items():
            wall = statistics.median(r[0] for r in results)
            cpu = statistics.median(r[1] for r in results)
            rss = statistics.median(r[2] for r in results)
            walls = " ".join(f"{r[0]:.2f}" for r in results)
            print(f"{v:40s} wall {wall:.3f} s  cpu {cpu:.2f} s  rss {rss:.0f} MB  runs {walls}")


if __name__ == "__main__":
    main()
