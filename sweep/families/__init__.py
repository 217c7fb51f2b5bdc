"""Model families: the built-in ones by name, others by import path or entry point.

A spec's ``family.name`` is looked up in this order:

1. a built-in family (:data:`REGISTRY`);
2. a family an installed package registers under the entry-point group ``collapse_sweep.families``
   (``[project.entry-points."collapse_sweep.families"] exponential = "mypkg.exp:ExponentialFamily"``);
3. an import path ``package.module:ClassName`` of a :class:`~sweep.families.base.Family` subclass.

See :mod:`sweep.families.base` for the contract and ``docs/families.md`` for a guide.
"""

from __future__ import annotations

import importlib
from functools import cache

from sweep.families.base import DIVERGED, Cost, EventKind, Family, Resources
from sweep.families.bernoulli import BernoulliFamily
from sweep.families.categorical import CategoricalFamily
from sweep.families.gaussian import GaussianFamily
from sweep.families.gmm import GMMNDFamily
from sweep.families.gmm1d import GMMFamily
from sweep.families.kde import KDEFamily
from sweep.families.kde_nd import KDENDFamily
from sweep.families.linear_regression import LinearRegressionFamily
from sweep.families.ngram import NGramFamily
from sweep.families.poisson import PoissonFamily
from sweep.families.transformer import TransformerFamily
from sweep.families.vae import VAEFamily
from sweep.families.wgan import WGANFamily

#: The built-in families, by name.
REGISTRY: dict[str, type[Family]] = {
    family.name: family
    for family in (
        GaussianFamily,
        CategoricalFamily,
        GMMFamily,
        KDEFamily,
        BernoulliFamily,
        PoissonFamily,
        LinearRegressionFamily,
        NGramFamily,
        TransformerFamily,
        GMMNDFamily,
        KDENDFamily,
        VAEFamily,
        WGANFamily,
    )
}
ENTRY_POINT_GROUP = "collapse_sweep.families"
#: What a family class must define (the abstract methods of :class:`Family`).
REQUIRED = ("parse_spec", "truth", "sample", "fit", "events", "metrics", "cost")


class FamilyLoadError(ValueError):
    """A family name that names no usable family; ``expected`` and ``got`` make the spec error."""

    def __init__(self, expected: str, got: str):
        self.expected, self.got = expected, got
        super().__init__(f"expected {expected}, got {got}")


def _entry_points() -> dict[str, object]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _check_contract(cls: object, where: str) -> type[Family]:
    if not isinstance(cls, type) or not issubclass(cls, Family):
        raise FamilyLoadError(
            "a subclass of sweep.families.Family (see docs/families.md)",
            f"{where}, which is {type(cls).__name__ if not isinstance(cls, type) else 'a class that is not'}",
        )
    missing = [m for m in REQUIRED if getattr(cls, m, None) is None or m in getattr(cls, "__abstractmethods__", ())]
    if missing:
        raise FamilyLoadError(
            "a family class that implements the contract (docs/families.md)",
            f"{where}, which lacks {', '.join(missing)}",
        )
    return cls


@cache
def resolve_family(name: object) -> type[Family]:
    """The family class a spec's ``family.name`` names (see the module docstring).

    Raises
    ------
    FamilyLoadError
        Unknown name, a module that does not import, or a class that is not a family.
    """
    known = f"one of {', '.join(REGISTRY)}, an installed family or 'package.module:ClassName'"
    if not isinstance(name, str) or not name:
        raise FamilyLoadError(known, repr(name))
    if name in REGISTRY:
        return REGISTRY[name]
    if ":" not in name:
        points = _entry_points()
        if name in points:
            try:
                loaded = points[name].load()
            except Exception as error:  # a broken plug-in: say which and why, in one line
                raise FamilyLoadError(
                    known,
                    f"'{name}', whose entry point failed to load "
                    f"({type(error).__name__}: {' '.join(str(error).split())})",
                ) from None
            return _check_contract(loaded, f"'{name}'")
        raise FamilyLoadError(known, repr(name))
    module_name, _, attribute = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise FamilyLoadError(
            "an importable 'package.module:ClassName' (is the module on PYTHONPATH?)",
            f"'{name}' ({type(error).__name__}: {' '.join(str(error).split())})",
        ) from None
    cls = module
    for part in attribute.split("."):
        cls = getattr(cls, part, None)
    if cls is None:
        raise FamilyLoadError(
            "an importable 'package.module:ClassName'", f"'{name}' (module '{module_name}' has no '{attribute}')"
        )
    return _check_contract(cls, f"'{name}'")


__all__ = [
    "DIVERGED",
    "ENTRY_POINT_GROUP",
    "REGISTRY",
    "Cost",
    "EventKind",
    "Family",
    "FamilyLoadError",
    "Resources",
    "resolve_family",
    "CategoricalFamily",
    "GaussianFamily",
    "GMMFamily",
    "GMMNDFamily",
    "KDEFamily",
    "NGramFamily",
    "TransformerFamily",
    "VAEFamily",
    "WGANFamily",
    "KDENDFamily",
]
