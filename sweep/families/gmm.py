"""d-dimensional Gaussian mixture family: EM at scikit-learn quality, batched across chains.

The fit is scikit-learn's ``GaussianMixture`` (``covariance_type`` full, diag or spherical; the
same objective, defaults, stopping rule and k-means initialisation; see
:mod:`sweep.families._gmmnd_em`), run on all chains of a block at once. ``init: previous``
warm-starts every generation from the previous fit. Components are reported sorted by the first
coordinate of their means. Sampling tempers the mixture: covariances times T and weights w^(1/T),
renormalised (exact p^(1/T) for one component).

Distances to the truth (:mod:`sweep.families._sliced`, :mod:`sweep.families._gmmnd_kl`): ``w2`` is
the sliced 2-Wasserstein distance, exact up to the 1-D quantile error (< 2e-4) and the direction
rule's error; ``w2_gaussian`` the closed-form W2 between the Gaussians of the fit's and the truth's
total mean and covariance (W2 itself when both are Gaussians, a lower bound otherwise); ``kl`` by
a grid quadrature (d <= 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from sweep import fields
from sweep.errors import SpecError
from sweep.events import EventSet
from sweep.families import _linalg
from sweep.families._gmmnd import COVARIANCE_TYPES, Mixture, mixture_moments, sample_mixture, tempered
from sweep.families._gmmnd_em import em_fit, n_features
from sweep.families._gmmnd_kl import TrueQuadrature
from sweep.families._gmmnd_spec import MIXTURE_FIELDS, TrueMixtureND, read_true_mixture_nd
from sweep.families._sliced import SlicedTruth, directions, sliced_tail_mixture, sliced_w2_mixture
from sweep.families.base import Cost, EventKind, Family


def read_directions(section: fields.Section) -> Any:
    """The number of directions of the sliced metrics, or "auto" (the default): see
    :func:`resolve_directions`. "auto" stays in the resolved spec, so that a cell whose dimension a
    grid axis changes (kde_nd's generator) gets its own count also when sweep.json is re-parsed."""

    def read(value: Any, path: str) -> Any:
        if value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(path, "auto or an integer in [1, 4096]", value)
        return fields.integer(1, 4096)(value, path)

    return section.take("directions", read, "auto")


def resolve_directions(directions: Any, dim: int) -> int:
    """ "auto": one direction in 1-D, 16 in 2-D, 64 in 3-D, 256 beyond (where the Halton rule is
    ~1% accurate); otherwise the number given."""
    return {1: 1, 2: 16, 3: 64}.get(dim, 256) if directions == "auto" else int(directions)


@dataclass(frozen=True)
class GMMNDSpec:
    """The true mixture, the EM fit's settings and the sliced metrics' direction count."""

    truth: TrueMixtureND
    k: int
    covariance_type: str
    init: str
    tol: float
    max_iter: int
    reg_covar: float
    n_init: int
    directions: Any  # "auto" or an int

    def to_raw(self) -> dict[str, Any]:
        return {
            "name": "gmm",
            **self.truth.to_raw(),
            "k": self.k,
            "covariance_type": self.covariance_type,
            "init": self.init,
            "tol": self.tol,
            "max_iter": self.max_iter,
            "reg_covar": self.reg_covar,
            "n_init": self.n_init,
            "directions": self.directions,
        }


#: Trajectory columns shared with kde_nd (totals, distances, tails).
SHAPE_METRICS = {
    "mean": "total mean of the fit (d values)",
    "cov": "total covariance of the fit (row-major d*d values)",
    "trace": "trace of the total covariance",
    "logdet": "log-determinant of the total covariance",
    "spread_ratio": "(det of the total covariance / det of the true one)^(1/(2d))",
    "w2": "sliced 2-Wasserstein distance to the truth (mean over a fixed rule of directions of the 1-D W2**2 of "
    "the projections, square-rooted; see docs/schema.md for its error)",
    "w2_gaussian": "closed-form W2 between the Gaussians of the fit's and the truth's total mean and covariance "
    "(W2 itself when both are Gaussian, a lower bound otherwise)",
    "kl": "KL(true || fitted) in nats, trapezoid rule on a grid over the truth +- 8 sd (128 x 128 points in 2-D; "
    "d <= 3, NaN beyond)",
    "tail_mass": "sliced tail mass: mean over the directions of the fitted probability beyond the projected "
    "truth's 1% and 99% quantiles (truth: 0.02)",
}


class GMMNDFamily(Family):
    """k-component d-dimensional Gaussian mixture refitted by EM."""

    name = "gmm"
    spec_fields = MIXTURE_FIELDS + (
        "k",
        "covariance_type",
        "init",
        "tol",
        "max_iter",
        "reg_covar",
        "n_init",
        "directions",
    )
    sufficient = False
    event_kinds = (
        EventKind(
            "spread_below",
            "spread ratio (det of the total covariance / true det)^(1/2d) below the threshold",
            default=(0.5, 0.1),
            descending=True,
        ),
        EventKind("weight_below", "a mode lost: some component's weight below the threshold", default=(0.05,)),
        EventKind(
            "modes_closer",
            "modes merged: two component means closer (Euclidean) than the threshold times "
            "the narrowest true standard deviation",
            default=(0.5,),
        ),
        EventKind("distance_above", "sliced W2 distance to the truth above the threshold", collapse=False),
    )
    metric_columns = {
        "weights": "per-component weights (k values), components sorted by the first coordinate of their means",
        "means": "per-component means (row-major k*d values)",
        "covariances": "per-component covariance matrices (row-major k*d*d values, full matrices for every "
        "covariance type)",
        **SHAPE_METRICS,
        "em_iterations": "EM iterations of the fit (scikit-learn's n_iter_)",
        "converged": "whether the fit met tol (scikit-learn's converged_)",
    }
    distance_metric = "w2"
    spread_metric = "spread_ratio"
    theory_overlays = ("mixture_density_nd",)

    @classmethod
    def parse_spec(cls, section: fields.Section) -> GMMNDSpec:
        truth = read_true_mixture_nd(section)
        return GMMNDSpec(
            truth=truth,
            k=section.take("k", fields.integer(1, 100), len(truth.means)),
            covariance_type=section.take("covariance_type", fields.choice(*COVARIANCE_TYPES), "full"),
            init=section.take("init", fields.choice("kmeans", "random_from_data", "previous"), "kmeans"),
            tol=section.take("tol", fields.number(0.0, None), 1e-3),
            max_iter=section.take("max_iter", fields.integer(1, 100_000), 100),
            # > 0: with 0 a component can collapse onto one sample, whose covariance has no inverse
            reg_covar=section.take("reg_covar", fields.number(0.0, None, low_open=True), 1e-6),
            n_init=section.take("n_init", fields.integer(1, 100), 1),
            directions=read_directions(section),
        )

    def __init__(self, spec: GMMNDSpec):
        super().__init__(spec)
        self.d = spec.truth.dim
        self.true_w, self.true_m, self.true_c = spec.truth.arrays()
        self.mean0, self.cov0 = spec.truth.moments()
        self.logdet0 = float(np.linalg.slogdet(self.cov0)[1])
        self.root0 = _linalg.sqrtm_psd(self.cov0)
        # mode-merging distances are in units of the narrowest true standard deviation
        self.unit = float(np.sqrt(np.linalg.eigvalsh(self.true_c).min()))
        self.directions = resolve_directions(spec.directions, self.d)

    @cached_property
    def sliced(self) -> SlicedTruth:
        return SlicedTruth.of_mixture(self.true_w, self.true_m, self.true_c, directions(self.d, self.directions))

    @cached_property
    def quadrature(self) -> TrueQuadrature:
        return TrueQuadrature(self.true_w, self.true_m, self.true_c)

    def check_cell(self, point: Any) -> None:
        if point.n < max(2, self.spec.k):
            raise SpecError(
                point.where("n"),
                f"an integer >= k = {self.spec.k} and >= 2 (EM fits k components to n samples)",
                point.n,
            )

    # -- model ----------------------------------------------------------------------------
    def truth(self, batch: int) -> Mixture:
        k, d = self.true_m.shape
        return Mixture.given(
            np.broadcast_to(self.true_w, (batch, k)).copy(),
            np.broadcast_to(self.true_m, (batch, k, d)).copy(),
            np.broadcast_to(self.true_c, (batch, k, d, d)).copy(),
        )

    def sample(self, params: Mixture, m: int, *, rng: np.random.Generator, temperature: float = 1.0) -> np.ndarray:
        """m samples per chain (B, m, d); tempered: covariances times T, weights w^(1/T) renormalised."""
        weights, covariances = tempered(params.weights, params.covariances, temperature)
        return sample_mixture(weights, params.means, covariances, m, rng=rng)

    def fit(self, data: np.ndarray, *, previous: Any = None, rng: Any = None) -> Mixture:
        spec = self.spec
        init: Any = spec.init
        if init == "previous":
            # warm start; at generation 1 the previous model is the truth, which can only seed the
            # fit when it has k components (otherwise start as scikit-learn would)
            usable = previous is not None and previous.weights.shape[1] == spec.k
            init = (previous.weights, previous.means, previous.covariances) if usable else "kmeans"
        return em_fit(
            data,
            spec.k,
            covariance_type=spec.covariance_type,
            init=init,
            rng=rng,
            tol=spec.tol,
            max_iter=spec.max_iter,
            reg_covar=spec.reg_covar,
            n_init=spec.n_init,
            score=False,
        )

    # -- observation ----------------------------------------------------------------------
    def events(self, batch: int, horizon: int, spec: Any) -> ShapeEvents:
        return ShapeEvents(self, batch, horizon, spec)

    def moments(self, params: Mixture) -> tuple[np.ndarray, np.ndarray]:
        return mixture_moments(params.weights, params.means, params.covariances)

    def w2(self, params: Mixture) -> np.ndarray:
        return sliced_w2_mixture(self.sliced, params.weights, params.means, params.covariances)

    def metrics(self, params: Mixture) -> dict[str, np.ndarray]:
        b, k, d = params.means.shape
        mean, cov = self.moments(params)
        out = {
            "weights": params.weights,
            "means": params.means.reshape(b, k * d),
            "covariances": params.covariances.reshape(b, k * d * d),
        }
        out.update(shape_metrics(self, mean, cov))
        out["w2"] = self.w2(params)
        out["kl"] = self.quadrature.kl_mixture(params.weights, params.means, params.covariances)
        out["tail_mass"] = sliced_tail_mixture(self.sliced, params.weights, params.means, params.covariances)
        out["em_iterations"] = np.asarray(params.n_iter, dtype=np.int32)
        out["converged"] = np.asarray(params.converged, dtype=bool)
        return out

    def block_width(self, n: int, policy: Any) -> float:
        return float(n * n_features(self.d, self.spec.covariance_type))

    def cost(self, n: int, policy: Any, generations: int) -> Cost:
        f = n_features(self.d, self.spec.covariance_type)
        per_generation = (2e-5 + 4e-8 * n * f) * self.spec.k * (0.6 if self.spec.init == "previous" else 1.0)
        stored = n * self.d * 8.0 * (generations + 1 if policy.grows else 2)
        return Cost(per_generation, stored + n * 8.0 * (f + 2 * self.spec.k + self.d), width=n * f)


def shape_metrics(family: Any, mean: np.ndarray, cov: np.ndarray) -> dict[str, np.ndarray]:
    """mean, cov, trace, logdet, spread_ratio and w2_gaussian of total moments (B, d), (B, d, d)."""
    with np.errstate(all="ignore"):
        logdet = _linalg.logdet(cov)
        return {
            "mean": mean,
            "cov": cov.reshape(cov.shape[0], -1),
            "trace": np.trace(cov, axis1=1, axis2=2),
            "logdet": logdet,
            "spread_ratio": np.exp((logdet - family.logdet0) / (2 * family.d)),
            "w2_gaussian": _linalg.gaussian_w2(mean, cov, family.mean0, family.cov0, family.root0),
        }


class ShapeEvents:
    """spread_below (total covariance determinant), weight_below and modes_closer (mixture fits
    only), distance_above (sliced W2, computed only when asked for: it costs more than a fit at
    small n) and diverged (a non-finite total covariance)."""

    def __init__(self, family: Any, batch: int, horizon: int, spec: Any):
        self.family = family
        self.set = EventSet(batch, horizon)
        self.spread = [(self.set.add("spread_below", r), np.log(r)) for r in spec.spread_below]
        # kde_nd declares neither weight_below nor modes_closer
        self.weight = [(self.set.add("weight_below", w), w) for w in getattr(spec, "weight_below", ())]
        self.closer = [(self.set.add("modes_closer", c), c) for c in getattr(spec, "modes_closer", ())]
        self.distance = [(self.set.add("distance_above", eps), eps) for eps in spec.distance_above]
        self.diverged = self.set.add("diverged")

    def update(self, generation: int, params: Any, state: Any) -> None:
        mark, family = self.set.mark, self.family
        with np.errstate(all="ignore"):
            _, cov = family.moments(params)
            finite = np.isfinite(cov).all(axis=(1, 2))
            if self.spread:
                safe = np.where(finite[:, None, None], cov, np.eye(family.d))
                log_spread = np.where(finite, (_linalg.logdet(safe) - family.logdet0) / (2 * family.d), np.nan)
                for slot, limit in self.spread:
                    mark(slot, generation, log_spread < limit)
            if self.weight:
                smallest = params.weights.min(axis=1)
                for slot, w in self.weight:
                    mark(slot, generation, smallest < w)
            if self.closer and params.means.shape[1] > 1:
                gap = np.linalg.norm(params.means[:, :, None, :] - params.means[:, None, :, :], axis=-1)
                k = gap.shape[1]
                gap[:, np.arange(k), np.arange(k)] = np.inf
                gap = gap.min(axis=(1, 2)) / family.unit
                for slot, c in self.closer:
                    mark(slot, generation, gap < c)
            if self.distance:
                w2 = family.w2(params)
                for slot, eps in self.distance:
                    mark(slot, generation, w2 > eps)
            mark(self.diverged, generation, ~finite)
