"""The report's working parts: the output being written, one family's rows with what its
declarations let the report draw, and how cells are ordered, picked and named in files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import _markdown as md
from analysis import figures, theory
from analysis._cells import cell_table, group_columns, is_one_d, theory_holds
from analysis._declarations import Declarations

_ESTIMATOR_KEYS = ("fit", "estimator", "variance")


def _estimator_value(value: Any) -> str | None:
    value = str(value).lower()
    return "ml" if value in ("ml", "mle", "biased") else "unbiased" if value == "unbiased" else None


def estimator_of(spec: dict) -> tuple[str, str]:
    """The Gaussian variance fit named in the spec, and how the report knows it."""
    family = spec.get("family") if isinstance(spec.get("family"), dict) else {}
    for key in _ESTIMATOR_KEYS:
        value = _estimator_value(family.get(key, ""))
        if value is not None:
            return value, f"{'ML' if value == 'ml' else 'unbiased'} (family.{key} = {family[key]!r})"
    return "unbiased", "unbiased (assumed: sweep.json does not name the fit)"


def estimators(cells: pd.DataFrame, default: str) -> pd.Series:
    """The variance fit of each cell: the spec's, or the cell's own where the grid sweeps it."""
    for key in _ESTIMATOR_KEYS:
        column = f"family_{key}"
        if column in cells:
            return cells[column].map(lambda v: _estimator_value(v) or default)
    return pd.Series(default, index=cells.index)


def single(values: pd.Series) -> str | None:
    """The one value of ``values``, or None when they differ (a theory line needs one)."""
    distinct = values.unique()
    return str(distinct[0]) if len(distinct) == 1 else None


def safe(text: str) -> str:
    """A file-name piece: a family named ``mypkg.mod:Cls`` becomes ``mypkg.mod_Cls``."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_")


def line_columns(cells: pd.DataFrame) -> list[str]:
    """The columns whose combinations make the lines of a rate fit (policy and every axis but n)."""
    return [c for c in group_columns(cells, "policy") if c != "family"]


def sorted_cells(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values(line_columns(table) + ["n"], kind="stable")


def few_cells(cells: pd.DataFrame, limit: int, per_line: str = "ends") -> list[int]:
    """Cells to draw when there are too many: per line (policy and other axes) the smallest (and
    largest) n."""
    # where the theory holds first: the cells it describes, and where collapse shows most.
    keys = line_columns(cells)
    cells = cells.assign(_other=~theory_holds(cells)).sort_values(["_other"] + keys + ["n"], kind="stable")
    if per_line == "ends" and len(cells) <= limit:
        return cells["cell"].tolist()
    pick = []
    for _, rows in cells.groupby(keys, sort=False, dropna=False):
        pick += [rows["cell"].iloc[0]] + ([rows["cell"].iloc[-1]] if per_line == "ends" and len(rows) > 1 else [])
    return pick[:limit]


class Report:
    """Accumulates markdown sections and written files for one results folder."""

    def __init__(self, out: Path, n_boot: int, seed: int):
        self.out, self.n_boot, self.seed = out, n_boot, seed
        self.lines: list[str] = []
        self.written: list[Path] = []
        # Set by write_report: the results folder (side tables, sample grids and replays are read
        # from it), the sweep's spec (family fields) and whether to fit the censored regressions.
        self.results: str | None = None
        self.spec: dict = {}
        self.regression = True

    def figure(self, fig, name: str, caption: str) -> None:
        self.written += figures.save_figure(fig, self.out / "figures" / name)
        self.lines += [f"![{caption}](figures/{name}.png)", "", f"*{caption}*", ""]


class FamilyRows:
    """One family's rows and what its declarations let the report draw."""

    def __init__(self, info: Declarations, traj: pd.DataFrame, events: pd.DataFrame, horizon: int, estimator: str):
        self.info, self.traj, self.events, self.horizon = info, traj, events, horizon
        self.tag = safe(info.name)
        self.draws = theory.overlay_draws(info.theory_overlays)
        self.cells = cell_table(traj)
        self.holds = theory_holds(self.cells)
        self.estimators = estimators(self.cells, estimator)
        self.one_d = is_one_d(traj)

    def estimator_for(self, cells) -> str | None:
        """The variance fit shared by ``cells`` where the theory holds, or None."""
        chosen = self.estimators[[c for c in cells if self.holds[c]]]
        return single(chosen) if len(chosen) else None


#: Bootstrap resamples left out of a slope's CI because some median in them is infinite.
DROPPED = "resamples dropped (a median > T)"


def dropped_share(share: float) -> str:
    """A dropped share as a percentage with three significant digits (0.3% must not read as 0%)."""
    return "–" if share is None or np.isnan(share) else f"{md.number(100 * share)}%"
