"""Categorical family: word frequencies refitted by maximum likelihood (Wright-Fisher drift).

The training set is held as symbol counts, which are sufficient for the ML fit, so every policy
is exact: fresh draws are multinomial, combining adds counts, and a uniform subsample without
replacement is multivariate hypergeometric. A symbol whose count reaches 0 has fitted probability
0; it is forgotten for good unless fresh real data brings it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sweep import fields
from sweep.errors import SpecError
from sweep.events import EventSet
from sweep.families.base import Cost, EventKind, Family
from sweep.families._hypergeom import multivariate_hypergeometric


@dataclass(frozen=True)
class CategoricalSpec:
    """The true symbol probabilities (and how they were specified)."""

    k: int
    probs: tuple[float, ...]
    probs_raw: Any

    def to_raw(self) -> dict[str, Any]:
        return {"name": "categorical", "k": self.k, "probs": self.probs_raw}


@dataclass
class Counts:
    """Symbol counts of B training sets of equal size m."""

    m: int
    counts: np.ndarray  # (B, k) int64


def _read_probs(value: Any, path: str, k: int | None) -> tuple[tuple[float, ...], Any]:
    expected = "uniform, {zipf: s} with s > 0, or a list of non-negative probabilities summing to 1"
    if value == "uniform":
        if k is None:
            raise SpecError(
                path.rsplit(".", 1)[0] + ".k", "an integer >= 2 (needed with probs: uniform)", "nothing", raw=True
            )
        return (1.0 / k,) * k, "uniform"
    if isinstance(value, dict) and set(value) == {"zipf"}:
        if k is None:
            raise SpecError(
                path.rsplit(".", 1)[0] + ".k", "an integer >= 2 (needed with probs: zipf)", "nothing", raw=True
            )
        s = fields.number(0.0, None, low_open=True)(value["zipf"], f"{path}.zipf")
        weights = np.arange(1, k + 1, dtype=float) ** -s
        return tuple(weights / weights.sum()), {"zipf": s}
    if isinstance(value, (list, tuple)):
        probs = fields.listed(fields.number(0.0, 1.0), scalar_ok=False)(value, path)
        if k is not None and len(probs) != k:
            raise SpecError(path, f"a list of k = {k} probabilities", f"{len(probs)} values", raw=True)
        if len(probs) < 2:
            raise SpecError(path, "at least 2 probabilities", value)
        total = sum(probs)
        if abs(total - 1.0) > 1e-9:
            raise SpecError(path, "probabilities summing to 1", f"a sum of {total:.12g}", raw=True)
        return tuple(float(p) for p in probs), list(probs)
    raise SpecError(path, expected, value)


class CategoricalFamily(Family):
    """Categorical distribution over k symbols, ML fit = counts / n."""

    name = "categorical"
    spec_fields = ("k", "probs")
    sufficient = True
    exact_subsample = True
    event_kinds = (
        EventKind(
            "symbols",
            "a symbol with non-zero true probability is lost (fitted probability 0), one event per symbol",
            thresholds=False,
            default=True,
            per_symbol=True,
            collapse=False,
            row_name="symbol_lost",
        ),
        EventKind("collapse", "one symbol left (total collapse)", thresholds=False, default=True),
        EventKind("distance_above", "total-variation distance to the truth above the threshold", collapse=False),
    )
    metric_columns = {
        "surviving": "symbols with non-zero fitted probability",
        "entropy": "Shannon entropy of the fit, nats",
        "tv": "total-variation distance to the truth",
        "max_prob": "largest fitted probability",
        "heterozygosity": "1 - sum p^2",
    }
    distance_metric = "tv"
    theory_overlays = ("wright_fisher_heterozygosity", "forgetting_time")

    @classmethod
    def parse_spec(cls, section: fields.Section) -> CategoricalSpec:
        k = section.take("k", fields.integer(2, 10_000_000), None)
        probs, raw = _read_probs(section.take("probs", lambda v, p: v, "uniform"), section.sub("probs"), k)
        return CategoricalSpec(k=len(probs), probs=probs, probs_raw=raw)

    def __init__(self, spec: CategoricalSpec):
        super().__init__(spec)
        self.p0 = np.array(spec.probs)
        self.present = np.flatnonzero(self.p0 > 0)

    @property
    def exact_draw(self) -> bool:
        return True

    # -- model (samples are held as counts: the fit does not depend on their order) ----------
    def truth(self, batch: int) -> np.ndarray:
        return np.broadcast_to(self.p0, (batch, self.p0.size)).copy()

    def sample(self, params: np.ndarray, m: int, *, rng: np.random.Generator, temperature: float = 1.0) -> Counts:
        """Counts of m draws; tempered, from p^(1/T) renormalised (a lost symbol stays lost)."""
        return Counts(m, rng.multinomial(m, tempered(params, temperature)))

    def fit(self, data: Counts, *, previous: Any = None, rng: Any = None) -> np.ndarray:
        return self.fit_stats(data)

    def summarize(self, data: Counts) -> Counts:
        return data

    def draw(self, params: np.ndarray, m: int, *, rng: np.random.Generator, temperature: float = 1.0) -> Counts:
        return self.sample(params, m, rng=rng, temperature=temperature)

    def combine(self, a: Counts, b: Counts) -> Counts:
        return Counts(a.m + b.m, a.counts + b.counts)

    def subsample_stats(self, stats: Counts, m: int, *, rng: np.random.Generator) -> Counts:
        return Counts(m, multivariate_hypergeometric(stats.counts, m, rng=rng))

    def fit_stats(self, stats: Counts) -> np.ndarray:
        return stats.counts * (1.0 / stats.m)

    # -- observation ------------------------------------------------------------------------
    def events(self, batch: int, horizon: int, spec: Any) -> "CategoricalEvents":
        return CategoricalEvents(self, batch, horizon, spec)

    def metrics(self, params: np.ndarray) -> dict[str, np.ndarray]:
        with np.errstate(divide="ignore", invalid="ignore"):
            plogp = np.where(params > 0, params * np.log(params), 0.0)
        return {
            "surviving": np.count_nonzero(params, axis=1).astype(np.int32),
            "entropy": -plogp.sum(axis=1),
            "tv": 0.5 * np.abs(params - self.p0).sum(axis=1),
            "max_prob": params.max(axis=1),
            "heterozygosity": 1.0 - np.einsum("bk,bk->b", params, params),
        }

    def block_width(self, n: int, policy: Any) -> float:
        # The multinomial draw loops over rows in C at ~100 ns per symbol, so a block of 64
        # chains already amortises numpy's per-call overhead.
        return float(2**14)

    def cost(self, n: int, policy: Any, generations: int) -> Cost:
        k = self.p0.size
        per_generation = 1.2e-7 * k * (2 if policy.kind in ("fresh_real", "mix") else 1)
        if policy.subsamples:
            per_generation += 1e-7 * 2 * k
        # The multinomial draw loops over rows in C at ~100 ns per symbol, so a block of 64
        # chains already amortises numpy's per-call overhead: declare that width.
        return Cost(per_generation, 8.0 * k * 12, width=2**14)


def tempered(params: np.ndarray, temperature: float) -> np.ndarray:
    """p^(1/temperature), renormalised per chain (zeros stay zero)."""
    if temperature == 1.0:
        return params
    with np.errstate(divide="ignore", invalid="ignore"):
        powered = np.where(params > 0, params ** (1.0 / temperature), 0.0)
        return powered / powered.sum(axis=1, keepdims=True)


class CategoricalEvents:
    """symbol_lost per originally present symbol, collapse (one symbol left), distance_above (TV)."""

    def __init__(self, family: CategoricalFamily, batch: int, horizon: int, spec: Any):
        self.family = family
        self.set = EventSet(batch, horizon)
        self.collapse = self.set.add("collapse", 1.0) if spec.collapse else None
        self.distance = [(self.set.add("distance_above", eps), eps) for eps in spec.distance_above]
        self.symbols = spec.symbols
        if self.symbols:
            self.set.add_symbols(family.present)

    def update(self, generation: int, params: np.ndarray, state: Counts) -> None:
        present = params[:, self.family.present] if self.family.present.size < params.shape[1] else params
        alive = present > 0
        if self.symbols:
            if generation == 1:
                self.set.set_initial_counts(state.counts[:, self.family.present])
            self.set.mark_symbols(generation, ~alive)
        if self.collapse is not None:
            self.set.mark(self.collapse, generation, np.count_nonzero(params, axis=1) <= 1)
        if self.distance:
            tv = 0.5 * np.abs(params - self.family.p0).sum(axis=1)
            for slot, eps in self.distance:
                self.set.mark(slot, generation, tv > eps)
