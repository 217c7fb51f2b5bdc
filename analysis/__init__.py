"""Analysis of collapse-sweep results: loading, survival, divergence, rates, theory, figures, report.

Typical use::

    import analysis
    events = analysis.load_events("results/my-sweep")
    times = analysis.collapse_times(events, "spread_below", threshold=0.5)
    analysis.survival(times)              # KM median collapse time per cell, with CI
    analysis.rates(times, seed=0)         # slope of median time versus n, bootstrap CI
    analysis.write_report("results/my-sweep")
    analysis.coordinate_columns(events)   # fixed coordinates + temperature + family_<field> axes

Everything but the readers is imported on first use (PEP 562), so ``import analysis`` or
``analysis.load`` does not pay for lifelines, scipy.stats and matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

from analysis.io import ResultsError, load, load_events, read_metadata

_LAZY = {
    "collapse_times": "analysis._survival",
    "survival": "analysis._survival",
    "survival_curves": "analysis._survival",
    "wilson_interval": "analysis._probability",
    "divergence_probability": "analysis._probability",
    "collapsed_by": "analysis._probability",
    "rates": "analysis._rates",
    "decay_rates": "analysis._rates",
    "forgetting_times": "analysis._forgetting",
    "forgetting_rates": "analysis._forgetting",
    "write_report": "analysis.report",
    "coordinate_columns": "analysis._cells",
    "theory": None,
    "figures": None,
}

__all__ = ["ResultsError", "load", "load_events", "read_metadata", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'analysis' has no attribute '{name}'")
    module = _LAZY[name]
    value = (
        importlib.import_module(f"analysis.{name}")
        if module is None
        else getattr(importlib.import_module(module), name)
    )
    globals()[name] = value  # later look-ups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
