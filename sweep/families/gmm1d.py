"""1-D Gaussian mixture family: EM at scikit-learn quality, batched across chains.

The fit is the same objective, stopping rule (per-sample average log-likelihood change below
``tol``), ``max_iter``, ``reg_covar`` and ``n_init`` as scikit-learn's GaussianMixture, with its
k-means initialisation by default (see :mod:`sweep.families._em1d`). ``init: previous`` warm-starts
every generation from the previous generation's fit, the natural and much cheaper choice in a
recursive chain. Components are reported sorted by mean, so label switching does not make fake
jumps in trajectories. The fit needs the samples, so the training set is held as data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sweep import fields
from sweep.errors import SpecError
from sweep.events import EventSet
from sweep.families._em1d import EMResult, em_fit
from sweep.families._gmm1d import kl_true_fitted, mixture_mean_var, sample_gmm, tail_mass, w2_to_mixture
from sweep.families._mixture_spec import MIXTURE_FIELDS, TrueMixture, read_true_mixture
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

    def to_raw(self) -> dict[str, Any]:
        return {
            "name": "gmm1d",
            **self.truth.to_raw(),
            "k": self.k,
            "init": self.init,
            "tol": self.tol,
            "max_iter": self.max_iter,
            "reg_covar": self.reg_covar,
            "n_init": self.n_init,
        }


class GMMFamily(Family):
    """k-component 1-D Gaussian mixture refitted by EM."""

    name = "gmm1d"
    spec_fields = MIXTURE_FIELDS + ("k", "init", "tol", "max_iter", "reg_covar", "n_init")
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
        "kl": "KL(true || fitted) in nats, 1024-point quadrature over the truth +- 12 sd",
        "em_iterations": "EM iterations of the fit (scikit-learn's n_iter_)",
        "converged": "whether the fit met tol (scikit-learn's converged_)",
    }
    distance_metric = "w2"
    spread_metric = "spread_ratio"
    theory_overlays = ("mixture_density",)

    @classmethod
    def parse_spec(cls, section: fields.Section) -> GMMSpec:
        truth = read_true_mixture(section)
        return GMMSpec(
            truth=truth,
            k=section.take("k", fields.integer(1, 100), len(truth.means)),
            init=section.take("init", fields.choice("kmeans", "random_from_data", "previous"), "kmeans"),
            tol=section.take("tol", fields.number(0.0, None), 1e-3),
            max_iter=section.take("max_iter", fields.integer(1, 100_000), 100),
            reg_covar=section.take("reg_covar", fields.number(0.0, None), 1e-6),
            n_init=section.take("n_init", fields.integer(1, 100), 1),
        )

    def __init__(self, spec: GMMSpec):
        super().__init__(spec)
        self.true_w, self.true_m, self.true_v = spec.truth.arrays()
        self.mean0, self.var0 = spec.truth.mean_var()
        # Mode-merging distances are measured in units of the narrowest true component.
        self.unit = float(np.min(spec.truth.sigmas))

    def check_cell(self, point: Any) -> None:
        if point.n < max(2, self.spec.k):
            raise SpecError(
                point.where("n"),
                f"an integer >= k = {self.spec.k} and >= 2 (EM fits k components to n samples)",
                point.n,
            )

    # -- model ----------------------------------------------------------------------------
    def truth(self, batch: int) -> EMResult:
        shape = (batch, self.true_w.size)
        return mixture_params(
            np.broadcast_to(self.true_w, shape).copy(),
            np.broadcast_to(self.true_m, shape).copy(),
            np.broadcast_to(self.true_v, shape).copy(),
        )

    def sample(self, params: EMResult, m: int, *, rng: np.random.Generator, temperature: float = 1.0) -> np.ndarray:
        """m samples per chain; tempered: each component's variance times T and the weights
        w^(1/T), renormalised (the mixture analogue of p^(1/T); exact for one component)."""
        weights, variances = tempered_mixture(params.weights, params.variances, temperature)
        return sample_gmm(weights, params.means, variances, m, rng=rng)

    def fit(self, data: np.ndarray, *, previous: Any = None, rng: Any = None) -> EMResult:
        spec = self.spec
        init: Any = spec.init
        if init == "previous":
            # Warm start; at generation 1 the previous model is the truth, which can only seed
            # the fit when it has k components (otherwise start as scikit-learn would).
            usable = previous is not None and previous.weights.shape[1] == spec.k
            init = (previous.weights, previous.means, previous.variances) if usable else "kmeans"
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
        )

    # -- observation ----------------------------------------------------------------------
    def events(self, batch: int, horizon: int, spec: Any) -> "MixtureEvents":
        return MixtureEvents(self, batch, horizon, spec)

    def w2(self, params: EMResult) -> np.ndarray:
        return w2_to_mixture(params.weights, params.means, params.variances, self.true_w, self.true_m, self.true_v)

    def spread(self, params: EMResult) -> np.ndarray:
        return np.sqrt(mixture_mean_var(params.weights, params.means, params.variances)[1] / self.var0)

    def metrics(self, params: EMResult) -> dict[str, np.ndarray]:
        mean, var = mixture_mean_var(params.weights, params.means, params.variances)
        truth = (self.true_w, self.true_m, self.true_v)
        return {
            "weights": params.weights,
            "means": params.means,
            "sigmas": np.sqrt(params.variances),
            "mean": mean,
            "var": var,
            "spread_ratio": np.sqrt(var / self.var0),
            "w2": self.w2(params),
            "tail_mass": tail_mass(params.weights, params.means, params.variances, *truth),
            "kl": kl_true_fitted(params.weights, params.means, params.variances, *truth),
            "em_iterations": np.asarray(params.n_iter, dtype=np.int32),
            "converged": np.asarray(params.converged, dtype=bool),
        }

    def cost(self, n: int, policy: Any, generations: int) -> Cost:
        k = self.spec.k
        per_generation = (2e-5 + 4e-8 * n) * k * (0.7 if self.spec.init == "previous" else 1.0)
        stored = n * 8.0 * (generations + 1 if policy.grows else 2)
        return Cost(per_generation, stored + n * 8.0 * (k + 8), width=n)


def tempered_mixture(weights: np.ndarray, variances: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights w^(1/T) renormalised and variances times T: how the mixture families temper."""
    if temperature == 1.0:
        return weights, variances
    powered = weights ** (1.0 / temperature)
    return powered / powered.sum(axis=1, keepdims=True), variances * temperature


def mixture_params(weights: np.ndarray, means: np.ndarray, variances: np.ndarray) -> EMResult:
    """Mixture parameters as a fit result (the truth at generation 0, seen as a fit)."""
    batch = weights.shape[0]
    return EMResult(
        weights,
        means,
        variances,
        np.zeros(batch, np.int64),
        np.ones(batch, bool),
        np.full(batch, np.nan),
        np.full(batch, np.nan),
    )


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
