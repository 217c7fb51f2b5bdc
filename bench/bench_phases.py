"""Where the fixed cost of ``sweep run`` on the embedded Ray goes, phase by phase, for a tiny sweep.

A fresh process imports the runner, parses a spec (2 chains x 2 generations of the Gaussian
exact path by default) and calls ``run_sweep`` on an embedded Ray with 2 CPUs, with each of the
runner's steps wrapped in a timer (the runner itself is not changed): import, spec, check of the
folder, Ray's start, sweep.json, the scan of existing parts, planning, the first task's result,
the other tasks, the final check, Ray's shut-down and the last sweep.json. Then the process's
own exit (Ray's atexit handlers) is timed from outside. Every phase is wall-clock time, so a
loaded machine inflates them all; run it a few times (``--repeat``) and read the medians.

``--compare`` runs, alternately in the same run, the embedded Ray as ``ray.init`` starts it by
default (none of ``sweep.cluster.lean_local_start``'s classes and ``LEAN_ENV`` emptied, in the
child) and as the runner starts it, and prints both columns.

Usage: python bench/bench_phases.py [--repeat 3] [--compare] [--kernel numba|numpy] [--chains 2] [--generations 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

#: The child: times phases by wrapping the runner's module-level names, prints one JSON line.
CHILD = r"""
import json, sys, time, tempfile
t0 = time.perf_counter()
phases = []
def mark(name, start):
    phases.append((name, time.perf_counter() - start))
import ray
mark("import ray", t0)
t = time.perf_counter()
import sweep.runner as runner
from sweep.spec import parse_spec
mark("import sweep.runner", t)
if PLAIN:  # Ray's own defaults: everything ray.init starts, metrics on
    import sweep.cluster
    sweep.cluster._lean_classes = lambda: []
    sweep.cluster.LEAN_ENV.clear()
t = time.perf_counter()
spec = parse_spec({"name": "phases", "seed": 1, "generations": GENERATIONS, "replicates": CHAINS,
                   "family": {"name": "gaussian", "path": "exact", "kernel": KERNEL},
                   "grid": {"n": [100], "policy": ["replace"]}})
mark("parse spec", t)

def timed(name, func):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            mark(name, start)
    return wrapper

scans = iter(["scan existing parts", "final check of the folder"])
for attr, name in [("check_folder", "check folder"), ("connect", "ray.init (connect)"),
                   ("check_gpus", "check gpus"), ("begin", "write sweep.json (begin)"),
                   ("plan_tasks", "plan tasks"), ("warn_if_not_shared", "warn if not shared")]:
    setattr(runner, attr, timed(name, getattr(runner, attr)))
scan = runner._scan
def scan_timed(*args, **kwargs):
    return timed(next(scans), scan)(*args, **kwargs)
runner._scan = scan_timed

# execute: the first result (a worker started, imports, the first task) and the rest
execute, wait = runner.execute, ray.wait
def execute_timed(*args, **kwargs):
    start = time.perf_counter()
    first = []
    def wait_timed(*a, **k):
        out = wait(*a, **k)
        if not first:
            first.append(time.perf_counter())
            mark("first task's result", start)
        return out
    ray.wait = wait_timed
    try:
        return execute(*args, **kwargs)
    finally:
        ray.wait = wait
        if first:
            phases.append(("other tasks", time.perf_counter() - first[0]))
runner.execute = execute_timed
ray.shutdown = timed("ray.shutdown", ray.shutdown)
from sweep.store import Store
Store.write_meta = timed("write sweep.json", Store.write_meta)

out = tempfile.mkdtemp(prefix="phases-")
t = time.perf_counter()
report = runner.run_sweep(spec, out, num_cpus=2, overwrite=True, progress=False)
mark("run_sweep, call to return", t)
print(json.dumps({"phases": phases, "total_in_process": time.perf_counter() - t0, "report_seconds": report.seconds}))
sys.stdout.flush()
"""

#: Phases in the order of the table (the runner's order), summed when a name repeats.
ORDER = [
    "import ray",
    "import sweep.runner",
    "parse spec",
    "check folder",
    "ray.init (connect)",
    "check gpus",
    "write sweep.json (begin)",
    "scan existing parts",
    "warn if not shared",
    "plan tasks",
    "first task's result",
    "other tasks",
    "final check of the folder",
    "ray.shutdown",
    "write sweep.json",
    "run_sweep, call to return",
]


def once(kernel: str, chains: int, generations: int, *, plain: bool = False) -> dict[str, float]:
    """One fresh process: its phases (seconds) and its exit after the last line it prints;
    ``plain``: the embedded Ray started with Ray's defaults."""
    code = CHILD.replace("GENERATIONS", str(generations)).replace("CHAINS", str(chains))
    code = code.replace("KERNEL", repr(kernel)).replace("PLAIN", repr(plain))
    start = time.perf_counter()
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=os.environ.copy()
    )
    whole = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(child.stderr[-3000:])
    result = json.loads(child.stdout.strip().splitlines()[-1])
    phases: dict[str, float] = {}
    for name, seconds in result["phases"]:
        phases[name] = phases.get(name, 0.0) + seconds
    phases["process exit (atexit)"] = whole - result["total_in_process"]
    phases["whole process"] = whole
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compare", action="store_true", help="Ray's default start and the runner's, alternately")
    parser.add_argument("--kernel", default="numba", choices=("numba", "numpy"))
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--generations", type=int, default=2)
    args = parser.parse_args()
    columns: dict[str, list[dict[str, float]]] = {"ray defaults": [], "runner": []} if args.compare else {"runner": []}
    for _ in range(args.repeat):
        for label, runs in columns.items():
            runs.append(once(args.kernel, args.chains, args.generations, plain=label == "ray defaults"))
    names = ORDER + ["process exit (atexit)", "whole process"]
    print(f"{'phase (median s, min-max)':32s}" + "".join(f"{label:>22s}" for label in columns))
    for name in names:
        cells = []
        for runs in columns.values():
            values = [r.get(name, 0.0) for r in runs]
            cells.append(f"{statistics.median(values):8.3f} ({min(values):.2f}-{max(values):.2f})")
        print(f"{name:32s}" + "".join(f"{c:>22s}" for c in cells))
    print(
        f"({args.repeat} fresh processes per column, alternating; {args.chains} chains x {args.generations} "
        f"generations, gaussian exact, kernel {args.kernel}, embedded Ray with 2 CPUs)"
    )


if __name__ == "__main__":
    main()
