"""Read a search spec file: the base sweep (one cell) and its validated ``search`` section."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from sweep.errors import SpecError
from sweep.families import FamilyLoadError, resolve_family
from sweep.search.space import cell_part, realised
from sweep.search.spec import SearchSpec, _objective, parse_search, split_spec
from sweep.spec import SweepSpec, apply_overrides, parse_spec, read_raw


@dataclass(frozen=True)
class SearchSetup:
    """A validated search: the base spec, whose single cell fixes every coordinate the search does
    not vary, and the search section."""

    base: SweepSpec
    search: SearchSpec

    @property
    def name(self) -> str:
        return self.base.name

    @cached_property
    def base_raw(self) -> dict[str, Any]:
        return self.base.to_raw()

    def part(self, coords: dict[str, Any]) -> dict[str, Any]:
        """The one-cell grid part of a trial's coordinates."""
        return cell_part(self.base.grid.points[0], coords)

    def realised(self, coords: dict[str, Any]) -> dict[str, float]:
        """A trial's coordinates as its cell realises them (fractions rounded to whole samples)."""
        return realised(self.base.grid.points[0], coords)

    def folder_spec(self, parts: list[dict[str, Any]]) -> SweepSpec:
        """The sweep spec of a search folder: the base with one grid part per cell (replay and the
        readers see an ordinary sweep whose grid is the trials' cells)."""
        return parse_spec({**self.base_raw, "grid": list(parts)})


def _family_class(raw: dict[str, Any]):
    family = raw.get("family")
    try:
        return resolve_family(family.get("name")) if isinstance(family, dict) else None
    except FamilyLoadError:
        return None  # parse_spec names the problem


def parse_search_spec(raw: dict[str, Any]) -> SearchSetup:
    """Validate a search spec mapping (as read from YAML).

    Raises
    ------
    SpecError
        Naming the field, what was expected and what was given.
    """
    family = _family_class(raw)
    base_raw, search_raw = split_spec(raw, family)
    # Objectives name events; check them against the family before the base spec (to which the
    # objectives' thresholds were added) is parsed, so that the error names the objective.
    objectives = search_raw.get("objectives") if isinstance(search_raw, dict) else None
    if family is not None and isinstance(objectives, dict):
        for name, value in objectives.items():
            if isinstance(value, dict) and "event" in value:
                _objective(str(name), value, f"search.objectives.{name}", family)
    base = parse_spec(base_raw)
    if len(base.grid.points) != 1:
        raise SpecError(
            "grid",
            "one cell: the coordinates the search keeps fixed (it varies search.parameters)",
            f"{len(base.grid.points)} cells",
            raw=True,
        )
    search = parse_search(search_raw, base, base.family_class)
    setup = SearchSetup(base=base, search=search)
    _check_corners(setup)
    return setup


def _check_corners(setup: SearchSetup) -> None:
    """Every parameter at its low end, then at its high end, must make a cell the spec accepts
    (a family's cross-field rules, e.g. n >= dim + 1, or the Gaussian's exact path and subsampling)."""
    params = setup.search.parameters
    for end in ("low", "high"):
        coords = {}
        for p in params:
            value = getattr(p, end)
            coords[p.name] = (0.0 if end == "low" else 1.0) if p.share else value
        if any(p.share for p in params):
            from sweep.search.space import resolve

            coords = resolve({p.sampled_name: coords[p.name] for p in params}, params)
        try:
            setup.folder_spec([setup.part(coords)])
        except SpecError as error:
            names = ", ".join(p.name for p in params)
            raise SpecError(
                f"search.parameters.{params[0].name}",
                f"ranges whose every value the spec accepts "
                f"(at the {end} end of {names}: {error.field}: expected {error.expected}, got {error.got})",
                ", ".join(f"{k} = {v:g}" for k, v in coords.items()),
                raw=True,
            ) from None


def load_search_spec(path: str | Path, overrides: Sequence[str] = ()) -> SearchSetup:
    """Read, override (``--set``) and validate a search spec file."""
    return parse_search_spec(apply_overrides(read_raw(path), overrides))
