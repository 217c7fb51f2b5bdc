"""Cell coordinates shared by every analysis table, column checks and cell labels.

Every per-cell result carries the cell coordinates of ``docs/schema.md`` that are present in its
input, in a fixed order, so tables from different functions can be merged on ``cell``. The
coordinates are the fixed ones (:data:`FIXED_COORDINATES`) plus every grid axis column present:
``temperature`` and one ``family_<field>`` column per family field the grid sweeps. Analyses
treat every axis like ``n`` and ``policy``: results are per cell, lines of a rate fit are the
combinations of every axis but ``n``, and labels name every axis that varies.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

# The order in which coordinates appear in every output table; axis columns follow.
FIXED_COORDINATES = ("family", "cell", "cell_key", "n", "policy", "policy_kind", "keep", "synthetic", "real")
#: Axis columns besides n and policy: ``temperature`` (always written), ``family_<field>``.
TEMPERATURE = "temperature"
FAMILY_AXIS_PREFIX = "family_"


def require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise ``ValueError`` naming the columns ``frame`` lacks, if any.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table handed to an analysis function.
    columns : iterable of str
        Columns that function needs.
    what : str
        How to name the table in the message, e.g. ``"events"``.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{what} lacks column(s) {missing}; expected the columns of docs/schema.md "
            f"(got {sorted(map(str, frame.columns))}); load it with analysis.load / analysis.load_events"
        )


def is_one_d(frame: pd.DataFrame) -> bool:
    """Whether ``frame`` holds one float variance per row (1-D gaussian, gmm1d or kde), no NaN."""
    return "var" in frame and pd.api.types.is_float_dtype(frame["var"]) and bool(frame["var"].notna().all())


def is_gaussian_1d(frame: pd.DataFrame) -> bool:
    """1-D rows whose family declares the ``gaussian_log_variance`` overlay (built-in declarations
    of the ``family`` column; a frame without one is taken for Gaussian): the only rows the 1-D
    Gaussian closed forms describe (a mixture refitted by EM, or a KDE, has a float 'var' too);
    tempered rows (temperature != 1) are not described by them either."""
    if TEMPERATURE in frame and not frame[TEMPERATURE].astype(float).eq(1.0).all():
        return False
    if "family" in frame and len(frame):
        from analysis._declarations import for_frame

        declared = for_frame(frame)
        if declared is None or "gaussian_log_variance" not in declared.theory_overlays:
            return False
    return is_one_d(frame)


def axis_columns(frame: pd.DataFrame) -> list[str]:
    """The grid-axis columns of ``frame`` besides ``n`` and ``policy``: ``temperature`` and every
    ``family_<field>`` column, in the frame's order."""
    return [
        str(c)
        for c in frame.columns
        if c == TEMPERATURE or (str(c).startswith(FAMILY_AXIS_PREFIX) and c not in FIXED_COORDINATES)
    ]


def coordinate_columns(frame: pd.DataFrame) -> list[str]:
    """The cell coordinates present in ``frame``: the fixed ones in canonical order, then the axes."""
    return [c for c in FIXED_COORDINATES if c in frame.columns] + axis_columns(frame)


def axis_name(column: str) -> str:
    """How labels name an axis column: ``family_k`` -> ``k``, ``temperature`` -> ``temperature``."""
    return column[len(FAMILY_AXIS_PREFIX) :] if column.startswith(FAMILY_AXIS_PREFIX) else column


def format_value(value) -> str:
    """An axis value in a label: ``0.5``, ``3``, ``kmeans``."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def varying(frame: pd.DataFrame, columns: Iterable[str]) -> list[str]:
    """Those of ``columns`` whose value differs between the rows of ``frame`` (NaN counts as a value)."""
    return [c for c in columns if c in frame and frame[c].astype(str).nunique() > 1]


def cell_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per cell with its coordinates, indexed by ``cell`` (kept as a column too).

    Grouping on ``cell`` alone (not on every coordinate) matters: accumulate policies store
    ``keep = NaN``, and pandas drops NaN group keys by default.
    """
    require_columns(frame, ["cell"], "table")
    coords = coordinate_columns(frame)
    table = frame[coords].drop_duplicates("cell").set_index("cell", drop=False)
    return table.sort_index()


def pick_cells(frame: pd.DataFrame, cells, limit: int, what: str = "panels") -> pd.DataFrame:
    """The :func:`cell_table` rows of ``cells`` (default every cell) for a figure that draws at
    most ``limit`` of them; an unknown cell or too many is a ValueError naming them.

    ``what`` is what each cell becomes in the figure, for the message ("panels", "fans per panel").
    """
    table = cell_table(frame)
    if cells is not None:
        unknown = sorted(set(cells) - set(table.index))
        if unknown:
            raise ValueError(f"cells {unknown} are not in the trajectories; cells present: {table.index.tolist()}")
        table = table.loc[list(cells)]
    if len(table) > limit:
        raise ValueError(f"{len(table)} cells would make {len(table)} {what} (at most {limit}); pass cells=[...]")
    return table


def label(row: dict, shown: Iterable[str]) -> str:
    """``"n=100, replace, temperature=0.5, k=3"``: the ``shown`` columns of one row, in order
    (``family`` and ``policy`` by value, ``n`` and the axes as ``name=value``)."""
    parts = []
    for column in shown:
        value = row[column]
        parts.append(str(value) if column in ("family", "policy") else f"{axis_name(column)}={format_value(value)}")
    return ", ".join(parts)


def cell_labels(cells: pd.DataFrame) -> dict[int, str]:
    """Legend labels like ``"n=100, replace, temperature=0.5, k=3"``, one per cell.

    ``n`` and ``policy`` are always named; ``family``, ``temperature`` and the family-field axes
    only when they differ between the cells given.
    """
    cells = cells.drop_duplicates("cell")
    shown = [c for c in ("n", "policy") if c in cells]
    shown = varying(cells, ["family"]) + shown + varying(cells, axis_columns(cells))
    return {int(row["cell"]): label(row, shown) or f"cell {int(row['cell'])}" for row in cells.to_dict("records")}


def group_columns(frame: pd.DataFrame, by: str | Iterable[str]) -> list[str]:
    """Columns to group cells into lines of a rate fit: ``family`` (when present), ``by``, then
    every other axis column (``temperature``, ``family_<field>``), so that a line runs over ``n``
    within one combination of all the other axes."""
    by = [by] if isinstance(by, str) else list(by)
    require_columns(frame, by, "table")
    others = [c for c in axis_columns(frame) if c not in by]
    return (["family"] if "family" in frame and "family" not in by else []) + by + others


def group_labels(frame: pd.DataFrame, keys: list[str]) -> dict[tuple, str]:
    """A label per group of ``frame.groupby(keys)`` (keys as tuples): ``policy`` always, the
    other keys only where they vary between the groups (``"replace, temperature=0.5"``)."""
    groups = frame[keys].drop_duplicates()
    shown = [k for k in keys if k == "policy" or k in varying(groups, [k])]
    return {tuple(row[k] for k in keys): label(row, shown) or "all cells" for row in groups.to_dict("records")}


def is_replace(cells: pd.DataFrame) -> pd.Series:
    """Whether each cell runs the all-synthetic ``replace`` policy (where closed forms hold)."""
    if "policy_kind" in cells:
        return cells["policy_kind"].astype(str).eq("replace")
    if "policy" in cells:
        return cells["policy"].astype(str).eq("replace")
    return pd.Series(False, index=cells.index)


def theory_holds(cells: pd.DataFrame) -> pd.Series:
    """Whether each cell is where the closed forms of :mod:`analysis.theory` hold: ``replace``
    at temperature 1 (a tempered model drifts by its temperature as well)."""
    holds = is_replace(cells)
    if TEMPERATURE in cells:
        holds &= cells[TEMPERATURE].astype(float).eq(1.0)
    return holds


def as_generations(values, what: str = "generations") -> np.ndarray:
    """Validate a list of generations (non-negative integers) and return it as an int array."""
    array = np.atleast_1d(np.asarray(values))
    if array.size == 0:
        raise ValueError(f"{what} must name at least one generation, got an empty list")
    if not np.issubdtype(array.dtype, np.number) or np.any(array < 0) or np.any(array != np.round(array)):
        raise ValueError(f"{what} must be non-negative integers, got {values!r}")
    return array.astype(np.int64)
