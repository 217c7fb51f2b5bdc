"""The report's censored-regression section: one call per collapse event.

``regression_section`` fits the AFT models of :func:`analysis.collapse_regression` to every chain
of the cells where the event happens, with the grid axes that vary as covariates (``log(n)``,
then ``policy``, ``temperature`` and family fields as categories), and returns markdown lines
and figures: the AIC of the three AFT models, the chosen model's coefficients as time ratios,
the rate exponent of each line (cells that differ only in n) next to the median-slope estimate
of :func:`analysis.rates` and the theory slope, and the fitted survival curves over the
Kaplan-Meier curves of every cell (does the model fit?).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator

from analysis import _markdown as md
from analysis import theory
from analysis._covariates import axis_columns
from analysis._rates import rates
from analysis._regression import CollapseRegression, chain_table, collapse_regression
from analysis._survival import survival_curves
from analysis.figures._common import GENERATION_LABEL, colours, finish, panels, plain_log_axis, style

__all__ = ["regression_section", "fitted_survival_figure", "Section", "SectionFigure"]

# Axes that describe a policy in several columns; 'policy' (the label) stands for all of them.
_POLICY_PARTS = ("policy_kind", "keep", "synthetic", "real")


@dataclass(frozen=True)
class SectionFigure:
    """A figure for the report to save as ``figures/<name>.png`` under ``caption``."""

    name: str
    caption: str
    figure: Figure


@dataclass(frozen=True)
class Section:
    """Markdown lines (no image links) and the figures that go after them."""

    lines: list[str]
    figures: list[SectionFigure]


def _line_axes(cells: pd.DataFrame) -> list[str]:
    """Axes other than n that take several values: each combination of them is a line."""
    axes = [a for a in axis_columns(cells) if a != "n" and a not in _POLICY_PARTS]
    return [a for a in axes if cells[a].astype(str).nunique() > 1]


def _covariate(axis: str, cells: pd.DataFrame) -> str:
    numeric = pd.api.types.is_numeric_dtype(cells[axis]) and not pd.api.types.is_bool_dtype(cells[axis])
    return f"C({axis})" if numeric else axis  # levels, not a functional form, in a report


def _without_eventless(chains: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Leave out the cells of every level (of an axis other than n) whose chains never had the event."""
    left_out = []
    for axis in _line_axes(chains.drop_duplicates("cell")):
        seen = chains.groupby(chains[axis].astype(str))["observed"].any()
        for level in seen.index[~seen]:
            left_out.append(f"{axis} = {level}")
            chains = chains[chains[axis].astype(str) != level]
    return chains, left_out


def _label(row, axes) -> str:
    return ", ".join(f"{a}={row[a]}" if a != "policy" else str(row[a]) for a in axes) or "all cells"


def fitted_survival_figure(
    chains: pd.DataFrame,
    joint: CollapseRegression,
    lines: dict[int, CollapseRegression] | None = None,
    *,
    title: str = "",
    path=None,
) -> Figure:
    """Kaplan-Meier curves of every cell (steps) with fitted survival curves over them.

    One panel per line (cells that differ only in n), one colour per n.

    Parameters
    ----------
    chains : pandas.DataFrame
        The chains fitted (:func:`analysis._regression.chain_table`); Kaplan-Meier uses the
        generation each event was seen.
    joint : CollapseRegression
        The fit over every cell, drawn dotted.
    lines : dict, optional
        cell -> the fit of that cell's line alone (``log(n)`` only), drawn dashed.
    title : str
        Figure title.
    path : str or Path, optional
        Save as ``<path>.png`` and ``<path>.svg``.
    """
    lines = lines or {}
    seen = chains.assign(duration=np.where(chains["observed"], chains["upper"], chains["lower"]))
    horizon = float(seen["duration"].max())
    curves = survival_curves(seen.assign(horizon=horizon))
    cells = joint.cells
    axes_names = _line_axes(cells)
    groups = list(cells.groupby(axes_names, sort=True)) if axes_names else [((), cells)]
    # Log time: an AFT model shifts every curve along it, so misfit shows as a change of shape.
    grid = np.geomspace(1, horizon, 300)
    predicted = {id(fit): fit.survival_function(grid) for fit in {id(f): f for f in [joint, *lines.values()]}.values()}
    with style():
        fig, axes = panels(len(groups), panel=(5.6, 3.6) if len(groups) == 1 else (4.6, 3.4))
        for ax, (_, rows) in zip(axes, groups):
            rows = rows.sort_values("n")
            for colour, row in zip(colours(len(rows)), rows.itertuples(index=False)):
                curve = curves[curves["cell"] == row.cell]
                g = np.append(curve["generation"].to_numpy(), horizon)
                ax.step(
                    g,
                    np.append(curve["survival"].to_numpy(), curve["survival"].iloc[-1]),
                    where="post",
                    color=colour,
                    lw=1.6,
                    label=f"n={int(row.n)}",
                )
                if row.cell in lines:
                    ax.plot(grid, predicted[id(lines[row.cell])][row.cell].to_numpy(), color=colour, lw=1.3, ls="--")
                ax.plot(grid, predicted[id(joint)][row.cell].to_numpy(), color=colour, lw=1.1, ls=":")
            if rows["cell"].isin(list(lines)).any():
                ax.plot([], [], color="0.3", ls="--", label="this line's fit")
            ax.plot([], [], color="0.3", ls=":", label="joint fit")
            ax.set_ylim(-0.02, 1.02)
            ax.set_xscale("log")
            ax.set_xlim(0.9, horizon * 1.1)
            plain_log_axis(ax.xaxis)
            if horizon > 1000:  # 1, 2, 5 per decade crowd the axis beyond three decades
                ax.xaxis.set_major_locator(LogLocator(base=10))
            ax.set_title(_label(rows.iloc[0], axes_names), fontsize=10)
            ax.set_xlabel(f"{GENERATION_LABEL} (log scale)")
            ax.set_ylabel("P(not yet collapsed)")
            ax.legend(loc="best", fontsize=8)
        fig.suptitle(title or f"Kaplan-Meier (steps) and fitted {joint.model} survival", fontsize=11)
    return finish(fig, path)


def _exponent_rows(events, chains, axes, best, fits, *, event, threshold, theory_ratio, estimator, confidence):
    """One row per line with two n or more (regression exponent, median slope, theory slope), and
    each line's fit by cell."""
    rows, line_fits = [], {}
    cells = chains.drop_duplicates("cell")
    for key, line in cells.groupby(axes, sort=True) if axes else [((), cells)]:
        key = key if isinstance(key, tuple) else (key,)
        label = _label(line.iloc[0], axes)
        if line["n"].nunique() < 2:
            continue
        try:
            fit = collapse_regression(
                events[events["cell"].isin(line["cell"])],
                event=event,
                threshold=threshold,
                model=best,
                compare=False,
                confidence=confidence,
            )
        except ValueError as error:  # e.g. no chain of this line had the event: say so in its row
            rows.append([label, f"{len(line)}", f"no fit: {error}", "–", "–", "–"])
            continue
        line_fits.update(dict.fromkeys(line["cell"], fit))
        e = fit.exponent
        median = fits
        for a, k in zip(axes, key):
            median = median[median[a].astype(str) == str(k)]
        # Four digits: exponents near 1 differ in the third decimal.
        slope = "–" if median.empty else md.estimate(*median[["slope", "slope_lower", "slope_upper"]].iloc[0], digits=4)
        used = "–" if median.empty else f"{median['cells_used'].iloc[0]} of {median['cells'].iloc[0]}"
        expected = "–"
        replace = str(line["policy"].iloc[0]) == "replace" if "policy" in line else False
        # The closed form is for the untempered family as the spec states it: no family field varied.
        plain = ("temperature" not in line or bool((line["temperature"] == 1.0).all())) and not any(
            a.startswith("family_") for a in axes
        )
        if theory_ratio is not None and replace and plain:
            expected = md.number(theory.collapse_time_slope(line["n"], theory_ratio, estimator, "first_passage"), 4)
        rows.append(
            [
                label,
                f"{len(line)} ({int(line['n'].min())}–{int(line['n'].max())})",
                md.estimate(e["estimate"], e["lower"], e["upper"], digits=4),
                slope,
                used,
                expected,
            ]
        )
    return rows, line_fits


def regression_section(
    events: pd.DataFrame,
    *,
    event: str,
    threshold: float | None = None,
    family: dict | None = None,
    description: str | None = None,
    theory_ratio: float | None = None,
    estimator: str = "unbiased",
    median_fits: pd.DataFrame | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Section:
    """Markdown and figures of the censored regression of one collapse event.

    Parameters
    ----------
    events : pandas.DataFrame
        The folder's events table (one family).
    event, threshold
        The collapse event and its threshold (None where it has none).
    family : dict, optional
        sweep.json's ``family`` entry: the event must be one it declares.
    description : str, optional
        How to name the event in titles (``"σ_t / σ_true < 0.01"``).
    theory_ratio : float, optional
        The spread-ratio threshold when the family's closed form applies (1-D Gaussian,
        ``spread_below``): adds the first-passage theory slope for ``replace`` lines.
    estimator : {"unbiased", "ml"}
        The Gaussian fit, for the theory slope.
    median_fits : pandas.DataFrame, optional
        :func:`analysis.rates` of the same times grouped by the same line axes, if the caller
        has it; computed here otherwise (``n_boot`` resamples, ``seed``).
    confidence : float
        Level of every interval.

    Returns
    -------
    Section
        ``lines`` (markdown, without image links) and ``figures`` (name, caption, Figure).
    """
    what = description or (event if threshold is None else f"{event} {threshold:g}")
    tag = event + ("" if threshold is None else f"_{threshold:g}")
    lines = [f"#### Censored regression of the collapse time: {what}", ""]
    chains = chain_table(events, event, threshold, family=family)
    chains, left_out = _without_eventless(chains)
    cells = chains.drop_duplicates("cell")
    axes = _line_axes(cells)
    covariates = (["log(n)"] if cells["n"].nunique() > 1 else []) + [_covariate(a, cells) for a in axes]
    if chains.empty or not chains["observed"].any() or not covariates:
        why = "no chain had the event by T" if chains.empty or not chains["observed"].any() else "one cell only"
        return Section(lines + [f"No regression: {why}.", ""], [])
    kept = events[events["cell"].isin(cells["cell"])]
    try:
        first = collapse_regression(
            kept, event=event, threshold=threshold, covariates=covariates, model="lognormal_aft", confidence=confidence
        )
        best = str(first.aic["model"].iloc[0])
        result = (
            first
            if best == "lognormal_aft"
            else collapse_regression(
                kept,
                event=event,
                threshold=threshold,
                covariates=covariates,
                model=best,
                confidence=confidence,
                compare=False,
            )
        )
    except ValueError as error:  # a fit that does not converge must not stop the rest of the report
        return Section(lines + [f"No regression: {error}", ""], [])
    level = f"{confidence:.0%} CI"
    aic = first.aic.assign(chosen=first.aic["model"] == best)
    lines += [
        f"All {len(chains)} chains of {len(cells)} cells, censored ones included ({result.censoring} censoring), "
        f"in an accelerated-failure-time model ln T = b·x + σ·e with covariates {', '.join(covariates)}"
        + (f"; left out (no chain had the event by T): {'; '.join(left_out)}" if left_out else "")
        + ".",
        "",
        md.table(
            ["model", "log-likelihood", "parameters", "AIC", "ΔAIC", "chosen"],
            [
                [
                    r.model,
                    f"{r.log_likelihood:.1f}",
                    r.parameters,
                    f"{r.aic:.1f}",
                    f"{r.delta_aic:.1f}",
                    "yes" if r.chosen else "",
                ]
                for r in aic.itertuples()
            ],
        ),
        "",
        f"Coefficients of the chosen model ({best}); a time ratio is how many times later collapse comes for one "
        "unit more of the term (for log(n): per factor e in n), at the same values of the other terms:",
        "",
        md.table(
            ["parameter", "term", f"coefficient [{level}]", f"time ratio [{level}]", "p"],
            [
                [
                    r.parameter,
                    r.term,
                    md.estimate(r.coef, r.lower, r.upper),
                    md.estimate(r.ratio, r.ratio_lower, r.ratio_upper) if r.ratio_kind else "–",
                    f"{r.p:.2g}",
                ]
                for r in result.table.itertuples()
            ],
        ),
        "",
    ]
    for note in result.notes:
        lines += [f"*{note}.*", ""]
    if len(covariates) > 1 and "log(n)" in covariates:
        lines += [
            "The joint model has one exponent for every line: where the lines' own exponents (below) differ, "
            "its time ratios average over n, and its dotted curves in the figure show the misfit.",
            "",
        ]
    line_fits: dict[int, CollapseRegression] = {}
    if "log(n)" in covariates:
        times = chains.assign(
            duration=np.where(chains["observed"], chains["upper"], chains["lower"]),
            horizon=float(chains["upper"].where(chains["observed"], chains["lower"]).max()),
        )
        if median_fits is None or not set(axes) <= set(median_fits.columns):  # the caller's lines are not these
            median_fits = rates(times, by=axes or "policy", n_boot=n_boot, seed=seed, confidence=confidence)
        rows, line_fits = _exponent_rows(
            kept,
            chains,
            axes,
            best,
            median_fits,
            event=event,
            threshold=threshold,
            theory_ratio=theory_ratio,
            estimator=estimator,
            confidence=confidence,
        )
        lines += [
            "Rate exponent of each line (collapse time ~ n^b): the regression on every chain, next to the "
            "least-squares slope of ln(Kaplan-Meier median) on ln n, which uses only the cells whose median "
            "is below T:",
            "",
            md.table(
                [
                    "line",
                    "cells (n)",
                    f"exponent, {best} [{level}]",
                    f"median slope [{level}]",
                    "cells in the median slope",
                    "theory slope",
                ],
                rows,
            ),
            "",
        ]
    figure = fitted_survival_figure(
        chains, result, line_fits, title=f"Not yet {what}: Kaplan-Meier (steps) and {best} fits"
    )
    caption = (
        f"Fitted {best} survival (dashed: each line's own fit, dotted: the joint model) over the "
        f"Kaplan-Meier curves per cell, {what}"
    )
    return Section(lines, [SectionFigure(f"regression_{tag}", caption, figure)])
