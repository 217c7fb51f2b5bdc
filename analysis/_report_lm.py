"""Report sections for families that keep per-item side tables or count a vocabulary (the
language models): the distribution of per-sequence values across generations, and how much of
the vocabulary is still present.

Both are triggered by declarations and data, never by the family's name:

- every side table the family declares (``sweep.json``'s ``family.side_tables``, e.g.
  ``sequences`` with its ``perplexity`` column) gets overlaid histograms of its value column at a
  few recorded generations, per cell (Shumailov et al.'s per-sample perplexity histograms), and a
  table of medians and 5-95% ranges;
- a declared ``vocabulary`` metric gets the share of the first generation's word types still in
  each generation's text, and every declared per-symbol event (``word_lost``) the share of the
  tracked symbols of the first training set that are not lost yet, per chain: median and bands
  per cell.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import _markdown as md
from analysis._cells import cell_labels
from analysis._report_context import FamilyRows, Report, few_cells, safe, sorted_cells
from analysis._survival import collapse_times
from analysis.figures.sequences import SHARE_QUANTILES, distribution_figure, share_figure
from analysis.io import ResultsError, load_side

__all__ = ["lm_sections", "pick_generations", "symbol_shares", "metric_shares"]

_GENERATIONS = 5  # overlaid histograms per panel: more are unreadable
_CELLS = 6  # histogram panels
_LINES = 9  # cells on a survival panel
_POINTS = 400  # generations at which survival shares are evaluated, at most


def lm_sections(rep: Report, fam: FamilyRows) -> None:
    """Append the side-table distributions and vocabulary survival that ``fam`` declares."""
    for table, item in fam.info.side_tables.items():
        _distribution_section(rep, fam, table, item)
    traj = fam.traj
    if (
        "vocabulary" in fam.info.metrics
        and "vocabulary" in traj
        and traj.loc[traj["generation"] >= 1, "vocabulary"].notna().any()
    ):
        _vocabulary_section(rep, fam)


def pick_generations(recorded, count: int = _GENERATIONS) -> list[int]:
    """Up to ``count`` of the ``recorded`` generations (>= 1), spaced evenly on a log axis, always
    with the first and the last (drift is fast early and slow late)."""
    recorded = np.unique(np.asarray(recorded, dtype=np.int64))
    recorded = recorded[recorded >= 1]
    if recorded.size <= count:
        return recorded.tolist()
    targets = np.geomspace(recorded[0], recorded[-1], count)
    nearest = np.abs(np.log(recorded)[None, :] - np.log(targets)[:, None]).argmin(axis=1)
    return np.unique(recorded[nearest]).tolist()


def _distribution_section(rep: Report, fam: FamilyRows, table: str, item: dict[str, str]) -> None:
    value, index = item["value"], item.get("index", "item")
    recorded = fam.traj["generation"].unique()
    generations = pick_generations(recorded)
    if not generations:
        return
    source = rep.results
    try:
        # Only the drawn generations are read: a side table holds one row per generated sequence.
        side = load_side(source, table, filters=[("generation", "in", generations)]) if source else pd.DataFrame()
    except ResultsError:
        side = pd.DataFrame()
    if side.empty or value not in side:
        rep.lines += [f"Side table `{table}`: declared, but no rows to draw.", ""]
        return
    side = side[side["cell"].isin(fam.cells["cell"])]
    cells = fam.cells.set_index("cell", drop=False)
    labels = cell_labels(cells)
    rep.lines += [
        f"### Per-{index} {value} across generations (`{table}` table)",
        "",
        f"Each generation's `{value}` of every {index} ({item.get('metric', value)}), pooled over the chains "
        f"of a cell: median and [5%, 95%] range at {len(generations)} recorded generations.",
        "",
    ]
    quantiles = side.groupby(["cell", "generation"])[value].quantile([0.05, 0.5, 0.95]).unstack()
    rows = []
    for cell in sorted_cells(fam.cells)["cell"]:
        row = [cell, labels[cell]]
        for g in generations:
            if (cell, g) in quantiles.index:
                q = quantiles.loc[(cell, g)]
                row.append(f"{_value(q[0.5])} [{_value(q[0.05])}, {_value(q[0.95])}]")
            else:
                row.append("–")
        rows.append(row)
    rep.lines += [
        md.table(["cell", "cell coordinates"] + [f"generation {g}" for g in generations], rows),
        "",
    ]
    drawn = [c for c in few_cells(fam.cells, _CELLS) if (side["cell"] == c).any()]
    if drawn:
        rep.figure(
            distribution_figure(side, value=value, generations=generations, cells=drawn, what=f"per-{index} {value}"),
            f"{safe(table)}_{safe(value)}_{fam.tag}",
            f"Distribution of the per-{index} {value} at generations {', '.join(map(str, generations))}, per cell",
        )


def _value(value: float) -> str:
    """A perplexity-like value: three significant digits, but whole numbers above 1000 (not 1.09e+03)."""
    return f"{value:.0f}" if np.isfinite(value) and abs(value) >= 1000 else md.number(float(value))


def _bands(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Quantiles across chains of ``column`` per cell and generation (:data:`SHARE_QUANTILES`)."""
    bands = frame.groupby(["cell", "generation"])[column].quantile(list(SHARE_QUANTILES)).unstack()
    return bands.reset_index()


def metric_shares(traj: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, int]:
    """Each chain's ``metric`` over generations as a share of its value at the first recorded
    generation >= 1 (generation 0 is the truth, e.g. the whole corpus: not a chain's start).

    Returns the frame (``cell``, ``replicate``, ``generation``, ``share``) and that generation.
    """
    rows = traj.loc[traj["generation"] >= 1, ["cell", "replicate", "generation", metric]]
    first = int(rows["generation"].min())
    start = rows[rows["generation"] == first].set_index(["cell", "replicate"])[metric]
    reference = start.reindex(pd.MultiIndex.from_frame(rows[["cell", "replicate"]])).to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = rows[metric].to_numpy(dtype=float) / np.where(reference > 0, reference, np.nan)
    return rows[["cell", "replicate", "generation"]].assign(share=share), first


def symbol_shares(events: pd.DataFrame, event: str, generations) -> pd.DataFrame:
    """Per chain, the share of the symbols present in the first training set (``initial_count``
    >= 1) that the per-symbol ``event`` has not yet hit by each of ``generations``.

    Returns one row per cell, chain and generation: ``cell``, ``replicate``, ``generation``,
    ``share`` (chains with no such symbol are left out).
    """
    times = collapse_times(events, event)
    times = times[times["initial_count"].to_numpy(dtype=float) >= 1]
    generations = np.asarray(generations, dtype=np.int64)
    chains, chain = np.unique(times[["cell", "replicate"]].to_numpy(dtype=np.int64), axis=0, return_inverse=True)
    chain = chain.ravel()
    # Losses per chain and generation (events past the last asked generation land in a last bin),
    # summed: the number lost by each generation, one pass for every chain at once.
    observed = times["observed"].to_numpy(dtype=bool)
    slot = np.searchsorted(generations, times["duration"].to_numpy(dtype=np.int64), side="left")
    lost = np.zeros((len(chains), generations.size + 1))
    np.add.at(lost, (chain[observed], slot[observed]), 1)
    symbols = np.bincount(chain, minlength=len(chains))
    share = 1 - np.cumsum(lost, axis=1)[:, :-1] / symbols[:, None]
    return pd.DataFrame(
        {
            "cell": np.repeat(chains[:, 0], generations.size),
            "replicate": np.repeat(chains[:, 1], generations.size),
            "generation": np.tile(generations, len(chains)),
            "share": share.ravel(),
        }
    )


def _at(frame: pd.DataFrame, cell: int, generation: int) -> str:
    shares = frame.loc[(frame["cell"] == cell) & (frame["generation"] == generation), "share"].dropna()
    if shares.empty:
        return "–"
    q = shares.quantile([0.25, 0.5, 0.75])
    return md.estimate(q[0.5], q[0.25], q[0.75])


def _vocabulary_section(rep: Report, fam: FamilyRows) -> None:
    traj, horizon = fam.traj, fam.horizon
    vocabulary, first = metric_shares(traj, "vocabulary")
    events = [
        e.event for e in fam.info.per_symbol_events() if (fam.events["event"] == e.event).any()
    ]  # the declared per-symbol events with rows: their exact times give a second, finer view
    grid = np.unique(np.round(np.linspace(1, horizon, min(horizon, _POINTS)))).astype(np.int64)
    symbols = {e: symbol_shares(fam.events, e, grid) for e in events}
    labels = cell_labels(fam.cells)
    start = traj[traj["generation"] == first].groupby("cell")["vocabulary"].median()
    end = traj[traj["generation"] == horizon].groupby("cell")["vocabulary"].median()
    rep.lines += [
        "### Vocabulary survival",
        "",
        f"`vocabulary`: {fam.info.metrics['vocabulary']}. Its share of the chain's value at generation {first}"
        + "".join(
            f"; `{e}`: the share of the tracked symbols present in the first training set that are not lost yet"
            for e in events
        )
        + f". Median [25%, 75%] of chains at T = {horizon}.",
        "",
        md.table(
            ["cell", "cell coordinates", f"`vocabulary` at {first} (median)", "at T (median)", "share at T"]
            + [f"`{e}`: share not lost at T" for e in events],
            [
                [cell, labels[cell], md.number(start.get(cell, np.nan)), md.number(end.get(cell, np.nan))]
                + [_at(vocabulary, cell, horizon)]
                + [_at(symbols[e], cell, horizon) for e in events]
                for cell in sorted_cells(fam.cells)["cell"]
            ],
        ),
        "",
    ]
    drawn = set(few_cells(fam.cells, _LINES))  # more lines hide each other; the table lists all
    vocabulary = vocabulary[vocabulary["cell"].isin(drawn)]
    symbols = {e: frame[frame["cell"].isin(drawn)] for e, frame in symbols.items()}
    curves = [
        ("Vocabulary still present", f"vocabulary / its value at generation {first}", _bands(vocabulary, "share"))
    ]
    curves += [
        (f"Tracked symbols not lost ({e})", "share of the first training set's", _bands(symbols[e], "share"))
        for e in events
        if not symbols[e].empty
    ]
    rep.figure(
        share_figure(curves, labels=labels),
        f"vocabulary_{fam.tag}",
        "Vocabulary survival: share of the first generation's vocabulary still present, per cell",
    )
