"""d-dimensional Gaussian KDE family, batched across chains (Kazdan et al. 2024's KDE experiment).

The fitted model of a chain is its training set plus a kernel covariance H (``bandwidth``: scott or
silverman, as ``scipy.stats.gaussian_kde``: the data's covariance times the rule's factor squared;
or a number h: H = h**2 I). Sampling picks training points uniformly with replacement and adds
N(0, H) noise; tempered, H times T (bandwidth times sqrt(T)). The model's covariance is the data's
(ddof 0) plus H, so under ``replace`` with a fixed h its expectation follows
E[C_t] = (n - 1)/n E[C_t-1] + h**2 I (tested), and with a rule the covariance grows every
generation by the factor (n - 1)/n (1 + factor**2): the KDE inflates, it does not collapse.

The truth is a Gaussian mixture (``weights``, ``means``, ``covs``, as the gmm family) or one of
scikit-learn's generators (``generator: moons``, or a mapping with its settings, e.g.
``{name: circles, noise: 0.05, factor: 0.5}``; see :mod:`sweep.families._generators`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from sweep import fields
from sweep.errors import SpecError
from sweep.families import _linalg
from sweep.families._generators import GENERATORS, Shape, blobs_mixture
from sweep.families._gmmnd import Mixture, mixture_moments, sample_mixture, tempered
from sweep.families._gmmnd_spec import MIXTURE_FIELDS, TrueMixtureND, read_point, read_true_mixture_nd
from sweep.families._kdend import (
    kde_moments,
    kernel_covariance,
    sample_kde,
    shape_truth,
    sliced_tail_kde,
    sliced_w2_kde,
)
from sweep.families._sliced import SlicedTruth, directions
from sweep.families.base import Cost, EventKind, Family
from sweep.families.gmm import SHAPE_METRICS, ShapeEvents, read_directions, resolve_directions, shape_metrics


@dataclass(frozen=True)
class Blobs:
    """make_blobs' law: equally weighted isotropic Gaussians at ``centers`` with ``cluster_std``."""

    centers: tuple[tuple[float, ...], ...]
    cluster_std: tuple[float, ...]
    name: str = "blobs"

    def to_raw(self) -> dict[str, Any]:
        return {"name": "blobs", "centers": [list(c) for c in self.centers], "cluster_std": list(self.cluster_std)}

    def mixture(self) -> TrueMixtureND:
        w, m, c = blobs_mixture(np.array(self.centers, dtype=float), np.array(self.cluster_std))
        return TrueMixtureND(tuple(w), tuple(tuple(r) for r in m), tuple(tuple(tuple(r) for r in ci) for ci in c))


GENERATOR_FIELDS = {
    "moons": ("noise",),
    "circles": ("noise", "factor"),
    "swiss_roll": ("noise",),
    "blobs": ("centers", "cluster_std"),
}


def _read_generator(value: Any, path: str) -> Any:
    """``moons`` (its defaults) or a mapping {name, and the generator's settings}."""
    expected = f"one of {', '.join(GENERATORS)}, or a mapping {{name: <one of them>, <its settings>}}"
    raw = {"name": value} if isinstance(value, str) else value
    if not isinstance(raw, dict) or raw.get("name") not in GENERATORS:
        raise SpecError(
            path if isinstance(value, str) or not isinstance(raw, dict) else f"{path}.name",
            expected,
            value if not isinstance(raw, dict) else raw.get("name"),
        )
    name = raw["name"]
    section = fields.Section(raw, path, ("name",) + GENERATOR_FIELDS[name])
    if name != "blobs":
        noise = section.take("noise", fields.number(0.0, None, low_open=True), 0.1)
        factor = (
            section.take("factor", fields.number(0.0, 1.0, low_open=True, high_open=True), 0.8)
            if name == "circles"
            else 0.8
        )
        return Shape(name, noise, factor)

    def centers(v: Any, p: str) -> tuple:
        if not isinstance(v, (list, tuple)) or not v or not isinstance(v[0], (list, tuple)):
            raise SpecError(p, "a non-empty list of centres, each a list of numbers", v)
        return tuple(read_point(c, f"{p}[{i}]", len(v[0])) for i, c in enumerate(v))

    # scikit-learn draws random centres when none are given: a truth must name them
    where = section.take("centers", centers)
    std = section.take("cluster_std", fields.listed(fields.number(0.0, None, low_open=True)), (1.0,))
    if len(std) == 1:
        std = std * len(where)
    if len(std) != len(where):
        raise SpecError(
            section.sub("cluster_std"), f"one number, or a list of {len(where)} (one per centre)", list(std)
        )
    return Blobs(where, tuple(std))


@dataclass(frozen=True)
class KDENDSpec:
    """The truth (a mixture, or a generator) and the bandwidth rule."""

    mixture: TrueMixtureND | None
    generator: Any  # Shape, Blobs or None
    bandwidth: Any
    directions: Any  # "auto" or an int

    @property
    def dim(self) -> int:
        if isinstance(self.generator, Shape):
            return self.generator.dim
        return self.truth_mixture().dim

    def truth_mixture(self) -> TrueMixtureND | None:
        return self.generator.mixture() if isinstance(self.generator, Blobs) else self.mixture

    def to_raw(self) -> dict[str, Any]:
        truth = {"generator": self.generator.to_raw()} if self.generator is not None else self.mixture.to_raw()
        return {"name": "kde_nd", **truth, "bandwidth": self.bandwidth, "directions": self.directions}


def _read_bandwidth(value: Any, path: str) -> Any:
    if isinstance(value, str) and value in ("scott", "silverman"):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return fields.number(0.0, None, low_open=True)(value, path)
    raise SpecError(path, "scott, silverman or a number in (0, inf)", value)


@dataclass(frozen=True)
class GeneratorTruth:
    """A generator truth for a block of ``batch`` chains (generation 0 seen as a fit)."""

    shape: Shape
    batch: int


@dataclass
class KDEParams:
    """Training points (B, m, d) and kernel covariances (B, d, d)."""

    points: np.ndarray
    kernel: np.ndarray


class KDENDFamily(Family):
    """d-dimensional Gaussian KDE refitted on its own samples."""

    name = "kde_nd"
    spec_fields = MIXTURE_FIELDS + ("generator", "bandwidth", "directions")
    sufficient = False
    event_kinds = (
        EventKind(
            "spread_below",
            "spread ratio (det of the KDE's covariance / true det)^(1/2d) below the threshold",
            default=(0.5, 0.1),
            descending=True,
        ),
        EventKind("distance_above", "sliced W2 distance to the truth above the threshold", collapse=False),
    )
    # no kl: the KDE's log-density is a sum of N kernels, so a quadrature of it costs N times the
    # mixture's, and it is bumpy at the kernels' scale (measured: 7% error with 16 Gauss-Hermite
    # nodes per dimension at h = 0.17 true sd, as accumulating policies reach)
    metric_columns = {
        **{k: v for k, v in SHAPE_METRICS.items() if k != "kl"},
        "bandwidth": "det(H)^(1/(2d)), the geometric mean kernel standard deviation (NaN at generation 0, the truth)",
    }
    distance_metric = "w2"
    spread_metric = "spread_ratio"
    theory_overlays = ("kde_density_nd",)

    @classmethod
    def parse_spec(cls, section: fields.Section) -> KDENDSpec:
        generator = section.take("generator", _read_generator, None)
        if generator is None:
            mixture = read_true_mixture_nd(section)
            dim = mixture.dim
        else:
            for field in ("weights", "means", "covs"):
                if section.has(field):
                    raise SpecError(
                        section.sub(field),
                        "no mixture field with a generator (the truth is the generator's law)",
                        section.raw[field],
                    )
            mixture = None
            dim = generator.dim if isinstance(generator, Shape) else len(generator.centers[0])
            given = section.take("dim", fields.integer(1, None), dim)
            if given != dim:
                raise SpecError(
                    section.sub("dim"), f"{dim} (the dimension of the {generator.name} generator's samples)", given
                )
        return KDENDSpec(
            mixture=mixture,
            generator=generator,
            bandwidth=section.take("bandwidth", _read_bandwidth, "scott"),
            directions=read_directions(section),
        )

    def __init__(self, spec: KDENDSpec):
        super().__init__(spec)
        self.d = spec.dim
        self.shape = spec.generator if isinstance(spec.generator, Shape) else None
        mixture = spec.truth_mixture()
        self.true = None if mixture is None else mixture.arrays()
        self.mean0, self.cov0 = self.shape.moments() if self.shape is not None else mixture.moments()
        self.logdet0 = float(np.linalg.slogdet(self.cov0)[1])
        self.root0 = _linalg.sqrtm_psd(self.cov0)
        self.directions = resolve_directions(spec.directions, self.d)

    @cached_property
    def sliced(self) -> SlicedTruth:
        u = directions(self.d, self.directions)
        return shape_truth(self.shape, u) if self.shape is not None else SlicedTruth.of_mixture(*self.true, u)

    def check_cell(self, point: Any) -> None:
        if point.n < self.d + 1:
            raise SpecError(
                point.where("n"),
                f"an integer >= dim + 1 = {self.d + 1} (a bandwidth rule needs the data's covariance)",
                point.n,
            )

    # -- model ------------------------------------------------------------------------------
    def truth(self, batch: int) -> Any:
        if self.shape is not None:
            return GeneratorTruth(self.shape, batch)
        w, m, c = self.true
        return Mixture.given(
            np.broadcast_to(w, (batch,) + w.shape).copy(),
            np.broadcast_to(m, (batch,) + m.shape).copy(),
            np.broadcast_to(c, (batch,) + c.shape).copy(),
        )

    def sample(self, params: Any, m: int, *, rng: np.random.Generator, temperature: float = 1.0) -> np.ndarray:
        """m samples per chain; tempered: the kernel covariance times T (a KDE is a mixture of equal
        weight kernels). The engine draws the truth (generation 1's data, real data) untempered; a
        mixture truth would temper as the gmm family, a generator has no tempered form."""
        if isinstance(params, KDEParams):
            return sample_kde(params.points, params.kernel * temperature, m, rng=rng)
        if isinstance(params, GeneratorTruth):
            return params.shape.sample(params.batch, m, rng=rng)
        weights, covariances = tempered(params.weights, params.covariances, temperature)
        return sample_mixture(weights, params.means, covariances, m, rng=rng)

    def fit(self, data: np.ndarray, *, previous: Any = None, rng: Any = None) -> KDEParams:
        # the training set may be a view into a growing pool; later appends never touch it
        return KDEParams(data, kernel_covariance(data, self.spec.bandwidth))

    # -- observation --------------------------------------------------------------------------
    def events(self, batch: int, horizon: int, spec: Any) -> ShapeEvents:
        return ShapeEvents(self, batch, horizon, spec)

    def moments(self, params: Any) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(params, KDEParams):
            return kde_moments(params.points, params.kernel)
        if isinstance(params, GeneratorTruth):
            b = params.batch
            return np.broadcast_to(self.mean0, (b, self.d)).copy(), np.broadcast_to(
                self.cov0, (b, self.d, self.d)
            ).copy()
        return mixture_moments(params.weights, params.means, params.covariances)

    def w2(self, params: Any) -> np.ndarray:
        if isinstance(params, KDEParams):
            return sliced_w2_kde(self.sliced, params.points, params.kernel)
        return np.zeros(self.moments(params)[0].shape[0])  # the truth itself

    def metrics(self, params: Any) -> dict[str, np.ndarray]:
        mean, cov = self.moments(params)
        out = shape_metrics(self, mean, cov)
        if not isinstance(params, KDEParams):
            b = mean.shape[0]  # generation 0: the truth
            out.update(w2=np.zeros(b), tail_mass=np.full(b, 0.02), bandwidth=np.full(b, np.nan))
            return out
        out["w2"] = self.w2(params)
        out["tail_mass"] = sliced_tail_kde(self.sliced, params.points, params.kernel)
        with np.errstate(divide="ignore"):
            out["bandwidth"] = np.exp(_linalg.logdet(params.kernel) / (2 * self.d))
        return out

    def cost(self, n: int, policy: Any, generations: int) -> Cost:
        stored = n * self.d * 8.0 * (generations + 1 if policy.grows else 2)
        return Cost(1e-7 * n * self.d, stored + n * self.d * 8.0 * 6, width=n * self.d)
