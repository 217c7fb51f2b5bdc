"""The true 1-D Gaussian mixture of the gmm1d and kde families, read from the spec."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sweep import fields
from sweep.errors import SpecError

MIXTURE_FIELDS = ("weights", "means", "sigmas")


@dataclass(frozen=True)
class TrueMixture:
    """A 1-D Gaussian mixture: component weights (summing to 1), means and standard deviations."""

    weights: tuple[float, ...]
    means: tuple[float, ...]
    sigmas: tuple[float, ...]

    def to_raw(self) -> dict:
        return {"weights": list(self.weights), "means": list(self.means), "sigmas": list(self.sigmas)}

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(weights, means, variances) as (k,) arrays, the form the kernels take."""
        return np.array(self.weights), np.array(self.means), np.array(self.sigmas) ** 2

    def mean_var(self) -> tuple[float, float]:
        w, m, v = self.arrays()
        mean = float(w @ m)
        return mean, float(w @ (v + (m - mean) ** 2))


def read_true_mixture(section: fields.Section) -> TrueMixture:
    """Read weights, means and sigmas (defaults: one standard normal component)."""
    means = section.take("means", fields.listed(fields.number()), (0.0,))
    k = len(means)
    sigmas = section.take("sigmas", fields.listed(fields.number(0.0, None, low_open=True)), (1.0,) * k)
    weights = section.take("weights", fields.listed(fields.number(0.0, 1.0)), (1.0 / k,) * k)
    for name, values in (("sigmas", sigmas), ("weights", weights)):
        if len(values) != k:
            raise SpecError(section.sub(name), f"a list of {k} values (one per entry of means)", list(values))
    if abs(sum(weights) - 1.0) > 1e-9:
        raise SpecError(section.sub("weights"), "weights summing to 1", f"a sum of {sum(weights):.12g}", raw=True)
    return TrueMixture(weights=tuple(weights), means=tuple(means), sigmas=tuple(sigmas))
