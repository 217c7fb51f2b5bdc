"""``sweep search``: find a boundary (the critical share of real data, n, temperature) or a Pareto
front over data recipes with optuna, each trial a cell of the sweep run as Ray tasks.

Typical use::

    from sweep.search import load_search_spec, run_search
    report = run_search(load_search_spec("experiments/critical_real_fraction.yaml"), "results")
    print(report.summary["boundary"])
"""

from __future__ import annotations

from sweep.search.driver import SearchReport, run_search
from sweep.search.setup import SearchSetup, load_search_spec, parse_search_spec
from sweep.search.summary import format_summary

__all__ = ["SearchReport", "SearchSetup", "format_summary", "load_search_spec", "parse_search_spec", "run_search"]
