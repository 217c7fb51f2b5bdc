"""Analysis of collapse-sweep results: loading, survival, divergence, rates, theory, figures."""
from __future__ import annotations

from analysis import figures, theory
from analysis.forgetting import forgetting_rates, forgetting_times
from analysis.io import ResultsError, load, load_events, read_metadata
from analysis.probability import collapsed_by, divergence_probability, wilson_interval
from analysis.rates import decay_rates, rates
from analysis.report import write_report
from analysis.survival import collapse_times, survival, survival_curves

__all__ = [
    "ResultsError", "load", "load_events", "read_metadata",
    "collapse_times", "survival", "survival_curves",
    "wilson_interval", "divergence_probability", "collapsed_by",
    "rates", "decay_rates", "forgetting_times", "forgetting_rates",
    "write_report", "theory", "figures",
]
