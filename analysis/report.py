"""``write_report``: figures and a markdown summary of a results folder, from its Parquet only.

Nothing is simulated again: every number comes from the ``trajectories`` and ``events`` tables.
What is drawn follows the family's declarations in ``sweep.json`` (:mod:`analysis._declarations`),
never its name: a survival section (Kaplan-Meier curves, median time versus n, a heatmap over
(n, real)) for every declared collapse event and threshold, divergence probabilities and a fan
chart of the declared distance metric, a fan chart of the declared spread metric, forgetting for
per-symbol loss, and the closed forms of the theory overlays the family names
(:data:`analysis.theory.OVERLAYS`). Every grid axis is treated like n and policy: tables list
cells with every axis that varies, and rates are fitted against n within each combination of
the other axes (policy, temperature, family fields).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis import _markdown as md
from analysis import figures, theory
from analysis._cells import (axis_columns, axis_name, cell_labels, cell_table, group_columns, group_labels,
                             is_one_d, theory_holds, varying)
from analysis._declarations import Declarations, EventInfo, for_folder
from analysis._forgetting import forgetting_rates, forgetting_times
from analysis.figures._common import metric_label
from analysis.io import ResultsError, load, load_events, read_metadata
from analysis._probability import collapsed_by, divergence_probability
from analysis._rates import decay_rates, rates
from analysis._survival import collapse_times, survival

__all__ = ["write_report"]

_MIXTURE_COLUMNS = ("weights", "means", "sigmas")
_ESTIMATOR_KEYS = ("fit", "estimator", "variance")


def _spec(meta: Any, path) -> dict:
    spec = meta.get("spec") if isinstance(meta, dict) else None
    if not isinstance(spec, dict):
        raise ResultsError(f"results folder '{path}': sweep.json has no 'spec' object; "
                           "expected a folder written by 'sweep run'")
    return spec


def _estimator_value(value: Any) -> str | None:
    value = str(value).lower()
    return "ml" if value in ("ml", "mle", "biased") else "unbiased" if value == "unbiased" else None


def _estimator(spec: dict) -> tuple[str, str]:
    """The Gaussian variance fit named in the spec, and how the report knows it."""
    family = spec.get("family") if isinstance(spec.get("family"), dict) else {}
    for key in _ESTIMATOR_KEYS:
        value = _estimator_value(family.get(key, ""))
        if value is not None:
            return value, f"{'ML' if value == 'ml' else 'unbiased'} (family.{key} = {family[key]!r})"
    return "unbiased", "unbiased (assumed: sweep.json does not name the fit)"


def _estimators(cells: pd.DataFrame, default: str) -> pd.Series:
    """The variance fit of each cell: the spec's, or the cell's own where the grid sweeps it."""
    for key in _ESTIMATOR_KEYS:
        column = f"family_{key}"
        if column in cells:
            return cells[column].map(lambda v: _estimator_value(v) or default)
    return pd.Series(default, index=cells.index)


def _single(values: pd.Series) -> str | None:
    """The one value of ``values``, or None when they differ (a theory line needs one)."""
    distinct = values.unique()
    return str(distinct[0]) if len(distinct) == 1 else None


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


def _safe(text: str) -> str:
    """A file-name piece: a family named ``mypkg.mod:Cls`` becomes ``mypkg.mod_Cls``."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_")


def _lines(cells: pd.DataFrame) -> list[str]:
    """The columns whose combinations make the lines of a rate fit (policy and every axis but n)."""
    return [c for c in group_columns(cells, "policy") if c != "family"]


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values(_lines(table) + ["n"], kind="stable")


def _few_cells(cells: pd.DataFrame, limit: int, per_line: str = "ends") -> list[int]:
    """Cells to draw when there are too many: per line (policy and other axes) the smallest (and
    largest) n."""
    # where the theory holds first: the cells it describes, and where collapse shows most.
    lines = _lines(cells)
    cells = cells.assign(_other=~theory_holds(cells)).sort_values(["_other"] + lines + ["n"], kind="stable")
    if per_line == "ends" and len(cells) <= limit:
        return cells["cell"].tolist()
    pick = []
    for _, rows in cells.groupby(lines, sort=False, dropna=False):
        pick += [rows["cell"].iloc[0]] + ([rows["cell"].iloc[-1]] if per_line == "ends" and len(rows) > 1 else [])
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


class _Family:
    """One family's rows and what its declarations let the report draw."""

    def __init__(self, info: Declarations, traj: pd.DataFrame, events: pd.DataFrame, horizon: int, estimator: str):
        self.info, self.traj, self.events, self.horizon = info, traj, events, horizon
        self.tag = _safe(info.name)
        self.draws = theory.overlay_draws(info.theory_overlays)
        self.cells = cell_table(traj)
        self.holds = theory_holds(self.cells)
        self.estimators = _estimators(self.cells, estimator)
        self.one_d = is_one_d(traj)

    def estimator_for(self, cells) -> str | None:
        """The variance fit shared by ``cells`` where the theory holds, or None."""
        chosen = self.estimators[[c for c in cells if self.holds[c]]]
        return _single(chosen) if len(chosen) else None


def _theory_rate(fam: _Family, row) -> float:
    """The declared closed form of a cell's decay rate (NaN where none applies)."""
    if not fam.holds[row.cell]:
        return np.nan
    if row.quantity == "log_var" and "log_variance_rate" in fam.draws and fam.one_d:
        return float(theory.log_var_drift(float(row.n), fam.estimators[row.cell]))
    if row.quantity == "log_heterozygosity" and "heterozygosity_rate" in fam.draws:
        return float(np.log(1 - 1 / float(row.n)))
    return np.nan


def _per_cell_columns(fam: _Family) -> tuple[pd.DataFrame, list[str]]:
    """Per-cell divergence at T and fitted decay rate, shared by every table of a family."""
    traj, events = fam.traj, fam.events
    base = fam.cells.reset_index(drop=True)
    headers = []
    metric = fam.info.distance_metric
    if metric and metric in traj and (events["event"] == "distance_above").any():
        for eps in np.sort(events.loc[events["event"] == "distance_above", "threshold"].dropna().unique()):
            prob = divergence_probability(traj, eps, [fam.horizon], metric)
            name = f"P({metric_label(metric)} > {eps:g} at T)"
            base = base.merge(prob[["cell"]].assign(**{name: [md.probability(*r) for r in
                              prob[["probability", "lower", "upper"]].itertuples(index=False)]}), on="cell")
            headers.append(name)
    try:
        decay = decay_rates(traj, generation=fam.horizon)
    except ValueError:
        return base, headers
    # decay_rates picks its quantity by column; show it only for a metric the family declares.
    declared = {"log_var": fam.info.spread_metric == "spread_ratio",
                "log_heterozygosity": "heterozygosity" in fam.info.metrics}
    if fam.info.metrics and not declared.get(decay["quantity"].iloc[0], False):
        return base, headers
    name = "log-variance drift / gen" if decay["quantity"].iloc[0] == "log_var" else "log-heterozygosity rate / gen"
    text = []
    for r in decay.itertuples():
        expected = _theory_rate(fam, r)
        text.append(md.estimate(r.rate, r.rate_lower, r.rate_upper)
                    + ("" if np.isnan(expected) else f" (theory {md.number(expected)})"))
    return base.merge(decay[["cell"]].assign(**{name: text}), on="cell"), headers + [name]


def _checked_every(events: pd.DataFrame) -> int:
    if "checked_every" not in events or events["checked_every"].isna().all():
        return 1
    return int(events["checked_every"].max())


def _interval_note(k: int, censored_at: int, horizon: int) -> list[str]:
    if k <= 1:
        return []
    return [f"Checked every {k} generations (interval-censored): a collapse time t means the event happened in "
            f"(t − {k}, t], so the medians above count from the check that saw it and can be up to {k - 1} "
            "generations late; the column *median, each event at its interval's start* puts every event at "
            "t − " + f"{k - 1}, so the true median lies between the two (for an event that keeps holding once it "
            "holds; a spread that dips below a threshold and recovers between checks is missed until it holds at "
            f"a check). Chains not seen to collapse are censored at generation {censored_at}, the last check by "
            f"T = {horizon}.", ""]


def _heatmaps(rep: _Report, fam: _Family, summary, event, threshold, horizon, what, tag) -> None:
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
        where = ", ".join(f"{axis_name(c)}={v:g}" if isinstance(v, float) else f"{axis_name(c)}={v}"
                          for c, v in zip(others, key))
        prob = collapsed_by(fam.events[fam.events["cell"].isin(rows["cell"])], event,
                            None if np.isnan(threshold) else threshold, [horizon])
        suffix = f" ({where})" if where else ""
        rep.figure(figures.probability_heatmap(prob, title=f"P({what} by T={horizon}){suffix}",
                                               colorbar_label="probability across chains"),
                   f"heatmap_{tag}" + (f"_{_safe(where)}" if where else ""),
                   f"Probability of {what} by the horizon over (n, fresh real fraction){suffix}")


def _fit_rows(fam: _Family, fits, summary, event, threshold) -> tuple[list[str], list[list], float | None]:
    """The rate-fit table (one row per line: policy and every other axis that varies) and the
    theory ratio for the collapse-time figure (None where no closed form applies)."""
    keys = [c for c in fits.columns if c in _lines(summary)]
    shown = [k for k in keys if k == "policy" or k in varying(fits, [k])]
    closed_form = (event == "spread_below" and "spread_collapse_time" in fam.draws and fam.one_d
                   and 0 < threshold < 1)
    rows = []
    for f in fits.to_dict("records"):
        line = summary[(summary[keys] == pd.Series({k: f[k] for k in keys})).all(axis=1)]
        used = line[np.isfinite(line["median"])]
        expected = "–"
        estimator = fam.estimator_for(line["cell"])
        if closed_form and fam.holds[line["cell"]].all() and estimator and used["n"].nunique() >= 2:
            expected = md.number(theory.collapse_time_slope(used["n"], threshold, estimator, "first_passage"))
        rows.append([f[k] if k in ("policy", "family") else md.number(f[k]) if isinstance(f[k], float) else f[k]
                     for k in shown]
                    + [f"{f['cells_used']} of {f['cells']}", f["excluded_n"] or "none",
                       md.estimate(f["slope"], f["slope_lower"], f["slope_upper"]), expected, f["note"] or ""])
    headers = [axis_name(k) for k in shown] + ["cells fitted", "left out (median > T), n", "slope [95% CI]",
                                               "theory slope (replace, temperature 1)", "note"]
    ratio = None
    if closed_form and fam.holds[summary["cell"]].any():
        ratio = threshold if fam.estimator_for(summary["cell"]) else None
    return headers, rows, ratio


def _collapse_section(rep: _Report, fam: _Family, kind: EventInfo, threshold: float, shared, shared_headers):
    event, horizon = kind.event, fam.horizon
    rows = fam.events[fam.events["event"] == event]
    k = _checked_every(rows)
    censored_at = horizon - horizon % k  # events are checked at multiples of k only
    times = collapse_times(fam.events, event, None if np.isnan(threshold) else threshold, horizon=censored_at)
    what = figures.event_description(event, threshold, distance=fam.info.distance_metric,
                                     description=kind.description)
    tag = f"{fam.tag}_{event}" + ("" if np.isnan(threshold) else f"_{threshold:g}")
    summary = survival(times)
    fits = rates(times, n_boot=rep.n_boot, seed=rep.seed)
    labels = cell_labels(summary)
    rep.lines += [f"### Collapse: {what}", ""]
    if kind.description:
        rep.lines += [f"`{event}`: {kind.description}.", ""]
    merged = _sorted(summary.merge(shared[["cell"] + shared_headers], on="cell"))
    extra = []
    if k > 1:
        early = survival(times.assign(duration=times["lower"])).set_index("cell")
        extra = ["median, each event at its interval's start"]
        merged["_early"] = [md.median_time(early.loc[c]) for c in merged["cell"]]
    table = []
    for r in merged.to_dict("records"):
        table.append([r["cell"], labels[r["cell"]], r["chains"], md.share(r["censored_share"]), md.median_time(r)]
                     + ([r["_early"]] if k > 1 else [])
                     + [f"{r['rmst']:.1f} ± {r['rmst_se']:.1f}"] + [r[h] for h in shared_headers])
    headers = (["cell", "cell coordinates", "chains", "censored at T", "median collapse time [95% CI]"] + extra
               + ["mean time up to T (RMST ± se)"])
    rep.lines += [md.table(headers + shared_headers, table), ""]
    rep.lines += _interval_note(k, censored_at, horizon)
    fit_headers, fit_rows, ratio = _fit_rows(fam, fits, summary, event, threshold)
    rep.lines += ["Slope of ln(median collapse time) on ln n within each combination of the other axes, "
                  f"bootstrap over chains ({rep.n_boot} resamples):", "", md.table(fit_headers, fit_rows), ""]
    rep.figure(figures.survival_figure(times, what=what), f"survival_{tag}", f"Kaplan-Meier survival, {what}")
    if summary["n"].nunique() >= 2:
        estimator = fam.estimator_for(summary["cell"]) or "unbiased"
        rep.figure(figures.collapse_time_figure(summary, fits=fits, ratio=ratio, estimator=estimator),
                   f"collapse_time_{tag}", f"Median collapse time versus n, {what}")
    _heatmaps(rep, fam, summary, event, threshold, censored_at, what, tag)


def _collapse_list(fam: _Family) -> list[tuple[EventInfo, float]]:
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


def _diverged_line(fam: _Family) -> list[str]:
    rows = fam.events[(fam.events["event"] == "diverged") & fam.events["observed"].astype(bool)]
    if rows.empty:
        return []
    chains = fam.events[fam.events["event"] == "diverged"]
    return [f"Chains whose fit became non-finite (`diverged`) by T: {len(rows)} of {len(chains)} "
            f"(cells {', '.join(str(c) for c in sorted(rows['cell'].unique()))}).", ""]


def _declarations_line(info: Declarations) -> list[str]:
    unknown = [o for o in info.theory_overlays if o not in theory.OVERLAYS]
    overlays = ", ".join(f"`{o}`" for o in info.theory_overlays) or "none"
    return [f"Declarations (from {info.source}): distance `{info.distance_metric or '–'}`, spread "
            f"`{info.spread_metric or '–'}`, collapse events "
            f"{', '.join(f'`{e.event}`' for e in info.collapse_events()) or 'none'}, theory overlays {overlays}"
            + (f" (not known to this analysis, nothing drawn: {', '.join(unknown)})" if unknown else "") + ".", ""]


def _family_section(rep: _Report, fam: _Family) -> None:
    info, traj, events = fam.info, fam.traj, fam.events
    rep.lines += [f"## Family: {info.name}", ""] + _declarations_line(info)
    shared, shared_headers = _per_cell_columns(fam)
    collapse = _collapse_list(fam)
    for kind, threshold in collapse:
        _collapse_section(rep, fam, kind, threshold, shared, shared_headers)
    if not collapse:
        labels = cell_labels(shared)
        rep.lines += [md.table(["cell", "cell coordinates"] + shared_headers,
                               [[r["cell"], labels[r["cell"]]] + [r[h] for h in shared_headers]
                                for r in _sorted(shared).to_dict("records")]), ""]
    rep.lines += _diverged_line(fam)
    cells = fam.cells
    few = _few_cells(cells, 12)
    spread = info.spread_metric
    if spread and spread in traj and traj[spread].notna().any():
        estimator = fam.estimator_for(few)
        rep.figure(figures.fan_chart(traj, cells=few, metric=spread, estimator=estimator or "unbiased",
                                     theory_line=estimator is not None, overlays=info.theory_overlays),
                   f"fan_{fam.tag}", "Fitted spread over generations: median and 50% / 90% of chains")
    gaussian = "gaussian_density" in fam.draws and fam.one_d
    mixture = "mixture_density" in fam.draws and all(c in traj for c in _MIXTURE_COLUMNS)
    if (gaussian or mixture) and "spread_ratio" in traj:
        rep.figure(figures.density_figure(traj, cells=_few_cells(cells, 3, "first")),
                   f"density_{fam.tag}", "Fitted densities of five chains versus the truth")
    distance = info.distance_metric
    if distance and distance in traj and traj[distance].notna().any():
        rep.figure(figures.fan_chart(traj, cells=few, metric=distance),
                   f"fan_{_safe(distance)}_{fam.tag}",
                   f"{metric_label(distance)} distance to the truth over generations: median and 50% / 90% of chains")
    if "symbol_lost" in [e.event for e in info.per_symbol_events()] and (events["event"] == "symbol_lost").any():
        _forgetting_section(rep, fam)


def _forgetting_section(rep: _Report, fam: _Family) -> None:
    table = forgetting_times(fam.events)
    fits = forgetting_rates(fam.events, n_boot=rep.n_boot, seed=rep.seed)
    labels = cell_labels(fits)
    declared = "forgetting_median" in fam.draws
    rep.lines += ["### Forgetting: generations until a symbol is lost, versus its initial count", "",
                  md.table(["cell", "cell coordinates", "bins fitted", "left out (median > T)", "slope [95% CI]",
                            "theory slope"],
                           [[f.cell, labels[f.cell], f"{f.bins_used} of {f.bins}", f.excluded_counts or "none",
                             md.estimate(f.slope, f.slope_lower, f.slope_upper),
                             "1 (2c / ln 2)" if declared and fam.holds[f.cell] else "–"]
                            for f in _sorted(fits).itertuples()]), ""]
    traj = fam.traj
    with_surviving = traj if "surviving" in traj and traj["surviving"].notna().any() else None
    rep.figure(figures.forgetting_figure(table, fits=fits, trajectories=with_surviving,
                                         theory_line=declared and bool(fam.holds.any())),
               f"forgetting_{fam.tag}", "Forgetting time versus initial count, and surviving symbols")


def _axes_line(meta: dict, traj: pd.DataFrame) -> str:
    """The grid axes and which of them vary."""
    entry = meta.get("family") if isinstance(meta.get("family"), dict) else {}
    declared = entry.get("axes") if isinstance(entry.get("axes"), dict) else None
    columns = dict(declared) if declared else {"n": "n", "policy": "policy",
                                               **{c.replace("family_", "family.", 1): c for c in axis_columns(traj)}}
    builtin = [a for a in ("n", "policy", "temperature") if a in columns]
    columns = {a: columns[a] for a in builtin + sorted(set(columns) - set(builtin))}
    cells = cell_table(traj)
    varied = [axis for axis, column in columns.items() if column in cells and cells[column].astype(str).nunique() > 1]
    return (f"- grid axes: {', '.join(columns)}; varied: {', '.join(varied) or 'none'} "
            "(rates are fitted against n within each combination of the others)")


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
    meta = read_metadata(str(results_path))
    spec = _spec(meta, results_path)
    trajectories, events = _read(str(results_path))
    if out_dir is None:
        if "://" in str(results_path):
            raise ValueError(f"results folder '{results_path}' is remote; pass out_dir= a local folder")
        out_dir = Path(results_path) / "report"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    horizon = int(spec.get("generations", trajectories["generation"].max()))
    if trajectories["generation"].max() != horizon:
        raise ResultsError(f"results folder '{results_path}': sweep.json says generations={horizon} but the "
                           f"trajectories stop at {trajectories['generation'].max()}; is the sweep unfinished?")
    estimator, estimator_note = _estimator(spec)
    rep = _Report(out, n_boot, seed)
    names = sorted(trajectories["family"].astype(str).unique())
    sections = []
    for name in names:
        rows = events[events["family"].astype(str) == name]
        info = for_folder(meta, name, only=len(names) == 1, event_names=rows["event"].dropna().unique())
        sections.append(_Family(info, trajectories[trajectories["family"].astype(str) == name], rows, horizon,
                                estimator))
    chains = trajectories[trajectories["generation"] == 0].groupby("cell").size()
    checked = _checked_every(events)
    rep.lines += [
        f"# Sweep report: {spec.get('name', Path(str(results_path)).name)}", "",
        f"- results: `{results_path}`",
        f"- families: {', '.join(f.info.name for f in sections)}; horizon T = {horizon} generations",
        f"- cells: {len(chains)}; chains: {int(chains.sum())}; root entropy: {meta.get('root_entropy', '–')}",
        _axes_line(meta, trajectories),
        *([f"- events checked every {checked} generations: interval-censored, a time t means (t − {checked}, t]"]
          if checked > 1 else []),
        *([f"- Gaussian variance fit used for theory: {estimator_note}"]
          if any("log_variance_rate" in f.draws for f in sections) else []), "",
        "Median collapse times are Kaplan-Meier medians (lifelines) with 95% CIs from the exponential-Greenwood "
        "band. Chains that had not collapsed by T are right-censored there; **\"> T\"** means the median (or that "
        "bound) is not reached by the horizon — fewer than half the chains collapsed — and it is left out of rate "
        "fits. Probabilities carry 95% Wilson intervals. Rates are least-squares slopes on log-log axes with "
        "percentile bootstrap CIs over chains, fitted against n within each combination of the other axes. "
        "Theory lines and columns are drawn only for the closed forms the family declares (its theory overlays), "
        "and only for `replace` cells at temperature 1, where they hold.", "",
    ]
    for section in sections:
        _family_section(rep, section)
    report = out / "report.md"
    report.write_text("\n".join(rep.lines) + "\n", encoding="utf-8")
    return rep.written + [report]
