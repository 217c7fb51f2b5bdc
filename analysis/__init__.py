"""Analysis of collapse-sweep results: loading, survival, divergence, rates, theory, figures."""
from __future__ import annotations

from analysis.io import ResultsError, load, load_events, read_metadata

__all__ = ["ResultsError", "load", "load_events", "read_metadata"]
