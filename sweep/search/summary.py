"""A search's result, from its study and folder alone: ``search.json`` and the printed summary.

The boundary estimate does not trust optuna's ``best_trial``: with a single parameter and a
probability target it is a binomial regression of every chain's outcome over the trials near the
boundary (:func:`analysis._boundary.fit_boundary`), with a profile-likelihood interval. With
several objectives the result is the Pareto front of the trials, each point with its Wilson
interval (Kaplan-Meier CI for a median time).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from sweep.search.setup import SearchSetup

SUMMARY = "search.json"


def _clean(value: Any) -> Any:
    """JSON-safe: NaN -> None, inf -> "inf", numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        if math.isnan(value):
            return None
        return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, np.integer):
        return int(value)
    return value


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """One entry per trial of the study: state, cell, coordinates and what it measured."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        measured = trial.user_attrs.get("measured") or {}
        rows.append(
            {
                "trial": trial.number,
                "state": trial.state.name,
                "cell": trial.user_attrs.get("cell"),
                "coordinates": trial.user_attrs.get("coordinates", dict(trial.params)),
                "values": measured.get("values"),
                "counts": measured.get("counts"),
                "chains": measured.get("chains"),
                "constraints": trial.user_attrs.get("constraints"),
                **({"error": trial.user_attrs["error"]} if "error" in trial.user_attrs else {}),
            }
        )
    return rows


def _by_cell(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Complete trials, one per cell (trials that drew a cell again share its chains)."""
    seen: dict[Any, dict[str, Any]] = {}
    for row in rows:
        if row["state"] == "COMPLETE" and row["values"] is not None and row["cell"] not in seen:
            seen[row["cell"]] = row
    return list(seen.values())


def outcomes(setup: SearchSetup, cells: list[dict[str, Any]]) -> tuple[list[float], list[int], list[int]]:
    """Per cell: the searched parameter's realised value, the chains with the target's event, and
    the chains (one parameter and a probability target)."""
    parameter, target = setup.search.parameters[0], setup.search.target
    # the regressor is the fraction the cells realise (rounded to whole samples), not the drawn
    # one: at n = 1000, fresh_real 0.0496 and 0.0504 are both 50 real samples, and the drawn
    # values would scatter x by up to 1 / 2n about the value the chains saw
    x = [setup.realised(row["coordinates"])[parameter.name] for row in cells]
    k = [row["counts"][target.name]["count"] for row in cells]
    m = [row["counts"][target.name]["chains"] for row in cells]
    return x, k, m


def boundary(setup: SearchSetup, cells: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The boundary estimate (one parameter and a probability target), or None."""
    from analysis._boundary import fit_boundary

    search = setup.search
    target = search.target
    if target is None or len(search.parameters) != 1 or not cells:
        return None
    parameter = search.parameters[0]
    x, k, m = outcomes(setup, cells)
    fit = fit_boundary(
        x,
        k,
        m,
        target.target,
        level=search.level,
        link=search.link,
        log=parameter.log,
        bounds=(parameter.low, parameter.high),
    )
    return fit.to_dict(parameter.name)


def pareto(setup: SearchSetup, cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Non-dominated feasible cells over the objectives (as told to optuna), each with intervals."""
    from analysis._boundary import pareto_front
    from sweep.search.measures import told_values

    search = setup.search
    if len(search.objectives) < 2:
        return []
    feasible = [row for row in cells if all(v <= 0 for v in (row.get("constraints") or []))]
    if not feasible:
        return []
    values = np.array([told_values(search, row["values"]) for row in feasible], dtype=float)
    front = pareto_front(values, [o.direction for o in search.objectives])
    out = []
    for index in sorted(front, key=lambda i: tuple(values[i])):
        row = feasible[index]
        intervals = {
            name: [c.get("lower"), c.get("upper")] for name, c in (row["counts"] or {}).items() if "lower" in c
        }
        out.append(
            {
                "trial": row["trial"],
                "cell": row["cell"],
                "coordinates": row["coordinates"],
                "values": row["values"],
                "intervals": intervals,
                "level": search.level,
            }
        )
    return out


def summarise(setup: SearchSetup, folder: Any, study: Any, budget: int, *, figures: bool = False) -> dict[str, Any]:
    """What ``search.json`` holds (see the module docstring)."""
    rows = trial_rows(study)
    for row in rows:  # the share each cell's chains saw, as the boundary is fitted on (and drawn at)
        if row["state"] == "COMPLETE" and row["coordinates"]:
            row["realised"] = setup.realised(row["coordinates"])
    cells = _by_cell(rows)
    summary = {
        "name": setup.name,
        "location": folder.location,
        "budget": budget,
        "trials_done": sum(r["state"] == "COMPLETE" for r in rows),
        "trials_failed": sum(r["state"] == "FAIL" for r in rows),
        "cells": len(cells),
        "chains": int(sum(r["chains"] or 0 for r in cells)),
        "parameters": {p.name: p.to_raw() for p in setup.search.parameters},
        "objectives": {o.name: o.to_raw() for o in setup.search.objectives},
        "constraints": [c.to_raw() for c in setup.search.constraints],
        "sampler": setup.search.sampler,
        "replicates": setup.search.replicates,
        "boundary": boundary(setup, cells),
        "pareto": pareto(setup, cells),
        "trials": rows,
    }
    return _clean(summary)


def write_summary(folder: Any, summary: dict[str, Any]) -> None:
    """Write ``search.json`` atomically next to sweep.json."""
    import uuid

    store = folder.store
    temporary = f"{store.root}/.{SUMMARY}.tmp-{uuid.uuid4().hex}"
    with store.fs.open_output_stream(temporary) as stream:
        stream.write(json.dumps(summary, indent=2, sort_keys=True).encode())
    store.fs.move(temporary, f"{store.root}/{SUMMARY}")


def _number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    return f"{value:.4g}"


def format_summary(summary: dict[str, Any]) -> str:
    """The printed result: trials and chains, the boundary with its interval, the Pareto front."""
    lines = [
        f"{summary['name']}: {summary['trials_done']} of {summary['budget']} trials done"
        + (f" ({summary['trials_failed']} failed)" if summary.get("trials_failed") else "")
        + f", {summary['cells']} cells, {summary['chains']} chains"
    ]
    b = summary.get("boundary")
    if b:
        if b.get("estimate") is None:
            lines.append(f"boundary of {b['parameter']} at P = {b['target']:g}: not estimated ({b['note']})")
        else:
            low = ("<= " if b["low_open"] else "") + _number(b["low"])
            high = (">= " if b["high_open"] else "") + _number(b["high"])
            lines.append(
                f"boundary: {b['parameter']} = {_number(b['estimate'])} where P = {b['target']:g} "
                f"[{low}, {high}] ({100 * b['level']:g}% profile likelihood, {b['link']} fit on "
                f"{b['cells_used']} of {b['cells']} cells, {b['chains_used']} chains)"
                + (f"; note: {b['note']}" if b.get("note") else "")
            )
    front = summary.get("pareto") or []
    if front:
        lines.append(f"Pareto front ({len(front)} points; intervals at {100 * front[0]['level']:g}%):")
        for point in front:
            coords = ", ".join(f"{k}={_number(v)}" for k, v in point["coordinates"].items())
            values = ", ".join(
                f"{k} {_number(v)}"
                + (
                    f" [{_number(point['intervals'][k][0])}, {_number(point['intervals'][k][1])}]"
                    if k in point["intervals"]
                    else ""
                )
                for k, v in point["values"].items()
            )
            lines.append(f"  trial {point['trial']}: {coords}: {values}")
    return "\n".join(lines)
