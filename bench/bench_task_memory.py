"""Memory of one gmm1d task, per kernel: the worker's baseline and what the task adds to it.

A worker's peak resident memory (what ``sweep run`` reports as a task's peak) mixes two things:
the process's baseline (Python, numpy, pyarrow, the families, and with ``kernel: numba`` numba's
runtime and the loaded machine code) and what the task itself allocates. This script separates
them for bench_gmm.py's cells (kmeans init, metrics every 10th generation, 60 generations): in a
fresh process per kernel it runs a tiny warm-up task (imports, compiled kernels loaded), reads
the resident memory, then runs each cell's task (``sweep.task.run_task``, Parquet parts written)
and prints its high-water mark and how far above the warmed-up process it went. It also prints
how the baseline splits into private memory and clean pages of shared libraries (which the
kernel shares between processes and can drop), from /proc/self/smaps_rollup.

Usage: python bench/bench_task_memory.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from _gmm_cells import GENERATIONS, PLAN, TRUTH  # bench/ is on sys.path when run as a script

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

CELLS = {n: chains for n, (_, chains) in PLAN.items()}  # N: batched chains


def _status(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def _split() -> dict[str, float]:
    """MiB of the process's resident memory: anonymous (private) and clean file pages."""
    out = {}
    with open("/proc/self/smaps_rollup") as rollup:
        for line in rollup:
            name, *rest = line.split()
            if name.rstrip(":") in ("Anonymous", "Shared_Clean", "Private_Clean"):
                out[name.rstrip(":")] = int(rest[0]) / 1024
    return out


def measure(kernel: str) -> None:
    """In this process: one line per cell for ``kernel`` (run by main in a fresh process)."""
    from sweep.grid import cells
    from sweep.plan import plan_tasks
    from sweep.spec import parse_spec
    from sweep.task import run_task

    folder = tempfile.mkdtemp(prefix="bench-task-memory-")

    def task(n: int, chains: int, generations: int):
        family = {"name": "gmm1d", **TRUTH, "init": "kmeans", "kernel": kernel}
        raw = {"name": "m", "seed": 1, "generations": generations, "replicates": chains, "family": family}
        spec = parse_spec({**raw, "grid": {"n": [n], "policy": ["replace"]}, "record": {"every": 10}})
        grid = cells(spec)
        shutil.rmtree(folder, ignore_errors=True)
        return run_task(spec, grid, 1, folder, plan_tasks(spec, grid, {}, workers=1)[0])

    task(100, 8, 3)  # warm-up
    base, split = _status("VmRSS"), _split()
    print(
        f"{kernel:>6} {base:>10,.0f} {split['Anonymous']:>10,.0f} "
        f"{split['Shared_Clean'] + split['Private_Clean']:>12,.0f}",
        end="",
    )
    for n, chains in CELLS.items():
        peak = task(n, chains, GENERATIONS).peak_rss_mib
        print(f" {peak:>9,.0f} {peak - base:>+6,.0f}", end="")
    print()
    shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--kernel":
        measure(sys.argv[2])
        return
    from sweep._numba import available

    heads = "".join(f" {f'N={n} peak':>9} {'task':>6}" for n in CELLS)
    print(f"{'kernel':>6} {'baseline':>10} {'private':>10} {'lib pages':>12}{heads}")
    for kernel in ("numpy", "numba") if available() else ("numpy",):
        subprocess.run([sys.executable, __file__, "--kernel", kernel], check=True)
    print(
        "(MiB; baseline: the worker after a warm-up task, split into private (anonymous) memory and "
        "clean pages of shared libraries; peak: the high-water mark after the cell's task; task: "
        "peak minus baseline, what the task itself needed)"
    )


if __name__ == "__main__":
    main()
