"""When each scan partition of a run finishes, from sceneql's Chrome trace.

    python3 benches/python/trace_partitions.py ARCHIVE ./sceneql 5 [taskset -c 0]

Runs `sql/ndvi_trend.sql` on ARCHIVE RUNS times with `--trace` (any words
after RUNS go before the binary, e.g. `taskset -c 0`), and prints per run
the end of the trace and, per thread that read blocks, when its last
`tile_aggregate_emit` ended and how long its `decode` and `scan_block`
spans took in all (ms from the first event). Thread ids are the trace's:
with reads on the workers, one per scan partition.
"""

import collections
import json
import os
import subprocess
import sys
import tempfile

SQL = os.path.join(os.path.dirname(__file__), "..", "..", "sql", "ndvi_trend.sql")


def spans(trace_path):
    with open(trace_path) as f:
        events = json.load(f)
    if isinstance(events, dict):
        events = events["traceEvents"]
    events = [e for e in events if "ts" in e]
    t0 = min(e["ts"] for e in events)
    end = max(e["ts"] + e.get("dur", 0) for e in events)
    last = collections.defaultdict(dict)
    busy = collections.defaultdict(float)
    open_at = {}
    for e in sorted(events, key=lambda e: e["ts"]):
        name, tid = e.get("name"), e.get("tid")
        if name not in ("scan_block", "tile_aggregate_emit", "decode"):
            continue
        t = (e["ts"] - t0) / 1e3
        if e.get("ph") == "B":
            open_at[(tid, name)] = t
        elif e.get("ph") == "E":
            start = open_at.pop((tid, name), None)
            if start is not None:
                busy[(tid, name)] += t - start
            last[tid][name] = t
    return (end - t0) / 1e3, last, busy


def main():
    archive, binary, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    prefix = sys.argv[4:]
    with tempfile.TemporaryDirectory() as work:
        trace, out = os.path.join(work, "trace.json"), os.path.join(work, "t.parquet")
        for run in range(runs):
            cmd = prefix + [binary, "-q", "--trace", trace, "-f", SQL,
                            "-D", f"archive={archive.rstrip('/')}/", "-D", f"out={out}"]
            subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
            end, last, busy = spans(trace)
            parts = " | ".join(
                f"tid {tid}: done {d.get('tile_aggregate_emit', 0):.0f} "
                f"decode {busy[(tid, 'decode')]:.0f} scan {busy[(tid, 'scan_block')]:.0f}"
                for tid, d in sorted(last.items())
            )
            print(f"run {run}: end {end:.0f} ms | {parts}")


if __name__ == "__main__":
    main()
