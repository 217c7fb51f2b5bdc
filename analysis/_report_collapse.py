"""The report's collapse sections: Kaplan-Meier table, rate fits per line, figures and heatmaps
for one declared collapse event and threshold, with the interval note of events checked every k
generations."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import _markdown as md
from analysis import figures, theory
from analysis._cells import axis_columns, axis_name, cell_labels, varying
from analysis._declarations import EventInfo
from analysis._probability import collapsed_by
from analysis._rates import rates
from analysis._report_context import DROPPED, FamilyRows, Report, dropped_share, line_columns, safe, sorted_cells
from analysis._survival import collapse_times, survival


def checked_every(events: pd.DataFrame) -> int:
    if "checked_every" not in events or events["checked_every"].isna().all():
        return 1
    return int(events["checked_every"].max())


def _interval_note(k: int, censored_at: int, horizon: int) -> list[str]:
    if k <= 1:
        return []
    return [
        f"Checked every {k} generations (interval-censored): a collapse time t means the event happened in "
        f"(t − {k}, t], so the medians above count from the check that saw it and can be up to {k - 1} "
        "generations late; the column *median, each event at its interval's start* puts every event at "
        "t − " + f"{k - 1}, so the true median lies between the two (for an event that keeps holding once it "
        "holds; a spread that dips below a threshold and recovers between checks is missed until it holds at "
        f"a check). Chains not seen to collapse are censored at generation {censored_at}, the last check by "
        f"T = {horizon}.",
        "",
    ]


def _heatmaps(rep: Report, fam: FamilyRows, summary, event, threshold, horizon, what, tag) -> None:
    """Probability of the event by T over (n, real), one heatmap per combination of the other axes."""
    if "real" not in summary or "keep" not in summary:
        return
    mixed = summary[summary["keep"].fillna(-1).eq(0)]
    others = varying(mixed, axis_columns(mixed))
    groups = mixed.groupby(others, sort=True, dropna=False) if others else [((), mixed)]
    for key, rows in groups:
        if rows["real"].nunique() < 2 or rows.duplicated(["n", "real"]).any():
            continue
        key = key if isinstance(key, tuple) else (key,)
        where = ", ".join(
            f"{axis_name(c)}={v:g}" if isinstance(v, float) else f"{axis_name(c)}={v}" for c, v in zip(others, key)
        )
        prob = collapsed_by(
            fam.events[fam.events["cell"].isin(rows["cell"])],
            event,
            None if np.isnan(threshold) else threshold,
            [horizon],
            horizon=horizon,  # not guessed from the events: where every chain collapsed, that is the last event
        )
        suffix = f" ({where})" if where else ""
        rep.figure(
            figures.probability_heatmap(
                prob, title=f"P({what} by T={horizon}){suffix}", colorbar_label="probability across chains"
            ),
            f"heatmap_{tag}" + (f"_{safe(where)}" if where else ""),
            f"Probability of {what} by the horizon over (n, fresh real fraction){suffix}",
        )


def _fit_rows(fam: FamilyRows, fits, summary, event, threshold) -> tuple[list[str], list[list], float | None]:
    """The rate-fit table (one row per line: policy and every other axis that varies) and the
    theory ratio for the collapse-time figure (None where no closed form applies)."""
    keys = [c for c in fits.columns if c in line_columns(summary)]
    shown = [k for k in keys if k == "policy" or k in varying(fits, [k])]
    closed_form = event == "spread_below" and "spread_collapse_time" in fam.draws and fam.one_d and 0 < threshold < 1
    rows = []
    for f in fits.to_dict("records"):
        line = summary[(summary[keys] == pd.Series({k: f[k] for k in keys})).all(axis=1)]
        used = line[np.isfinite(line["median"])]
        expected = "–"
        estimator = fam.estimator_for(line["cell"])
        if closed_form and fam.holds[line["cell"]].all() and estimator and used["n"].nunique() >= 2:
            expected = md.number(theory.collapse_time_slope(used["n"], threshold, estimator, "first_passage"))
        rows.append(
            [f[k] if k in ("policy", "family") else md.number(f[k]) if isinstance(f[k], float) else f[k] for k in shown]
            + [
                f"{f['cells_used']} of {f['cells']}",
                f["excluded_n"] or "none",
                md.estimate(f["slope"], f["slope_lower"], f["slope_upper"]),
                expected,
                dropped_share(f.get("boot_dropped_share", np.nan)),
                f["note"] or "",
            ]
        )
    headers = [axis_name(k) for k in shown] + [
        "cells fitted",
        "left out (median > T), n",
        "slope [95% CI]",
        "theory slope (replace, temperature 1)",
        DROPPED,
        "note",
    ]
    ratio = None
    if closed_form and fam.holds[summary["cell"]].any():
        ratio = threshold if fam.estimator_for(summary["cell"]) else None
    return headers, rows, ratio


def collapse_section(rep: Report, fam: FamilyRows, kind: EventInfo, threshold: float, shared, shared_headers):
    event, horizon = kind.event, fam.horizon
    rows = fam.events[fam.events["event"] == event]
    k = checked_every(rows)
    censored_at = horizon - horizon % k  # events are checked at multiples of k only
    times = collapse_times(fam.events, event, None if np.isnan(threshold) else threshold, horizon=censored_at)
    what = figures.event_description(event, threshold, distance=fam.info.distance_metric, description=kind.description)
    tag = f"{fam.tag}_{event}" + ("" if np.isnan(threshold) else f"_{threshold:g}")
    summary = survival(times)
    fits = rates(times, n_boot=rep.n_boot, seed=rep.seed)
    labels = cell_labels(summary)
    rep.lines += [f"### Collapse: {what}", ""]
    if kind.description:
        rep.lines += [f"`{event}`: {kind.description}.", ""]
    merged = sorted_cells(summary.merge(shared[["cell"] + shared_headers], on="cell"))
    extra = []
    if k > 1:
        early = survival(times.assign(duration=times["lower"])).set_index("cell")
        extra = ["median, each event at its interval's start"]
        merged["_early"] = [md.median_time(early.loc[c]) for c in merged["cell"]]
    table = []
    for r in merged.to_dict("records"):
        table.append(
            [r["cell"], labels[r["cell"]], r["chains"], md.share(r["censored_share"]), md.median_time(r)]
            + ([r["_early"]] if k > 1 else [])
            + [f"{r['rmst']:.1f} ± {r['rmst_se']:.1f}"]
            + [r[h] for h in shared_headers]
        )
    headers = (
        ["cell", "cell coordinates", "chains", "censored at T", "median collapse time [95% CI]"]
        + extra
        + ["mean time up to T (RMST ± se)"]
    )
    rep.lines += [md.table(headers + shared_headers, table), ""]
    rep.lines += _interval_note(k, censored_at, horizon)
    fit_headers, fit_rows, ratio = _fit_rows(fam, fits, summary, event, threshold)
    rep.lines += [
        "Slope of ln(median collapse time) on ln n within each combination of the other axes, "
        f"bootstrap over chains ({rep.n_boot} resamples; those in which a median passes T are dropped "
        "and the CI is over the rest):",
        "",
        md.table(fit_headers, fit_rows),
        "",
    ]
    rep.figure(figures.survival_figure(times, what=what), f"survival_{tag}", f"Kaplan-Meier survival, {what}")
    if summary["n"].nunique() >= 2:
        estimator = fam.estimator_for(summary["cell"]) or "unbiased"
        rep.figure(
            figures.collapse_time_figure(summary, fits=fits, ratio=ratio, estimator=estimator),
            f"collapse_time_{tag}",
            f"Median collapse time versus n, {what}",
        )
    _heatmaps(rep, fam, summary, event, threshold, censored_at, what, tag)
    if rep.regression and summary["n"].nunique() >= 2:
        from analysis._regression_report import regression_section

        section = regression_section(
            fam.events,
            event=event,
            threshold=None if np.isnan(threshold) else threshold,
            description=what,
            theory_ratio=ratio,
            estimator=fam.estimator_for(summary["cell"]) or "unbiased",
            median_fits=fits,
            n_boot=rep.n_boot,
            seed=rep.seed,
        )
        rep.lines += section.lines
        for item in section.figures:
            rep.figure(item.figure, f"{item.name}_{fam.tag}", item.caption)


def collapse_list(fam: FamilyRows) -> list[tuple[EventInfo, float]]:
    """Declared collapse events present in the events table, with their thresholds, in the order
    declared (thresholds largest first where declared descending: the order they are reached)."""
    out = []
    for kind in fam.info.collapse_events():
        rows = fam.events[fam.events["event"] == kind.event]
        if rows.empty:
            continue
        values = rows["threshold"].astype(float).unique()
        finite = np.sort(values[~np.isnan(values)])
        out += [(kind, float(t)) for t in (finite[::-1] if kind.descending else finite)]
        if np.isnan(values).any():
            out.append((kind, np.nan))
    return out
