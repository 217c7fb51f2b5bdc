"""``write_report``: figures and a markdown summary of a results folder, from its Parquet only.

Nothing is simulated again: every number comes from the ``trajectories`` and ``events`` tables.
Figures are chosen by what the folder holds: spread fan charts and densities for Gaussian
families (mixtures drawn whole), W2 fan charts for gmm1d and kde, forgetting for categorical
ones, and for every collapse event (``spread_below`` per threshold, ``collapse``, and for gmm1d
``weight_below``: a mode lost, ``modes_closer``: modes merged) survival curves, median time
versus n, and a heatmap over (n, real).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis import _markdown as md
from analysis import figures, theory
from analysis._cells import cell_labels, cell_table, is_one_d, is_replace
from analysis._forgetting import forgetting_rates, forgetting_times
from analysis.io import ResultsError, load, load_events, read_metadata
from analysis._probability import collapsed_by, divergence_probability
from analysis._rates import decay_rates, rates
from analysis._survival import collapse_times, survival
from sweep.store import Store

__all__ = ["write_report"]

_COLLAPSE_EVENTS = ("spread_below", "collapse", "weight_below", "modes_closer")
_DISTANCE = {"gaussian": "w2", "gmm1d": "w2", "kde": "w2", "categorical": "tv"}
# families whose fitted density the trajectories describe in full (a KDE's needs its data)
_DENSITY_FAMILIES = ("gaussian", "gmm1d")


def _spec(meta: Any, path) -> dict:
    spec = meta.get("spec") if isinstance(meta, dict) else None
    if not isinstance(spec, dict):
        raise ResultsError(f"results folder '{path}': sweep.json has no 'spec' object; "
                           "expected a folder written by 'sweep run'")
    return spec


def _estimator(spec: dict) -> tuple[str, str]:
    """The Gaussian variance fit named in the spec, and how the report knows it."""
    family = spec.get("family") if isinstance(spec.get("family"), dict) else {}
    for key in ("fit", "estimator", "variance"):
        value = str(family.get(key, "")).lower()
        if value in ("ml", "mle", "biased"):
            return "ml", f"ML (family.{key} = {family[key]!r})"
        if value == "unbiased":
            return "unbiased", f"unbiased (family.{key} = {family[key]!r})"
    return "unbiased", "unbiased (assumed: sweep.json does not name the fit)"


def _read(path) -> tuple[pd.DataFrame, pd.DataFrame]:
    try:
        trajectories, events = load(path), load_events(path)
    except ResultsError:
        raise
    except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ResultsError(f"results folder '{path}': its Parquet parts could not be read ({first})") from exc
    if trajectories.empty or events.empty or "family" not in trajectories or "family" not in events:
        raise ResultsError(f"results folder '{path}': no trajectories or events rows yet; "
                           "run 'sweep run' to completion (or check the path)")
    return trajectories, events


def _few_cells(cells: pd.DataFrame, limit: int, per_policy: str = "ends") -> list[int]:
    """Cells to draw when there are too many: per policy the smallest (and largest) n."""
    # replace first: the policy the theory describes and where collapse shows most.
    cells = cells.assign(_other=~is_replace(cells)).sort_values(["_other", "policy", "n"])
    if per_policy == "ends" and len(cells) <= limit:
        return cells["cell"].tolist()
    pick = []
    for _, rows in cells.groupby("policy", sort=False):
        pick += [rows["cell"].iloc[0]] + ([rows["cell"].iloc[-1]] if per_policy == "ends" and len(rows) > 1 else [])
    return pick[:limit]


class _Report:
    """Accumulates markdown sections and written files for one results folder."""

    def __init__(self, out: Path, n_boot: int, seed: int):
        self.out, self.n_boot, self.seed = out, n_boot, seed
        self.lines: list[str] = []
        self.written: list[Path] = []

    def figure(self, fig, name: str, caption: str) -> None:
        self.written += figures.save_figure(fig, self.out / "figures" / name)
        self.lines += [f"![{caption}](figures/{name}.png)", "", f"*{caption}*", ""]


def _per_cell_columns(traj, events, family, horizon, estimator) -> tuple[pd.DataFrame, list[str]]:
    """Per-cell divergence at T and fitted decay rate, shared by every table of a family."""
    base = cell_table(traj).reset_index(drop=True)
    headers = []
    metric = _DISTANCE.get(family)
    if metric in traj and (events["event"] == "distance_above").any():
        for eps in np.sort(events.loc[events["event"] == "distance_above", "threshold"].dropna().unique()):
            prob = divergence_probability(traj, eps, [horizon], metric)
            name = f"P({metric.upper()} > {eps:g} at T)"
            base = base.merge(prob[["cell"]].assign(**{name: [md.probability(*r) for r in
                              prob[["probability", "lower", "upper"]].itertuples(index=False)]}), on="cell")
            headers.append(name)
    try:
        decay = decay_rates(traj, generation=horizon, estimator=estimator)
    except ValueError:
        return base, headers
    name = "log-variance drift / gen" if decay["quantity"].iloc[0] == "log_var" else "log-heterozygosity rate / gen"
    text = [md.estimate(r.rate, r.rate_lower, r.rate_upper) + ("" if np.isnan(r.theory_rate)
            else f" (theory {md.number(r.theory_rate)})") for r in decay.itertuples()]
    return base.merge(decay[["cell"]].assign(**{name: text}), on="cell"), headers + [name]


def _collapse_section(rep, family, traj, events, event, threshold, horizon, estimator, shared, shared_headers):
    times = collapse_times(events, event, None if np.isnan(threshold) else threshold, horizon=horizon)
    what = figures.event_description(event, threshold, family)
    tag = f"{family}_{event}" + ("" if np.isnan(threshold) else f"_{threshold:g}")
    summary = survival(times)
    fits = rates(times, n_boot=rep.n_boot, seed=rep.seed)
    labels = cell_labels(summary)
    rep.lines += [f"### Collapse: {what}", ""]
    rows = []
    merged = summary.merge(shared[["cell"] + shared_headers], on="cell").sort_values(["policy", "n"])
    for r in merged.to_dict("records"):
        rows.append([r["cell"], labels[r["cell"]], r["chains"], md.share(r["censored_share"]), md.median_time(r),
                     f"{r['rmst']:.1f} ± {r['rmst_se']:.1f}"] + [r[h] for h in shared_headers])
    headers = ["cell", "cell coordinates", "chains", "censored at T", "median collapse time [95% CI]",
               "mean time up to T (RMST ± se)"]
    rep.lines += [md.table(headers + shared_headers, rows), ""]
    one_d = family == "gaussian" and "var" in traj and pd.api.types.is_float_dtype(traj["var"])
    theory_ratio = threshold if event == "spread_below" and one_d else None
    fit_rows = []
    for f in fits.itertuples(index=False):
        used = summary[(summary["policy"] == f.policy) & np.isfinite(summary["median"])]["n"]
        expected = "–"
        if theory_ratio is not None and f.policy == "replace" and used.nunique() >= 2:
            expected = md.number(theory.collapse_time_slope(used, theory_ratio, estimator, "first_passage"))
        fit_rows.append([f.policy, f"{f.cells_used} of {f.cells}", f.excluded_n or "none",
                         md.estimate(f.slope, f.slope_lower, f.slope_upper), expected, f.note or ""])
    rep.lines += [f"Slope of ln(median collapse time) on ln n, bootstrap over chains ({rep.n_boot} resamples):", "",
                  md.table(["policy", "cells fitted", "left out (median > T), n", "slope [95% CI]",
                            "theory slope (replace)", "note"], fit_rows), ""]
    rep.figure(figures.survival_figure(times), f"survival_{tag}", f"Kaplan-Meier survival, {what}")
    if summary["n"].nunique() >= 2:
        rep.figure(figures.collapse_time_figure(summary, fits=fits, ratio=theory_ratio, estimator=estimator),
                   f"collapse_time_{tag}", f"Median collapse time versus n, {what}")
    if "real" in summary and "keep" in summary:
        mixed = summary[summary["keep"].fillna(-1).eq(0)]
        if mixed["real"].nunique() >= 2 and not mixed.duplicated(["n", "real"]).any():
            prob = collapsed_by(events[events["cell"].isin(mixed["cell"])], event,
                                None if np.isnan(threshold) else threshold, [horizon])
            rep.figure(figures.probability_heatmap(prob, title=f"P({what} by T={horizon})",
                                                   colorbar_label="probability across chains"),
                       f"heatmap_{tag}", f"Probability of {what} by the horizon over (n, fresh real fraction)")


def _family_section(rep, family, traj, events, horizon, estimator):
    rep.lines += [f"## Family: {family}", ""]
    shared, shared_headers = _per_cell_columns(traj, events, family, horizon, estimator)
    collapse = events[events["event"].isin(_COLLAPSE_EVENTS)][["event", "threshold"]].drop_duplicates()
    rank = collapse["event"].map({name: i for i, name in enumerate(_COLLAPSE_EVENTS)})
    collapse = collapse.assign(_rank=rank).sort_values(["_rank", "threshold"]).drop(columns="_rank")
    for event, threshold in collapse.itertuples(index=False):
        _collapse_section(rep, family, traj, events, event, float(threshold) if pd.notna(threshold) else np.nan,
                          horizon, estimator, shared, shared_headers)
    if collapse.empty:
        labels = cell_labels(shared)
        rep.lines += [md.table(["cell", "cell coordinates"] + shared_headers,
                               [[r["cell"], labels[r["cell"]]] + [r[h] for h in shared_headers]
                                for r in shared.to_dict("records")]), ""]
    cells = cell_table(traj)
    if "spread_ratio" in traj and traj["spread_ratio"].notna().any():
        rep.figure(figures.fan_chart(traj, cells=_few_cells(cells, 12), estimator=estimator),
                   f"fan_{family}", "Fitted spread over generations: median and 50% / 90% of chains")
        if family in _DENSITY_FAMILIES and is_one_d(traj):
            rep.figure(figures.density_figure(traj, cells=_few_cells(cells, 3, "first")),
                       f"density_{family}", "Fitted densities of five chains versus the truth")
    if family in ("gmm1d", "kde") and "w2" in traj and traj["w2"].notna().any():
        rep.figure(figures.fan_chart(traj, cells=_few_cells(cells, 12), metric="w2"),
                   f"fan_w2_{family}", "W2 distance to the truth over generations: median and 50% / 90% of chains")
    if (events["event"] == "symbol_lost").any():
        table = forgetting_times(events)
        fits = forgetting_rates(events, n_boot=rep.n_boot, seed=rep.seed)
        labels = cell_labels(fits)
        rep.lines += ["### Forgetting: generations until a symbol is lost, versus its initial count", "",
                      md.table(["cell", "cell coordinates", "bins fitted", "left out (median > T)", "slope [95% CI]",
                                "theory slope"],
                               [[f.cell, labels[f.cell], f"{f.bins_used} of {f.bins}", f.excluded_counts or "none",
                                 md.estimate(f.slope, f.slope_lower, f.slope_upper), "1 (2c / ln 2)"]
                                for f in fits.itertuples()]), ""]
        with_surviving = traj if "surviving" in traj and traj["surviving"].notna().any() else None
        rep.figure(figures.forgetting_figure(table, fits=fits, trajectories=with_surviving),
                   f"forgetting_{family}", "Forgetting time versus initial count, and surviving symbols")


def write_report(results_path, out_dir=None, *, n_boot: int = 1000, seed: int = 0) -> list[Path]:
    """Write figures and ``report.md`` for a results folder, from its Parquet tables only.

    Parameters
    ----------
    results_path : str or Path
        A folder written by ``sweep run`` (``sweep.json``, ``trajectories/``, ``events/``).
    out_dir : str or Path, optional
        Where to write; default ``<results_path>/report`` (required for a remote URI).
    n_boot, seed : int
        Bootstrap resamples and seed for the slope intervals (same seed, same report).

    Returns
    -------
    list of Path
        Every file written: ``figures/*.png``, ``figures/*.svg`` and ``report.md`` (last).

    Raises
    ------
    ResultsError
        If the folder is empty, foreign (no ``sweep.json`` with a ``spec``), or holds no rows.
    """
    if out_dir is None:  # before reading anything: a remote folder is no place for figures
        store = Store(str(results_path))
        if not store.is_local:
            raise ResultsError(f"results folder '{results_path}' is remote: expected --out (out_dir=) naming a "
                               "local folder for the report, got none")
        out_dir = Path(store.root) / "report"
    meta = read_metadata(str(results_path))
    spec = _spec(meta, results_path)
    trajectories, events = _read(str(results_path))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    horizon = int(spec.get("generations", trajectories["generation"].max()))
    if trajectories["generation"].max() != horizon:
        raise ResultsError(f"results folder '{results_path}': sweep.json says generations={horizon} but the "
                           f"trajectories stop at {trajectories['generation'].max()}; is the sweep unfinished?")
    estimator, estimator_note = _estimator(spec)
    rep = _Report(out, n_boot, seed)
    chains = trajectories[trajectories["generation"] == 0].groupby("cell").size()
    rep.lines += [
        f"# Sweep report: {spec.get('name', Path(str(results_path)).name)}", "",
        f"- results: `{results_path}`",
        f"- families: {', '.join(sorted(trajectories['family'].unique()))}; horizon T = {horizon} generations",
        f"- cells: {len(chains)}; chains: {int(chains.sum())}; root entropy: {meta.get('root_entropy', '–')}",
        *([f"- Gaussian variance fit used for theory: {estimator_note}"]
          if (trajectories["family"] == "gaussian").any() else []), "",
        "Median collapse times are Kaplan-Meier medians (lifelines) with 95% CIs from the exponential-Greenwood "
        "band. Chains that had not collapsed by T are right-censored there; **\"> T\"** means the median (or that "
        "bound) is not reached by the horizon — fewer than half the chains collapsed — and it is left out of rate "
        "fits. Probabilities carry 95% Wilson intervals. Rates are least-squares slopes on log-log axes with "
        "percentile bootstrap CIs over chains. Theory lines hold for `replace` only.", "",
    ]
    for family in sorted(trajectories["family"].unique()):
        _family_section(rep, family, trajectories[trajectories["family"] == family],
                        events[events["family"] == family], horizon, estimator)
    report = out / "report.md"
    report.write_text("\n".join(rep.lines) + "\n", encoding="utf-8")
    return rep.written + [report]
