"""Read a results folder written by ``sweep run`` into pandas.

Both readers go through :mod:`pyarrow.dataset`, so ``filters`` prune whole ``cell=<c>``
partitions and row groups before anything is read: a ten-million-row folder can be analysed
one cell or one generation at a time.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from sweep.errors import UsageError
from sweep.store import Store, plain_table

__all__ = ["load", "load_events", "read_metadata", "ResultsError"]


class ResultsError(ValueError):
    """A path that is not a readable results folder written by ``sweep run``."""


def _resolve(path: str) -> tuple[pafs.FileSystem, str]:
    try:
        store = Store(str(path))  # the same path-or-URI resolution the writer uses
    except UsageError as error:  # a URI pyarrow cannot open
        raise ResultsError(str(error)) from None
    return store.fs, store.root


def read_metadata(path: str) -> dict[str, Any]:
    """Return the parsed ``sweep.json`` of a results folder.

    Raises
    ------
    ResultsError
        If the folder has no ``sweep.json`` (it was not written by ``sweep run``).
    """
    fs, root = _resolve(path)
    info = fs.get_file_info(f"{root}/sweep.json")
    if info.type != pafs.FileType.File:
        raise ResultsError(
            f"results folder '{path}': expected a folder written by 'sweep run' (with sweep.json), "
            "got none; run 'sweep run SPEC' first or check the path"
        )
    with fs.open_input_stream(f"{root}/sweep.json") as stream:
        return json.loads(stream.read().decode())


def _filter_expression(filters: Any) -> ds.Expression | None:
    """Accept a pyarrow expression, or DNF tuples like ``[("n", "=", 100)]``."""
    if filters is None or isinstance(filters, ds.Expression):
        return filters
    import pyarrow.parquet as pq

    return pq.filters_to_expression(filters)


def _load_table(path: str, kind: str, filters: Any, columns: Sequence[str] | None) -> pd.DataFrame:
    read_metadata(path)
    fs, root = _resolve(path)
    base = f"{root}/{kind}"
    if fs.get_file_info(base).type != pafs.FileType.Directory:
        raise ResultsError(f"results folder '{path}': expected a '{kind}' folder, got none")
    dataset = ds.dataset(
        base,
        filesystem=fs,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([("cell", pa.int32())]), flavor="hive"),
        # A task writes to a dot-named temporary file and renames it when whole, so files of
        # tasks still running are never part of the data.
        ignore_prefixes=[".", "_"],
    )
    table = dataset.to_table(filter=_filter_expression(filters), columns=columns)
    # Coordinates are stored dictionary-encoded; give pandas plain columns, not categoricals,
    # so groupby and comparisons behave as on ordinary data.
    table = plain_table(table)
    frame = table.to_pandas()
    keys = (
        ("cell", "replicate", "generation")
        if kind == "trajectories"
        else ("cell", "replicate", "event", "threshold", "symbol")
    )
    sort = [c for c in keys if c in frame]
    return frame.sort_values(sort, kind="stable").reset_index(drop=True)


def load(path: str, filters: Any = None, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Load the trajectories of a results folder as a DataFrame.

    Parameters
    ----------
    path : str
        The results folder (``<out>/<name>``), a local path or a pyarrow filesystem URI.
    filters : list of tuple or pyarrow.dataset.Expression, optional
        Row filter, e.g. ``[("n", "=", 100), ("generation", ">=", 10)]``. Filters on ``cell``
        skip whole partitions.
    columns : sequence of str, optional
        Only these columns.

    Returns
    -------
    pandas.DataFrame
        One row per chain and recorded generation, sorted by cell, replicate and generation;
        columns as documented in ``docs/schema.md``.
    """
    return _load_table(path, "trajectories", filters, columns)


def load_events(path: str, filters: Any = None, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Load the events of a results folder (one row per chain and event) as a DataFrame.

    Takes the same arguments as :func:`load`; see ``docs/schema.md`` for the columns.
    """
    return _load_table(path, "events", filters, columns)
