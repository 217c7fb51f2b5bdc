"""Model families, registered by name (see :mod:`sweep.families.base` for the batch contract)."""
from __future__ import annotations

from sweep.families.base import Cost, Family
from sweep.families.categorical import CategoricalFamily
from sweep.families.gaussian import GaussianFamily
from sweep.families.gmm1d import GMMFamily
from sweep.families.kde import KDEFamily

#: Every family the spec may name, filled at import time.
REGISTRY: dict[str, type[Family]] = {
    family.name: family for family in (GaussianFamily, CategoricalFamily, GMMFamily, KDEFamily)
}

__all__ = ["REGISTRY", "Cost", "Family", "CategoricalFamily", "GaussianFamily", "GMMFamily", "KDEFamily"]
