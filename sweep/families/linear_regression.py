"""Linear regression family (Gerstgrasser et al. 2024; Dey and Donoho 2024): OLS refitted on its own labels.

Each generation draws fresh covariates x ~ N(0, I_d) and labels y = x . w + sigma e from the model
w fitted at the previous generation (the truth w_0 at generation 1), and refits w by ordinary least
squares. The noise level sigma (``noise_sd``) is known and not refitted, as in both papers; only w
collapses. ``replace`` fits the last generation's pairs, ``accumulate`` every pair so far,
``fresh_real`` mixes in pairs labelled by the truth.

A training set is held as its sufficient statistics (m, X^T X, X^T y, y^T y), which combining adds.
``path: exact`` draws them directly (:func:`sweep.families._ols.draw_statistics`: O(d^2) random
numbers per chain whatever n is); ``path: sample`` draws the pairs and summarises them. A subsample
of stored pairs has no statistic-level form, so ``accumulate_subsample`` and ``mix`` with
0 < keep < 1 run on the sample path (``auto`` samples only those cells).

Temperature: tempering the model's conditional density p(y | x)^(1/T), renormalised, is exactly
N(x . w, T sigma^2): synthetic labels get noise variance T sigma^2. Covariates and real labels are
never tempered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sweep import fields
from sweep.errors import SpecError
from sweep.events import EventSet
from sweep.families import _ols
from sweep.families.base import Cost, EventKind, Family

MAX_DIM = 1000


@dataclass(frozen=True)
class LinearRegressionSpec:
    """The true coefficients, the noise level and how the chain is simulated."""

    dim: int
    noise_sd: float
    w: tuple[float, ...]
    w_raw: Any
    path: str

    def to_raw(self) -> dict[str, Any]:
        return {
            "name": "linear_regression",
            "dim": self.dim,
            "noise_sd": self.noise_sd,
            "w": self.w_raw,
            "path": self.path,
        }


@dataclass
class Stats:
    """Sufficient statistics of B training sets of m pairs: X^T X, X^T y and y^T y.

    A fresh exact draw holds them in whitened form instead, (F, v, rss) with F F^T = X^T X, F v = X^T
    y and rss = y^T y - |v|^2, from which the fit is one triangular solve; the plain statistics are
    formed from them only when needed (to combine training sets).
    """

    m: int
    gram_: np.ndarray | None = None  # (B, d, d)
    xty_: np.ndarray | None = None  # (B, d)
    yty_: np.ndarray | None = None  # (B,)
    factor: np.ndarray | None = None  # (B, d, d), lower triangular
    white: np.ndarray | None = None  # (B, d)
    rss: np.ndarray | None = None  # (B,)

    @property
    def gram(self) -> np.ndarray:
        if self.gram_ is None:
            self.gram_ = self.factor @ np.swapaxes(self.factor, 1, 2)
        return self.gram_

    @property
    def xty(self) -> np.ndarray:
        if self.xty_ is None:
            self.xty_ = np.einsum("bij,bj->bi", self.factor, self.white)
        return self.xty_

    @property
    def yty(self) -> np.ndarray:
        if self.yty_ is None:
            self.yty_ = np.einsum("bi,bi->b", self.white, self.white) + self.rss
        return self.yty_


@dataclass
class Params:
    """Fitted coefficients (B, d) and the residual variance of the fit, RSS / (m - d) (B,)."""

    w: np.ndarray
    noise_var: np.ndarray


def _read_w(value: Any, path: str, dim: int) -> tuple[tuple[float, ...], Any]:
    expected = f"a list of dim = {dim} numbers, one number (every coefficient), or {{seed: s}} (w ~ N(0, I/dim))"
    if isinstance(value, dict):
        if set(value) != {"seed"}:
            raise SpecError(path, expected, value)
        seed = fields.integer(0, None)(value["seed"], f"{path}.seed")
        # N(0, I / dim): |w_0|^2 is 1 on average whatever the dimension.
        drawn = np.random.default_rng(seed).standard_normal(dim) / math.sqrt(dim)
        return tuple(float(x) for x in drawn), {"seed": seed}
    if isinstance(value, (list, tuple)):
        if len(value) != dim:
            raise SpecError(path, expected, f"a list of {len(value)} values", raw=True)
        w = tuple(fields.number()(x, f"{path}[{i}]") for i, x in enumerate(value))
        return w, list(w)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(path, expected, value)
    w = (fields.number()(value, path),) * dim
    return w, list(w)


class LinearRegressionFamily(Family):
    """y = x . w + noise, x ~ N(0, I_d), w refitted by OLS every generation."""

    name = "linear_regression"
    spec_fields = ("dim", "noise_sd", "w", "path")
    sufficient = True
    exact_subsample = False
    event_kinds = (
        EventKind(
            "test_error_above",
            "test error |w_t - w_0|^2 + sigma^2 above the threshold (in units of y^2; "
            "the truth's own test error is sigma^2)",
        ),
    )
    metric_columns = {
        "test_error": "expected squared error on a fresh (x, y) of the truth: |w_t - w_0|^2 + sigma^2",
        "w_distance": "|w_t - w_0|, Euclidean",
        "w_norm": "|w_t|, Euclidean",
        "noise_var": "residual variance of the fit, RSS / (m - d) (NaN when m = d); the model's sigma is not refitted",
    }
    distance_metric = "w_distance"
    theory_overlays = ("linear_regression_test_error",)

    @classmethod
    def parse_spec(cls, section: fields.Section) -> LinearRegressionSpec:
        dim = section.take("dim", fields.integer(1, MAX_DIM), 10)
        noise_sd = section.take("noise_sd", fields.number(0.0, None, low_open=True), 1.0)
        w, w_raw = section.take("w", lambda v, p: _read_w(v, p, dim), None) or _read_w(
            {"seed": 0}, section.sub("w"), dim
        )
        path = section.take("path", fields.choice("exact", "sample", "auto"), "exact")
        return LinearRegressionSpec(dim=dim, noise_sd=noise_sd, w=w, w_raw=w_raw, path=path)

    def __init__(self, spec: LinearRegressionSpec):
        super().__init__(spec)
        self.d = spec.dim
        self.w0 = np.array(spec.w)
        self.sigma = spec.noise_sd

    @property
    def exact_draw(self) -> bool:
        return self.spec.path in ("exact", "auto")

    def check_cell(self, point: Any) -> None:
        if point.n < self.d:
            raise SpecError(
                point.where("n"),
                f"an integer >= dim = {self.d} (OLS needs at least dim pairs: X^T X is singular below)",
                point.n,
            )
        if self.spec.path == "exact" and point.policy.subsamples:
            raise SpecError(
                point.where("policy"),
                "a policy the exact path can simulate (accumulate_subsample and "
                "mix with 0 < keep < 1 subsample stored pairs: set family.path: sample, or auto to "
                "sample only those cells)",
                point.policy.label,
            )

    def check_sweep(self, sweep: Any) -> None:
        thresholds = sweep.events["test_error_above"]
        for point in sweep.grid.points:
            floor = point.family_spec.noise_sd**2
            for i, threshold in enumerate(thresholds):
                if threshold <= floor:
                    where = point.where("family.noise_sd")
                    raise SpecError(
                        f"events.test_error_above[{i}]",
                        f"a threshold > noise_sd^2 = {floor:g} ({where}"
                        "; the truth's own test error: every fit is above it)",
                        threshold,
                    )

    # -- model ------------------------------------------------------------------------------
    def truth(self, batch: int) -> Params:
        return Params(np.broadcast_to(self.w0, (batch, self.d)).copy(), np.full(batch, self.sigma**2))

    def sample(self, params: Params, m: int, *, rng: np.random.Generator, temperature: float = 1.0) -> np.ndarray:
        """m pairs per chain as (B, m, d + 1): x in the first d columns, y in the last."""
        batch = params.w.shape[0]
        data = np.empty((batch, m, self.d + 1))
        data[:, :, : self.d] = rng.standard_normal((batch, m, self.d))
        noise = rng.standard_normal((batch, m))
        data[:, :, self.d] = np.einsum("bmd,bd->bm", data[:, :, : self.d], params.w)
        data[:, :, self.d] += (self.sigma * math.sqrt(temperature)) * noise
        return data

    def fit(self, data: np.ndarray, *, previous: Any = None, rng: Any = None) -> Params:
        return self.fit_stats(self.summarize(data))

    # -- statistics ---------------------------------------------------------------------------
    def summarize(self, data: np.ndarray) -> Stats:
        x, y = data[:, :, : self.d], data[:, :, self.d]
        return Stats(
            data.shape[1],
            gram_=np.matmul(np.swapaxes(x, 1, 2), x),
            xty_=np.einsum("bmd,bm->bd", x, y),
            yty_=np.einsum("bm,bm->b", y, y),
        )

    def draw(self, params: Params, m: int, *, rng: np.random.Generator, temperature: float = 1.0) -> Stats:
        if not self.exact_draw or m < self.d:  # fewer pairs than dimensions: as cheap to sample
            return self.summarize(self.sample(params, m, rng=rng, temperature=temperature))
        factor, white, rss = _ols.draw_statistics(params.w, m, self.sigma * math.sqrt(temperature), rng=rng)
        return Stats(m, factor=factor, white=white, rss=rss)

    def combine(self, a: Stats, b: Stats) -> Stats:
        return Stats(a.m + b.m, gram_=a.gram + b.gram, xty_=a.xty + b.xty, yty_=a.yty + b.yty)

    def fit_stats(self, stats: Stats) -> Params:
        if stats.factor is not None:  # a fresh exact draw, already whitened
            factor, v, rss = stats.factor, stats.white, stats.rss
        else:
            factor = _ols.cholesky(stats.gram)
            v = _ols.solve_lower(factor, stats.xty)
            # RSS = y^T y - (X^T y)^T (X^T X)^{-1} X^T y = y^T y - |v|^2
            rss = stats.yty - np.einsum("bi,bi->b", v, v)
        w = _ols.solve_lower_transposed(factor, v)
        noise_var = rss / (stats.m - self.d) if stats.m > self.d else np.full(rss.shape, np.nan)
        return Params(w, noise_var)

    # -- observation ----------------------------------------------------------------------------
    def excess(self, params: Params) -> np.ndarray:
        """|w_t - w_0|^2 per chain."""
        delta = params.w - self.w0
        return np.einsum("bi,bi->b", delta, delta)

    def events(self, batch: int, horizon: int, spec: Any) -> RegressionEvents:
        return RegressionEvents(self, batch, horizon, spec)

    def metrics(self, params: Params) -> dict[str, np.ndarray]:
        excess = self.excess(params)
        return {
            "test_error": excess + self.sigma**2,
            "w_distance": np.sqrt(excess),
            "w_norm": np.sqrt(np.einsum("bi,bi->b", params.w, params.w)),
            "noise_var": params.noise_var,
        }

    def block_width(self, n: int, policy: Any) -> float:
        sampled = not self.exact_draw or policy.subsamples
        return float(n * (self.d + 1) if sampled else self.d * self.d)

    def cost(self, n: int, policy: Any, generations: int) -> Cost:
        d = self.d
        sampled = not self.exact_draw or policy.subsamples
        per_draw = 3e-8 * d * d + 1e-7 + (1e-8 * n * (d + 1) + 1e-9 * n * d * d if sampled else 0.0)
        stored = 8.0 * n * (d + 1) * (generations + 1 if policy.kind == "accumulate_subsample" else 1)
        return Cost(
            per_draw * (2 if policy.kind in ("fresh_real", "mix") else 1),
            stored + 64.0 * d * d,
            width=self.block_width(n, policy),
        )


class RegressionEvents:
    """test_error_above and diverged (a non-finite fit), every generation."""

    def __init__(self, family: LinearRegressionFamily, batch: int, horizon: int, spec: Any):
        self.family = family
        self.set = EventSet(batch, horizon)
        # compare |w_t - w_0|^2 with threshold - sigma^2: one subtraction fewer per chain
        self.limits = [(self.set.add("test_error_above", eps), eps - family.sigma**2) for eps in spec.test_error_above]
        self.diverged = self.set.add("diverged") if spec.diverged else None

    def update(self, generation: int, params: Params, state: Any) -> None:
        excess = self.family.excess(params)
        for slot, limit in self.limits:
            self.set.mark(slot, generation, excess > limit)
        if self.diverged is not None:
            self.set.mark(self.diverged, generation, ~np.isfinite(excess))
