"""The report's theory-overlay sections: closed forms drawn against the simulation, and 2-D
density snapshots, for what a family's declared overlays list (:data:`analysis.theory.OVERLAYS`).

Nothing here knows a family by name. A family declares overlays; an overlay declares
:class:`~analysis.theory.Curve` s (a closed form, the simulated quantity it predicts, the policies
where it holds) or ``density_snapshots_2d``. For each :class:`~analysis.theory.Simulated`
quantity the report draws one figure (a panel per cell where some curve holds), writes its
numbers to a CSV next to it, and tabulates, per cell and curve, the value at T and the largest
deviation from the theory in standard errors.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis import _markdown as md
from analysis import figures
from analysis._cells import FAMILY_AXIS_PREFIX, TEMPERATURE, axis_columns, cell_labels
from analysis._report_collapse import checked_every
from analysis._report_context import FamilyRows, Report, sorted_cells
from analysis._snapshots import snapshot_section
from analysis.figures.overlays import theory_curves_figure
from analysis.theory import Curve, Simulated, overlay_curves

__all__ = ["overlay_sections", "curve_table", "cell_parameters"]

#: Panels per figure: the cells where a curve holds, smallest n first per policy.
_MAX_CELLS = 6
#: Deviations beyond this many standard errors are flagged in the table.
_SIGMAS = 5.0


def cell_parameters(cell: dict, family: dict) -> dict[str, Any]:
    """What a :class:`~analysis.theory.Curve` reads of one cell: ``n``, ``policy`` (its kind),
    ``real`` (fresh true samples per generation, round half up as :mod:`sweep.policies`),
    ``temperature`` and the family fields (the spec's, overridden by the cell's grid axes)."""
    params = {k: v for k, v in family.items() if k != "name"}
    for column in axis_columns(pd.DataFrame([cell])):
        if column.startswith(FAMILY_AXIS_PREFIX):
            params[column[len(FAMILY_AXIS_PREFIX) :]] = cell[column]
    n = int(cell["n"])
    share = float(cell.get("real", 0.0) or 0.0)
    params.update(
        n=n,
        policy=str(cell.get("policy_kind", cell.get("policy"))),
        real=min(n, math.floor(share * n + 0.5)),
        temperature=float(cell.get(TEMPERATURE, 1.0)),
    )
    return params


def _holds(curve: Curve, fam: FamilyRows, cell: dict) -> bool:
    """Where the curve's closed form holds: its declared policies, at temperature 1 unless it is
    tempered too; for replace cells at temperature 1 this is the report's ``FamilyRows.holds``."""
    temperature = float(cell.get(TEMPERATURE, 1.0))
    if str(cell.get("policy_kind", cell.get("policy"))) not in curve.policies:
        return False
    return curve.tempered or (
        temperature == 1.0 and (cell["policy_kind"] != "replace" or bool(fam.holds[cell["cell"]]))
    )


def _simulated(sim: Simulated, fam: FamilyRows, cell: int) -> pd.DataFrame | None:
    """Per recorded generation of ``cell``: the simulated value, its standard error and the chains."""
    traj = fam.traj[fam.traj["cell"] == cell]
    if sim.against == "chain_mean":
        if sim.column not in traj or traj[sim.column].isna().all():
            return None
        values = traj[sim.column].to_numpy(dtype=float)
        frame = pd.DataFrame(
            {"generation": traj["generation"].to_numpy(), "v": sim.value(values) if sim.value else values}
        )
        stats = frame.groupby("generation")["v"].agg(["mean", "std", "count"])
        return pd.DataFrame(
            {
                "generation": stats.index.to_numpy(dtype=np.int64),
                "simulated": stats["mean"].to_numpy(),
                "se": (stats["std"].fillna(0.0) / np.sqrt(stats["count"])).to_numpy(),
                "chains": stats["count"].to_numpy(),
            }
        )
    if sim.against != "event_by":
        raise ValueError(f"Simulated.against must be 'event_by' or 'chain_mean', got {sim.against!r}")
    rows = fam.events[(fam.events["cell"] == cell) & (fam.events["event"] == sim.column)]
    if rows.empty:
        return None
    happened = np.sort(rows.loc[rows["observed"].astype(bool), "generation"].to_numpy(dtype=np.int64))
    generations = np.sort(traj["generation"].unique()).astype(np.int64)
    every = checked_every(rows)
    if every > 1:  # events checked every k generations are exact at the checks only
        generations = generations[generations % every == 0]
    chains = len(rows)
    share = np.searchsorted(happened, generations, side="right") / chains
    return pd.DataFrame(
        {
            "generation": generations,
            "simulated": share,
            "se": np.sqrt(share * (1 - share) / chains),
            "chains": chains,
        }
    )


def curve_table(fam: FamilyRows, sim: Simulated, curves: list[Curve], family: dict) -> pd.DataFrame:
    """The long table of one simulated quantity and its closed forms, for the cells where each holds.

    Returns
    -------
    pandas.DataFrame
        Columns ``cell``, ``cell_label``, ``curve``, ``bound``, ``generation``, ``simulated``,
        ``se``, ``chains``, ``theory`` and ``z`` (the deviation in standard errors, see
        :func:`_deviations`; NaN where the se is 0). ``attrs["skipped"]`` lists the (cell,
        curve) pairs in the curve's regime that it gives no value for (past an exact law's size).
    """
    labels = cell_labels(fam.cells)
    frames, skipped = [], []
    for cell in sorted_cells(fam.cells).to_dict("records"):
        held = [c for c in curves if _holds(c, fam, cell)]
        if not held:
            continue
        observed = _simulated(sim, fam, int(cell["cell"]))
        if observed is None:
            continue
        params = cell_parameters(cell, family)
        for curve in held:
            values = curve.theory(observed["generation"].to_numpy(), params)
            if values is None:
                skipped.append((int(cell["cell"]), curve.label))
                continue
            values = np.asarray(values, dtype=float)
            z = _deviations(sim, observed, values)
            frames.append(
                observed.assign(
                    cell=int(cell["cell"]),
                    cell_label=labels[int(cell["cell"])],
                    curve=curve.label,
                    bound=curve.bound or "",
                    theory=values,
                    z=z,
                )
            )
    columns = ["cell", "cell_label", "curve", "bound", "generation", "simulated", "se", "chains", "theory", "z"]
    table = pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    table.attrs["skipped"] = skipped
    return table


def _deviations(sim: Simulated, observed: pd.DataFrame, theory: np.ndarray) -> np.ndarray:
    """Signed deviations of the simulation from the theory in standard errors (NaN where none).

    A mean's is ``(simulated - theory) / se``. A share near 0 or 1 is far from normal (one chain
    of 200 left at a theory of 0.9999 is no 5-sigma event), so an ``event_by`` share's deviation
    (and a declared ``share``'s) is the two-sided exact binomial test of its count under the
    theory, as a normal quantile.
    """
    simulated = observed["simulated"].to_numpy(dtype=float)
    if sim.against != "event_by" and not sim.share:
        se = observed["se"].to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(se > 0, (simulated - theory) / se, np.nan)
    chains = observed["chains"].to_numpy()
    count = np.rint(simulated * chains)
    q = np.clip(theory, 0.0, 1.0)
    tail = np.minimum(stats.binom.cdf(count, chains, q), stats.binom.sf(count - 1, chains, q))
    z = stats.norm.isf(np.minimum(1.0, 2 * tail) / 2)
    return np.sign(simulated - q) * z


def _crossing(generations: np.ndarray, values: np.ndarray) -> float:
    """The first generation whose value is >= 1/2 (inf if none by T)."""
    above = np.flatnonzero(values >= 0.5)
    return float(generations[above[0]]) if above.size else math.inf


def _summary_rows(table: pd.DataFrame, horizon: int, medians: bool, exact: bool) -> list[list]:
    """One row per cell and curve. ``exact``: the deviations are exact binomial tests (shares),
    so one beyond 5 se is flagged; a mean of skewed values (squared errors) has a heavy lower
    tail of its t-statistic, and the largest of ~70 of them passes 5 in about one sweep of 200
    chains in ten with the theory exactly right (measured: Bernoulli MSE under fresh_real), so
    there the number is shown with the deviation at T and no flag."""
    rows = []
    for (cell, curve), lines in table.groupby(["cell", "curve"], sort=False):
        lines = lines.sort_values("generation")
        last = lines.iloc[-1]
        z = lines["z"].to_numpy(dtype=float)
        bound = last["bound"]
        if bound:  # a bound is respected when the simulation is not beyond it by 5 se anywhere
            beyond = z < -_SIGMAS if bound == "lower" else z > _SIGMAS
            verdict = (
                f"{bound} bound, beyond it by > 5 se at {int(beyond.sum())} generations"
                if beyond.any()
                else f"{bound} bound, respected at every generation (within 5 se)"
            )
        else:
            worst = np.nanmax(np.abs(z)) if np.isfinite(z).any() else math.nan
            verdict = md.number(worst) + (" (beyond 5 se)" if exact and worst > _SIGMAS else "")
        row = [
            cell,
            last["cell_label"],
            curve,
            f"{md.number(last['simulated'])} ± {md.number(last['se'])}",
            md.number(last["theory"]),
            md.number(last["z"]),
            verdict + f" ({len(lines)} generations)",
        ]
        if medians:
            g = lines["generation"].to_numpy()
            row += [
                figures.format_time(_crossing(g, lines["simulated"].to_numpy()), horizon),
                "–" if bound else figures.format_time(_crossing(g, lines["theory"].to_numpy()), horizon),
            ]
        rows.append(row)
    return rows


def _curve_section(rep: Report, fam: FamilyRows, sim: Simulated, curves: list[Curve], family: dict) -> None:
    table = curve_table(fam, sim, curves, family)
    skipped = table.attrs.get("skipped", [])
    note = (
        [
            "Not drawn (the exact law is too large to compute here, an (n + 1)^2 matrix per generation): "
            + "; ".join(f"cell {cell}, {label}" for cell, label in skipped)
            + ".",
            "",
        ]
        if skipped
        else []
    )
    if table.empty:
        rep.lines += [f"### Theory: {sim.ylabel} over generations", "", *note] if note else []
        return
    medians = sim.against == "event_by" and "median_collapse_time" in fam.draws
    headers = [
        "cell",
        "cell coordinates",
        "closed form",
        "simulated at T ± se",
        "theory at T",
        "deviation / se at T",
        "largest |deviation| / se",
    ]
    headers += ["median: simulated (first t with share >= 1/2)", "median: theory"] if medians else []
    rep.lines += [
        f"### Theory: {sim.ylabel} over generations",
        "",
        "Closed forms declared by the family's theory overlays (analysis.theory.OVERLAYS), drawn only for "
        f"the cells where they hold (policies: {', '.join(sorted({p for c in curves for p in c.policies}))}; "
        "temperature 1 unless the form is tempered). Deviations are in standard errors of the simulated value "
        "(for a share of chains: the exact binomial test under the theory, as a normal quantile), at T and the "
        "largest over the recorded generations; a bound is checked one-sided. The largest of many deviations of "
        "a mean of skewed values (squared errors) passes 5 by chance far more often than one normal deviation "
        "would (about one sweep of 200 chains in ten for the Bernoulli MSE), so it is flagged only for shares.",
        "",
        md.table(headers, _summary_rows(table, fam.horizon, medians, sim.against == "event_by" or sim.share)),
        "",
        *note,
    ]
    name = f"theory_{sim.name}_{fam.tag}"
    csv = rep.out / "figures" / f"{name}.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(csv, index=False)
    rep.written.append(csv)
    shown = table[table["cell"].isin(list(dict.fromkeys(table["cell"]))[:_MAX_CELLS])]
    rep.figure(
        theory_curves_figure(shown, ylabel=sim.ylabel, title=f"{sim.ylabel}: simulation and closed forms"),
        name,
        f"{sim.ylabel} over generations: simulation (95% band) and closed forms (numbers: {name}.csv)",
    )


def overlay_sections(rep: Report, fam: FamilyRows) -> None:
    """Add the overlay figures and tables the family's declared overlays list (nothing otherwise).

    Parameters
    ----------
    rep : Report
        The report being written; its ``spec`` attribute (the folder's spec) gives the family fields.
    fam : FamilyRows
        One family's rows and declarations.
    """
    spec = rep.spec
    family = spec.get("family") if isinstance(spec.get("family"), dict) else {}
    if "theory_curves" in fam.draws:
        groups: dict[Simulated, list[Curve]] = {}
        for curve in overlay_curves(fam.info.theory_overlays):
            groups.setdefault(curve.simulated, []).append(curve)
        for sim, curves in groups.items():
            _curve_section(rep, fam, sim, curves, family)
    if "density_snapshots_2d" in fam.draws or "replayed_density_snapshots_2d" in fam.draws:
        snapshot_section(rep, fam, replay="density_snapshots_2d" not in fam.draws)
