"""The report's sample grids: the PNGs a run saved under ``<results>/samples/``, copied into the
report folder and laid out per cell as a markdown table of generations side by side.

The layout is the results folder's (docs/schema.md), whatever family wrote it::

    samples/cell=<c>/real.png                              real data, the truth
    samples/cell=<c>/replicate=<r>/generation-<g>.png      chain r's samples at generation g

A folder without ``samples/`` gets no section. The files are read through the results folder's
filesystem (a folder on object storage works too) and copied, so the report folder stands alone.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from analysis import _markdown as md
from analysis._cells import cell_labels
from analysis._report_context import FamilyRows, Report, few_cells, sorted_cells
from sweep.store import Store

__all__ = ["sample_files", "pick_generations", "samples_section"]

#: Chains shown per cell (rows of its table) and generations shown per chain (columns).
REPLICATES = 2
GENERATIONS = 8
#: Cells with a table; more would make the report a wall of images.
CELLS = 12

_CELL = re.compile(r"^cell=(\d+)$")
_REPLICATE = re.compile(r"^replicate=(\d+)$")
_GENERATION = re.compile(r"^generation-(\d+)\.png$")


def sample_files(results) -> dict[int, dict]:
    """The sample PNGs of a results folder, by cell: ``{cell: {"real": path or None,
    "chains": {replicate: {generation: path}}}}`` (paths on the folder's filesystem); ``{}``
    when there is no ``samples/`` folder. Names outside the layout (temporary files) are skipped."""
    store = Store(str(results))
    root = f"{store.root}/samples"
    try:
        infos = store.fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    except (OSError, pa.ArrowException):
        return {}
    found: dict[int, dict] = {}
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        parts = info.path[len(root) + 1 :].split("/")
        cell = _CELL.match(parts[0]) if parts else None
        if cell is None:
            continue
        entry = found.setdefault(int(cell.group(1)), {"real": None, "chains": {}})
        if parts[1:] == ["real.png"]:
            entry["real"] = info.path
        elif len(parts) == 3 and _REPLICATE.match(parts[1]) and _GENERATION.match(parts[2]):
            replicate = int(_REPLICATE.match(parts[1]).group(1))
            generation = int(_GENERATION.match(parts[2]).group(1))
            entry["chains"].setdefault(replicate, {})[generation] = info.path
    return {cell: entry for cell, entry in found.items() if entry["real"] or entry["chains"]}


def pick_generations(generations, limit: int = GENERATIONS) -> list[int]:
    """At most ``limit`` of the saved generations, always the first and the last, the others
    evenly spaced in rank (the saved ones are already log-spaced)."""
    generations = sorted(set(int(g) for g in generations))
    if len(generations) <= limit:
        return generations
    ranks = np.unique(np.round(np.linspace(0, len(generations) - 1, limit)).astype(int))
    return [generations[r] for r in ranks]


def _copy(fs: pafs.FileSystem, source: str, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with fs.open_input_stream(source) as stream:
        target.write_bytes(stream.read())
    return target


def samples_section(rep: Report, fam: FamilyRows, results) -> None:
    """A "Samples across generations" section: per cell, one row per shown chain, the real data
    then the saved generations; the PNGs are copied to ``<report>/samples/``."""
    found = sample_files(results) if results is not None else {}
    cells = [c for c in sorted_cells(fam.cells)["cell"] if int(c) in found]
    if not cells:
        return
    shown = cells if len(cells) <= CELLS else [c for c in few_cells(fam.cells, CELLS) if c in found]
    fs = Store(str(results)).fs
    labels = cell_labels(fam.cells)
    rep.lines += [
        "### Samples across generations",
        "",
        f"Each image is one chain's grid of samples at one generation, as the run saved it under "
        f"`samples/` (the first, log-spaced ones, the last); the first column is the real data. "
        f"At most {REPLICATES} chains per cell and {GENERATIONS} generations per chain are shown"
        + ("" if len(shown) == len(cells) else f", for {len(shown)} of the {len(cells)} cells")
        + ".",
        "",
    ]
    for cell in shown:
        entry = found[int(cell)]
        replicates = sorted(entry["chains"])[:REPLICATES]
        generations = pick_generations(g for r in replicates for g in entry["chains"][r])
        real = ""
        if entry["real"]:
            relative = f"samples/cell={cell}/real.png"
            rep.written.append(_copy(fs, entry["real"], rep.out / relative))
            real = f"![cell {cell}, real data]({relative})"
        rows = []
        for i, replicate in enumerate(replicates):
            row = [f"chain {replicate}", real if i == 0 else ""]
            for generation in generations:
                source = entry["chains"][replicate].get(generation)
                if source is None:
                    row.append("–")
                    continue
                relative = f"samples/cell={cell}/replicate={replicate}/generation-{generation}.png"
                rep.written.append(_copy(fs, source, rep.out / relative))
                row.append(f"![cell {cell}, chain {replicate}, generation {generation}]({relative})")
            rows.append(row)
        if not rows and real:
            rows.append(["–", real])
        rep.lines += [
            f"**Cell {cell}: {labels[int(cell)]}**",
            "",
            md.table(["chain", "real"] + [f"generation {g}" for g in generations], rows),
            "",
        ]
