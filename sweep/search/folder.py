"""A search's results folder: an ordinary sweep folder whose grid grows by one cell per new trial.

``sweep.json`` holds, as for ``sweep run``, the ``spec`` (the base spec with one grid part per
cell, in cell order, so ``sweep replay`` and ``analysis.load`` read the folder as any other), the
``cells`` with their block sizes and keys (each with the ``trial`` that asked for it), and a
``search`` entry: the base spec and search section the folder was started with (a rerun with
others is refused unless ``--overwrite``) and the trial budget. The driver alone writes it,
atomically, before any task of a new cell starts: a part on disk always has its cell recorded.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import replace
from typing import Any

from sweep import __version__
from sweep.errors import UsageError
from sweep.grid import Cell
from sweep.grid import cells as grid_cells
from sweep.runner import family_info, library_versions
from sweep.search.setup import SearchSetup
from sweep.spec import SweepSpec
from sweep.store import Store


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _difference(now: Any, before: Any, path: str) -> str:
    if isinstance(now, dict) and isinstance(before, dict):
        for key in sorted(set(now) | set(before), key=str):
            if now.get(key) != before.get(key):
                return _difference(now.get(key), before.get(key), f"{path}.{key}")
    return f"{path}: {before!r} in the folder, {now!r} now"


class SearchFolder:
    """The cells of a search folder, and its sweep.json."""

    def __init__(self, setup: SearchSetup, location: str):
        self.setup, self.location = setup, location
        self.store = Store(location)
        self.meta: dict[str, Any] | None = None
        self.parts: list[dict[str, Any]] = []
        self.trials: list[int] = []  # the trial that asked for each cell
        self.spec: SweepSpec | None = None
        self.cells: list[Cell] = []
        self.keys: dict[int, int] = {}  # cell key -> cell index

    def check(self, *, overwrite: bool = False) -> dict[str, Any] | None:
        """Check, without writing, that the folder may take this search; return its sweep.json
        (None for a new folder or one ``overwrite`` replaces) and load its cells."""
        where = f"results folder '{self.location}'"
        try:
            meta = self.store.read_meta()
            if overwrite:
                return None
            if meta is None:
                if self.store.exists() and not self.store.is_empty():
                    raise UsageError(
                        f"{where}: expected an empty folder or one written by 'sweep search', got other "
                        "files; pass --overwrite to replace them or choose another --out"
                    )
                return None
        except OSError as error:
            raise UsageError(f"{where}: expected a readable location, got {' '.join(str(error).split())}") from None
        search = meta.get("search")
        if not isinstance(search, dict):
            raise UsageError(
                f"{where} holds a sweep written by 'sweep run', not a search; pass --overwrite to replace "
                "it, or choose another --out"
            )
        now = {"spec": self.setup.base_raw, "search": self.setup.search.to_raw(with_trials=False)}
        before = {"spec": search.get("base"), "search": search.get("spec")}
        if now != before:
            raise UsageError(
                f"{where} holds a different search ({_difference(now, before, 'search')[7:]}); pass "
                "--overwrite to replace it, or choose another --out"
            )
        self.meta = meta
        self._load(meta)
        return meta

    def _load(self, meta: dict[str, Any]) -> None:
        recorded = meta.get("search", {}).get("cells") or []
        self.parts = [c["part"] for c in recorded]
        self.trials = [int(c["trial"]) for c in recorded]
        sizes = [c.get("block_size") for c in meta.get("cells") or []]
        self._rebuild(sizes)
        if [c.get("cell_key") for c in meta.get("cells") or []] != [c.key for c in self.cells]:
            raise UsageError(
                f"results folder '{self.location}': its cells were keyed differently (another "
                "collapse-sweep version?); pass --overwrite to recompute it"
            )

    def _rebuild(self, sizes: list[int] | None = None) -> None:
        if not self.parts:
            self.spec, self.cells, self.keys = None, [], {}
            return
        self.spec = self.setup.folder_spec(self.parts)
        if sizes is None:
            sizes = [c.block_size for c in self.cells]
        built = grid_cells(self.spec, block_sizes=sizes)
        self.cells = [replace(cell, trial=trial) for cell, trial in zip(built, self.trials)]
        self.keys = {cell.key: cell.index for cell in self.cells}

    def begin(self, root_entropy: int | None, budget: int) -> dict[str, Any]:
        """Create or update sweep.json at the start of a run (status running)."""
        meta = self.meta
        if meta is None:
            self.store.clear()
            seed = self.setup.base.seed
            meta = {
                "root_entropy": str(seed if seed is not None else root_entropy),
                "package_version": __version__,
                "created": _now(),
                "library_versions": library_versions(),
            }
        versions = list(meta.get("package_versions", []))
        meta.update(
            status="running",
            started=_now(),
            finished=None,
            family=family_info(self.setup.base),
            package_versions=versions + [__version__] * (__version__ not in versions),
        )
        meta["search"] = {
            **meta.get("search", {}),
            "base": self.setup.base_raw,
            "spec": self.setup.search.to_raw(with_trials=False),
            "trials": budget,
        }
        self.meta = meta
        self.write()
        return meta

    def has_cell(self, part: dict[str, Any]) -> bool:
        """Whether a cell with these coordinates exists already."""
        return grid_cells(self.setup.folder_spec([part]))[0].key in self.keys

    def cell_for(self, part: dict[str, Any], trial: int) -> int:
        """The cell of a trial's coordinates: an existing one with the same coordinates (same key,
        so the same chains), or a new one recorded in sweep.json before anything runs."""
        key = grid_cells(self.setup.folder_spec([part]))[0].key
        if key in self.keys:
            return self.keys[key]
        self.parts.append(part)
        self.trials.append(trial)
        self._rebuild([c.block_size for c in self.cells])
        self.write()
        return self.keys[key]

    def write(self) -> None:
        meta = self.meta
        base = dict(self.setup.base_raw)
        meta["spec"] = {**base, "grid": list(self.parts)}
        meta["cells"] = [
            {
                "cell": c.index,
                "trial": c.trial,
                "n": c.n,
                "policy": c.policy.label,
                "cell_key": c.key,
                "block_size": c.block_size,
                "blocks": c.blocks,
                "label": c.label,
            }
            for c in self.cells
        ]
        meta["chains"] = len(self.cells) * self.setup.search.replicates
        meta["search"]["cells"] = [
            {"cell": i, "trial": t, "part": p} for i, (t, p) in enumerate(zip(self.trials, self.parts))
        ]
        try:
            self.store.write_meta(meta)
        except OSError as error:
            raise UsageError(
                f"output folder '{self.location}': expected a writable location, got {' '.join(str(error).split())}"
            ) from None

    def finish(self, status: str, **extra: Any) -> None:
        self.meta.update(status=status, finished=_now(), **extra)
        self.write()
