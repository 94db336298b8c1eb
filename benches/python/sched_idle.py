"""Idle CPU time of a run, and how much of it another CPU spent time-slicing
the run's own runnable threads (so a thread waited while a CPU was free).

Reads the output of `perf sched timehist --state` (see BENCHMARKS.md):

    perf sched record -o sched.data -- sceneql -q -f sql/ndvi_trend.sql ...
    perf sched timehist -i sched.data --state > timehist.txt
    python3 benches/python/sched_idle.py timehist.txt [NAME,NAME...]

NAMEs pick the run's threads by name (default: sceneql's,
`tokio-rt-worker,sceneql`; `python` for the baselines).

A switch whose outgoing thread is still runnable (state R) means that CPU
had another thread to run as well: if a different CPU was idle at that
moment, the waiting thread could have run there. Only standard library.
"""

import sys


def parse(lines):
    """(time s, cpu, task, run ms, state) of each switch line."""
    rows = []
    for line in lines:
        parts = line.split()
        if len(parts) < 7:
            continue
        try:
            t = float(parts[0])
            cpu = int(parts[1].strip("[]"))
            run = float(parts[-2])
        except ValueError:
            continue
        rows.append((t, cpu, parts[2], run, parts[-1]))
    return rows


def main(path, names=("tokio-rt-worker", "sceneql")):
    with open(path) as f:
        rows = parse(f)
    if not rows:
        sys.exit(f"{path}: no `perf sched timehist --state` lines found")
    cpus = sorted({cpu for _, cpu, _, _, _ in rows})
    idle = {c: [] for c in cpus}
    preempted = {c: [] for c in cpus}
    for t, cpu, task, run, state in rows:
        if task == "<idle>":
            idle[cpu].append((t - run / 1000, t))
        elif state == "R" and any(n in task for n in names):
            preempted[cpu].append(t)
    total = packed = 0.0
    for cpu in cpus:
        others = [t for c in cpus if c != cpu for t in preempted[c]]
        for a, b in idle[cpu]:
            total += b - a
            if any(a <= t <= b for t in others):
                packed += b - a
    span = rows[-1][0] - rows[0][0]
    print(f"run: {span * 1000:.0f} ms on {len(cpus)} CPUs")
    print(f"idle CPU time: {total * 1000:.1f} ms")
    print(
        f"of which while another CPU time-sliced the run's runnable threads: "
        f"{packed * 1000:.1f} ms"
    )


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: sched_idle.py TIMEHIST_STATE_TXT [NAME,NAME...]")
    if len(sys.argv) == 3:
        main(sys.argv[1], tuple(n for n in sys.argv[2].split(",") if n))
    else:
        main(sys.argv[1])
