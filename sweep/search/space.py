"""Searched parameters: their ranges, how optuna draws them, and the grid cell a draw names.

A parameter is a grid coordinate with a range: ``n`` (an integer), ``temperature``, a numeric
``family.<field>``, ``policy.fresh_real``, or the fractions ``policy.mix.keep`` and
``policy.mix.real`` of the three-way mix (the rest of each generation is synthetic).

The mix fractions live on a simplex: they must sum to at most 1. When the box of their ranges
reaches past the simplex, the second fraction is drawn as a share ``u`` in [0, 1] of its range
that is still feasible given the first (optuna sees the parameter ``<name>:share``), so that
every draw is a valid mix and the sampler's space stays a fixed box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sweep import fields
from sweep.axes import FAMILY_PREFIX
from sweep.errors import SpecError

POLICY_PARAMETERS = ("policy.fresh_real", "policy.mix.keep", "policy.mix.real")
SHARE_SUFFIX = ":share"


@dataclass(frozen=True)
class Parameter:
    """One searched coordinate and its range."""

    name: str
    low: float
    high: float
    log: bool = False
    integer: bool = False
    points: int | None = None  # values for the grid sampler
    #: For the second mix fraction when the box reaches past the simplex: drawn as a share.
    share: bool = False

    @property
    def sampled_name(self) -> str:
        """The name optuna's trial holds the draw under."""
        return self.name + SHARE_SUFFIX if self.share else self.name

    def to_raw(self) -> dict[str, Any]:
        raw: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            raw["log"] = True
        if self.points is not None:
            raw["points"] = self.points
        return raw

    def grid_values(self) -> list[float]:
        """``points`` values from low to high (geometric on a log scale), for the grid sampler."""
        if self.share:
            return [float(v) for v in np.linspace(0.0, 1.0, self.points)]
        values = (
            np.geomspace(self.low, self.high, self.points)
            if self.log
            else np.linspace(self.low, self.high, self.points)
        )
        return sorted({int(round(v)) for v in values}) if self.integer else [float(v) for v in values]


def _base_fractions(policy: Any) -> dict[str, float]:
    """(keep, real) of the base policy as a mix; None for the accumulate kinds."""
    if policy.kind in ("replace", "fresh_real", "mix"):
        return {"keep": policy.keep, "real": policy.real}
    return {}


def parse_parameters(raw: Any, path: str, base: Any) -> tuple[Parameter, ...]:
    """Validate the parameters against the base spec's single cell (``base``: a SweepSpec)."""
    if not isinstance(raw, dict) or not raw:
        raise SpecError(path, "a mapping of one or more grid coordinates to ranges {low, high}", raw)
    point = base.grid.points[0]
    family_raw = point.family_spec.to_raw()
    family_fields = base.family_class.spec_fields
    known = ("n", "temperature") + POLICY_PARAMETERS + tuple(FAMILY_PREFIX + f for f in family_fields)
    out: list[Parameter] = []
    for name, value in raw.items():
        name = str(name)
        where = f"{path}.{name}"
        if name not in known:
            raise SpecError(
                where,
                f"a coordinate of the spec: n, temperature, {', '.join(POLICY_PARAMETERS)} or "
                f"family.<field> of the {base.family_name} family ({', '.join(family_fields)})",
                f"'{name}', which is not one",
                raw=True,
            )
        integer = name == "n"
        if name.startswith(FAMILY_PREFIX):
            current = family_raw.get(name[len(FAMILY_PREFIX) :])
            if isinstance(current, bool) or not isinstance(current, (int, float)):
                raise SpecError(
                    where,
                    "a numeric family field (its value in the spec is a number)",
                    f"'{name}', whose value is {current!r}",
                    raw=True,
                )
            integer = isinstance(current, int)
        section = fields.Section(value, where, ("low", "high", "log", "points"))
        reader = fields.integer() if integer else fields.number()
        low, high = section.take("low", reader), section.take("high", reader)
        if not low < high:
            raise SpecError(where, "a range with low < high", f"low {low:g}, high {high:g}", raw=True)
        log = section.take("log", fields.boolean, False)
        if log and low <= 0:
            raise SpecError(f"{where}.log", "a range with low > 0 on a log scale", f"low {low:g}", raw=True)
        limits = {"n": (1, None), "temperature": (0.0, None)}.get(
            name, (0.0, 1.0) if name.startswith("policy.") else (None, None)
        )
        if (limits[0] is not None and (low < limits[0] or (name == "temperature" and low <= 0))) or (
            limits[1] is not None and high > limits[1]
        ):
            bounds = {"n": "integers >= 1", "temperature": "numbers > 0"}.get(name, "fractions in [0, 1]")
            raise SpecError(where, f"a range of {bounds}", f"low {low:g}, high {high:g}", raw=True)
        points = section.take("points", fields.integer(2, 10_000), None)
        out.append(Parameter(name=name, low=low, high=high, log=log, integer=integer, points=points))
    return _check_policy(out, path, point.policy)


def _check_policy(params: list[Parameter], path: str, policy: Any) -> tuple[Parameter, ...]:
    names = [p.name for p in params]
    mix = [p for p in params if p.name.startswith("policy.mix.")]
    if "policy.fresh_real" in names and mix:
        raise SpecError(
            f"{path}.policy.fresh_real",
            "either policy.fresh_real or policy.mix.* fractions, not both",
            "both",
            raw=True,
        )
    if not any(n.startswith("policy.") for n in names):
        return tuple(params)
    base = _base_fractions(policy)
    if not base:
        name = next(n for n in names if n.startswith("policy."))
        raise SpecError(
            f"{path}.{name}",
            "a spec whose grid policy is replace, fresh_real or mix (the searched fractions replace its own)",
            policy.label,
            raw=True,
        )
    if mix:
        fixed = sum(v for k, v in base.items() if f"policy.mix.{k}" not in names)
        lows = fixed + sum(p.low for p in mix)
        if lows > 1 + 1e-12:
            terms = " + ".join([f"{p.name} low {p.low:g}" for p in mix] + ([f"fixed {fixed:g}"] if fixed else []))
            raise SpecError(
                f"{path}.{mix[0].name}",
                "mix fractions that can sum to at most 1 (the rest is synthetic)",
                f"{terms} = {lows:g}",
                raw=True,
            )
        first = mix[0]
        others = sum(p.low for p in mix[1:])
        ceiling = min(first.high, 1 - fixed - others)
        if ceiling <= first.low:
            raise SpecError(
                f"{path}.{first.name}",
                "a range with room above low once the other fractions take their lowest values",
                f"low {first.low:g}, at most {ceiling:g}",
                raw=True,
            )
        index = params.index(first)
        params[index] = Parameter(first.name, first.low, ceiling, first.log, first.integer, first.points)
        if len(mix) == 2:
            second = mix[1]
            if ceiling + second.high > 1 - fixed + 1e-12:  # the box reaches past the simplex
                index = params.index(second)
                params[index] = Parameter(second.name, second.low, second.high, False, False, second.points, share=True)
    return tuple(params)


def suggest(trial: Any, params: tuple[Parameter, ...]) -> dict[str, float]:
    """Draw every parameter from an optuna trial; return the coordinates (shares resolved)."""
    drawn: dict[str, Any] = {}
    for p in params:
        if p.share:
            drawn[p.sampled_name] = trial.suggest_float(p.sampled_name, 0.0, 1.0)
        elif p.integer:
            drawn[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
        else:
            drawn[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
    return resolve(drawn, params)


def drawn_complete(drawn: dict[str, Any], params: tuple[Parameter, ...]) -> bool:
    """Whether a trial's stored params hold every parameter (a driver killed mid-draw leaves fewer)."""
    return all(p.sampled_name in drawn for p in params)


def resolve(drawn: dict[str, Any], params: tuple[Parameter, ...]) -> dict[str, float]:
    """The coordinates of a draw: shares turned into fractions (feasible given the first fraction;
    a share is used only when both mix fractions are searched, so no base fraction is fixed)."""
    coords: dict[str, Any] = {}
    for p in params:
        if not p.share:
            coords[p.name] = drawn[p.name]
    for p in params:
        if p.share:
            taken = sum(v for k, v in coords.items() if k.startswith("policy.mix."))
            top = min(p.high, 1.0 - taken)
            coords[p.name] = p.low + float(drawn[p.sampled_name]) * max(top - p.low, 0.0)
    return coords


def grid_space(params: tuple[Parameter, ...]) -> dict[str, list[Any]]:
    """The grid sampler's search space."""
    return {p.sampled_name: p.grid_values() for p in params}


def cell_part(point: Any, coords: dict[str, Any]) -> dict[str, Any]:
    """The raw one-cell grid part of a draw: the base cell ``point`` with ``coords`` put in."""
    n = int(coords.get("n", point.n))
    temperature = float(coords.get("temperature", point.temperature))
    policy = point.policy.to_raw()
    if "policy.fresh_real" in coords:
        policy = {"fresh_real": float(coords["policy.fresh_real"])}
    elif any(k.startswith("policy.mix.") for k in coords):
        keep = float(coords.get("policy.mix.keep", point.policy.keep))
        real = float(coords.get("policy.mix.real", point.policy.real))
        policy = {"mix": {"keep": keep, "synthetic": max(0.0, 1.0 - keep - real), "real": real}}
    part: dict[str, Any] = {"n": [n], "policy": [policy], "temperature": [temperature]}
    family = dict(point.family)
    for key, value in coords.items():
        if key.startswith(FAMILY_PREFIX):
            family[key[len(FAMILY_PREFIX) :]] = value
    for field, value in family.items():
        part[FAMILY_PREFIX + field] = [value]
    return part


def realised(point: Any, coords: dict[str, Any]) -> dict[str, float]:
    """The coordinates of a draw as its cell realises them: a policy fraction becomes the share of
    each generation's n it actually takes, after rounding to whole samples (``Policy.counts``), so
    fresh_real 0.0496 at n = 1000 is 50 real samples, 0.05; other coordinates are as drawn.

    Parameters
    ----------
    point : GridPoint
        The base cell (the coordinates the search keeps fixed).
    coords : dict
        A draw's coordinates (:func:`resolve`).
    """
    from sweep.policies import parse_policy

    part = cell_part(point, coords)
    n = int(part["n"][0])
    policy = parse_policy(part["policy"][0], "policy")
    kept, _, real = (0, 0, 0) if policy.grows else policy.counts(n)
    shares = {"policy.fresh_real": real / n, "policy.mix.real": real / n, "policy.mix.keep": kept / n}
    return {name: shares.get(name, value) for name, value in coords.items()}


def is_close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
