"""Throughput of the batched families against per-chain loops, side by side, on one core.

Prints chain-generations per second for each family as the bare kernel (one block through
``simulate_block``) and end to end through ``run_sweep`` (planning, Ray tasks, Parquet writes;
Ray is started once beforehand with one CPU, so its start-up is not counted), each next to the
same algorithm run one chain at a time in plain numpy, which is what batching gains:

- the sampling path against the loop of the published notebooks: ``np.random.normal(size=n)``,
  ``np.mean``, ``np.var(ddof=1)``, O(n) per generation;
- the exact path against the exact kernel one chain at a time: the mean drawn from
  N(mu, var / n) and the scatter from var chi2(n - 1), O(1) per generation whatever n.

The exact rows are also compared with the notebook loop at n = 10000, labelled as what it is:
an O(1) algorithm against an O(n) one, the gain of sampling the statistics rather than the
data. Targets (issue 2): Gaussian exact >= 1e7 chain-generations/s in the kernel and >= half of
that end to end; >= 1000x the notebook loop at n = 10000 (that O(1) against O(n) comparison);
categorical (k = 1000, n = 10000) >= 1e4 chain-generations/s.

First, issue 16's case, before Ray is started by anything else: 1e9 chain-generations of the
Gaussian exact path (1e5 chains x 1e4 generations, n = 100, the default record and events)
through ``run_sweep`` on an embedded Ray with 2 CPUs, timed from the call to its return (Ray's
start-up and shut-down, planning, every Parquet write included), against the bare one-core numpy
kernel on all 1e5 chains at once (``mu += sqrt(s2 / n) z; s2 *= chi2(n - 1) / (n - 1)``, no
events, no metrics, nothing written; best of three before and three after the sweep, so that
the reference is its least disturbed figure). Target: the sweep >= 1.6x the kernel (80% of two
cores). The case runs twice, with ``kernel: numba`` (sweep._fastrng's compiled draws) and
with ``kernel: numpy``, against the same reference, which stays numpy's (the issue's).

Usage: python bench/bench_kernels.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from _timing import end_to_end, kernel  # noqa: E402 (bench/ is on sys.path when run as a script)

from sweep.runner import run_sweep  # noqa: E402
from sweep.spec import parse_spec  # noqa: E402


def naive_loop(n: int, generations: int, chains: int) -> float:
    """The notebook loop (sampling, O(n) a generation): chain-generations per second."""
    start = time.perf_counter()
    for _ in range(chains):
        mu, sigma = 0.0, 1.0
        for _ in range(generations):
            x = np.random.normal(mu, sigma, size=n)  # noqa: NPY002 (the notebooks' own style, as measured)
            mu, sigma = np.mean(x), np.sqrt(np.var(x, ddof=1))
    return chains * generations / (time.perf_counter() - start)


def naive_exact_loop(n: int, generations: int, chains: int) -> float:
    """The exact kernel one chain at a time (O(1) a generation, any n): the sample mean is
    N(mu, var / n) and the scatter var chi2(n - 1), independent; chain-generations per second."""
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(chains):
        mu, var = 0.0, 1.0
        for _ in range(generations):
            mu = rng.normal(mu, np.sqrt(var / n))
            var = var * rng.chisquare(n - 1) / (n - 1)
    return chains * generations / (time.perf_counter() - start)


def bare_kernel(chains: int, generations: int, n: int = 100) -> tuple[float, float]:
    """The bare batched numpy kernel on one core: chain-generations per second by the wall clock
    and by this process's CPU time."""
    rng = np.random.default_rng(0)
    mu, s2 = np.zeros(chains), np.ones(chains)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(generations):
        mu += np.sqrt(s2 / n) * rng.standard_normal(chains)
        s2 *= rng.chisquare(n - 1, chains) / (n - 1)
    work = chains * generations
    return work / (time.perf_counter() - start), work / (time.process_time() - cpu)


def issue16(out: str, scale: float) -> list[tuple[str, float, float | None, float | None]]:
    """Issue 16's end-to-end case (Ray start-up included, 2 CPUs) with the compiled draws
    (``kernel: numba``, blocks of 16384) and numpy's (``kernel: numpy``, blocks of 4096), one
    after the other, against the one-core bare numpy kernel measured before and after both."""
    chains, generations = int(100_000 * min(1.0, 10 * scale)), 10_000
    reference = [bare_kernel(100_000, 300) for _ in range(3)]
    sweeps = {}
    for choice in ("numba", "numpy"):
        spec = spec_for({"name": "gaussian", "path": "exact", "kernel": choice}, 100, generations, chains)
        start = time.perf_counter()
        report = run_sweep(spec, out, num_cpus=2, overwrite=True, progress=False)
        sweeps[choice] = (chains * generations / (time.perf_counter() - start), report)
    reference += [bare_kernel(100_000, 300) for _ in range(3)]
    bare, bare_cpu = max(r[0] for r in reference), max(r[1] for r in reference)
    rows = [("bare numpy kernel, 1 core, 1e5 chains", bare, None, None)]
    for choice, (rate, report) in sweeps.items():
        # By CPU time, which a loaded machine does not distort: the tasks' whole work (simulation,
        # metrics, Parquet writes) per CPU second against the bare kernel's; Ray and the driver aside.
        task_cpu = chains * generations / report.cpu_seconds
        label = f"{chains * generations:.0e} {choice} e2e 2 CPUs ({report.seconds:.0f} s)"
        rows += [
            (f"gaussian exact n=100, {label}", rate, bare, None),
            (f"  {choice}: tasks by their CPU time (per core)", task_cpu, bare_cpu, None),
        ]
    rows.append(("  bare kernel by CPU time", bare_cpu, None, None))
    return rows


def spec_for(family: dict, n: int, generations: int, replicates: int, block_size: int | None = None):
    raw = {
        "name": "bench",
        "seed": 1,
        "generations": generations,
        "replicates": replicates,
        "family": family,
        "grid": {"n": [n], "policy": ["replace"]},
    }
    if block_size:
        raw["block_size"] = block_size
    return parse_spec(raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run, not the figures)")
    parser.add_argument("--issue16", action="store_true", help="only issue 16's case (the first rows)")
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0

    import ray

    out = tempfile.mkdtemp(prefix="bench-")
    rows = issue16(out, scale)  # before any ray.init: run_sweep starts (and times) its own Ray
    if args.issue16:
        _print(rows)
        return

    # address="local": always a new Ray, as the runner does, never another process's cluster
    ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level="ERROR")
    gaussian_exact = {"name": "gaussian", "path": "exact"}
    gaussian_sample = {"name": "gaussian", "path": "sample"}
    categorical = {"name": "categorical", "k": 1000, "probs": "uniform"}
    # rows: (case, rate, same algorithm per chain (or the bare kernel), O(1) against O(n) comparison)

    naive_rate = naive_loop(10_000, 100, max(1, int(20 * scale)))
    naive_small = naive_loop(100, 100, max(1, int(100 * scale)))
    exact_rate = naive_exact_loop(10_000, 100, max(1, int(500 * scale)))
    rows.append(("per-chain loop, sampling n=10000 (notebook)", naive_rate, None, None))
    rows.append(("per-chain loop, sampling n=100 (notebook)", naive_small, None, None))
    rows.append(("per-chain loop, exact statistics (any n)", exact_rate, None, None))

    spec = spec_for(gaussian_exact, 100, int(1000 * scale) or 10, 8192, block_size=8192)
    rows.append(("gaussian exact n=100 (any n), kernel", kernel(spec), exact_rate, naive_rate))
    spec = spec_for(gaussian_exact, 10_000, int(1000 * scale) or 10, 65536, block_size=8192)
    rows.append(("gaussian exact n=10000, end to end", end_to_end(spec, out), exact_rate, naive_rate))

    spec = spec_for(gaussian_sample, 100, int(200 * scale) or 10, 4096)
    rows.append(("gaussian sample n=100, kernel", kernel(spec), naive_small, None))
    rows.append(("gaussian sample n=100, end to end", end_to_end(spec, out), naive_small, None))
    spec = spec_for(gaussian_sample, 10_000, int(100 * scale) or 10, 256)
    rows.append(("gaussian sample n=10000, kernel", kernel(spec), naive_rate, None))
    rows.append(("gaussian sample n=10000, end to end", end_to_end(spec, out), naive_rate, None))

    spec = spec_for(categorical, 10_000, int(100 * scale) or 10, 1024)
    rows.append(("categorical k=1000 n=10000, kernel", kernel(spec), None, None))
    rows.append(("categorical k=1000 n=10000, end to end", end_to_end(spec, out), None, None))
    ray.shutdown()

    _print(rows)


def _print(rows: list[tuple[str, float, float | None, float | None]]) -> None:
    print(
        f"{'case':55s} {'chain-generations/s':>20s} {'x same algorithm, per chain':>28s} "
        f"{'x notebook n=10000, O(1) vs O(n)':>33s}"
    )

    def ratio(x: float) -> str:
        return f"{x:.2f}x" if x < 10 else f"{x:.0f}x"

    for name, rate, same, notebook in rows:
        fair = ratio(rate / same) if same else ""
        unfair = ratio(rate / notebook) if notebook else ""
        print(f"{name:55s} {rate:20,.0f} {fair:>28s} {unfair:>33s}")
    print(
        "(same algorithm: the exact rows against the exact kernel one chain at a time, the sample rows "
        "against the notebook loop at their n, the 1e9 row against the bare kernel (target 1.6x); the last "
        "column sets the exact path against sampling)"
    )


if __name__ == "__main__":
    main()
