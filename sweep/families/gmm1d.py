"""1-D Gaussian mixture family: EM at scikit-learn quality, batched across chains.

The fit is the same objective, stopping rule (per-sample average log-likelihood change below
``tol``), ``max_iter``, ``reg_covar`` and ``n_init`` as scikit-learn's GaussianMixture, with its
k-means initialisation by default (see :mod:`sweep.families._em1d`). ``init: previous`` warm-starts
every generation from the previous generation's fit, the natural and much cheaper choice in a
recursive chain. ``precision: float32`` runs the E-step's per-sample work in float32 (sufficient
statistics still accumulated in float64): about twice as fast at large N, with fitted parameters
within 1e-5 of float64's (in units of the data's sd; measured at most 1e-6 on the 500-dataset
parity suite); the default float64 matches scikit-learn to rounding. ``kernel: numba`` (the
default ``auto`` picks it when numba is installed and the precision is float64) runs each
chain's whole EM loop compiled (:mod:`sweep.families._em1d_numba`), from the same k-means start,
and draws the samples with the compiled sampler (:mod:`sweep._fastrng`: its own stream, so a
chain's values differ between the kernels; each is reproducible on its own).
Components are reported sorted by mean, so label switching does not make fake jumps in
trajectories. The fit needs the samples, so the training set is held as data.

A fit that turns non-finite (possible with ``reg_covar: 0``, when a component collapses onto a
point) or has a zero variance is a *diverged* chain: its parameters are NaN from then on (its
samples are NaN, it is not refitted, its metrics are NaN) and the ``diverged`` event records
when it happened, while the other chains of the block go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sweep import fields
from sweep._numba import resolve_kernel, take_kernel
from sweep.errors import SpecError
from sweep.events import EventSet
from sweep.families._checks import finite_rows, nan_unless
from sweep.families._em1d import EMResult, em_fit
from sweep.families._gmm1d import kl_true_fitted, mixture_mean_var, sample_gmm, tail_mass, w2_to_mixture
from sweep.families._mixture_spec import MIXTURE_FIELDS, TrueMixture, mixture_params, read_true_mixture
from sweep.families.base import Cost, EventKind, Family


@dataclass(frozen=True)
class GMMSpec:
    """The true mixture and the EM fit's settings."""

    truth: TrueMixture
    k: int
    init: str
    tol: float
    max_iter: int
    reg_covar: float
    n_init: int
    precision: str = "float64"
    kernel: str = "numpy"

    def to_raw(self) -> dict[str, Any]:
        # precision and kernel only when not numpy's defaults, so that folders written before
        # they existed resume
        extra = {} if self.precision == "float64" else {"precision": self.precision}
        if self.kernel == "numba":
            extra["kernel"] = "numba"
        return {
            "name": "gmm1d",
            **self.truth.to_raw(),
            "k": self.k,
            "init": self.init,
            "tol": self.tol,
            "max_iter": self.max_iter,
            "reg_covar": self.reg_covar,
            "n_init": self.n_init,
            **extra,
        }


class GMMFamily(Family):
    """k-component 1-D Gaussian mixture refitted by EM."""

    name = "gmm1d"
    spec_fields = MIXTURE_FIELDS + ("k", "init", "tol", "max_iter", "reg_covar", "n_init", "precision", "kernel")
    sufficient = False
    event_kinds = (
        EventKind(
            "spread_below",
            "total sigma of the fit / true total sigma below the threshold",
            default=(0.5, 0.1),
            descending=True,
        ),
        EventKind("weight_below", "a mode lost: some component's weight below the threshold", default=(0.05,)),
        EventKind(
            "modes_closer",
            "modes merged: two component means closer than the threshold times the narrowest true sigma",
            default=(0.5,),
        ),
        EventKind("distance_above", "W2 distance to the true mixture above the threshold", collapse=False),
    )
    metric_columns = {
        "weights": "per-component weights (k values), components sorted by mean",
        "means": "per-component means (k values)",
        "sigmas": "per-component standard deviations (k values)",
        "mean": "total mean of the fitted mixture",
        "var": "total variance of the fitted mixture",
        "spread_ratio": "sqrt(var / true var)",
        "w2": "2-Wasserstein distance to the true mixture through the quantile functions (error < 1e-4)",
        "tail_mass": "fitted probability beyond the true 1% and 99% quantiles (truth: 0.02)",
        "kl": "KL(true || fitted) in nats, quadrature over the truth +- 12 sd: 1024 points, or 257 where that is as accurate",
        "em_iterations": "EM iterations of the fit (scikit-learn's n_iter_)",
        "converged": "whether the fit met tol (scikit-learn's converged_)",
    }
    distance_metric = "w2"
    spread_metric = "spread_ratio"
    theory_overlays = ("mixture_density",)

    @classmethod
    def parse_spec(cls, section: fields.Section) -> GMMSpec:
        truth = read_true_mixture(section)
        precision = section.take("precision", fields.choice("float64", "float32"), "float64")
        kernel = take_kernel(section, _kernel_reader(precision))
        return GMMSpec(
            truth=truth,
            k=section.take("k", fields.integer(1, 100), len(truth.means)),
            init=section.take("init", fields.choice("kmeans", "random_from_data", "previous"), "kmeans"),
            tol=section.take("tol", fields.number(0.0, None), 1e-3),
            max_iter=section.take("max_iter", fields.integer(1, 100_000), 100),
            reg_covar=section.take("reg_covar", fields.number(0.0, None), 1e-6),
            n_init=section.take("n_init", fields.integer(1, 100), 1),
            precision=precision,
            kernel=kernel,
        )

    def __init__(self, spec: GMMSpec):
        super().__init__(spec)
        self.true_w, self.true_m, self.true_v = spec.truth.arrays()
        self.mean0, self.var0 = spec.truth.mean_var()
        # Mode-merging distances are measured in units of the narrowest true component.
        self.unit = float(np.min(spec.truth.sigmas))
        # the metrics' kernel follows the fit's (the spec's resolved ``kernel`` field)
        self.kernel = spec.kernel

    def check_cell(self, point: Any) -> None:
        if point.n < max(2, self.spec.k):
            raise SpecError(
                point.where("n"),
                f"an integer >= k = {self.spec.k} and >= 2 (EM fits k components to n samples)",
                point.n,
            )

    # -- model ----------------------------------------------------------------------------
    def truth(self, batch: int) -> EMResult:
        return self.spec.truth.params(batch)

    def sample(self, params: EMResult, m: int, *, rng: np.random.Generator, temperature: float = 1.0) -> np.ndarray:
        """m samples per chain; tempered: each component's variance times T and the weights
        w^(1/T), renormalised (the mixture analogue of p^(1/T); exact for one component)."""
        weights, variances = tempered_mixture(params.weights, params.variances, temperature)
        return sample_gmm(weights, params.means, variances, m, rng=rng, kernel=self.spec.kernel)

    def fit(self, data: np.ndarray, *, previous: Any = None, rng: Any = None) -> EMResult:
        spec = self.spec
        init: Any = spec.init
        if init == "previous":
            # Warm start; at generation 1 the previous model is the truth, which can only seed
            # the fit when it has k components (otherwise start as scikit-learn would).
            usable = previous is not None and previous.weights.shape[1] == spec.k
            init = (previous.weights, previous.means, previous.variances) if usable else "kmeans"
        # A diverged chain (NaN parameters, so NaN samples) stays diverged: only the live
        # chains are refitted, and EM's input checks stay strict.
        live = finite_rows(data)
        if previous is not None:
            live &= finite_rows(previous.weights, previous.means, previous.variances)
        if live.all():
            return _diverged_to_nan(self._em(data, init, rng))
        fit = mixture_params(*np.full((3, live.size, spec.k), np.nan))
        fit.converged[:] = False
        if live.any():
            part = self._em(data[live], tuple(a[live] for a in init) if isinstance(init, tuple) else init, rng)
            for name in ("weights", "means", "variances", "n_iter", "converged", "lower_bound", "log_likelihood"):
                getattr(fit, name)[live] = getattr(part, name)
        return _diverged_to_nan(fit)

    def _em(self, data: np.ndarray, init: Any, rng: Any) -> EMResult:
        spec = self.spec
        return em_fit(
            data,
            spec.k,
            init=init,
            rng=rng,
            tol=spec.tol,
            max_iter=spec.max_iter,
            reg_covar=spec.reg_covar,
            n_init=spec.n_init,
            score=False,
            precision=spec.precision,
            kernel=spec.kernel,
        )

    # -- observation ----------------------------------------------------------------------
    def events(self, batch: int, horizon: int, spec: Any) -> MixtureEvents:
        return MixtureEvents(self, batch, horizon, spec)

    def w2(self, params: EMResult) -> np.ndarray:
        w, m, v, live = live_mixtures(params, self.mean0, self.var0)
        return nan_unless(live, w2_to_mixture(w, m, v, self.true_w, self.true_m, self.true_v, kernel=self.kernel))

    def spread(self, params: EMResult) -> np.ndarray:
        w, m, v, live = live_mixtures(params, self.mean0, self.var0)
        return nan_unless(live, np.sqrt(mixture_mean_var(w, m, v)[1] / self.var0))

    def metrics(self, params: EMResult) -> dict[str, np.ndarray]:
        w, m, v, live = live_mixtures(params, self.mean0, self.var0)
        truth = (self.true_w, self.true_m, self.true_v)
        return {
            "weights": params.weights,
            "means": params.means,
            "sigmas": np.sqrt(params.variances),
            **mixture_metrics(params, truth, self.mean0, self.var0, kernel=self.kernel),
            "kl": nan_unless(live, kl_true_fitted(w, m, v, *truth, sized=True)),
            "em_iterations": np.asarray(params.n_iter, dtype=np.int32),
            "converged": np.asarray(params.converged, dtype=bool),
        }

    def cost(self, n: int, policy: Any, generations: int) -> Cost:
        k = self.spec.k
        per_generation = (2e-5 + 4e-8 * n) * k * (0.7 if self.spec.init == "previous" else 1.0)
        stored = n * 8.0 * (generations + 1 if policy.grows else 2)
        return Cost(per_generation, stored + n * 8.0 * (k + 8), width=n)


def _kernel_reader(precision: str):
    """Reader of the ``kernel`` field (:func:`sweep._numba.resolve_kernel`): the compiled EM is
    float64 only, so ``auto`` means numpy with ``precision: float32`` and ``numba`` is refused."""

    def read(value: Any, path: str) -> str:
        if precision == "float32" and value == "auto":
            return "numpy"
        kernel = resolve_kernel(value, path)
        if kernel == "numba" and precision != "float64":
            raise SpecError(path, "numpy or auto with precision: float32 (the compiled EM is float64)", value)
        return kernel

    return read


def tempered_mixture(weights: np.ndarray, variances: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights w^(1/T) renormalised and variances times T: how the mixture families temper."""
    if temperature == 1.0:
        return weights, variances
    powered = weights ** (1.0 / temperature)
    return powered / powered.sum(axis=1, keepdims=True), variances * temperature


def _diverged_to_nan(fit: EMResult) -> EMResult:
    """The fit with every diverged chain's parameters NaN: non-finite ones, or a zero variance
    (a component collapsed onto a point: infinite likelihood, a fit scikit-learn refuses)."""
    dead = ~finite_rows(fit.weights, fit.means, fit.variances) | (fit.variances <= 0).any(axis=1)
    if dead.any():
        for a in (fit.weights, fit.means, fit.variances):
            a[dead] = np.nan
        fit.converged[dead] = False
    return fit


def live_mixtures(
    params: EMResult, mean0: float, var0: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(weights, means, variances, live): the mixtures with every diverged chain replaced by a
    finite stand-in (one component at the truth's mean and variance, repeated), and the mask of
    the live chains (None when all are). The metric kernels check their input strictly; the
    stand-in keeps the batch whole and :func:`nan_unless` then makes its metrics NaN."""
    w, m, v = params.weights, params.means, params.variances
    live = finite_rows(w, m, v)
    if live.all():
        return w, m, v, None
    keep = live[:, None]
    return (np.where(keep, w, 1.0 / w.shape[1]), np.where(keep, m, mean0), np.where(keep, v, var0), live)


def mixture_metrics(
    params: EMResult, truth: tuple[np.ndarray, ...], mean0: float, var0: float, *, kernel: str = "numpy"
) -> dict[str, np.ndarray]:
    """Total mean and variance, spread ratio, W2 and tail mass of mixtures (B,) against the true
    mixture ``truth`` (weights, means, variances), NaN for diverged chains: the gmm1d metrics
    shared with the kde family, whose generation 0 (the truth) is a mixture too."""
    w, m, v, live = live_mixtures(params, mean0, var0)
    mean, var = mixture_mean_var(w, m, v)
    return {
        "mean": nan_unless(live, mean),
        "var": nan_unless(live, var),
        "spread_ratio": nan_unless(live, np.sqrt(var / var0)),
        "w2": nan_unless(live, w2_to_mixture(w, m, v, *truth, kernel=kernel)),
        "tail_mass": nan_unless(live, tail_mass(w, m, v, *truth)),
    }


class MixtureEvents:
    """spread_below (total sigma ratio), weight_below (a component's weight), modes_closer (two
    component means closer than a threshold in units of the narrowest true sigma), distance_above
    (W2, computed only when asked for: it costs more than a fit at small n), diverged."""

    def __init__(self, family: GMMFamily, batch: int, horizon: int, spec: Any):
        self.family = family
        self.set = EventSet(batch, horizon)
        self.spread = [(self.set.add("spread_below", r), r) for r in spec.spread_below]
        # kde declares neither weight_below nor modes_closer
        self.weight = [(self.set.add("weight_below", w), w) for w in getattr(spec, "weight_below", ())]
        self.closer = [(self.set.add("modes_closer", c), c) for c in getattr(spec, "modes_closer", ())]
        self.distance = [(self.set.add("distance_above", eps), eps) for eps in spec.distance_above]
        self.diverged = self.set.add("diverged")

    def update(self, generation: int, params: EMResult, state: Any) -> None:
        mark = self.set.mark
        with np.errstate(all="ignore"):
            if self.spread:
                spread = self.family.spread(params)
                for slot, r in self.spread:
                    mark(slot, generation, spread < r)
            if self.weight:
                smallest = params.weights.min(axis=1)
                for slot, w in self.weight:
                    mark(slot, generation, smallest < w)
            if self.closer and params.means.shape[1] > 1:
                gap = np.diff(params.means, axis=1).min(axis=1) / self.family.unit  # means are sorted
                for slot, c in self.closer:
                    mark(slot, generation, gap < c)
            if self.distance:
                w2 = self.family.w2(params)
                for slot, eps in self.distance:
                    mark(slot, generation, w2 > eps)
            finite = np.isfinite(spread if self.spread else self.family.spread(params))
            mark(self.diverged, generation, ~finite)
