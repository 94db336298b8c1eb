"""Time from a command's last byte of standard output to the end of its
process: the exit-time teardown a run pays after its result is printed.

    python3 benches/python/exit_time.py 8 \
        "old=exec ./sceneql.old -q -f sql/ndvi_trend.sql -D archive=A/ -D out=/tmp/t.parquet" \
        "new=exec ./sceneql.new -q -f sql/ndvi_trend.sql -D archive=A/ -D out=/tmp/t.parquet"

Runs each LABEL=COMMAND (through the shell; `exec` so the timed process is
the command itself) N times, alternating, and prints the median, least and
most milliseconds. Only standard library.
"""

import os
import statistics
import subprocess
import sys
import time


def exit_ms(command):
    proc = subprocess.Popen(
        command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    last = time.perf_counter()
    while True:
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        last = time.perf_counter()
    proc.wait()
    if proc.returncode:
        sys.exit(f"{command!r} failed with exit code {proc.returncode}")
    return (time.perf_counter() - last) * 1000


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: exit_time.py N LABEL=COMMAND [LABEL=COMMAND ...]")
    runs = int(sys.argv[1])
    commands = [arg.split("=", 1) for arg in sys.argv[2:]]
    times = {label: [] for label, _ in commands}
    for _ in range(runs):
        for label, command in commands:
            times[label].append(exit_ms(command))
    for label, ms in times.items():
        print(
            f"{label}: last output -> exit: median {statistics.median(ms):.1f} ms, "
            f"least {min(ms):.1f}, most {max(ms):.1f} ({len(ms)} runs)"
        )


if __name__ == "__main__":
    main()
