"""Figures of a search (``sweep search``), from its search.json: the boundary and the Pareto front.

optuna's own plots (optimisation history, parameter importances) are drawn by
:func:`optuna_figures` with optuna's matplotlib backend rather than copied here.
"""

from __future__ import annotations

import numpy as np

from analysis.figures._common import finish, panels, style


def _probability_rows(summary: dict, objective: str) -> tuple[np.ndarray, ...]:
    rows = [t for t in summary["trials"] if t["state"] == "COMPLETE" and t.get("counts")]
    seen, out = set(), []
    for t in rows:  # trials that drew a cell again share its chains: one point per cell
        if t["cell"] in seen:
            continue
        seen.add(t["cell"])
        c = t["counts"][objective]
        out.append((c["count"] / c["chains"], c["lower"], c["upper"], c["chains"]))
    return tuple(np.array(v, dtype=float) for v in zip(*out)) if out else (np.empty(0),) * 4


def boundary_figure(summary: dict, *, path=None):
    """Estimated probability against the parameter: every trial (marker area ~ chains, Wilson
    interval), the fitted curve and its pointwise band, the target and the boundary interval."""
    from analysis._boundary import Boundary

    raw = summary["boundary"]
    parameter = raw["parameter"]
    objective = next(name for name, o in summary["objectives"].items() if "target" in o)
    rows = [t for t in summary["trials"] if t["state"] == "COMPLETE" and t.get("counts")]
    cells = {}
    for t in rows:
        # at the realised share (rounded to whole samples), where the boundary was fitted; folders
        # written before search.json carried it have only the drawn coordinates
        cells.setdefault(t["cell"], t.get("realised", t["coordinates"])[parameter])
    x = np.array(list(cells.values()), dtype=float)
    p, lower, upper, chains = _probability_rows(summary, objective)
    fit = Boundary.from_dict(raw)
    with style():
        fig, (ax,) = panels(1, panel=(6.4, 4.2))
        ax.errorbar(x, p, yerr=[p - lower, upper - p], fmt="none", ecolor="0.6", lw=0.8, zorder=1)
        ax.scatter(
            x,
            p,
            s=12 + 60 * chains / max(chains.max(), 1),
            color="C0",
            alpha=0.75,
            zorder=2,
            label=f"trials ({len(x)} cells; area ~ chains)",
        )
        low, high = summary["parameters"][parameter]["low"], summary["parameters"][parameter]["high"]
        grid = np.geomspace(low, high, 400) if raw["scale"] == "log" else np.linspace(low, high, 400)
        if np.isfinite(fit.a) and np.isfinite(fit.b):
            curve, band_low, band_high = fit.curve(grid)
            ax.plot(
                grid,
                curve,
                color="C1",
                lw=1.6,
                label=f"{raw['link']} fit ({raw['cells_used']} cells near the boundary)",
            )
            ax.fill_between(
                grid, band_low, band_high, color="C1", alpha=0.2, lw=0, label=f"{100 * raw['level']:g}% band"
            )
        ax.axhline(raw["target"], color="C3", ls="--", lw=1, label=f"target P = {raw['target']:g}")
        if raw["estimate"] is not None:
            ax.axvspan(
                raw["low"],
                raw["high"],
                color="C2",
                alpha=0.15,
                lw=0,
                label=f"boundary {raw['estimate']:.4g} [{raw['low']:.4g}, {raw['high']:.4g}]",
            )
            ax.axvline(raw["estimate"], color="C2", lw=1.2)
        if raw["scale"] == "log":
            ax.set_xscale("log")
        ax.set_xlabel(parameter)
        ax.set_ylabel("P(event by T) across chains")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{summary['name']}: where P = {raw['target']:g}")
        ax.legend(loc="best")
    return finish(fig, path)


def pareto_figure(summary: dict, *, path=None):
    """The first two objectives of every trial, the Pareto front joined, each front point with its
    interval (Wilson for a probability, Kaplan-Meier for a median time) where it has one."""
    names = list(summary["objectives"])[:2]
    rows = [t for t in summary["trials"] if t["state"] == "COMPLETE" and t.get("values")]
    values = np.array([[t["values"][n] for n in names] for t in rows], dtype=float)
    front = summary["pareto"]
    with style():
        fig, (ax,) = panels(1, panel=(6.0, 4.2))
        ax.scatter(values[:, 0], values[:, 1], s=14, color="0.6", label="trials")
        fv = np.array([[pt["values"][n] for n in names] for pt in front], dtype=float)
        order = np.argsort(fv[:, 0])
        ax.plot(fv[order, 0], fv[order, 1], "-o", color="C0", ms=5, label=f"Pareto front ({len(front)} points)")
        for point, (vx, vy) in zip(front, fv):
            intervals = point.get("intervals") or {}
            if names[1] in intervals:
                lo, hi = intervals[names[1]]
                ax.plot([vx, vx], [lo, hi], color="C0", lw=0.8)
            if names[0] in intervals:
                lo, hi = intervals[names[0]]
                ax.plot([lo, hi], [vy, vy], color="C0", lw=0.8)
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        ax.set_title(
            f"{summary['name']}: Pareto front ({100 * front[0]['level']:g}% intervals)" if front else summary["name"]
        )
        ax.legend(loc="best")
    return finish(fig, path)


def optuna_figures(location: str, name: str, parameters: int) -> dict:
    """optuna's optimisation history and (with two or more parameters) parameter importances,
    as matplotlib figures by name; empty when the study cannot be read."""
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as plots

    from sweep.search.study import storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=storage(str(location)))
    out = {}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
        single = len(study.directions) == 1
        out["history"] = plots.plot_optimization_history(
            study,
            target=None if single else (lambda t: t.values[0]),
            target_name="value" if single else "first objective",
        ).figure
        if parameters >= 2 and single:
            out["importances"] = plots.plot_param_importances(study).figure
    for figure in out.values():
        plt.close(figure)  # drawn through pyplot by optuna: unregister, keep the Figure
    return out
