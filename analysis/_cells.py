"""Cell coordinates shared by every analysis table, column checks and cell labels.

Every per-cell result carries the cell coordinates of ``docs/schema.md`` that are present in its
input, in a fixed order, so tables from different functions can be merged on ``cell``.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

# The order in which coordinates appear in every output table.
COORDINATES = ("family", "cell", "cell_key", "n", "policy", "policy_kind", "keep", "synthetic", "real")


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
    """1-D rows of the gaussian family: the only ones its closed-form theory describes (a mixture
    refitted by EM, or a KDE, has a float 'var' too)."""
    family_ok = "family" not in frame or bool((frame["family"].astype(str) == "gaussian").all())
    return family_ok and is_one_d(frame)


def coordinate_columns(frame: pd.DataFrame) -> list[str]:
    """The cell coordinates present in ``frame``, in the canonical order."""
    return [c for c in COORDINATES if c in frame.columns]


def cell_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per cell with its coordinates, indexed by ``cell`` (kept as a column too).

    Grouping on ``cell`` alone (not on every coordinate) matters: accumulate policies store
    ``keep = NaN``, and pandas drops NaN group keys by default.
    """
    require_columns(frame, ["cell"], "table")
    coords = coordinate_columns(frame)
    table = frame[coords].drop_duplicates("cell").set_index("cell", drop=False)
    return table.sort_index()


def cell_labels(cells: pd.DataFrame) -> dict[int, str]:
    """Legend labels like ``"n=100, replace"``, one per cell.

    Coordinates beyond ``n`` and ``policy`` are named only when they differ between the cells
    given (a folder with two families gets ``"gaussian, n=100, replace"``).
    """
    cells = cells.drop_duplicates("cell")
    labels = {}
    show_family = "family" in cells and cells["family"].nunique() > 1
    for row in cells.itertuples(index=False):
        parts = []
        if show_family:
            parts.append(str(row.family))
        if hasattr(row, "n"):
            parts.append(f"n={int(row.n)}")
        if hasattr(row, "policy"):
            parts.append(str(row.policy))
        labels[int(row.cell)] = ", ".join(parts) if parts else f"cell {int(row.cell)}"
    return labels


def group_columns(frame: pd.DataFrame, by: str | Iterable[str]) -> list[str]:
    """Columns to group cells into lines of a rate fit: ``family`` (when present) plus ``by``."""
    by = [by] if isinstance(by, str) else list(by)
    require_columns(frame, by, "table")
    return (["family"] if "family" in frame and "family" not in by else []) + by


def is_replace(cells: pd.DataFrame) -> pd.Series:
    """Whether each cell runs the all-synthetic ``replace`` policy (where closed forms hold)."""
    if "policy_kind" in cells:
        return cells["policy_kind"].astype(str).eq("replace")
    if "policy" in cells:
        return cells["policy"].astype(str).eq("replace")
    return pd.Series(False, index=cells.index)


def as_generations(values, what: str = "generations") -> np.ndarray:
    """Validate a list of generations (non-negative integers) and return it as an int array."""
    array = np.atleast_1d(np.asarray(values))
    if array.size == 0:
        raise ValueError(f"{what} must name at least one generation, got an empty list")
    if not np.issubdtype(array.dtype, np.number) or np.any(array < 0) or np.any(array != np.round(array)):
        raise ValueError(f"{what} must be non-negative integers, got {values!r}")
    return array.astype(np.int64)
