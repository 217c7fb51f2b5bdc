"""Figures of a sweep (matplotlib, Agg): each function returns a Figure and saves PNG + SVG on request.

Pass ``path=...`` (no suffix needed) to write ``<path>.png`` and ``<path>.svg``, or call
:func:`save_figure` later.
"""

from __future__ import annotations

from analysis.figures._common import event_description, format_time, save_figure
from analysis.figures.categorical import forgetting_figure
from analysis.figures.collapse import collapse_time_figure, probability_heatmap, survival_figure
from analysis.figures.gaussian import density_figure, fan_chart
from analysis.figures.overlays import density_snapshots_figure, theory_curves_figure
from analysis.figures.sequences import distribution_figure, share_figure

__all__ = [
    "fan_chart",
    "density_figure",
    "survival_figure",
    "collapse_time_figure",
    "probability_heatmap",
    "forgetting_figure",
    "distribution_figure",
    "share_figure",
    "theory_curves_figure",
    "density_snapshots_figure",
    "save_figure",
    "format_time",
    "event_description",
]
