"""``write_report``: figures and a markdown summary of a results folder, from its Parquet only.

Nothing is simulated again: every number comes from the ``trajectories`` and ``events`` tables.
What is drawn follows the family's declarations in ``sweep.json`` (:mod:`analysis._declarations`),
never its name: a survival section (Kaplan-Meier curves, median time versus n, a heatmap over
(n, real)) for every declared collapse event and threshold, divergence probabilities and a fan
chart of the declared distance metric, a fan chart of the declared spread metric, forgetting for
per-symbol loss, the closed forms of the theory overlays the family names
(:data:`analysis.theory.OVERLAYS`), fan charts of every other declared metric with a table of
final medians per cell (:mod:`analysis._report_metrics`), and the sample grids the run saved
under ``samples/`` (:mod:`analysis._report_samples`). Every grid axis is treated like n and policy: tables list
cells with every axis that varies, and rates are fitted against n within each combination of
the other axes (policy, temperature, family fields).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis import _markdown as md
from analysis import figures, theory
from analysis._cells import axis_columns, cell_labels, cell_table
from analysis._declarations import Declarations, EventInfo, for_folder
from analysis._forgetting import forgetting_rates, forgetting_times
from analysis._probability import divergence_probability
from analysis._rates import decay_rates
from analysis._report_collapse import checked_every, collapse_list, collapse_section
from analysis._report_context import (
    DROPPED,
    FamilyRows,
    Report,
    dropped_share,
    estimator_of,
    few_cells,
    safe,
    sorted_cells,
)
from analysis._report_lm import lm_sections
from analysis._report_metrics import metrics_section
from analysis._report_overlays import overlay_sections
from analysis._report_samples import samples_section
from analysis.figures._common import metric_label
from analysis.io import ResultsError, load, load_events, read_metadata
from sweep.store import Store

__all__ = ["write_report"]

_MIXTURE_COLUMNS = ("weights", "means", "sigmas")


def _spec(meta: Any, path) -> dict:
    spec = meta.get("spec") if isinstance(meta, dict) else None
    if not isinstance(spec, dict):
        raise ResultsError(
            f"results folder '{path}': sweep.json has no 'spec' object; expected a folder written by 'sweep run'"
        )
    return spec


def _read(path) -> tuple[pd.DataFrame, pd.DataFrame]:
    try:
        trajectories, events = load(path), load_events(path)
    except ResultsError:
        raise
    except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ResultsError(f"results folder '{path}': its Parquet parts could not be read ({first})") from exc
    if trajectories.empty or events.empty or "family" not in trajectories or "family" not in events:
        raise ResultsError(
            f"results folder '{path}': no trajectories or events rows yet; "
            "run 'sweep run' to completion (or check the path)"
        )
    return trajectories, events


def _theory_rate(fam: FamilyRows, row) -> float:
    """The declared closed form of a cell's decay rate (NaN where none applies)."""
    if not fam.holds[row.cell]:
        return np.nan
    if row.quantity == "log_var" and "log_variance_rate" in fam.draws and fam.one_d:
        return float(theory.log_var_drift(float(row.n), fam.estimators[row.cell]))
    if row.quantity == "log_heterozygosity" and "heterozygosity_rate" in fam.draws:
        return float(np.log(1 - 1 / float(row.n)))
    return np.nan


def _per_cell_columns(fam: FamilyRows) -> tuple[pd.DataFrame, list[str]]:
    """Per-cell divergence at T and fitted decay rate, shared by every table of a family."""
    traj, events = fam.traj, fam.events
    base = fam.cells.reset_index(drop=True)
    headers = []
    metric = fam.info.distance_metric
    if metric and metric in traj and (events["event"] == "distance_above").any():
        for eps in np.sort(events.loc[events["event"] == "distance_above", "threshold"].dropna().unique()):
            prob = divergence_probability(traj, eps, [fam.horizon], metric)
            name = f"P({metric_label(metric)} > {eps:g} at T)"
            base = base.merge(
                prob[["cell"]].assign(
                    **{
                        name: [
                            md.probability(*r) for r in prob[["probability", "lower", "upper"]].itertuples(index=False)
                        ]
                    }
                ),
                on="cell",
            )
            headers.append(name)
    try:
        decay = decay_rates(traj, generation=fam.horizon)
    except ValueError:
        return base, headers
    # decay_rates picks its quantity by column; show it only for a metric the family declares.
    declared = {
        "log_var": fam.info.spread_metric == "spread_ratio",
        "log_heterozygosity": "heterozygosity" in fam.info.metrics,
    }
    if fam.info.metrics and not declared.get(decay["quantity"].iloc[0], False):
        return base, headers
    name = "log-variance drift / gen" if decay["quantity"].iloc[0] == "log_var" else "log-heterozygosity rate / gen"
    text = []
    for r in decay.itertuples():
        expected = _theory_rate(fam, r)
        text.append(
            md.estimate(r.rate, r.rate_lower, r.rate_upper)
            + ("" if np.isnan(expected) else f" (theory {md.number(expected)})")
        )
    # Chains left out of the mean are the most collapsed ones (variance underflowed): say how many.
    left_out = "chains left out of the rate (non-finite at T)"
    return (
        base.merge(decay[["cell"]].assign(**{name: text, left_out: decay["missing"].astype(int)}), on="cell"),
        headers + [name, left_out],
    )


def _diverged_line(fam: FamilyRows) -> list[str]:
    rows = fam.events[(fam.events["event"] == "diverged") & fam.events["observed"].astype(bool)]
    if rows.empty:
        return []
    chains = fam.events[fam.events["event"] == "diverged"]
    return [
        f"Chains whose fit became non-finite (`diverged`) by T: {len(rows)} of {len(chains)} "
        f"(cells {', '.join(str(c) for c in sorted(rows['cell'].unique()))}).",
        "",
    ]


def _declarations_line(info: Declarations) -> list[str]:
    unknown = [o for o in info.theory_overlays if o not in theory.OVERLAYS]
    overlays = ", ".join(f"`{o}`" for o in info.theory_overlays) or "none"
    return [
        f"Declarations (from {info.source}): distance `{info.distance_metric or '–'}`, spread "
        f"`{info.spread_metric or '–'}`, collapse events "
        f"{', '.join(f'`{e.event}`' for e in info.collapse_events()) or 'none'}, theory overlays {overlays}"
        + (f" (not known to this analysis, nothing drawn: {', '.join(unknown)})" if unknown else "")
        + ".",
        "",
    ]


def _family_section(rep: Report, fam: FamilyRows) -> None:
    info, traj, events = fam.info, fam.traj, fam.events
    rep.lines += [f"## Family: {info.name}", ""] + _declarations_line(info)
    shared, shared_headers = _per_cell_columns(fam)
    collapse = collapse_list(fam)
    for kind, threshold in collapse:
        collapse_section(rep, fam, kind, threshold, shared, shared_headers)
    if not collapse:
        labels = cell_labels(shared)
        rep.lines += [
            md.table(
                ["cell", "cell coordinates"] + shared_headers,
                [
                    [r["cell"], labels[r["cell"]]] + [r[h] for h in shared_headers]
                    for r in sorted_cells(shared).to_dict("records")
                ],
            ),
            "",
        ]
    rep.lines += _diverged_line(fam)
    cells = fam.cells
    few = few_cells(cells, 12)
    spread = info.spread_metric
    if spread and spread in traj and traj[spread].notna().any():
        estimator = fam.estimator_for(few)
        rep.figure(
            figures.fan_chart(
                traj,
                cells=few,
                metric=spread,
                estimator=estimator or "unbiased",
                theory_line=estimator is not None,
                overlays=info.theory_overlays,
            ),
            f"fan_{fam.tag}",
            "Fitted spread over generations: median and 50% / 90% of chains",
        )
    gaussian = "gaussian_density" in fam.draws and fam.one_d
    mixture = "mixture_density" in fam.draws and all(c in traj for c in _MIXTURE_COLUMNS)
    if (gaussian or mixture) and "spread_ratio" in traj:
        rep.figure(
            figures.density_figure(traj, cells=few_cells(cells, 3, "first")),
            f"density_{fam.tag}",
            "Fitted densities of five chains versus the truth",
        )
    distance = info.distance_metric
    if distance and distance in traj and traj[distance].notna().any():
        rep.figure(
            figures.fan_chart(traj, cells=few, metric=distance),
            f"fan_{safe(distance)}_{fam.tag}",
            f"{metric_label(distance)} distance to the truth over generations: median and 50% / 90% of chains",
        )
    per_symbol = [e for e in info.per_symbol_events() if (events["event"] == e.event).any()]
    for kind in per_symbol:
        _forgetting_section(rep, fam, kind, alone=len(per_symbol) == 1)
    lm_sections(rep, fam)  # per-sequence side tables and vocabulary survival, where declared
    overlay_sections(rep, fam)  # declared closed forms against the simulation, 2-D density snapshots
    metrics_section(rep, fam)  # every other declared metric: fan charts and final medians per cell
    samples_section(rep, fam, rep.results)  # the run's saved sample grids (samples/), if any


def _forgetting_section(rep: Report, fam: FamilyRows, kind: EventInfo, *, alone: bool) -> None:
    """Forgetting time against initial count for one declared per-symbol event (``symbol_lost``,
    ``word_lost``): a table of the log-log slopes per cell and the figure."""
    event = kind.event
    table = forgetting_times(fam.events, event=event)
    fits = forgetting_rates(fam.events, n_boot=rep.n_boot, seed=rep.seed, event=event)
    labels = cell_labels(fits)
    declared = "forgetting_median" in fam.draws
    # symbol_lost keeps its header; another per-symbol event is named, with its declared meaning.
    named = "" if event == "symbol_lost" else f" (`{event}`)"
    rep.lines += [
        f"### Forgetting{named}: generations until a symbol is lost, versus its initial count",
        "",
        *([f"`{event}`: {kind.description}.", ""] if named and kind.description else []),
        md.table(
            [
                "cell",
                "cell coordinates",
                "bins fitted",
                "left out (median > T)",
                "slope [95% CI]",
                "theory slope",
                DROPPED,
            ],
            [
                [
                    f.cell,
                    labels[f.cell],
                    f"{f.bins_used} of {f.bins}",
                    f.excluded_counts or "none",
                    md.estimate(f.slope, f.slope_lower, f.slope_upper),
                    "1 (2c / ln 2)" if declared and fam.holds[f.cell] else "–",
                    dropped_share(f.boot_dropped_share),
                ]
                for f in sorted_cells(fits).itertuples()
            ],
        ),
        "",
    ]
    traj = fam.traj
    with_surviving = traj if "surviving" in traj and traj["surviving"].notna().any() else None
    rep.figure(
        figures.forgetting_figure(
            table, fits=fits, trajectories=with_surviving, theory_line=declared and bool(fam.holds.any())
        ),
        f"forgetting_{fam.tag}" if alone else f"forgetting_{safe(event)}_{fam.tag}",
        "Forgetting time versus initial count, and surviving symbols"
        if with_surviving is not None
        else f"Forgetting time (`{event}`) versus initial count",
    )


def _axes_line(meta: dict, traj: pd.DataFrame) -> str:
    """The grid axes and which of them vary."""
    entry = meta.get("family") if isinstance(meta.get("family"), dict) else {}
    declared = entry.get("axes") if isinstance(entry.get("axes"), dict) else None
    columns = (
        dict(declared)
        if declared
        else {"n": "n", "policy": "policy", **{c.replace("family_", "family.", 1): c for c in axis_columns(traj)}}
    )
    builtin = [a for a in ("n", "policy", "temperature") if a in columns]
    columns = {a: columns[a] for a in builtin + sorted(set(columns) - set(builtin))}
    cells = cell_table(traj)
    varied = [axis for axis, column in columns.items() if column in cells and cells[column].astype(str).nunique() > 1]
    return (
        f"- grid axes: {', '.join(columns)}; varied: {', '.join(varied) or 'none'} "
        "(rates are fitted against n within each combination of the others)"
    )


def write_report(
    results_path, out_dir=None, *, n_boot: int = 1000, seed: int = 0, regression: bool = True
) -> list[Path]:
    """Write figures and ``report.md`` for a results folder, from its Parquet tables only.

    Parameters
    ----------
    results_path : str or Path
        A folder written by ``sweep run`` (``sweep.json``, ``trajectories/``, ``events/``).
    out_dir : str or Path, optional
        Where to write; default ``<results_path>/report`` (required for a remote URI).
    n_boot, seed : int
        Bootstrap resamples and seed for the slope intervals (same seed, same report).
    regression : bool
        Add the censored regression (AFT models on every chain) of each collapse event.

    Returns
    -------
    list of Path
        Every file written: ``figures/*.png``, ``figures/*.svg``, the sample grids copied from
        the results' ``samples/`` (``samples/cell=<c>/...png``) and ``report.md`` (last).

    Raises
    ------
    ResultsError
        If the folder is empty, foreign (no ``sweep.json`` with a ``spec``), or holds no rows.
    """
    if out_dir is not None and "://" in str(out_dir):  # Path() of a URI would make a local folder 's3:'
        raise ResultsError(
            f"report folder '{out_dir}': expected a local folder, got a URI; write the report "
            "locally and copy it to object storage if needed"
        )
    if out_dir is None:  # before reading anything: a remote folder is no place for figures
        store = Store(str(results_path))
        if not store.is_local:
            raise ResultsError(
                f"results folder '{results_path}' is remote: expected --out (out_dir=) naming a "
                "local folder for the report, got none"
            )
        out_dir = Path(store.root) / "report"
    meta = read_metadata(str(results_path))
    spec = _spec(meta, results_path)
    trajectories, events = _read(str(results_path))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    horizon = int(spec.get("generations", trajectories["generation"].max()))
    if trajectories["generation"].max() != horizon:
        raise ResultsError(
            f"results folder '{results_path}': sweep.json says generations={horizon} but the "
            f"trajectories stop at {trajectories['generation'].max()}; is the sweep unfinished?"
        )
    estimator, estimator_note = estimator_of(spec)
    rep = Report(out, n_boot, seed)
    rep.results, rep.spec = str(results_path), spec  # read by the side-table, sample-grid and replay sections
    rep.regression = regression  # censored regression of every collapse event (5-20 s each on large folders)
    names = sorted(trajectories["family"].astype(str).unique())
    sections = []
    for name in names:
        rows = events[events["family"].astype(str) == name]
        symbols = rows.loc[rows["symbol"].notna(), "event"].unique() if "symbol" in rows else ()
        info = for_folder(
            meta, name, only=len(names) == 1, event_names=rows["event"].dropna().unique(), per_symbol=symbols
        )
        sections.append(
            FamilyRows(info, trajectories[trajectories["family"].astype(str) == name], rows, horizon, estimator)
        )
    chains = trajectories[trajectories["generation"] == 0].groupby("cell").size()
    checked = checked_every(events)
    rep.lines += [
        f"# Sweep report: {spec.get('name', Path(str(results_path)).name)}",
        "",
        f"- results: `{results_path}`",
        f"- families: {', '.join(f.info.name for f in sections)}; horizon T = {horizon} generations",
        f"- cells: {len(chains)}; chains: {int(chains.sum())}; root entropy: {meta.get('root_entropy', '–')}",
        _axes_line(meta, trajectories),
        *(
            [f"- events checked every {checked} generations: interval-censored, a time t means (t − {checked}, t]"]
            if checked > 1
            else []
        ),
        *(
            [f"- Gaussian variance fit used for theory: {estimator_note}"]
            if any("log_variance_rate" in f.draws for f in sections)
            else []
        ),
        "",
        "Median collapse times are Kaplan-Meier medians (lifelines) with 95% CIs from the exponential-Greenwood "
        'band. Chains that had not collapsed by T are right-censored there; **"> T"** means the median (or that '
        "bound) is not reached by the horizon — fewer than half the chains collapsed — and it is left out of rate "
        "fits. Probabilities carry 95% Wilson intervals. Rates are least-squares slopes on log-log axes with "
        "percentile bootstrap CIs over chains, fitted against n within each combination of the other axes. "
        "Theory lines and columns are drawn only for the closed forms the family declares (its theory overlays), "
        "and only for `replace` cells at temperature 1, where they hold.",
        "",
    ]
    for section in sections:
        _family_section(rep, section)
    from analysis.search_report import search_section

    search_section(rep, results_path, meta)  # a folder of 'sweep search': boundary, Pareto, optuna's plots
    report = out / "report.md"
    report.write_text("\n".join(rep.lines) + "\n", encoding="utf-8")
    return rep.written + [report]
