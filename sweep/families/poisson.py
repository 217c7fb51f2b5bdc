"""Poisson family (Suresh et al. 2024): a count model refitted by maximum likelihood, the sample mean.

A training set is held as the sum of its values, sufficient for the fit. ``path: exact`` draws the
sum of m fresh samples directly (Poisson(m lambda)), so a generation costs the same at any n;
combining adds sums. There is no exact statistic-level *subsample*: the sum of a uniform subsample
of stored samples depends on how the total is spread over them, which the sum alone does not give
when the samples come from generations with different lambdas. Policies that subsample stored data
(``accumulate_subsample``, ``mix`` with 0 < keep < 1) therefore run on ``path: sample`` (or
``auto``, which samples only those cells), which draws, keeps and subsamples the samples.

Under ``replace`` the sum S_t = n lambda_t is exactly a critical Galton-Watson process with
Poisson(1) offspring (Poisson(S) is a sum of S independent Poisson(1)), so lambda_t is a martingale
that reaches 0 (``collapse``, absorbing) with probability one; see
:func:`analysis.theory_collapse.poisson_collapse_probability`.

Temperature: the tempered pmf p(k)^(1/T), renormalised, is proportional to
lambda^(k/T) / (k!)^(1/T), a Conway-Maxwell-Poisson law, which is not a Poisson for T != 1 and has no
closed-form sum. Rather than silently redefine tempering for this family, a temperature other
than 1 is a spec error.
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

#: The largest n * lambda a cell may start from: the sums, a critical branching population, stay
#: far below numpy's Poisson limit (about 9e18) and int64.
MAX_MEAN_TOTAL = 1e12


@dataclass(frozen=True)
class PoissonSpec:
    """The true rate and how the chain is simulated."""

    lam: float
    path: str

    def to_raw(self) -> dict[str, Any]:
        return {"name": "poisson", "lambda": self.lam, "path": self.path}


def at_zero(lam: np.ndarray) -> np.ndarray:
    """Where the estimate is 0 (a module-level function: event trackers are pickled with a block's state)."""
    return lam == 0.0


class PoissonFamily(Family):
    """Poisson(lambda) refitted by the sample mean (maximum likelihood)."""

    name = "poisson"
    spec_fields = ("lambda", "path")
    sufficient = True
    exact_subsample = False
    event_kinds = (
        EventKind(
            "collapse",
            "the estimate reached 0 (the model emits only zeros; absorbing under replace)",
            thresholds=False,
            default=True,
        ),
        _counts.distance_event("|lambda_t - lambda|"),
    )
    metric_columns = {
        "lambda": "fitted rate (sample mean)",
        "abs_error": "|lambda_t - lambda|",
        "spread_ratio": "fitted sd / true sd, sqrt(lambda_t / lambda)",
    }
    distance_metric = "abs_error"
    spread_metric = "spread_ratio"
    theory_overlays = ("poisson_collapse_probability", "poisson_mse", "poisson_median_collapse_time")

    @classmethod
    def parse_spec(cls, section: fields.Section) -> PoissonSpec:
        lam = section.take("lambda", fields.number(0.0, 1e9, low_open=True))
        return PoissonSpec(lam=lam, path=section.take("path", fields.choice("exact", "sample", "auto"), "exact"))

    def __init__(self, spec: PoissonSpec):
        super().__init__(spec)
        self.lam0 = spec.lam

    @property
    def exact_draw(self) -> bool:
        return self.spec.path in ("exact", "auto")

    def check_cell(self, point: Any) -> None:
        if point.temperature != 1.0:
            raise SpecError(
                point.where("temperature"),
                "1 (a tempered Poisson pmf p^(1/T) is a Conway-Maxwell-"
                "Poisson law, not a Poisson: the poisson family does not temper)",
                point.temperature,
            )
        if point.n * self.lam0 > MAX_MEAN_TOTAL:
            raise SpecError(
                point.where("n"),
                f"n * lambda <= {MAX_MEAN_TOTAL:.0e} (lambda = {self.lam0:g}; the "
                "sums must stay far below numpy's Poisson limit)",
                point.n,
            )
        if self.spec.path == "exact" and point.policy.subsamples:
            raise SpecError(
                point.where("policy"),
                "a policy the exact path can simulate (accumulate_subsample "
                "and mix with 0 < keep < 1 subsample stored samples, which a Poisson sum cannot do "
                "exactly: set family.path: sample, or auto to sample only those cells)",
                point.policy.label,
            )

    # -- model ------------------------------------------------------------------------------
    def truth(self, batch: int) -> np.ndarray:
        return np.full(batch, self.lam0)

    def sample(self, params: np.ndarray, m: int, *, rng: np.random.Generator, temperature: float = 1.0) -> np.ndarray:
        """m samples per chain, shape (B, m) of int64 (untempered: see the module docstring)."""
        if temperature != 1.0:
            raise ValueError(f"the poisson family does not temper (temperature {temperature!r})")
        return rng.poisson(params[:, None], size=(params.shape[0], m))

    def fit(self, data: np.ndarray, *, previous: Any = None, rng: Any = None) -> np.ndarray:
        return _counts.fit(_counts.summarize(data))

    # -- statistics ---------------------------------------------------------------------------
    def summarize(self, data: np.ndarray) -> Totals:
        return _counts.summarize(data)

    def draw(self, params: np.ndarray, m: int, *, rng: np.random.Generator, temperature: float = 1.0) -> Totals:
        if not self.exact_draw:
            return self.summarize(self.sample(params, m, rng=rng, temperature=temperature))
        if temperature != 1.0:
            raise ValueError(f"the poisson family does not temper (temperature {temperature!r})")
        # A sum of m independent Poisson(lambda) is Poisson(m lambda).
        return Totals(m, rng.poisson(params * float(m)))

    def combine(self, a: Totals, b: Totals) -> Totals:
        return _counts.combine(a, b)

    def fit_stats(self, stats: Totals) -> np.ndarray:
        return _counts.fit(stats)

    # -- observation ----------------------------------------------------------------------------
    def events(self, batch: int, horizon: int, spec: Any) -> CountEvents:
        return CountEvents(batch, horizon, spec, collapsed=at_zero, truth=self.lam0)

    def metrics(self, params: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "lambda": params,
            "abs_error": np.abs(params - self.lam0),
            "spread_ratio": np.sqrt(params / self.lam0),
        }

    def block_width(self, n: int, policy: Any) -> float:
        sampled = not self.exact_draw or policy.subsamples
        return float(n if sampled else 1)

    def cost(self, n: int, policy: Any, generations: int) -> Cost:
        sampled = not self.exact_draw or policy.subsamples
        per_draw = 1e-7 + (2e-8 * n if sampled else 0.0)
        if policy.kind == "accumulate_subsample":
            per_draw += 1.5e-7 * n
        stored = 8.0 * n * (generations + 1) if policy.kind == "accumulate_subsample" else 0.0
        return Cost(
            per_draw * (2 if policy.kind in ("fresh_real", "mix") else 1), 64.0 + stored, width=n if sampled else 1
        )
