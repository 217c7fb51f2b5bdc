"""Throughput of the batched families against the naive per-chain loop, side by side, on one core.

Prints chain-generations per second for each family as the bare kernel (one block through
``simulate_block``) and end to end through ``run_sweep`` (planning, Ray tasks, Parquet writes;
Ray is started once beforehand with one CPU, so its start-up is not counted), next to the loop of
the published notebooks: one chain at a time, ``np.random.normal(size=n)``, ``np.mean``,
``np.var(ddof=1)``. Targets (issue 2): Gaussian exact >= 1e7 chain-generations/s in the kernel
and >= half of that end to end; >= 1000x the naive loop at n = 10000; categorical (k = 1000,
n = 10000) >= 1e4 chain-generations/s.

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

from sweep.engine import simulate_block  # noqa: E402
from sweep.grid import block_rng, cells  # noqa: E402
from sweep.runner import run_sweep  # noqa: E402
from sweep.spec import parse_spec  # noqa: E402


def naive_loop(n: int, generations: int, chains: int) -> float:
    """The notebook loop: chain-generations per second."""
    start = time.perf_counter()
    for _ in range(chains):
        mu, sigma = 0.0, 1.0
        for _ in range(generations):
            x = np.random.normal(mu, sigma, size=n)
            mu, sigma = np.mean(x), np.sqrt(np.var(x, ddof=1))
    return chains * generations / (time.perf_counter() - start)


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


def kernel(spec) -> float:
    cell = cells(spec)[0]
    recorded = spec.record.generations(spec.generations)
    start = time.perf_counter()
    simulate_block(
        spec.family,
        cell,
        0,
        generations=spec.generations,
        recorded=recorded,
        events_spec=spec.events,
        rng=block_rng(1, cell, 0),
    )
    chains = min(cell.block_size, spec.replicates)
    return chains * spec.generations / (time.perf_counter() - start)


def end_to_end(spec, out: str) -> float:
    report = run_sweep(spec, out, overwrite=True, progress=False)
    return spec.replicates * spec.generations / report.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run, not the figures)")
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0

    import ray

    ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR")
    out = tempfile.mkdtemp(prefix="bench-")
    gaussian_exact = {"name": "gaussian", "path": "exact"}
    gaussian_sample = {"name": "gaussian", "path": "sample"}
    categorical = {"name": "categorical", "k": 1000, "probs": "uniform"}
    rows = []

    naive_rate = naive_loop(10_000, 100, max(1, int(20 * scale)))
    rows.append(("naive loop, gaussian n=10000", naive_rate, None))
    rows.append(("naive loop, gaussian n=100", naive_loop(100, 100, max(1, int(100 * scale))), None))

    spec = spec_for(gaussian_exact, 100, int(1000 * scale) or 10, 8192, block_size=8192)
    rows.append(("gaussian exact n=100 (any n), kernel", kernel(spec), None))
    spec = spec_for(gaussian_exact, 10_000, int(1000 * scale) or 10, 65536, block_size=8192)
    rows.append(("gaussian exact n=10000, end to end", end_to_end(spec, out), naive_rate))

    spec = spec_for(gaussian_sample, 100, int(200 * scale) or 10, 4096)
    rows.append(("gaussian sample n=100, kernel", kernel(spec), None))
    rows.append(("gaussian sample n=100, end to end", end_to_end(spec, out), None))
    spec = spec_for(gaussian_sample, 10_000, int(100 * scale) or 10, 256)
    rows.append(("gaussian sample n=10000, kernel", kernel(spec), naive_rate))
    rows.append(("gaussian sample n=10000, end to end", end_to_end(spec, out), naive_rate))

    spec = spec_for(categorical, 10_000, int(100 * scale) or 10, 1024)
    rows.append(("categorical k=1000 n=10000, kernel", kernel(spec), None))
    rows.append(("categorical k=1000 n=10000, end to end", end_to_end(spec, out), None))
    ray.shutdown()

    print(f"{'case':45s} {'chain-generations/s':>20s} {'x naive n=10000':>16s}")
    for name, rate, base in rows:
        ratio = f"{rate / base:14.0f}x" if base else ""
        print(f"{name:45s} {rate:20,.0f} {ratio:>16s}")


if __name__ == "__main__":
    main()
