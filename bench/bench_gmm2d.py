"""Chain-generations per CPU-second: the gmm family in 2-D against the plain scikit-learn loop, n = 1000.

One chain-generation = fit a 2-component full-covariance Gaussian mixture to n = 1000 samples in
2-D, then draw n new samples from the fit (Shumailov et al.'s experiment: the truth is one 2-D
standard Gaussian blob). Side by side in one run:

- ``sklearn``: ``GaussianMixture(2).fit(x)`` then ``.sample(n)``, one chain at a time (its
  defaults: kmeans init, tol 1e-3, reg_covar 1e-6);
- ``batched``: :func:`em_fit` (kmeans init, like for like) and :func:`sample_mixture` on B chains
  at once, the family's kernels alone;
- ``warm``: the same, warm-started from the previous generation's fit (``init: previous``);
- ``sweep run``: the gmm family end to end (planning, Ray tasks, events checked every generation,
  Parquet) with the trajectory metrics (sliced W2, KL, tail mass: ~0.5 ms per chain) recorded
  every 10th generation, and recorded at generations 0 and T only.

Every figure is CPU time of the process doing the work (``process_time``; the sweep's from its
tasks' CPU seconds), one thread, best of ``--repeats`` runs with the sides alternating, so that
other jobs on a shared machine distort the ratio as little as possible. Target (issue 15): >= 20x.

Usage: ``PYTHONPATH=. python bench/bench_gmm2d.py [--repeats 3] [--quick]``
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from sweep.families._gmmnd import sample_mixture  # noqa: E402
from sweep.families._gmmnd_em import em_fit  # noqa: E402

N = 1000
TRUTH = {"name": "gmm", "means": [[0.0, 0.0]], "covs": [1.0], "k": 2}
GENERATIONS = 4


def sklearn_loop(x0: np.ndarray, generations: int, seed: int) -> tuple[float, float]:
    """CPU seconds per chain-generation and mean EM iterations, chains one after the other."""
    rs = np.random.RandomState(seed)
    iters = []
    start = time.process_time()
    for x in x0:
        for _ in range(generations):
            gm = GaussianMixture(2, random_state=rs).fit(x)
            x = gm.sample(len(x))[0]
            iters.append(gm.n_iter_)
    return (time.process_time() - start) / len(iters), float(np.mean(iters))


def batched(x0: np.ndarray, generations: int, rng: np.random.Generator, warm: bool) -> tuple[float, float]:
    """CPU seconds per chain-generation and mean EM iterations, B chains at once."""
    x, fit = x0, (em_fit(x0, 2, rng=rng, score=False) if warm else None)
    iters = []
    start = time.process_time()
    for _ in range(generations):
        fit = em_fit(x, 2, init=fit if warm else "kmeans", rng=rng, score=False)
        x = sample_mixture(fit.weights, fit.means, fit.covariances, N, rng=rng)
        iters.append(fit.n_iter.mean())
    return (time.process_time() - start) / generations / x.shape[0], float(np.mean(iters))


def swept(chains: int, generations: int, every: int, out: str) -> float:
    """CPU seconds per chain-generation of ``sweep run`` (its tasks' CPU time)."""
    from sweep.runner import run_sweep
    from sweep.spec import parse_spec

    spec = parse_spec(
        {
            "name": f"bench-gmm2d-{every}",
            "seed": 1,
            "generations": generations,
            "replicates": chains,
            "family": TRUTH,
            "grid": {"n": [N], "policy": ["replace"]},
            "record": {"every": every},
        }
    )
    report = run_sweep(spec, out, overwrite=True, progress=False)
    return report.cpu_seconds / (chains * generations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure; the best is kept (default 3)")
    parser.add_argument("--quick", action="store_true", help="fewer chains (a smoke run)")
    parser.add_argument("--no-sweep", action="store_true", help="kernels only (no Ray)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    chains, loop_chains, sweep_chains, sweep_generations = (64, 3, 64, 20) if args.quick else (128, 8, 128, 60)
    rng = np.random.default_rng(12345)
    x0 = rng.standard_normal((chains, N, 2))
    with threadpool_limits(1):
        batched(x0[:8], 1, rng, warm=False)  # warm-ups: first calls run slower
        sklearn_loop(x0[:1], 2, seed=0)
        sk, ours, warm = [], [], []
        for r in range(args.repeats):
            sk.append(sklearn_loop(x0[r * loop_chains : (r + 1) * loop_chains], GENERATIONS, seed=r))
            ours.append(batched(x0, GENERATIONS, rng, warm=False))
            warm.append(batched(x0, GENERATIONS, rng, warm=True))
    t_sk, t_ours, t_warm = (min(t for t, _ in res) for res in (sk, ours, warm))
    it = [np.mean([i for _, i in res]) for res in (sk, ours, warm)]
    rows = [
        ("sklearn loop", t_sk, it[0]),
        (f"batched, kmeans init (B = {chains})", t_ours, it[1]),
        (f"batched, warm start (B = {chains})", t_warm, it[2]),
    ]
    if not args.no_sweep:
        import ray

        ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level="ERROR")
        out = tempfile.mkdtemp(prefix="bench-gmm2d-")
        swept(16, 2, 1, out)  # warm-up: the worker's imports and first task
        for every, label in ((10, "metrics every 10th generation"), (sweep_generations, "metrics at 0 and T")):
            best = min(swept(sweep_chains, sweep_generations, every, out) for _ in range(args.repeats))
            rows.append((f"sweep run, {label}", best, float("nan")))
        ray.shutdown()
    print(
        f"n = {N}, d = 2, k = 2, full covariances; chain-generations per CPU-second, one thread, best of {args.repeats}"
    )
    print(f"| {'side':<42} | {'chain-gen / CPU-s':>17} | {'vs sklearn':>10} | {'EM iterations':>13} |")
    print(f"|{'-' * 44}|{'-' * 19}|{'-' * 12}|{'-' * 15}|")
    for label, seconds, iterations in rows:
        ratio = t_sk / seconds
        its = "" if np.isnan(iterations) else f"{iterations:.1f}"
        print(f"| {label:<42} | {1 / seconds:>17,.0f} | {ratio:>9.1f}x | {its:>13} |")


if __name__ == "__main__":
    main()
