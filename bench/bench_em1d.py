"""Chain-generations per second: batched em_fit + sample_gmm against the plain scikit-learn loop.

One chain-generation = fit a k-component mixture to n samples, then draw n new samples from the
fit. The scikit-learn side fits ``GaussianMixture(k)`` (kmeans init, its default) one chain at
a time and samples from it; the batched side runs B chains at once, with the same kmeans init
("kmeans", like for like), the same in single precision ("f32": ``precision="float32"``,
float32 E-step with float64 sufficient statistics) or warm started from the previous
generation's fit ("warm").

Everything runs on one thread and is timed in CPU time of this process (``process_time``), best
of ``--repeats`` runs for each side, alternating the two sides, so that other jobs on a shared
machine distort the ratio as little as possible. Figures are per core.

Usage: ``PYTHONPATH=. python bench/bench_em1d.py [--k 3] [--repeats 3] [--quick]``
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

TRUE = {2: ([0.4, 0.6], [-2.0, 2.0], [1.0, 0.5]), 3: ([0.3, 0.4, 0.3], [-3.0, 0.0, 3.0], [0.5, 1.0, 0.5])}
# N: (chains B of the batched side, chains run by the sklearn loop); both run GENERATIONS
# generations from the true mixture, so that both face the same distribution of datasets.
PLAN = {100: (4000, 12), 1000: (1500, 8), 10000: (600, 3)}
GENERATIONS = 4


def sklearn_loop(x0, k, generations, seed):
    """Chains (rows of x0) one after the other, each fit then sampled ``generations`` times;
    CPU seconds per chain-generation and mean EM iterations."""
    rs = np.random.RandomState(seed)
    iters = []
    t = time.process_time()
    for x in x0:
        for _ in range(generations):
            gm = GaussianMixture(k, random_state=rs).fit(x[:, None])
            x = gm.sample(len(x))[0][:, 0]
            iters.append(gm.n_iter_)
    return (time.process_time() - t) / len(iters), np.mean(iters)


def batched(x0, k, generations, rng, warm, precision="float64"):
    """B chains at once; CPU seconds per chain-generation and mean EM iterations."""
    x, fit = x0, None
    if warm:
        fit = em_fit(x, k, init="kmeans", rng=rng)
    iters = []
    t = time.process_time()
    for _ in range(generations):
        init = fit if warm else "kmeans"
        fit = em_fit(x, k, init=init, rng=rng, precision=precision)
        x = sample_gmm(fit.weights, fit.means, fit.variances, x.shape[1], rng=rng)
        iters.append(fit.n_iter.mean())
    return (time.process_time() - t) / generations / x.shape[0], np.mean(iters)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=3, choices=sorted(TRUE))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a quarter of the chains")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    k = args.k
    w, m, v = (np.array(a) for a in TRUE[k])
    rng = np.random.default_rng(12345)
    print(f"k={k}: chain-generations per CPU-second, one thread, best of {args.repeats}")
    print(
        f"{'N':>6} {'B':>5} {'sklearn':>8} {'kmeans':>8} {'speedup':>8} {'f32':>8} {'speedup':>8} {'warm':>8} "
        f"{'speedup':>8}   mean EM iterations (sklearn / kmeans / warm)"
    )
    with threadpool_limits(1):
        for n, (b, b_sk) in PLAN.items():
            if args.quick:
                b //= 4
            xb = sample_gmm(np.tile(w, (b, 1)), np.tile(m, (b, 1)), np.tile(v, (b, 1)), n, rng=rng)
            sk, ours, single, warm = [], [], [], []
            for r in range(args.repeats):
                sk.append(sklearn_loop(xb[r * b_sk : (r + 1) * b_sk], k, GENERATIONS, seed=r))
                ours.append(batched(xb, k, GENERATIONS, rng, warm=False))
                single.append(batched(xb, k, GENERATIONS, rng, warm=False, precision="float32"))
                warm.append(batched(xb, k, GENERATIONS, rng, warm=True))
            t_sk, t_km, t_f32, t_warm = (min(t for t, _ in res) for res in (sk, ours, single, warm))
            it = [np.mean([i for _, i in res]) for res in (sk, ours, warm)]
            print(
                f"{n:>6} {b:>5} {1 / t_sk:>8.0f} {1 / t_km:>8.0f} {t_sk / t_km:>7.0f}x "
                f"{1 / t_f32:>8.0f} {t_sk / t_f32:>7.0f}x {1 / t_warm:>8.0f} {t_sk / t_warm:>7.0f}x   "
                f"{it[0]:.1f} / {it[1]:.1f} / {it[2]:.1f}"
            )


if __name__ == "__main__":
    main()
