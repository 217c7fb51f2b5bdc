"""Grid axes: ``n``, ``policy``, ``temperature`` and any family field ``family.<field>``.

A grid part is a cartesian product of named axes; a grid is a union of parts. Every cell has a
value for every axis of the whole grid: an axis a part does not list takes the spec's own value
(``family.k`` the family section's ``k``, ``temperature`` the top-level ``temperature``, 1 by
default). A family-field value is validated by the family itself, by parsing the family section
with that value in place; its error names the grid path (``grid.family.k[1]``).

Columns: each axis is a Parquet column named with dots replaced by underscores (``family_k``);
``policy`` expands to ``policy``, ``policy_kind``, ``keep``, ``synthetic`` and ``real``.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any, Callable

from sweep import fields
from sweep.errors import SpecError
from sweep.policies import Policy, parse_policy

#: Axes every grid knows, in the order cells vary (first axis major).
BUILTIN_AXES = ("n", "policy", "temperature")
FAMILY_PREFIX = "family."


def column_name(axis: str) -> str:
    """The Parquet column of an axis: ``family.k`` -> ``family_k``."""
    return axis.replace(".", "_")


@dataclass(frozen=True)
class Point:
    """One cell's coordinates: n, policy, temperature and the family fields the grid varies.

    ``family`` holds (field, canonical value) for every family axis of the whole grid, the value
    as the family's ``to_raw`` writes it; ``paths`` says where each coordinate came from (the
    grid entry, or the spec field it defaults to), for error messages.
    """

    n: int
    policy: Policy
    temperature: float
    family: tuple[tuple[str, Any], ...]
    family_spec: Any
    paths: tuple[tuple[str, str], ...]

    def where(self, axis: str) -> str:
        """The spec path an axis value of this cell came from (``grid[1].n[0]``, ``family.k``)."""
        return dict(self.paths).get(axis, axis)

    def coordinates(self, defaults: dict[str, Any]) -> dict[str, Any]:
        """Coordinates that differ from ``defaults`` (the spec's own values), plus n and policy:
        what the cell's stream key hashes, so that listing an axis at its default value, or
        adding values to an axis, leaves existing cells' streams alone."""
        coords: dict[str, Any] = {"n": self.n, "policy": self.policy.to_raw()}
        if self.temperature != defaults.get("temperature", 1.0):
            coords["temperature"] = self.temperature
        for field, value in self.family:
            if value != defaults.get(FAMILY_PREFIX + field):
                coords[FAMILY_PREFIX + field] = value
        return coords


def _family_field(raw: Any) -> str | None:
    return raw[len(FAMILY_PREFIX) :] if isinstance(raw, str) and raw.startswith(FAMILY_PREFIX) else None


def normalise_part(value: Any, path: str) -> dict[str, Any]:
    """A grid part's mapping with nested ``family: {k: [...]}`` written as ``family.k``."""
    if not isinstance(value, dict):
        raise SpecError(path, "a mapping of axes (n, policy, temperature, family.<field>) to lists of values", value)
    out: dict[str, Any] = {}
    for key, values in value.items():
        if key == "family" and isinstance(values, dict):
            for field, v in values.items():
                out[f"{FAMILY_PREFIX}{field}"] = v
        else:
            out[str(key)] = values
    return out


@dataclass(frozen=True)
class GridPart:
    """One cartesian product of axes; ``path`` names it in errors."""

    axes: tuple[tuple[str, tuple[Any, ...]], ...]  # (axis, values), in cell order
    path: str = "grid"

    def get(self, axis: str) -> tuple[Any, ...] | None:
        return dict(self.axes).get(axis)

    def to_raw(self) -> dict[str, Any]:
        raw: dict[str, Any] = {}
        for axis, values in self.axes:
            raw[axis] = [v.to_raw() if isinstance(v, Policy) else v for v in values]
        return raw


def parse_part(
    value: Any,
    path: str,
    family_fields: tuple[str, ...],
    family_name: str,
    check_family_value: Callable[[str, Any, str], Any],
) -> GridPart:
    """Read one grid part; family values are checked by ``check_family_value(field, value, path)``
    which returns the value's canonical form."""
    raw = normalise_part(value, path)
    known = BUILTIN_AXES + tuple(FAMILY_PREFIX + f for f in family_fields)
    for key in raw:
        field = _family_field(key)
        if field is not None and field not in family_fields:
            raise SpecError(
                f"{path}.{key}",
                f"a field of the {family_name} family ({', '.join(family_fields)})",
                f"'{field}', which it lacks",
                raw=True,
            )
        if key not in known:
            raise SpecError(
                f"{path}.{key}", "an axis: n, policy, temperature or family.<field>", f"unknown axis '{key}'", raw=True
            )
    if "n" not in raw:
        raise SpecError(f"{path}.n", "a value (the field is required)", "nothing", raw=True)
    axes: list[tuple[str, tuple[Any, ...]]] = []
    readers: dict[str, Callable[[Any, str], Any]] = {
        "n": fields.integer(1, 10**9),
        "policy": parse_policy,
        "temperature": fields.number(0.0, None, low_open=True),
    }
    order = list(BUILTIN_AXES) + [k for k in raw if k not in BUILTIN_AXES]
    for axis in order:
        if axis not in raw:
            continue
        axis_path = f"{path}.{axis}"
        if axis in readers:
            values = fields.listed(readers[axis])(raw[axis], axis_path)
        else:
            field = _family_field(axis)
            items = raw[axis] if isinstance(raw[axis], list) else [raw[axis]]
            if not items:
                raise SpecError(axis_path, "a non-empty list", raw[axis])
            values = tuple(check_family_value(field, v, f"{axis_path}[{i}]") for i, v in enumerate(items))
        keys = [json.dumps(v.to_raw() if isinstance(v, Policy) else v, sort_keys=True) for v in values]
        if len(set(keys)) != len(keys):
            raise SpecError(axis_path, "distinct values", [getattr(v, "label", v) for v in values])
        axes.append((axis, values))
    if "policy" not in raw:
        axes.insert(1, ("policy", (Policy("replace"),)))
    return GridPart(axes=tuple(axes), path=path)


def part_points(part: GridPart) -> list[dict[str, tuple[Any, str]]]:
    """Each cell of a part as {axis: (value, path)}, first axis major."""
    names = [axis for axis, _ in part.axes]
    lists = [[(v, f"{part.path}.{axis}[{i}]") for i, v in enumerate(values)] for axis, values in part.axes]
    return [dict(zip(names, combo)) for combo in itertools.product(*lists)]
