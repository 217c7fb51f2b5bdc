"""Gaussian family (1-D and d-dimensional), with an exact sufficient-statistic path.

The training set's statistics are (count m, mean, scatter S = sum (x - mean)(x - mean)^T). For m
samples of N(mu, Sigma), mean ~ N(mu, Sigma / m) and S ~ Wishart(m - 1, Sigma), independently,
so ``path: exact`` advances a generation in O(1) per chain (O(d^3) for d > 1) whatever n is;
``path: sample`` draws the m samples and summarises them; ``path: auto`` is exact except in cells
whose policy subsamples stored data, which are sampled.

``kernel: numba`` (the default ``auto`` where numba is installed, see :mod:`sweep._numba`) draws
the normals and the chi-squares with :mod:`sweep._fastrng`'s compiled draws, from the same block
stream and as the same number of draws as ``kernel: numpy``, but other values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

from sweep import _fastrng, fields
from sweep._numba import take_kernel
from sweep.errors import SpecError
from sweep.events import EventSet
from sweep.families import _linalg
from sweep.families.base import Cost, EventKind, Family
from sweep.ladder import Ladder

#: Chains per block of the 1-D exact path with compiled draws (see default_block_size).
COMPILED_EXACT_BLOCK = 16384


@dataclass(frozen=True)
class GaussianSpec:
    """The true Gaussian and how it is fitted."""

    dim: int
    mean: tuple[float, ...]
    cov: tuple[tuple[float, ...], ...]
    estimator: str
    path: str
    kernel: str = "numpy"

    def to_raw(self) -> dict[str, Any]:
        raw = {
            "name": "gaussian",
            "dim": self.dim,
            "mean": list(self.mean),
            "cov": [list(row) for row in self.cov],
            "estimator": self.estimator,
            "path": self.path,
        }
        if self.kernel != "numpy":  # folders written before the field (numpy) keep their spec
            raw["kernel"] = self.kernel
        return raw


@dataclass
class Stats:
    """Sufficient statistics of B training sets of equal size ``m``."""

    m: int
    mean: np.ndarray  # (B,) or (B, d)
    scatter: np.ndarray  # (B,) or (B, d, d)


@dataclass
class Params:
    """Fitted Gaussians: ``cov`` is the covariance, (B, d, d) for d > 1 and the variance (B,) for d = 1."""

    mean: np.ndarray
    cov: np.ndarray
    _factor: np.ndarray | None = None

    def factor(self) -> np.ndarray:
        """A matrix A with A A^T = cov (d > 1), computed once per fit."""
        if self._factor is None:
            self._factor = _linalg.psd_factor(self.cov)
        return self._factor


def _read_mean(value: Any, path: str, dim: int) -> tuple[float, ...]:
    item = fields.number()
    if isinstance(value, (list, tuple)):
        if len(value) != dim:
            raise SpecError(path, f"a list of {dim} numbers (one per dimension)", value)
        return tuple(item(v, f"{path}[{i}]") for i, v in enumerate(value))
    return (item(value, path),) * dim


def _read_cov(value: Any, path: str, dim: int) -> tuple[tuple[float, ...], ...]:
    if not isinstance(value, (list, tuple)):
        scale = fields.number(0.0, None, low_open=True)(value, path)
        return tuple(tuple(scale if i == j else 0.0 for j in range(dim)) for i in range(dim))
    if dim == 1 and len(value) == 1 and not isinstance(value[0], (list, tuple)):
        value = [value]
    expected = f"a symmetric positive definite {dim}x{dim} matrix (list of {dim} rows) or a positive number"
    if len(value) != dim or any(not isinstance(r, (list, tuple)) or len(r) != dim for r in value):
        raise SpecError(path, expected, value)
    matrix = np.array([[fields.number()(x, f"{path}[{i}][{j}]") for j, x in enumerate(r)] for i, r in enumerate(value)])
    if not np.allclose(matrix, matrix.T, rtol=0, atol=1e-12 * max(1.0, np.abs(matrix).max())):
        raise SpecError(path, expected + " (it is not symmetric)", value)
    if np.linalg.eigvalsh(matrix).min() <= 0:
        raise SpecError(path, expected + " (it is not positive definite)", value)
    return tuple(tuple(float(x) for x in r) for r in matrix)


class GaussianFamily(Family):
    """Gaussian fitted by mean and (unbiased or ML) (co)variance."""

    name = "gaussian"
    spec_fields = ("dim", "mean", "cov", "estimator", "path", "kernel")
    sufficient = True
    exact_subsample = False
    event_kinds = (
        EventKind(
            "spread_below",
            "spread ratio below the threshold (d = 1: sigma_t / sigma_true; d > 1: (det ratio)^(1/2d))",
            default=(0.5, 0.1, 0.01),
            descending=True,
        ),
        EventKind("distance_above", "W2 distance to the truth above the threshold", collapse=False),
    )
    metric_columns = {
        "spread_ratio": "d = 1: sigma_t / sigma_true; d > 1: (det Sigma_t / det Sigma_true)^(1/(2d))",
        "w2": "2-Wasserstein distance between the fitted and the true Gaussian (closed form)",
        "mean": "fitted mean (d > 1: a list of d values)",
        "var": "d = 1: fitted variance",
        "tail_mass": "d = 1: fitted probability beyond the true 1% and 99% quantiles (truth: 0.02)",
        "cov": "d > 1: fitted covariance, row-major d*d values",
        "trace": "d > 1: trace of the fitted covariance",
        "logdet": "d > 1: log-determinant of the fitted covariance",
    }
    distance_metric = "w2"
    spread_metric = "spread_ratio"
    theory_overlays = ("gaussian_log_variance",)

    @classmethod
    def parse_spec(cls, section: fields.Section) -> GaussianSpec:
        dim = section.take("dim", fields.integer(1, 64), 1)
        mean = section.take("mean", lambda v, p: _read_mean(v, p, dim), (0.0,) * dim)
        cov = section.take("cov", lambda v, p: _read_cov(v, p, dim), _read_cov(1.0, "", dim))
        estimator = section.take("estimator", fields.choice("unbiased", "ml"), "unbiased")
        path = section.take("path", fields.choice("exact", "sample", "auto"), "exact")
        # the default goes through the reader too: auto is resolved here, so the spec records it
        kernel = take_kernel(section)
        return GaussianSpec(dim=dim, mean=mean, cov=cov, estimator=estimator, path=path, kernel=kernel)

    def __init__(self, spec: GaussianSpec):
        super().__init__(spec)
        self.d = spec.dim
        self.mu0 = np.array(spec.mean)
        self.cov0 = np.array(spec.cov)
        self.ddof = 1 if spec.estimator == "unbiased" else 0
        self.compiled = spec.kernel == "numba"
        if self.d == 1:
            self.mu0, self.var0 = float(self.mu0[0]), float(self.cov0[0, 0])
            self.sd0 = self.var0**0.5
            q01, q99 = self.mu0 + self.sd0 * ndtri(np.array([0.01, 0.99]))
            self.quantiles = (float(q01), float(q99))
        else:
            self.var0 = self.cov0
            self.logdet0 = float(np.linalg.slogdet(self.cov0)[1])
            self.root0 = _linalg.sqrtm_psd(self.cov0)

    @property
    def exact_draw(self) -> bool:
        # 'auto' samples statistics wherever the policy keeps statistics; cells whose policy
        # subsamples stored data run in the data representation (sampled) anyway.
        return self.spec.path in ("exact", "auto")

    def check_cell(self, point: Any) -> None:
        minimum = self.d + 1
        why = f"the {self.spec.estimator} estimator in dimension {self.d} needs n >= dim + 1 = {minimum}"
        if point.n < minimum:
            raise SpecError(point.where("n"), f"an integer >= {minimum} ({why})", point.n)
        if self.spec.path == "exact" and point.policy.subsamples:
            raise SpecError(
                point.where("policy"),
                "a policy the exact path can simulate (accumulate_subsample and mix with "
                "0 < keep < 1 subsample stored data: set family.path: sample, or auto to "
                "sample only those cells)",
                point.policy.label,
            )

    # -- model ------------------------------------------------------------------------
    def truth(self, batch: int) -> Params:
        if self.d == 1:
            return Params(np.full(batch, self.mu0), np.full(batch, self.var0))
        return Params(
            np.broadcast_to(self.mu0, (batch, self.d)).copy(),
            np.broadcast_to(self.cov0, (batch, self.d, self.d)).copy(),
        )

    def sample(self, params: Params, m: int, *, rng: np.random.Generator, temperature: float = 1.0) -> np.ndarray:
        """m samples per chain; tempered, N(mu, temperature * Sigma) (p^(1/T) renormalised, exactly)."""
        batch = params.mean.shape[0]
        if self.d == 1:
            z = _fastrng.standard_normal(rng, (batch, m)) if self.compiled else rng.standard_normal((batch, m))
            z *= np.sqrt(params.cov * temperature)[:, None]
            z += params.mean[:, None]
            return z
        shape = (batch, m, self.d)
        z = _fastrng.standard_normal(rng, shape) if self.compiled else rng.standard_normal(shape)
        factor = params.factor() if temperature == 1.0 else params.factor() * np.sqrt(temperature)
        return params.mean[:, None, :] + np.matmul(z, np.swapaxes(factor, 1, 2))

    def fit(self, data: np.ndarray, *, previous: Any = None, rng: Any = None) -> Params:
        return self.fit_stats(self.summarize(data))

    # -- statistics ---------------------------------------------------------------------
    def summarize(self, data: np.ndarray) -> Stats:
        mean = data.mean(axis=1)
        centred = data - mean[:, None]
        if self.d == 1:
            return Stats(data.shape[1], mean, np.einsum("bm,bm->b", centred, centred))
        return Stats(data.shape[1], mean, np.matmul(np.swapaxes(centred, 1, 2), centred))

    def draw(self, params: Params, m: int, *, rng: np.random.Generator, temperature: float = 1.0) -> Stats:
        if not self.exact_draw:
            return self.summarize(self.sample(params, m, rng=rng, temperature=temperature))
        batch = params.mean.shape[0]
        if self.d == 1:
            var = params.cov if temperature == 1.0 else params.cov * temperature
            # chi2(m - 1) = 2 Gamma((m - 1) / 2); a gamma with shape 0 gives 0 (m = 1).
            if self.compiled:  # the same two draws and arithmetic, in one compiled pass
                return Stats(m, *_fastrng.exact_gaussian_1d(rng, params.mean, var, m))
            mean = rng.standard_normal(batch)
            scatter = rng.standard_gamma((m - 1) / 2.0, batch)
            mean *= np.sqrt(var * (1.0 / m))
            mean += params.mean
            scatter *= 2.0 * var
            return Stats(m, mean, scatter)
        factor = params.factor() if temperature == 1.0 else params.factor() * np.sqrt(temperature)
        z = rng.standard_normal((batch, self.d))
        mean = params.mean + np.einsum("bij,bj->bi", factor, z) / np.sqrt(m)
        w = _linalg.standard_wishart(m - 1, self.d, batch, rng=rng)
        return Stats(m, mean, factor @ w @ np.swapaxes(factor, 1, 2))

    def combine(self, a: Stats, b: Stats) -> Stats:
        m = a.m + b.m
        delta = b.mean - a.mean
        mean = a.mean + delta * (b.m / m)
        if self.d == 1:
            scatter = a.scatter + b.scatter + delta * delta * (a.m * b.m / m)
        else:
            scatter = a.scatter + b.scatter + delta[:, :, None] * delta[:, None, :] * (a.m * b.m / m)
        return Stats(m, mean, scatter)

    def fit_stats(self, stats: Stats) -> Params:
        return Params(stats.mean, stats.scatter * (1.0 / (stats.m - self.ddof)))

    # -- observation ----------------------------------------------------------------------
    def _w2(self, params: Params) -> np.ndarray:
        if self.d == 1:
            dm = params.mean - self.mu0
            ds = np.sqrt(params.cov) - self.sd0
            return np.sqrt(dm * dm + ds * ds)
        return _linalg.gaussian_w2(params.mean, params.cov, self.mu0, self.cov0, self.root0)

    def _log_spread(self, params: Params) -> np.ndarray:
        """ln(spread ratio): d = 1 ln(sigma / sigma_true), d > 1 (ln det ratio) / (2 d)."""
        if self.d == 1:
            return 0.5 * np.log(params.cov / self.var0)
        return (_linalg.logdet(params.cov) - self.logdet0) / (2 * self.d)

    def events(self, batch: int, horizon: int, spec: Any) -> GaussianEvents:
        return GaussianEvents(self, batch, horizon, spec)

    def metrics(self, params: Params) -> dict[str, np.ndarray]:
        with np.errstate(all="ignore"):
            out: dict[str, np.ndarray] = {"spread_ratio": np.exp(self._log_spread(params)), "w2": self._w2(params)}
            if self.d == 1:
                sd = np.sqrt(params.cov)
                low, high = self.quantiles
                out["mean"] = params.mean
                out["var"] = params.cov
                out["tail_mass"] = ndtr((low - params.mean) / sd) + ndtr((params.mean - high) / sd)
            else:
                out["mean"] = params.mean
                out["cov"] = params.cov.reshape(params.cov.shape[0], -1)
                out["trace"] = np.trace(params.cov, axis1=1, axis2=2)
                out["logdet"] = _linalg.logdet(params.cov)
        return out

    def default_block_size(self, n: int, policy: Any) -> int:
        """As the base's; with compiled draws, the 1-D exact path takes blocks of 16384 chains.

        There a generation costs a few tens of ns per chain and about 30 us of Python per block,
        so 4096 chains spent a fifth of the time in Python; 16384 measured fastest per chain
        (CPU time, n = 100: 33.7 ns at 4096, 30.0 at 8192, 26.4-27.2 at 16384, 34.7 at 32768,
        where the block's arrays leave the cache). numpy's kernel keeps 4096, so its folders
        keep their streams.
        """
        if self.compiled and self.d == 1 and self.exact_draw and not policy.subsamples:
            return COMPILED_EXACT_BLOCK
        return super().default_block_size(n, policy)

    def block_width(self, n: int, policy: Any) -> float:
        sampled = not self.exact_draw or policy.subsamples
        return float(self.d * self.d + (n * self.d if sampled else 0))

    def cost(self, n: int, policy: Any, generations: int) -> Cost:
        d = self.d
        sampled = not self.exact_draw or policy.subsamples
        per_draw = 1e-7 * d**3 + (1.5e-8 * n * d if sampled else 0.0)
        if policy.kind == "accumulate_subsample":
            per_draw += 1.5e-7 * n  # drawing n distinct indices and gathering them from the pool
        # Only accumulate_subsample keeps samples (a pool); accumulate keeps statistics.
        stored = n * d * 8.0 * (generations + 1 if policy.kind == "accumulate_subsample" else 2)
        working = 64.0 * d * d + (4 * n * d * 8.0 if sampled else 0.0)
        width = d * d + (n * d if sampled else 0)
        return Cost(per_draw * (3 if policy.kind in ("fresh_real", "mix") else 1), stored + working, width=width)


class GaussianEvents:
    """spread_below, distance_above and diverged, checked every generation.

    Each event's thresholds are nested, so a chain is compared with its next threshold only
    (:class:`~sweep.ladder.Ladder`); a finite sum of the variances vouches for every chain's being
    finite. A check costs a few operations per chain however many thresholds there are.
    """

    def __init__(self, family: GaussianFamily, batch: int, horizon: int, spec: Any):
        self.family = family
        self.set = EventSet(batch, horizon)
        self.spread = [(self.set.add("spread_below", r), r) for r in spec.spread_below]
        self.distance = [(self.set.add("distance_above", eps), eps) for eps in spec.distance_above]
        self.diverged = self.set.add("diverged")
        self._ladders()

    def _ladders(self) -> None:
        slots = [slot for slot, _ in self.spread]
        if self.family.d == 1:
            # Compare variances, not ratios: one multiply fewer per chain and generation.
            limits = [r * r * self.family.var0 for _, r in self.spread]
        else:
            limits = [np.log(r) for _, r in self.spread]
        self.spread_ladder = Ladder(self.set, slots, limits, below=True)
        self.distance_ladder = Ladder(
            self.set, [slot for slot, _ in self.distance], [eps for _, eps in self.distance], below=False
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "spread_ladder" not in state:  # a tracker pickled before the ladders (a kept final state)
            self._ladders()

    def update(self, generation: int, params: Params, state: Any) -> None:
        with np.errstate(all="ignore"):
            if self.spread:
                spread = params.cov if self.family.d == 1 else self.family._log_spread(params)
                self.spread_ladder.update(generation, spread)
            if self.distance:
                self.distance_ladder.update(generation, self.family._w2(params))
            # A non-finite mean comes with a non-finite (co)variance in both paths, so checking
            # the variance suffices and keeps the 1-D exact path at a few operations per chain.
            variance = params.cov if self.family.d == 1 else np.einsum("bii->b", params.cov)
            # A finite sum means every term is finite; only otherwise is each chain looked at.
            if not np.isfinite(np.add.reduce(variance)):
                self.set.mark(self.diverged, generation, ~np.isfinite(variance))
