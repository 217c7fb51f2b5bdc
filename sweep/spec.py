"""Sweep specs: read a YAML file (safely), apply ``--set`` overrides, validate into frozen objects.

The whole spec is validated here, in the driver, before any task starts or anything is written.
Every problem is a :class:`~sweep.errors.SpecError` naming the field, the expectation and the value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from sweep import fields
from sweep.errors import SpecError, UsageError, describe
from sweep.axes import BUILTIN_AXES, FAMILY_PREFIX, GridPart, Point, parse_part, part_points
from sweep.families import REGISTRY, Family, FamilyLoadError, Resources, resolve_family

TOP_FIELDS = (
    "name",
    "seed",
    "generations",
    "replicates",
    "block_size",
    "temperature",
    "family",
    "grid",
    "record",
    "events",
    "resources",
)


@dataclass(frozen=True)
class Grid:
    """The swept axes: one cartesian product of axes, or a union of several.

    A union lets expensive corners be left out, e.g. accumulate_subsample (which keeps every
    sample) only at the smaller n.
    """

    parts: tuple[GridPart, ...]
    points: tuple[Point, ...]
    #: Family fields that some part sweeps (each becomes a ``family_<field>`` column).
    family_axes: tuple[str, ...] = ()

    @property
    def axes(self) -> tuple[str, ...]:
        """Every axis of the grid, as written in the spec (``n``, ``policy``, ``temperature``,
        ``family.<field>``): every cell has a value for each."""
        return BUILTIN_AXES + tuple(FAMILY_PREFIX + f for f in self.family_axes)

    def to_raw(self) -> Any:
        raw = [part.to_raw() for part in self.parts]
        return raw[0] if len(raw) == 1 and self.parts[0].path == "grid" else raw


@dataclass(frozen=True)
class Record:
    """Which generations the trajectories keep: every ``every``-th, or dense then log-spaced.

    The schedule does not depend on the horizon (only the horizon itself is added), so the rows a
    chain has up to generation T are the same in a run to T and in a longer one, and a finished
    sweep can be extended: ``log_points`` is the number of log-spaced points *per decade* after
    ``dense_until``.
    """

    every: int | None = None
    dense_until: int = 100
    log_points: int = 100

    def generations(self, horizon: int) -> np.ndarray:
        """Sorted recorded generations in [0, horizon], always with 0 and the horizon."""
        if self.every is not None:
            kept = np.arange(0, horizon + 1, self.every)
        else:
            dense = np.arange(0, min(self.dense_until, horizon) + 1)
            start = max(self.dense_until, 1)
            if horizon > start:
                steps = np.arange(1, int(np.ceil(np.log10(horizon / start) * self.log_points)) + 1)
                log = np.round(start * 10.0 ** (steps / self.log_points))
                kept = np.concatenate([dense, log[log <= horizon]])
            else:
                kept = dense
        return np.unique(np.append(kept, horizon).astype(np.int64))


class Events:
    """The events to track: each declared event's thresholds (a tuple) or switch (a bool).

    Values are read as attributes (``events.spread_below``) or by name (``events["symbols"]``);
    ``every`` is how often they are checked (1: every generation; k: every k-th generation only,
    so a chain is censored at the last multiple of k up to the horizon). For an event that stays
    once it happens (a lost symbol), a time t means it happened in (t - k, t]; one that can undo
    itself (a spread that dips and recovers) may have held between checks without being seen.
    """

    def __init__(self, values: dict[str, Any], every: int = 1):
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "every", every)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no event {name!r} is declared by this sweep's family") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Events is immutable")

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __getstate__(self) -> dict[str, Any]:
        return {"values": self._values, "every": self.every}

    def __setstate__(self, state: dict[str, Any]) -> None:
        object.__setattr__(self, "_values", state["values"])
        object.__setattr__(self, "every", state["every"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Events) and (self._values, self.every) == (other._values, other.every)

    def __hash__(self) -> int:
        return hash((tuple(sorted(self._values)), self.every))

    def items(self):
        return self._values.items()

    def to_raw(self) -> dict[str, Any]:
        raw = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self._values.items()}
        if self.every != 1:
            raw["every"] = self.every
        return raw


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
    temperature: float = 1.0
    resources: Resources | None = None

    @cached_property
    def family_class(self) -> type[Family]:
        return resolve_family(self.family_name)

    @cached_property
    def family(self) -> Family:
        """The family at the spec's own settings (cells that sweep a family field have their own)."""
        return self.family_class(self.family_spec)

    @cached_property
    def defaults(self) -> dict[str, Any]:
        """The value every axis takes where the grid does not set it."""
        base = self.family_spec.to_raw()
        out: dict[str, Any] = {"temperature": self.temperature}
        out.update({FAMILY_PREFIX + f: base.get(f) for f in self.grid.family_axes})
        return out

    def task_resources(self) -> Resources:
        return self.resources or self.family_class.resources

    def to_raw(self) -> dict[str, Any]:
        """The resolved spec (defaults filled in) as plain data, for sweep.json and comparison."""
        record = (
            {"every": self.record.every}
            if self.record.every
            else {"dense_until": self.record.dense_until, "log_points": self.record.log_points}
        )
        raw = {
            "name": self.name,
            "seed": self.seed,
            "generations": self.generations,
            "replicates": self.replicates,
            "block_size": self.block_size,
            "family": {**self.family_spec.to_raw(), "name": self.family_name},
            "grid": self.grid.to_raw(),
            "record": record,
            "events": self.events.to_raw(),
        }
        if self.temperature != 1.0:
            raw["temperature"] = self.temperature
        if self.resources is not None:
            raw["resources"] = {k: v for k, v in vars(self.resources).items() if v is not None}
        return raw


def _name(value: Any, path: str) -> str:
    ok = isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", value)
    if not ok:
        raise SpecError(path, "a name of letters, digits, '_', '.', '-' (it names the results folder)", value)
    return value


def _family_class(value: Any, path: str) -> type[Family]:
    if not isinstance(value, dict):
        raise SpecError(path, f"a mapping with a name among {', '.join(REGISTRY)} or 'module:Class'", value)
    name = value.get("name")
    try:
        return resolve_family(name)
    except FamilyLoadError as error:
        raise SpecError(f"{path}.name", error.expected, error.got, raw=True) from None


class _FamilyParser:
    """Parses the family section, with any grid values of its fields put in place (cached)."""

    def __init__(self, cls: type[Family], raw: dict[str, Any], path: str):
        self.cls, self.raw, self.path = cls, dict(raw), path
        self.cache: dict[str, Any] = {}

    def parse(self, overrides: dict[str, Any] | None = None) -> Any:
        overrides = overrides or {}
        key = json.dumps(overrides, sort_keys=True, default=str)
        if key not in self.cache:
            section = fields.Section({**self.raw, **overrides}, self.path, ("name",) + self.cls.spec_fields)
            self.cache[key] = self.cls.parse_spec(section)
        return self.cache[key]

    def check_value(self, field: str, value: Any, grid_path: str) -> Any:
        """Validate one grid value of a family field; return its canonical form (as to_raw writes it)."""
        try:
            spec = self.parse({field: value})
        except SpecError as error:
            own = f"{self.path}.{field}"
            if error.field == own or error.field.startswith(own + ".") or error.field.startswith(own + "["):
                raise SpecError(grid_path + error.field[len(own) :], error.expected, error.got, raw=True) from None
            raise SpecError(
                grid_path,
                f"a value the {self.cls.name} family accepts ({error.field}: expected "
                f"{error.expected}, got {error.got})",
                value,
            ) from None
        return _canonical(spec.to_raw().get(field, value))


def _canonical(value: Any) -> Any:
    """A JSON-stable form of a field value (tuples as lists)."""
    return json.loads(json.dumps(value))


def _grid(value: Any, path: str, family: _FamilyParser, temperature: float) -> Grid:
    if isinstance(value, list):
        if not value:
            raise SpecError(path, "a mapping {n: [...], policy: [...]} or a non-empty list of them", value)
        raws = [(v, f"{path}[{i}]") for i, v in enumerate(value)]
    else:
        raws = [(value, path)]
    parts = tuple(parse_part(v, p, family.cls.spec_fields, family.cls.name, family.check_value) for v, p in raws)
    family_axes: list[str] = []
    for part in parts:
        for axis, _ in part.axes:
            if axis.startswith(FAMILY_PREFIX) and axis[len(FAMILY_PREFIX) :] not in family_axes:
                family_axes.append(axis[len(FAMILY_PREFIX) :])
    base_raw = _canonical(family.parse().to_raw())
    points: list[Point] = []
    seen: dict[str, str] = {}
    for part in parts:
        for combo in part_points(part):
            overrides = {a[len(FAMILY_PREFIX) :]: v for a, (v, _) in combo.items() if a.startswith(FAMILY_PREFIX)}
            # the user's raw value goes to the parser (a dim may change how mean is read); the
            # canonical value is what columns and keys use
            raw_overrides = {f: _raw_value(part, FAMILY_PREFIX + f, combo) for f in overrides}
            spec = family.parse(raw_overrides) if raw_overrides else family.parse()
            spec_raw = _canonical(spec.to_raw())
            family_values = tuple((f, spec_raw.get(f, base_raw.get(f))) for f in family_axes)
            point = Point(
                n=combo["n"][0],
                policy=combo["policy"][0],
                temperature=combo["temperature"][0] if "temperature" in combo else temperature,
                family=family_values,
                family_spec=spec,
                paths=tuple((a, p) for a, (_, p) in combo.items()),
            )
            label = json.dumps(
                {
                    "n": point.n,
                    "policy": point.policy.to_raw(),
                    "temperature": point.temperature,
                    "family": family_values,
                },
                sort_keys=True,
            )
            if label in seen:
                where = ", ".join(f"{a}={getattr(v, 'label', v)}" for a, (v, _) in combo.items())
                raise SpecError(path, "each cell at most once", f"{where} twice", raw=True)
            seen[label] = label
            points.append(point)
    return Grid(parts=parts, points=tuple(points), family_axes=tuple(family_axes))


def _raw_value(part: GridPart, axis: str, combo: dict[str, Any]) -> Any:
    return combo[axis][0]


def _record(value: Any, path: str, horizon: int) -> Record:
    section = fields.Section(value, path, ("every", "dense_until", "log_points"))
    every = section.take("every", fields.integer(1, None), None)
    if every is not None and (section.has("dense_until") or section.has("log_points")):
        raise SpecError(path, "either 'every' or 'dense_until'/'log_points', not both", value)
    return Record(
        every=every,
        dense_until=section.take("dense_until", fields.integer(0, None), 100),
        log_points=section.take("log_points", fields.integer(1, 100_000), 100),
    )


def _events(value: Any, path: str, cls: type[Family]) -> Events:
    kinds = {kind.name: kind for kind in cls.declared_events()}
    raw = value if value is not None else {}
    if not isinstance(raw, dict):
        raise SpecError(path, "a mapping of events to thresholds", raw)
    for key in raw:
        if key != "every" and key not in kinds:
            raise SpecError(
                f"{path}.{key}",
                f"an event the {cls.name} family declares ({', '.join(kinds)})",
                f"'{key}', which it does not declare",
                raw=True,
            )
    section = fields.Section(raw, path, tuple(kinds) + ("every",))
    positive = fields.number(0.0, None, low_open=True)
    values: dict[str, Any] = {}
    for name, kind in kinds.items():
        if kind.thresholds:
            thresholds = section.take(name, fields.listed(positive, nonempty=False), tuple(kind.default))
            values[name] = tuple(sorted(thresholds, reverse=kind.descending))
        else:
            values[name] = section.take(name, fields.boolean, bool(kind.default))
    return Events(values, every=section.take("every", fields.integer(1, None), 1))


def _resources(value: Any, path: str) -> Resources:
    section = fields.Section(value, path, ("num_cpus", "num_gpus", "memory"))
    return Resources(
        num_cpus=section.take("num_cpus", fields.number(0.0, 1024.0, low_open=True), 1.0),
        num_gpus=section.take("num_gpus", fields.number(0.0, 64.0), 0.0),
        memory=section.take("memory", fields.integer(1, None), None),
    )


def parse_spec(raw: Any) -> SweepSpec:
    """Validate a raw spec mapping (as read from YAML) into a :class:`SweepSpec`."""
    top = fields.Section(raw, "", TOP_FIELDS)
    name = top.take("name", _name)
    cls = top.take("family", _family_class)
    family = _FamilyParser(cls, top.raw["family"], "family")
    family_spec = family.parse()
    generations = top.take("generations", fields.integer(1, 10**8))
    temperature = top.take("temperature", fields.number(0.0, None, low_open=True), 1.0)
    spec = SweepSpec(
        name=name,
        seed=top.take("seed", fields.integer(0, None), None),
        generations=generations,
        replicates=top.take("replicates", fields.integer(1, 10**9)),
        block_size=top.take("block_size", fields.integer(1, 1 << 20), None),
        family_name=str(top.raw["family"]["name"]),
        family_spec=family_spec,
        grid=top.take("grid", lambda v, p: _grid(v, p, family, temperature)),
        record=top.take("record", lambda v, p: _record(v, p, generations), Record()),
        events=_events(top.raw.get("events"), "events", cls),
        temperature=temperature,
        resources=top.take("resources", _resources, None),
    )
    spec.family.check_sweep(spec)
    for point in spec.grid.points:
        cls(point.family_spec).check_cell(point)
    return spec


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``--set dotted.key=YAML_VALUE`` overrides to a raw spec (returns a new mapping)."""
    import copy

    result = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise UsageError(
                f"--set {item!r}: expected KEY=VALUE with a dotted key, e.g. grid.n=[10,100], got {describe(item)}"
            )
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise UsageError(
                f"--set {key}: expected a YAML value, got {describe(text)} ({_first_line(error)})"
            ) from None
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
        raise UsageError(
            f"spec file '{path}': expected an existing YAML file, got {'a folder' if path.is_dir() else 'no such file'}"
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise UsageError(f"spec file '{path}': expected valid YAML, got {_first_line(error)}") from None
    except UnicodeDecodeError:
        raise UsageError(f"spec file '{path}': expected a YAML text file, got binary content") from None
    if not isinstance(raw, dict):
        raise UsageError(
            f"spec file '{path}': expected a YAML mapping of fields (name, family, grid, ...), got {describe(raw)}"
        )
    return raw


def load_spec(path: str | Path, overrides: Sequence[str] = ()) -> SweepSpec:
    """Read, override and validate a spec file."""
    return parse_spec(apply_overrides(read_raw(path), overrides))


def _first_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text if len(text) < 160 else text[:157] + "..."
