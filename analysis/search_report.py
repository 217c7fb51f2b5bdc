"""The search part of ``sweep report``: boundary and Pareto figures, optuna's plots, and a table
of trials, for a folder written by ``sweep search`` (its search.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from analysis import _markdown as md


def read_summary(results_path) -> dict[str, Any] | None:
    """The folder's search.json, or None for a folder of 'sweep run'."""
    path = Path(str(results_path)) / "search.json"
    return json.loads(path.read_text()) if path.is_file() else None


def search_section(rep: Any, results_path, meta: dict[str, Any]) -> None:
    """Add the search's section (text and figures) to a report being written (``rep``)."""
    from analysis.figures.search import boundary_figure, optuna_figures, pareto_figure
    from sweep.search.summary import format_summary

    summary = read_summary(results_path)
    if summary is None or not isinstance(meta.get("search"), dict):
        return
    rep.lines += ["## Search", "", "```", format_summary(summary), "```", ""]
    if summary.get("boundary") and summary["boundary"].get("intercept") is not None:
        rep.figure(
            boundary_figure(summary),
            "search_boundary",
            "Probability of the event by T against the searched parameter: trials, fit, target, boundary",
        )
    if len(summary.get("pareto") or []) >= 1 and len(summary["objectives"]) >= 2:
        rep.figure(pareto_figure(summary), "search_pareto", "Pareto front of the first two objectives")
    try:
        plots = optuna_figures(results_path, summary["name"], len(summary["parameters"]))
    except Exception as error:  # the study's journal is optional for the report
        rep.lines += [f"(optuna's plots left out: {type(error).__name__}: {error})", ""]
        plots = {}
    for name, figure in plots.items():
        rep.figure(figure, f"search_{name}", f"optuna: {name.replace('_', ' ')}")
    rows = []
    for t in summary["trials"]:
        coords = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["coordinates"].items())
        values = ", ".join(f"{k} {md.number(v) if isinstance(v, float) else v}" for k, v in (t["values"] or {}).items())
        rows.append([t["trial"], t["state"], "–" if t["cell"] is None else t["cell"], coords, values or "–"])
    rep.lines += [
        "Trials (a trial that drew an existing cell shares its chains):",
        "",
        md.table(["trial", "state", "cell", "coordinates", "measured"], rows),
        "",
    ]
