"""Sweep specs: read a YAML file (safely), apply ``--set`` overrides, validate into frozen objects.

The whole spec is validated here, in the driver, before any task starts or anything is written.
Every problem is a :class:`~sweep.errors.SpecError` naming the field, the expectation and the value.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from sweep import fields
from sweep.errors import SpecError, UsageError, describe
from sweep.families import REGISTRY, Family
from sweep.policies import Policy, parse_policy

TOP_FIELDS = ("name", "seed", "generations", "replicates", "block_size", "family", "grid", "record", "events")
_NO_EVENTS = {"spread_below": (), "distance_above": (), "symbols": False, "weight_below": (), "modes_closer": ()}
DEFAULT_EVENTS = {
    "gaussian": {**_NO_EVENTS, "spread_below": (0.5, 0.1, 0.01)},
    "categorical": {**_NO_EVENTS, "symbols": True},
    "gmm1d": {**_NO_EVENTS, "spread_below": (0.5, 0.1), "weight_below": (0.05,), "modes_closer": (0.5,)},
    "kde": {**_NO_EVENTS, "spread_below": (0.5, 0.1)},
}


@dataclass(frozen=True)
class GridPart:
    """One cartesian product of sample sizes and policies; ``path`` names it in errors."""

    n: tuple[int, ...]
    policies: tuple[Policy, ...]
    path: str = "grid"


@dataclass(frozen=True)
class Grid:
    """The swept axes: one cartesian product (n x policy), or a union of several.

    A union lets expensive corners be left out, e.g. accumulate_subsample (which keeps every
    sample) only at the smaller n.
    """

    parts: tuple[GridPart, ...]

    def points(self) -> list[tuple[int, Policy]]:
        """Every (n, policy) cell in a fixed order: part by part, n major, policy minor."""
        return [(n, policy) for part in self.parts for n in part.n for policy in part.policies]

    def n_entries(self) -> list[tuple[str, int]]:
        """(field path, n) for every listed sample size, for error messages."""
        return [(f"{part.path}.n[{i}]", n) for part in self.parts for i, n in enumerate(part.n)]

    def policy_entries(self) -> list[tuple[str, Policy]]:
        return [(f"{part.path}.policy[{i}]", p) for part in self.parts for i, p in enumerate(part.policies)]

    def to_raw(self) -> Any:
        raw = [{"n": list(part.n), "policy": [p.to_raw() for p in part.policies]} for part in self.parts]
        return raw[0] if len(raw) == 1 and self.parts[0].path == "grid" else raw


@dataclass(frozen=True)
class Record:
    """Which generations the trajectories keep: every ``every``-th, or dense then log-spaced."""

    every: int | None = None
    dense_until: int = 100
    log_points: int = 100

    def generations(self, horizon: int) -> np.ndarray:
        """Sorted recorded generations in [0, horizon], always with 0 and the horizon."""
        if self.every is not None:
            kept = np.arange(0, horizon + 1, self.every)
        else:
            dense = np.arange(0, min(self.dense_until, horizon) + 1)
            log = np.geomspace(max(self.dense_until, 1), horizon, self.log_points) if horizon > self.dense_until else []
            kept = np.concatenate([dense, np.round(log)])
        return np.unique(np.append(kept, horizon).astype(np.int64))


@dataclass(frozen=True)
class Events:
    """Thresholds checked at every generation."""

    spread_below: tuple[float, ...]
    distance_above: tuple[float, ...]
    symbols: bool
    weight_below: tuple[float, ...] = ()
    modes_closer: tuple[float, ...] = ()


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep; build it with :func:`load_spec` or :func:`parse_spec`."""

    name: str
    seed: int | None
    generations: int
    replicates: int
    block_size: int | None
    family_name: str
    family_spec: Any
    grid: Grid
    record: Record
    events: Events

    @cached_property
    def family(self) -> Family:
        return REGISTRY[self.family_name](self.family_spec)

    def to_raw(self) -> dict[str, Any]:
        """The resolved spec (defaults filled in) as plain data, for sweep.json and comparison."""
        record = {"every": self.record.every} if self.record.every else {
            "dense_until": self.record.dense_until, "log_points": self.record.log_points}
        return {
            "name": self.name,
            "seed": self.seed,
            "generations": self.generations,
            "replicates": self.replicates,
            "block_size": self.block_size,
            "family": self.family_spec.to_raw(),
            "grid": self.grid.to_raw(),
            "record": record,
            "events": {
                "spread_below": list(self.events.spread_below),
                "distance_above": list(self.events.distance_above),
                "symbols": self.events.symbols,
                "weight_below": list(self.events.weight_below),
                "modes_closer": list(self.events.modes_closer),
            },
        }


def _name(value: Any, path: str) -> str:
    ok = isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", value)
    if not ok:
        raise SpecError(path, "a name of letters, digits, '_', '.', '-' (it names the results folder)", value)
    return value


def _family(value: Any, path: str) -> tuple[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(path, f"a mapping with a name among {', '.join(REGISTRY)}", value)
    name = value.get("name")
    if name not in REGISTRY:
        raise SpecError(f"{path}.name", f"one of {', '.join(REGISTRY)}", name)
    cls = REGISTRY[name]
    known = ("name",) + cls.spec_fields
    section = fields.Section(value, path, known)
    return name, cls.parse_spec(section)


def _grid_part(value: Any, path: str) -> GridPart:
    section = fields.Section(value, path, ("n", "policy"))
    n = section.take("n", fields.listed(fields.integer(1, 10**9)))
    policies = section.take("policy", fields.listed(parse_policy), (Policy("replace"),))
    for field, values in (("n", n), ("policy", policies)):
        if len(set(values)) != len(values):
            raise SpecError(section.sub(field), "distinct values", [getattr(v, "label", v) for v in values])
    return GridPart(n=n, policies=policies, path=path)


def _grid(value: Any, path: str) -> Grid:
    if isinstance(value, list):
        if not value:
            raise SpecError(path, "a mapping {n: [...], policy: [...]} or a non-empty list of them", value)
        grid = Grid(tuple(_grid_part(v, f"{path}[{i}]") for i, v in enumerate(value)))
    else:
        grid = Grid((_grid_part(value, path),))
    seen: set[tuple[int, Policy]] = set()
    for n, policy in grid.points():
        if (n, policy) in seen:
            raise SpecError(path, "each (n, policy) cell at most once", f"n={n}, {policy.label} twice", raw=True)
        seen.add((n, policy))
    return grid


def _record(value: Any, path: str, horizon: int) -> Record:
    section = fields.Section(value, path, ("every", "dense_until", "log_points"))
    every = section.take("every", fields.integer(1, None), None)
    if every is not None and (section.has("dense_until") or section.has("log_points")):
        raise SpecError(path, "either 'every' or 'dense_until'/'log_points', not both", value)
    return Record(
        every=every,
        dense_until=section.take("dense_until", fields.integer(0, None), 100),
        log_points=section.take("log_points", fields.integer(2, 100_000), 100),
    )


def _events(value: Any, path: str, family: str) -> Events:
    default = DEFAULT_EVENTS[family]
    section = fields.Section(value or {}, path, tuple(_NO_EVENTS))
    positive = fields.number(0.0, None, low_open=True)
    thresholds = fields.listed(positive, nonempty=False)
    return Events(
        weight_below=tuple(sorted(section.take("weight_below", thresholds, default["weight_below"]))),
        modes_closer=tuple(sorted(section.take("modes_closer", thresholds, default["modes_closer"]))),
        spread_below=tuple(sorted(section.take("spread_below", fields.listed(positive, nonempty=False), default["spread_below"]), reverse=True)),
        distance_above=tuple(sorted(section.take("distance_above", fields.listed(positive, nonempty=False), default["distance_above"]))),
        symbols=section.take("symbols", fields.boolean, default["symbols"]),
    )


def parse_spec(raw: Any) -> SweepSpec:
    """Validate a raw spec mapping (as read from YAML) into a :class:`SweepSpec`."""
    top = fields.Section(raw, "", TOP_FIELDS)
    name = top.take("name", _name)
    family_name, family_spec = top.take("family", _family)
    generations = top.take("generations", fields.integer(1, 10**8))
    spec = SweepSpec(
        name=name,
        seed=top.take("seed", fields.integer(0, None), None),
        generations=generations,
        replicates=top.take("replicates", fields.integer(1, 10**9)),
        block_size=top.take("block_size", fields.integer(1, 1 << 20), None),
        family_name=family_name,
        family_spec=family_spec,
        grid=top.take("grid", _grid),
        record=top.take("record", lambda v, p: _record(v, p, generations), Record()),
        events=_events(top.raw.get("events"), "events", family_name),
    )
    spec.family.check_sweep(spec)
    return spec


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``--set dotted.key=YAML_VALUE`` overrides to a raw spec (returns a new mapping)."""
    import copy

    result = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise UsageError(f"--set {item!r}: expected KEY=VALUE with a dotted key, e.g. grid.n=[10,100], got {describe(item)}")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise UsageError(f"--set {key}: expected a YAML value, got {describe(text)} ({_first_line(error)})") from None
        node = result
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return result


def read_raw(path: str | Path) -> dict[str, Any]:
    """Read a YAML spec file with the safe loader (no object construction from tags)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"spec file '{path}': expected an existing YAML file, got {'a folder' if path.is_dir() else 'no such file'}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise UsageError(f"spec file '{path}': expected valid YAML, got {_first_line(error)}") from None
    except UnicodeDecodeError:
        raise UsageError(f"spec file '{path}': expected a YAML text file, got binary content") from None
    if not isinstance(raw, dict):
        raise UsageError(f"spec file '{path}': expected a YAML mapping of fields (name, family, grid, ...), got {describe(raw)}")
    return raw


def load_spec(path: str | Path, overrides: Sequence[str] = ()) -> SweepSpec:
    """Read, override and validate a spec file."""
    return parse_spec(apply_overrides(read_raw(path), overrides))


def _first_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text if len(text) < 160 else text[:157] + "..."
