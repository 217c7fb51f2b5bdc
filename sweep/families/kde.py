"""Gaussian kernel density estimate family, batched across chains.

The fitted model of a chain is its training set plus a bandwidth h (a rule, ``scott`` or
``silverman``, or a fixed number); sampling picks training points uniformly with replacement and
adds N(0, h^2) noise. The model's variance is var(x, ddof=0) + h^2, so under ``replace`` with a
fixed h its expectation follows V_t = (n - 1)/n V_{t-1} + h^2: the KDE *inflates* variance unless h
is small, the opposite failure to the Gaussian's collapse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sweep import fields
from sweep.errors import SpecError
from sweep.families._kde import bandwidth, kde_mean_var, kde_tail_mass, kde_w2_to_mixture, sample_kde
from sweep.families._mixture_spec import MIXTURE_FIELDS, TrueMixture, read_true_mixture
from sweep.families.base import Cost, EventKind, Family
from sweep.families._gmm1d import sample_gmm
from sweep.families.gmm1d import MixtureEvents, mixture_params, tempered_mixture


@dataclass(frozen=True)
class KDESpec:
    """The true mixture and the bandwidth rule."""

    truth: TrueMixture
    bandwidth: Any  # "scott", "silverman" or a float > 0

    def to_raw(self) -> dict[str, Any]:
        return {"name": "kde", **self.truth.to_raw(), "bandwidth": self.bandwidth}


@dataclass
class KDEParams:
    """Training points (B, m) and bandwidths (B,)."""

    points: np.ndarray
    h: np.ndarray


def _read_bandwidth(value: Any, path: str) -> Any:
    if isinstance(value, str) and value in ("scott", "silverman"):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return fields.number(0.0, None, low_open=True)(value, path)
    raise SpecError(path, "scott, silverman or a number in (0, inf)", value)


class KDEFamily(Family):
    """Gaussian KDE refitted on its own samples."""

    name = "kde"
    spec_fields = MIXTURE_FIELDS + ("bandwidth",)
    sufficient = False
    event_kinds = (
        EventKind(
            "spread_below",
            "total sigma of the KDE / true total sigma below the threshold",
            default=(0.5, 0.1),
            descending=True,
        ),
        EventKind("distance_above", "W2 distance to the true mixture above the threshold", collapse=False),
    )
    metric_columns = {
        "mean": "total mean of the KDE",
        "var": "total variance of the KDE (var(x, ddof=0) + h^2)",
        "spread_ratio": "sqrt(var / true var)",
        "w2": "2-Wasserstein distance to the true mixture through the quantile functions (error ~2e-4)",
        "tail_mass": "KDE probability beyond the true 1% and 99% quantiles (truth: 0.02)",
        "bandwidth": "the KDE's bandwidth h (NaN at generation 0, the truth)",
    }
    distance_metric = "w2"
    spread_metric = "spread_ratio"

    @classmethod
    def parse_spec(cls, section: fields.Section) -> KDESpec:
        truth = read_true_mixture(section)
        return KDESpec(truth=truth, bandwidth=section.take("bandwidth", _read_bandwidth, "scott"))

    def __init__(self, spec: KDESpec):
        super().__init__(spec)
        self.true_w, self.true_m, self.true_v = spec.truth.arrays()
        self.mean0, self.var0 = spec.truth.mean_var()

    def check_cell(self, point: Any) -> None:
        if point.n < 2:
            raise SpecError(point.where("n"), "an integer >= 2 (a bandwidth rule needs a spread)", point.n)

    # -- model ------------------------------------------------------------------------------
    def truth(self, batch: int) -> Any:
        shape = (batch, self.true_w.size)
        return mixture_params(
            np.broadcast_to(self.true_w, shape).copy(),
            np.broadcast_to(self.true_m, shape).copy(),
            np.broadcast_to(self.true_v, shape).copy(),
        )

    def sample(self, params: Any, m: int, *, rng: np.random.Generator, temperature: float = 1.0) -> np.ndarray:
        """m samples per chain; tempered (a KDE is a mixture of equal-weight kernels): the kernel
        variance times T, i.e. bandwidth h sqrt(T); the truth tempers as the mixture families do."""
        if isinstance(params, KDEParams):
            h = params.h if temperature == 1.0 else params.h * np.sqrt(temperature)
            return sample_kde(params.points, h, m, rng=rng)
        weights, variances = tempered_mixture(params.weights, params.variances, temperature)
        return sample_gmm(weights, params.means, variances, m, rng=rng)  # generation 0: the true mixture

    def fit(self, data: np.ndarray, *, previous: Any = None, rng: Any = None) -> KDEParams:
        # The training set may be a view into a growing pool; later appends never touch it.
        return KDEParams(data, bandwidth(data, self.spec.bandwidth))

    # -- observation --------------------------------------------------------------------------
    def events(self, batch: int, horizon: int, spec: Any) -> MixtureEvents:
        return MixtureEvents(self, batch, horizon, spec)

    def _is_truth(self, params: Any) -> bool:
        return not isinstance(params, KDEParams)

    def spread(self, params: Any) -> np.ndarray:
        return np.sqrt(self._mean_var(params)[1] / self.var0)

    def w2(self, params: Any) -> np.ndarray:
        if self._is_truth(params):
            return np.zeros(params.weights.shape[0])
        return kde_w2_to_mixture(params.points, params.h, self.true_w, self.true_m, self.true_v)

    def _mean_var(self, params: Any) -> tuple[np.ndarray, np.ndarray]:
        if self._is_truth(params):
            batch = params.weights.shape[0]
            return np.full(batch, self.mean0), np.full(batch, self.var0)
        return kde_mean_var(params.points, params.h)

    def metrics(self, params: Any) -> dict[str, np.ndarray]:
        mean, var = self._mean_var(params)
        if self._is_truth(params):
            tails, h = np.full(mean.size, 0.02), np.full(mean.size, np.nan)
        else:
            tails, h = kde_tail_mass(params.points, params.h, self.true_w, self.true_m, self.true_v), params.h
        return {
            "mean": mean,
            "var": var,
            "spread_ratio": np.sqrt(var / self.var0),
            "w2": self.w2(params),
            "tail_mass": tails,
            "bandwidth": h,
        }

    def cost(self, n: int, policy: Any, generations: int) -> Cost:
        stored = n * 8.0 * (generations + 1 if policy.grows else 2)
        return Cost(4e-8 * n, stored + n * 8.0 * 6, width=n)
