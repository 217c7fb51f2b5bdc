"""Side tables (Family.side_metrics): per-item metrics become a long table of their own, next to
the trajectories part, and analysis.load_side reads only the parts of complete tasks."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

import analysis
from sweep.events import EventSet
from sweep.grid import cells
from sweep.runner import family_info
from sweep.spec import parse_spec
from sweep.store import Store
from sweep.task import Task, _column, run_task, side_tables

SPEC = {
    "name": "side",
    "seed": 2,
    "generations": 2,
    "replicates": 3,
    "block_size": 2,
    "record": {"every": 1},
    "family": {"name": "ngram", "order": 1, "sequence_length": 8, "tracked_words": 5},
    "events": {"perplexity_above": []},
    "grid": {"n": [16], "policy": ["replace"]},
}


def test_zero_width_rows_are_empty_lists():
    """A (rows, 0) metric is a column of empty lists (generation 0 has no generated sequences)."""
    column = _column([np.empty((2, 0)), np.arange(6.0).reshape(2, 3)])
    assert column.to_pylist() == [[], [], [0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]


def test_per_symbol_events_take_the_family_name():
    """A family's per-symbol event is named as it declares (word_lost), symbol_lost by default."""
    for name in ("symbol_lost", "word_lost"):
        events = EventSet(1, 5)
        events.add_symbols(np.array([3]), *(() if name == "symbol_lost" else (name,)))
        assert list(events.columns()["event"]) == [name]


def test_side_table_rows_and_reader_ignore_parts_of_unfinished_tasks(tmp_path):
    """One row per chain, recorded generation and sequence, the value as the family computed it;
    a side part whose trajectories part is missing (a task killed between the two writes) is not
    read."""
    spec = parse_spec(SPEC)
    grid = cells(spec)
    location = str(tmp_path / "side")
    Store(location).write_meta({"spec": spec.to_raw(), "family": family_info(spec)})
    run_task(spec, grid, 7, location, Task(0, 0, 2))
    sequences = analysis.load_side(location, "sequences")
    assert len(sequences) == 3 * 2 * 2  # 3 chains x generations 1, 2 x 16 / 8 sequences
    assert list(sequences.groupby(["replicate", "generation"])["sequence"].apply(list)) == [[0, 1]] * 6
    columns = {
        "replicate": np.array([0, 1, 0, 1]),
        "generation": np.array([0, 0, 1, 1]),
        "sequence_perplexity": [np.empty((2, 0)), np.array([[5.0, 6.0], [7.0, 8.0]])],
    }
    table = side_tables(spec, grid[0], 7, columns)["sequences"]
    assert table.column("perplexity").to_pylist() == [5.0, 6.0, 7.0, 8.0]
    assert table.column("replicate").to_pylist() == [0, 0, 1, 1] and table.column("sequence").to_pylist() == [
        0,
        1,
        0,
        1,
    ]
    orphan = table.slice(0, 1)
    Store(location).write_part("sequences", 0, "part-c00000-b0000005-0000006.parquet", pa.table(orphan))
    assert len(analysis.load_side(location, "sequences")) == 12
