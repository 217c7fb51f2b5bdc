"""An exponential distribution refitted by maximum likelihood: a family written outside the package.

This file is the worked example of ``docs/families.md``. Put its folder on ``PYTHONPATH`` and name
the class in a spec (``family: {name: "exponential:ExponentialFamily", rate: 1.0}``), or register
it under the entry-point group ``collapse_sweep.families`` of an installed package.

The model is Exp(lambda) (density lambda e^(-lambda x), mean 1/lambda). For m samples the sum S
is sufficient and the ML fit is lambda_hat = m / S. Since S ~ Gamma(m, scale 1/lambda), the exact
path (``path: exact``, the default) draws S directly, in O(1) per chain whatever m is; ``path:
sample`` draws the m samples and sums them. Accumulating policies add statistics: (m, S) + (m', S')
= (m + m', S + S'). A uniform subsample of stored samples has no exact statistic-level form here
(the pool mixes generations of different rates), so cells whose policy subsamples stored data
keep the samples themselves, whatever ``path`` says.

Temperature: p^(1/T) of Exp(lambda) is proportional to e^(-lambda x / T), the exponential of rate
lambda / T: tempering is exact.

Theory (``replace``): the fit at generation t + 1 is n / S with S ~ Gamma(n, 1 / lambda_t), so
ln lambda_(t+1) = ln lambda_t + ln n - ln G, G ~ Gamma(n, 1) independent of the past (at
temperature T the model's rate is lambda_t / T, adding -ln T from generation 2 on). Hence
E[ln(lambda_t / lambda_0)] = t (ln n - digamma(n)) - (t - 1) ln T and Var = t trigamma(n):
a random walk with a positive drift of about 1 / (2n), so the spread 1 / lambda collapses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sweep import fields
from sweep.events import EventSet
from sweep.families import Cost, EventKind, Family


@dataclass(frozen=True)
class ExponentialSpec:
    """The true rate, and how a generation's training set is drawn."""

    rate: float
    path: str

    def to_raw(self) -> dict[str, Any]:
        return {"rate": self.rate, "path": self.path}


@dataclass
class Stats:
    """Sufficient statistics of B training sets of equal size ``m``: the sums of their samples."""

    m: int
    total: np.ndarray  # (B,)


@dataclass
class Params:
    """Fitted rates, one per chain."""

    rate: np.ndarray  # (B,)


class ExponentialFamily(Family):
    """Exp(lambda), ML fit lambda = m / sum; exact sufficient-statistic path."""

    name = "exponential"
    spec_fields = ("rate", "path")
    sufficient = True
    exact_subsample = False
    event_kinds = (
        EventKind(
            "rate_above",
            "fitted rate over the true rate above the threshold (the spread 1 / rate has shrunk by that factor)",
            default=(2.0, 10.0),
        ),
        EventKind("distance_above", "W2 distance to the truth above the threshold", collapse=False),
    )
    metric_columns = {
        "rate": "fitted rate lambda_t",
        "rate_ratio": "lambda_t / lambda_true",
        "spread_ratio": "fitted standard deviation over the true one: lambda_true / lambda_t",
        "w2": "2-Wasserstein distance to the truth: sqrt(2) |1 / lambda_t - 1 / lambda_true| (closed form)",
        "tail_mass": "fitted probability beyond the true 99% quantile: 0.01^(lambda_t / lambda_true) (truth: 0.01)",
    }
    distance_metric = "w2"
    spread_metric = "spread_ratio"
    theory_overlays = ()

    @classmethod
    def parse_spec(cls, section: fields.Section) -> ExponentialSpec:
        return ExponentialSpec(
            rate=section.take("rate", fields.number(0.0, None, low_open=True), 1.0),
            path=section.take("path", fields.choice("exact", "sample"), "exact"),
        )

    def __init__(self, spec: ExponentialSpec):
        super().__init__(spec)
        self.rate0 = float(spec.rate)

    @property
    def exact_draw(self) -> bool:
        return self.spec.path == "exact"

    # -- model ------------------------------------------------------------------------
    def truth(self, batch: int) -> Params:
        return Params(np.full(batch, self.rate0))

    def sample(self, params: Params, m: int, *, rng: np.random.Generator, temperature: float = 1.0) -> np.ndarray:
        """m samples per chain, shape (B, m); tempered, Exp(rate / temperature) (exact)."""
        # One draw, chain-major, so that a chain's values do not depend on the block's size.
        x = rng.standard_exponential((params.rate.shape[0], m))
        x *= (temperature / params.rate)[:, None]
        return x

    def fit(self, data: np.ndarray, *, previous: Any = None, rng: Any = None) -> Params:
        return self.fit_stats(self.summarize(data))

    # -- statistics ---------------------------------------------------------------------
    def summarize(self, data: np.ndarray) -> Stats:
        return Stats(data.shape[1], data.sum(axis=1))

    def draw(self, params: Params, m: int, *, rng: np.random.Generator, temperature: float = 1.0) -> Stats:
        """The sums of m samples per chain: Gamma(m, scale temperature / rate), drawn directly."""
        if not self.exact_draw:
            return self.summarize(self.sample(params, m, rng=rng, temperature=temperature))
        total = rng.standard_gamma(float(m), params.rate.shape[0])
        total *= temperature / params.rate
        return Stats(m, total)

    def combine(self, a: Stats, b: Stats) -> Stats:
        return Stats(a.m + b.m, a.total + b.total)

    def fit_stats(self, stats: Stats) -> Params:
        return Params(stats.m / stats.total)

    # -- observation ----------------------------------------------------------------------
    def w2(self, params: Params) -> np.ndarray:
        # Quantiles of Exp(lambda) are -ln(1 - u) / lambda and the integral of ln(1 - u)^2 over
        # [0, 1] is 2, so W2 = sqrt(2) |1 / lambda - 1 / lambda_true|.
        return np.sqrt(2.0) * np.abs(1.0 / params.rate - 1.0 / self.rate0)

    def events(self, batch: int, horizon: int, spec: Any) -> "ExponentialEvents":
        return ExponentialEvents(self, batch, horizon, spec)

    def metrics(self, params: Params) -> dict[str, np.ndarray]:
        with np.errstate(all="ignore"):
            ratio = params.rate / self.rate0
            return {
                "rate": params.rate,
                "rate_ratio": ratio,
                "spread_ratio": 1.0 / ratio,
                "w2": self.w2(params),
                "tail_mass": 0.01**ratio,
            }

    def block_width(self, n: int, policy: Any) -> float:
        return float(n if not self.exact_draw or policy.subsamples else 1)

    def cost(self, n: int, policy: Any, generations: int) -> Cost:
        sampled = not self.exact_draw or policy.subsamples
        per_draw = 1e-7 + (1e-8 * n if sampled else 0.0)
        stored = 8.0 * n * (generations + 1 if policy.kind == "accumulate_subsample" else 2)
        width = n if sampled else 1
        return Cost(per_draw * (3 if policy.kind in ("fresh_real", "mix") else 1), stored + 32.0 * width, width=width)


class ExponentialEvents:
    """rate_above, distance_above and diverged."""

    def __init__(self, family: ExponentialFamily, batch: int, horizon: int, spec: Any):
        self.family = family
        self.set = EventSet(batch, horizon)
        # Compare rates with precomputed limits: one comparison per chain and threshold.
        self.rate = [(self.set.add("rate_above", r), r * family.rate0) for r in spec.rate_above]
        self.distance = [(self.set.add("distance_above", eps), eps) for eps in spec.distance_above]
        self.diverged = self.set.add("diverged")

    def update(self, generation: int, params: Params, state: Any) -> None:
        mark, rate = self.set.mark, params.rate
        for slot, limit in self.rate:
            mark(slot, generation, rate > limit)
        if self.distance:
            w2 = self.family.w2(params)
            for slot, eps in self.distance:
                mark(slot, generation, w2 > eps)
        mark(self.diverged, generation, ~(np.isfinite(rate) & (rate > 0)))
