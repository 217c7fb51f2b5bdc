"""scikit-learn's data generators as true distributions: their laws, sampled with the block's rng.

``make_moons``, ``make_circles`` and ``make_swiss_roll`` draw a point on a curve (or, for the swiss
roll, a sheet) and add isotropic Gaussian noise of standard deviation ``noise``. scikit-learn puts
the points of make_moons and make_circles evenly on the curves, half on each (``np.linspace``),
and shuffles them; the law they approach as n grows, and the one sampled here, picks each
sample's curve with probability 1/2 and its position uniformly on it, independently of the other
samples. So any prefix of a row is an i.i.d. sample, which mixing policies rely on. The swiss roll
is sampled as scikit-learn does (t = 1.5 pi (1 + 2 U), height 21 U'). ``make_blobs`` is a mixture
of equally weighted isotropic Gaussians and is handled as a mixture truth (:func:`blobs_mixture`).

Every draw is chain-leading, a fixed number per call: a uniform (B, m) for the curve, a uniform
(B, m) for the position (two for the swiss roll) and standard normals (B, m, d).

For the sliced metrics, a shape's projection onto a direction u is tabulated from quadrature nodes
(:meth:`Shape.projection`): the noiseless shape's projected positions at composite Gauss-Legendre
nodes of its parameter (panels short enough that the projected curve moves less than ``noise``
across one), with their weights; the projected law is then those point masses convolved with
N(0, noise**2) and, for the swiss roll, with the uniform law of the projected height.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

GENERATORS = ("moons", "circles", "blobs", "swiss_roll")
#: The dimension of each generator's samples (blobs: that of its centres).
DIMS = {"moons": 2, "circles": 2, "swiss_roll": 3}
# Gauss-Legendre nodes per panel of the projection's quadrature
_PANEL_NODES = 6
# the swiss roll: t in [1.5 pi, 4.5 pi], height in [0, 21]
_ROLL_T = (1.5 * np.pi, 4.5 * np.pi)
_ROLL_HEIGHT = 21.0


def _moons(t: np.ndarray, outer: np.ndarray) -> np.ndarray:
    # outer: (cos t, sin t); inner: (1 - cos t, 1 - sin t - 0.5), t in [0, pi]
    c, s = np.cos(t), np.sin(t)
    return np.stack([np.where(outer, c, 1.0 - c), np.where(outer, s, 0.5 - s)], axis=-1)


def _circles(t: np.ndarray, outer: np.ndarray, factor: float) -> np.ndarray:
    radius = np.where(outer, 1.0, factor)
    return np.stack([radius * np.cos(t), radius * np.sin(t)], axis=-1)


def _roll(t: np.ndarray, height: np.ndarray) -> np.ndarray:
    return np.stack([t * np.cos(t), height, t * np.sin(t)], axis=-1)


@dataclass(frozen=True)
class Shape:
    """The law of make_moons, make_circles (inner radius ``factor``) or make_swiss_roll, with
    isotropic Gaussian noise of standard deviation ``noise`` > 0."""

    name: str
    noise: float
    factor: float = 0.8

    @property
    def dim(self) -> int:
        return DIMS[self.name]

    def to_raw(self) -> dict[str, Any]:
        raw: dict[str, Any] = {"name": self.name, "noise": self.noise}
        if self.name == "circles":
            raw["factor"] = self.factor
        return raw

    def sample(self, batch: int, m: int, *, rng: np.random.Generator) -> np.ndarray:
        """m samples (B, m, d) per chain."""
        if self.name == "swiss_roll":
            t = _ROLL_T[0] + (_ROLL_T[1] - _ROLL_T[0]) * rng.random((batch, m))
            clean = _roll(t, _ROLL_HEIGHT * rng.random((batch, m)))
        else:
            outer = rng.random((batch, m)) < 0.5
            span = np.pi if self.name == "moons" else 2.0 * np.pi
            t = span * rng.random((batch, m))
            clean = _moons(t, outer) if self.name == "moons" else _circles(t, outer, self.factor)
        clean += self.noise * rng.standard_normal((batch, m, self.dim))
        return clean

    def _curves(self) -> list[tuple[float, tuple[float, float], Any, float]]:
        """(weight, parameter range, point of the curve, largest speed) of each noiseless curve."""
        if self.name == "moons":
            return [
                (0.5, (0.0, np.pi), lambda t: _moons(t, True), 1.0),
                (0.5, (0.0, np.pi), lambda t: _moons(t, False), 1.0),
            ]
        if self.name == "circles":
            return [
                (0.5, (0.0, 2 * np.pi), lambda t: _circles(t, True, self.factor), 1.0),
                (0.5, (0.0, 2 * np.pi), lambda t: _circles(t, False, self.factor), self.factor),
            ]
        # the roll at height 0; the height is uniform on [0, 21] along axis 1
        return [(1.0, _ROLL_T, lambda t: _roll(t, np.zeros_like(t)), float(np.hypot(1.0, _ROLL_T[1])))]

    def _nodes(self, panels_per_unit: float) -> tuple[np.ndarray, np.ndarray]:
        """Points (M, d) on the noiseless curves at composite Gauss-Legendre nodes, and weights (M,)."""
        x, w = np.polynomial.legendre.leggauss(_PANEL_NODES)
        points, weights = [], []
        for weight, (a, b), curve, speed in self._curves():
            panels = max(1, int(np.ceil((b - a) * speed * panels_per_unit)))
            edges = np.linspace(a, b, panels + 1)
            half = 0.5 * np.diff(edges)
            t = ((edges[:-1] + half)[:, None] + half[:, None] * x).ravel()
            points.append(curve(t))
            weights.append(weight * (half[:, None] * w).ravel() / (b - a))
        return np.concatenate(points), np.concatenate(weights)

    def projection(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
        """The projection onto the unit direction u (d,) as (positions (M,), weights (M,), box
        start, box length): the projected law is the weighted point masses convolved with
        N(0, noise**2) and with the uniform law on [start, start + length] (length 0: none)."""
        points, weights = self._nodes(1.0 / self.noise)
        if self.name != "swiss_roll":
            return points @ u, weights, 0.0, 0.0
        height = _ROLL_HEIGHT * u[1]
        return points @ u, weights, min(height, 0.0), abs(height)

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact mean (d,) and covariance (d, d) (Gauss-Legendre on the curves, with 200 panels:
        to rounding for these trigonometric polynomials times polynomials)."""
        points, weights = self._nodes(200.0 / (2 * np.pi))
        mean = weights @ points
        centred = points - mean
        cov = (centred * weights[:, None]).T @ centred + self.noise**2 * np.eye(self.dim)
        if self.name == "swiss_roll":  # the height: uniform on [0, 21], independent of t
            mean[1], cov[1, 1] = _ROLL_HEIGHT / 2, _ROLL_HEIGHT**2 / 12 + self.noise**2
        return mean, cov


def blobs_mixture(centers: np.ndarray, cluster_std: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """make_blobs' law: equal weights, means at the centres (k, d), covariances std**2 I."""
    k, d = centers.shape
    return np.full(k, 1.0 / k), centers, (np.asarray(cluster_std, dtype=float) ** 2)[:, None, None] * np.eye(d)
