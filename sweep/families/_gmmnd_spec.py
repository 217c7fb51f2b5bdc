"""The true d-dimensional Gaussian mixture of the gmm and kde_nd families, read from the spec.

Fields: ``dim`` (d, default: the length of the first mean, else 2), ``means`` (a list of k points,
each a list of d numbers; default one component at the origin), ``covs`` (a list of one entry per
component, each a positive number, the variance times the identity; a list of d positive numbers,
a diagonal; or a d x d symmetric positive definite matrix; or one positive number for every
component; default the identity) and
``weights`` (k numbers in [0, 1] summing to 1; default equal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sweep import fields
from sweep.errors import SpecError

MIXTURE_FIELDS = ("dim", "weights", "means", "covs")
MAX_DIM = 16


@dataclass(frozen=True)
class TrueMixtureND:
    """A d-dimensional Gaussian mixture: weights, means (k points) and covariance matrices."""

    weights: tuple[float, ...]
    means: tuple[tuple[float, ...], ...]
    covs: tuple[tuple[tuple[float, ...], ...], ...]

    @property
    def dim(self) -> int:
        return len(self.means[0])

    def to_raw(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "weights": list(self.weights),
            "means": [list(m) for m in self.means],
            "covs": [[list(r) for r in c] for c in self.covs],
        }

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(weights (k,), means (k, d), covariances (k, d, d))."""
        return np.array(self.weights), np.array(self.means, dtype=float), np.array(self.covs, dtype=float)

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Total mean (d,) and covariance (d, d)."""
        w, m, c = self.arrays()
        mean = w @ m
        dm = m - mean
        return mean, np.einsum("k,kij->ij", w, c) + np.einsum("k,ki,kj->ij", w, dm, dm)


def read_dim(section: fields.Section, default: int) -> int:
    return section.take("dim", fields.integer(1, MAX_DIM), default)


def read_point(value: Any, path: str, dim: int) -> tuple[float, ...]:
    """A list of ``dim`` finite numbers."""
    if not isinstance(value, (list, tuple)) or len(value) != dim:
        raise SpecError(path, f"a point: a list of {dim} numbers (dim = {dim})", value)
    return tuple(fields.number()(v, f"{path}[{i}]") for i, v in enumerate(value))


def read_cov(value: Any, path: str, dim: int) -> tuple[tuple[float, ...], ...]:
    """A covariance: a positive number (times the identity), d positive numbers (a diagonal) or a
    d x d symmetric positive definite matrix."""
    expected = (
        f"a positive number (variance times the identity), a list of {dim} positive numbers (a "
        f"diagonal) or a symmetric positive definite {dim}x{dim} matrix"
    )
    if not isinstance(value, (list, tuple)):
        scale = fields.number(0.0, None, low_open=True)(value, path)
        return tuple(tuple(scale if i == j else 0.0 for j in range(dim)) for i in range(dim))
    if len(value) == dim and all(not isinstance(v, (list, tuple)) for v in value):
        diag = [fields.number(0.0, None, low_open=True)(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(tuple(diag[i] if i == j else 0.0 for j in range(dim)) for i in range(dim))
    if len(value) != dim or any(not isinstance(r, (list, tuple)) or len(r) != dim for r in value):
        raise SpecError(path, expected, value)
    matrix = np.array([[fields.number()(x, f"{path}[{i}][{j}]") for j, x in enumerate(r)] for i, r in enumerate(value)])
    if not np.allclose(matrix, matrix.T, rtol=0, atol=1e-12 * max(1.0, np.abs(matrix).max())):
        raise SpecError(path, expected + " (it is not symmetric)", value)
    if np.linalg.eigvalsh(matrix).min() <= 0:
        raise SpecError(path, expected + " (it is not positive definite)", value)
    return tuple(tuple(float(x) for x in r) for r in matrix)


def read_true_mixture_nd(section: fields.Section) -> TrueMixtureND:
    """Read dim, means, covs and weights (module docstring); every error names its field."""
    raw_means = section.raw.get("means")
    guess = len(raw_means[0]) if isinstance(raw_means, list) and raw_means and isinstance(raw_means[0], list) else 2
    dim = read_dim(section, guess)

    def points(value: Any, path: str) -> tuple:
        if not isinstance(value, (list, tuple)) or not value:
            raise SpecError(path, f"a non-empty list of points, each a list of {dim} numbers", value)
        return tuple(read_point(v, f"{path}[{i}]", dim) for i, v in enumerate(value))

    means = section.take("means", points, ((0.0,) * dim,))
    k = len(means)

    def covariances(value: Any, path: str) -> tuple:
        # a number for every component; else one entry per component (k = 1: the entry itself
        # may be given without the list around it)
        if not isinstance(value, (list, tuple)):
            return (read_cov(value, path, dim),) * k
        if k == 1 and len(value) != 1:
            return (read_cov(value, path, dim),)
        if len(value) != k:
            raise SpecError(
                path, f"a list of {k} covariances (one per entry of means) or one positive number for all", value
            )
        return tuple(read_cov(v, f"{path}[{i}]", dim) for i, v in enumerate(value))

    covs = section.take("covs", covariances, (read_cov(1.0, "", dim),) * k)
    weights = section.take("weights", fields.listed(fields.number(0.0, 1.0)), (1.0 / k,) * k)
    if len(weights) != k:
        raise SpecError(section.sub("weights"), f"a list of {k} values (one per entry of means)", list(weights))
    if abs(sum(weights) - 1.0) > 1e-9:
        raise SpecError(section.sub("weights"), "weights summing to 1", f"a sum of {sum(weights):.12g}", raw=True)
    return TrueMixtureND(weights=tuple(weights), means=means, covs=covs)
