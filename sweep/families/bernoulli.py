"""Bernoulli family (Suresh et al. 2024): a coin refitted by maximum likelihood, p_t = ones / m.

A training set is held as its number of ones, which is sufficient for the fit, and every policy
is exact on that statistic (``path: exact``): fresh draws are binomial, combining adds counts, and
a uniform subsample without replacement of k of m samples holding ``ones`` ones has
Hypergeometric(ones, m - ones, k) ones, whatever generations the ones came from (0/1 data are
determined by their count up to order). ``path: sample`` draws the 0/1 samples, sums them and,
for policies that subsample stored data, keeps the samples themselves: it is the reference the
exact path is tested against.

Under ``replace`` this is the two-allele Wright-Fisher chain: p_t is a martingale that is absorbed
at 0 or 1 (``collapse``), at 1 with probability p. Tempering samples from p^(1/T) renormalised over
{0, 1}: p^(1/T) / (p^(1/T) + (1 - p)^(1/T)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sweep import fields
from sweep.errors import SpecError
from sweep.families import _counts
from sweep.families._counts import CountEvents, Totals
from sweep.families.base import Cost, EventKind, Family

#: numpy's hypergeometric sampler needs ngood and nbad below 1e9 (it loses precision beyond).
HYPERGEOMETRIC_LIMIT = 10**9


@dataclass(frozen=True)
class BernoulliSpec:
    """The true success probability and how the chain is simulated."""

    p: float
    path: str

    def to_raw(self) -> dict[str, Any]:
        return {"name": "bernoulli", "p": self.p, "path": self.path}


def tempered(p: np.ndarray, temperature: float) -> np.ndarray:
    """p^(1/T) / (p^(1/T) + (1 - p)^(1/T)) per chain, as 1 / (1 + ((1 - p) / p)^(1/T)) so that
    small temperatures do not underflow; 0 and 1 stay put."""
    if temperature == 1.0:
        return p
    with np.errstate(divide="ignore", over="ignore"):
        odds = ((1.0 - p) / p) ** (1.0 / temperature)
    return np.where(p > 0.0, 1.0 / (1.0 + odds), 0.0)


def on_boundary(p: np.ndarray) -> np.ndarray:
    """Where the estimate is 0 or 1 (a module-level function: event trackers are pickled with a block's state)."""
    return (p == 0.0) | (p == 1.0)


class BernoulliFamily(Family):
    """Bernoulli(p) refitted by the sample mean (maximum likelihood)."""

    name = "bernoulli"
    spec_fields = ("p", "path")
    sufficient = True
    event_kinds = (
        EventKind(
            "collapse",
            "the estimate reached 0 or 1 (the model emits one value only; absorbing under replace)",
            thresholds=False,
            default=True,
        ),
        _counts.distance_event("|p_t - p|, the total-variation distance"),
    )
    metric_columns = {
        "p": "fitted success probability (ones / samples)",
        "abs_error": "|p_t - p|, the total-variation distance to the true Bernoulli",
        "spread_ratio": "fitted sd / true sd, sqrt(p_t (1 - p_t) / (p (1 - p)))",
    }
    distance_metric = "abs_error"
    spread_metric = "spread_ratio"
    theory_overlays = (
        "bernoulli_collapse_probability",
        "bernoulli_fixation_probability",
        "bernoulli_mse",
        "bernoulli_survival_bound",
    )

    @classmethod
    def parse_spec(cls, section: fields.Section) -> BernoulliSpec:
        p = section.take("p", fields.number(0.0, 1.0, low_open=True, high_open=True))
        return BernoulliSpec(p=p, path=section.take("path", fields.choice(*_counts.PATHS), "exact"))

    def __init__(self, spec: BernoulliSpec):
        super().__init__(spec)
        self.p0 = spec.p
        self.sd0 = float(np.sqrt(spec.p * (1.0 - spec.p)))

    @property
    def exact_draw(self) -> bool:
        return self.spec.path == "exact"

    @property
    def exact_subsample(self) -> bool:  # the sample path subsamples the stored 0/1 samples instead
        return self.spec.path == "exact"

    def check_sweep(self, sweep: Any) -> None:
        if not self.exact_subsample:
            return
        for point in sweep.grid.points:
            pool = point.n * (sweep.generations + 1)
            if point.policy.kind == "accumulate_subsample" and pool >= HYPERGEOMETRIC_LIMIT:
                raise SpecError(
                    point.where("n"),
                    f"n * (generations + 1) < {HYPERGEOMETRIC_LIMIT:.0e} for "
                    "accumulate_subsample (numpy's hypergeometric subsample of the pool loses "
                    f"precision beyond; generations = {sweep.generations})",
                    point.n,
                )

    # -- model ------------------------------------------------------------------------------
    def truth(self, batch: int) -> np.ndarray:
        return np.full(batch, self.p0)

    def sample(self, params: np.ndarray, m: int, *, rng: np.random.Generator, temperature: float = 1.0) -> np.ndarray:
        """m 0/1 samples per chain (booleans), from p^(1/T) renormalised when tempered."""
        p = tempered(params, temperature)
        return rng.random((p.shape[0], m)) < p[:, None]

    def fit(self, data: np.ndarray, *, previous: Any = None, rng: Any = None) -> np.ndarray:
        return _counts.fit(_counts.summarize(data))

    # -- statistics ---------------------------------------------------------------------------
    def summarize(self, data: np.ndarray) -> Totals:
        return _counts.summarize(data)

    def draw(self, params: np.ndarray, m: int, *, rng: np.random.Generator, temperature: float = 1.0) -> Totals:
        if not self.exact_draw:
            return self.summarize(self.sample(params, m, rng=rng, temperature=temperature))
        return Totals(m, rng.binomial(m, tempered(params, temperature)))

    def combine(self, a: Totals, b: Totals) -> Totals:
        return _counts.combine(a, b)

    def subsample_stats(self, stats: Totals, m: int, *, rng: np.random.Generator) -> Totals:
        return Totals(m, rng.hypergeometric(stats.total, stats.m - stats.total, m))

    def fit_stats(self, stats: Totals) -> np.ndarray:
        return _counts.fit(stats)

    # -- observation ----------------------------------------------------------------------------
    def events(self, batch: int, horizon: int, spec: Any) -> CountEvents:
        return CountEvents(batch, horizon, spec, collapsed=on_boundary, truth=self.p0)

    def metrics(self, params: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "p": params,
            "abs_error": np.abs(params - self.p0),
            "spread_ratio": np.sqrt(params * (1.0 - params)) / self.sd0,
        }

    def block_width(self, n: int, policy: Any) -> float:
        sampled = not self.exact_draw
        return float(n if sampled else 1)

    def cost(self, n: int, policy: Any, generations: int) -> Cost:
        sampled = not self.exact_draw
        per_draw = 2e-7 + (5e-9 * n if sampled else 0.0)
        if policy.subsamples:
            per_draw += 4e-7 if not sampled else 1.5e-8 * n
        stored = n * (generations + 1) if sampled and policy.kind == "accumulate_subsample" else 0
        return Cost(
            per_draw * (2 if policy.kind in ("fresh_real", "mix") else 1), 64.0 + stored, width=n if sampled else 1
        )
