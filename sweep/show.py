"""``sweep show``: a read-only summary of a results folder."""

from __future__ import annotations

import datetime as _dt

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sweep.errors import UsageError
from sweep.store import Store, parse_part_name


def _duration(meta: dict) -> str:
    try:
        start = _dt.datetime.fromisoformat(meta["started"])
        end = _dt.datetime.fromisoformat(meta["finished"])
    except (KeyError, TypeError, ValueError):
        return "unfinished"
    return f"{(end - start).total_seconds():.0f} s"


def summarize(location: str) -> str:
    """A few lines: the sweep, then one line per cell with chains done and rows."""
    store = Store(location)
    meta = store.read_meta()
    if meta is None:
        raise UsageError(
            f"results folder '{location}': expected a folder written by 'sweep run' (with sweep.json), got none"
        )
    spec = meta["spec"]
    chains_done: dict[int, int] = {}
    rows: dict[int, int] = {}
    selector = pafs.FileSelector(f"{store.root}/trajectories", allow_not_found=True, recursive=True)
    for info in store.fs.get_file_info(selector):
        key = parse_part_name(info.base_name)
        if info.type != pafs.FileType.File or key is None:
            continue
        cell, first, stop = key
        try:
            with store.fs.open_input_file(info.path) as handle:
                rows[cell] = rows.get(cell, 0) + pq.read_metadata(handle).num_rows
        except OSError:
            continue
        size = meta["cells"][cell]["block_size"] if cell < len(meta["cells"]) else 0
        chains_done[cell] = chains_done.get(cell, 0) + min(stop * size, spec["replicates"]) - first * size
    total = sum(chains_done.values())
    lines = [
        f"{spec['name']}: family {spec['family']['name']}, {spec['generations']} generations, "
        f"seed {meta['root_entropy']}, status {meta.get('status', '?')}, run time {_duration(meta)}",
        f"chains done {total} of {meta['chains']}, trajectory rows {sum(rows.values())}",
    ]
    for cell in meta["cells"]:
        index = cell["cell"]
        lines.append(
            f"  cell {index}: n={cell['n']} policy={cell['policy']}: "
            f"{chains_done.get(index, 0)}/{spec['replicates']} chains, {rows.get(index, 0)} rows"
        )
    for failure in meta.get("failures") or []:
        lines.append(f"  failed: cell {failure['cell']} replicates {failure['replicates']}: {failure['error']}")
    if meta.get("stopped"):
        lines.append(f"  stopped early: {meta['stopped']}; rerun to compute the rest")
    return "\n".join(lines)
