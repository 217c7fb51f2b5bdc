"""Chain-generations per second: batched em_fit + sample_gmm against the plain scikit-learn loop.

One chain-generation = fit a k-component mixture to n samples, then draw n new samples from the
fit. The scikit-learn side fits GaussianMixture (kmeans init, as by default) one chain at a
time; the batched side runs B chains at once, with the same kmeans init ("kmeans") or warm
started from the previous generation's fit ("warm"). Everything is pinned to one thread, so
the figures are per core.

Usage: ``PYTHONPATH=. python bench/bench_em1d.py [--k 3] [--quick]``
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from sweep.families._em1d import em_fit, sample_gmm  # noqa: E402

TRUE = {2: ([0.4, 0.6], [-2.0, 2.0], [1.0, 0.5]),
        3: ([0.3, 0.4, 0.3], [-3.0, 0.0, 3.0], [0.5, 1.0, 0.5])}


def sklearn_loop(x0, k, generations, seed):
    """Plain loop: one chain, fit then sample, ``generations`` times; returns seconds per gen."""
    x = x0
    rs = np.random.RandomState(seed)
    t = time.perf_counter()
    for _ in range(generations):
        gm = GaussianMixture(k, random_state=rs).fit(x[:, None])
        x = gm.sample(len(x))[0][:, 0]
    return (time.perf_counter() - t) / generations


def batched(x0, k, generations, rng, warm):
    x = x0
    fit = em_fit(x, k, init="kmeans", rng=rng) if warm else None
    t = time.perf_counter()
    for _ in range(generations):
        init = (fit.weights, fit.means, fit.variances) if warm else "kmeans"
        fit = em_fit(x, k, init=init, rng=rng)
        x = sample_gmm(fit.weights, fit.means, fit.variances, x.shape[1], rng=rng)
    return (time.perf_counter() - t) / generations / x.shape[0], fit


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    k = args.k
    w, m, v = (np.array(a) for a in TRUE[k])
    rng = np.random.default_rng(12345)
    plan = {100: (1000, 40), 1000: (500, 20), 10000: (100, 6)}
    if args.quick:
        plan = {n: (b // 4, max(g // 4, 2)) for n, (b, g) in plan.items()}
    print(f"k={k}; chain-generations per second, one thread")
    print(f"{'N':>6} {'B':>5} {'sklearn':>9} {'kmeans':>9} {'x':>6} {'warm':>9} {'x':>6} "
          f"{'iters':>6}")
    with threadpool_limits(1):
        for n, (b, gens) in plan.items():
            x0 = sample_gmm(w[None], m[None], v[None], n, rng=rng)[0]
            sk = np.mean([sklearn_loop(x0, k, gens, s) for s in range(3)])
            xb = sample_gmm(np.tile(w, (b, 1)), np.tile(m, (b, 1)), np.tile(v, (b, 1)), n,
                            rng=rng)
            t_km, fit = batched(xb, k, gens, rng, warm=False)
            t_warm, _ = batched(xb, k, gens, rng, warm=True)
            print(f"{n:>6} {b:>5} {1 / sk:>9.0f} {1 / t_km:>9.0f} {sk / t_km:>5.0f}x "
                  f"{1 / t_warm:>9.0f} {sk / t_warm:>5.0f}x {fit.n_iter.mean():>6.1f}")


if __name__ == "__main__":
    main()
