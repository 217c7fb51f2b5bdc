"""The ``search`` section of a spec: what to vary, what to measure, how to search.

A search spec is a sweep spec whose ``grid`` names one cell (the coordinates the search keeps
fixed; it may be left out when ``n`` is searched) plus a ``search`` section::

    search:
      parameters:                  # grid coordinates with a range
        policy.fresh_real: {low: 0.0, high: 0.3}
      objectives:
        collapse_probability: {event: spread_below, threshold: 0.5, target: 0.05}
      constraints: ["collapse_probability <= 0.05"]
      sampler: tpe                 # tpe | gp | nsga2 | random | grid
      trials: 40
      replicates: 500              # chains per trial
      parallel: 4                  # trials in flight at once (default: the cluster's CPUs, at least 2)

Everything is validated here, before anything is written: every error names the field.
"""

from __future__ import annotations

import copy
import importlib.util
import re
from dataclasses import dataclass
from typing import Any

from sweep import fields
from sweep.errors import SpecError, describe
from sweep.search.space import Parameter, parse_parameters

SAMPLERS = ("tpe", "gp", "nsga2", "random", "grid")
LINKS = ("logit", "probit")
DIRECTIONS = ("minimize", "maximize")
#: Objectives, with their default direction.
MEASURES = {
    "collapse_probability": "minimize",
    "median_collapse_time": "maximize",
    "final": "minimize",
    "real_fraction": "minimize",
    "n": "minimize",
}
STATISTICS = ("median", "mean")
SEARCH_FIELDS = (
    "parameters",
    "objectives",
    "constraints",
    "sampler",
    "trials",
    "replicates",
    "parallel",
    "level",
    "link",
    "startup_trials",
    "refine",
)
_CONSTRAINT = re.compile(r"\s*([A-Za-z_]+)\s*(<=|>=)\s*(\S+)\s*")


@dataclass(frozen=True)
class Objective:
    """One measured quantity of a trial and its direction.

    ``collapse_probability`` (with ``target``: the search minimises the distance to the target
    and the boundary is estimated), ``median_collapse_time`` (Kaplan-Meier), ``final`` (a
    metric's statistic at the horizon), and the costs ``real_fraction`` and ``n``.
    """

    name: str
    direction: str
    event: str | None = None
    row_event: str | None = None  # the events table's name of the event
    threshold: float | None = None
    target: float | None = None
    metric: str | None = None
    statistic: str | None = None

    def to_raw(self) -> dict[str, Any]:
        raw = {"direction": self.direction}
        for key in ("event", "threshold", "target", "metric", "statistic"):
            if getattr(self, key) is not None:
                raw[key] = getattr(self, key)
        return raw


@dataclass(frozen=True)
class Constraint:
    """``name <= value`` or ``name >= value`` on an objective (feasible when it holds)."""

    name: str
    op: str
    value: float

    def violation(self, measured: float) -> float:
        """optuna's convention: <= 0 when the constraint holds."""
        return measured - self.value if self.op == "<=" else self.value - measured

    def to_raw(self) -> str:
        return f"{self.name} {self.op} {self.value:g}"


@dataclass(frozen=True)
class SearchSpec:
    """A validated ``search`` section."""

    parameters: tuple[Parameter, ...]
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...]
    sampler: str
    trials: int
    replicates: int
    parallel: int | None
    level: float
    link: str
    startup_trials: int
    #: With a target and one parameter: after the start-up trials, all but one trial in ten are
    #: placed by the sequential design about the current boundary fit (:mod:`sweep.search.design`).
    refine: bool = True

    @property
    def target(self) -> Objective | None:
        """The collapse-probability objective with a target, if any."""
        return next((o for o in self.objectives if o.target is not None), None)

    def to_raw(self, *, with_trials: bool = True) -> dict[str, Any]:
        raw: dict[str, Any] = {
            "parameters": {p.name: p.to_raw() for p in self.parameters},
            "objectives": {o.name: o.to_raw() for o in self.objectives},
            "constraints": [c.to_raw() for c in self.constraints],
            "sampler": self.sampler,
            "replicates": self.replicates,
            "parallel": self.parallel,
            "level": self.level,
            "link": self.link,
            "startup_trials": self.startup_trials,
            "refine": self.refine,
        }
        if with_trials:
            raw["trials"] = self.trials
        return raw


def _objective(name: str, value: Any, path: str, family: Any) -> Objective:
    if name not in MEASURES:
        raise SpecError(path, f"an objective among {', '.join(MEASURES)}", f"'{name}'", raw=True)
    if value is None:
        value = {}
    if isinstance(value, str):
        value = {"direction": value}
    known = {
        "collapse_probability": ("event", "threshold", "target", "direction"),
        "median_collapse_time": ("event", "threshold", "direction"),
        "final": ("metric", "statistic", "direction"),
    }.get(name, ("direction",))
    section = fields.Section(value, path, known)
    target = section.take("target", fields.number(0.0, 1.0, low_open=True, high_open=True), None)
    direction = section.take("direction", fields.choice(*DIRECTIONS), MEASURES[name])
    if target is not None and direction != "minimize":
        raise SpecError(
            f"{path}.direction", "minimize with a target (the distance to the target is minimised)", direction
        )
    event = row_event = threshold = metric = statistic = None
    if name in ("collapse_probability", "median_collapse_time"):
        event = section.take("event", fields.text("an event name", lambda s: bool(s)))
        kinds = {kind.name: kind for kind in family.declared_events()} if family is not None else None
        if kinds is not None:
            if event not in kinds:
                raise SpecError(
                    f"{path}.event",
                    f"an event the {family.name} family declares ({', '.join(kinds)})",
                    f"'{event}', which it does not declare",
                    raw=True,
                )
            kind = kinds[event]
            if kind.per_symbol:
                raise SpecError(f"{path}.event", "an event of the whole chain (not one row per symbol)", event)
            row_event = kind.event
            if kind.thresholds:
                threshold = section.take("threshold", fields.number(0.0, None, low_open=True))
            elif section.has("threshold"):
                raise SpecError(f"{path}.threshold", f"no threshold ('{event}' is a switch)", section.raw["threshold"])
    if name == "final":
        metrics = tuple(getattr(family, "metric_columns", {}) or ()) if family is not None else ()
        metric = section.take(
            "metric",
            fields.text(f"a metric the family records ({', '.join(metrics)})", lambda s: not metrics or s in metrics),
        )
        statistic = section.take("statistic", fields.choice(*STATISTICS), "median")
    return Objective(
        name=name,
        direction=direction,
        event=event,
        row_event=row_event,
        threshold=threshold,
        target=target,
        metric=metric,
        statistic=statistic,
    )


def _constraint(value: Any, path: str, names: tuple[str, ...]) -> Constraint:
    expected = f"'NAME <= VALUE' or 'NAME >= VALUE' with NAME an objective ({', '.join(names)})"
    match = _CONSTRAINT.fullmatch(value) if isinstance(value, str) else None
    if match is None or match.group(1) not in names:
        raise SpecError(path, expected, value)
    try:
        bound = float(match.group(3))
    except ValueError:
        raise SpecError(path, expected, value) from None
    return Constraint(match.group(1), match.group(2), bound)


def parse_search(raw: Any, base: Any, family: Any) -> SearchSpec:
    """Validate the ``search`` section against the base spec (its one cell and its family class).

    ``base`` is the validated base :class:`~sweep.spec.SweepSpec`; ``family`` its family class.
    """
    section = fields.Section(raw, "search", SEARCH_FIELDS)
    parameters = section.take("parameters", lambda v, p: parse_parameters(v, p, base))
    objectives_raw = section.take("objectives", lambda v, p: v)
    if not isinstance(objectives_raw, dict) or not objectives_raw:
        raise SpecError(
            "search.objectives", f"a mapping of one or more objectives ({', '.join(MEASURES)})", objectives_raw
        )
    objectives = tuple(
        _objective(str(name), value, f"search.objectives.{name}", family) for name, value in objectives_raw.items()
    )
    names = tuple(o.name for o in objectives)
    constraints = section.take(
        "constraints",
        lambda v, p: tuple(
            _constraint(item, f"{p}[{i}]", names) for i, item in enumerate(v if isinstance(v, list) else [v])
        ),
        (),
    )
    sampler = section.take("sampler", fields.choice(*SAMPLERS), "tpe")
    if sampler == "gp" and importlib.util.find_spec("torch") is None:
        raise SpecError(
            "search.sampler",
            "a sampler whose dependencies are installed (gp needs torch; pip install torch==2.13.0, or use tpe)",
            sampler,
        )
    if sampler == "grid":
        missing = [p.name for p in parameters if p.points is None]
        if missing:
            raise SpecError(
                f"search.parameters.{missing[0]}",
                "a 'points' count with the grid sampler (how many values between low and high)",
                "none",
                raw=True,
            )
    trials = section.take("trials", fields.integer(1, 100_000), 20)
    return SearchSpec(
        parameters=parameters,
        objectives=objectives,
        constraints=constraints,
        sampler=sampler,
        trials=trials,
        replicates=section.take("replicates", fields.integer(1, 10**7), base.replicates),
        parallel=section.take("parallel", fields.integer(1, 10_000), None),
        level=section.take("level", fields.number(0.0, 1.0, low_open=True, high_open=True), 0.95),
        link=section.take("link", fields.choice(*LINKS), "logit"),
        startup_trials=section.take("startup_trials", fields.integer(0, 10_000), min(10, max(3, trials // 4))),
        refine=section.take("refine", fields.boolean, True),
    )


def split_spec(raw: dict[str, Any], family: Any = None) -> tuple[dict[str, Any], Any]:
    """The base sweep spec (raw) and the raw search section of a search spec file.

    The base gets what the search implies: the search's replicates, a grid at the lower end of a
    searched ``n`` when it has none, and the events the objectives ask about (those the family
    class ``family`` declares; the others are reported by the objective's own check).
    """
    if not isinstance(raw, dict) or "search" not in raw:
        raise SpecError(
            "search", "a search section (parameters, objectives, ...) for 'sweep search'", "nothing", raw=True
        )
    base = copy.deepcopy({k: v for k, v in raw.items() if k != "search"})
    search = raw["search"]
    if not isinstance(search, dict):
        return base, search
    params = search.get("parameters") if isinstance(search.get("parameters"), dict) else {}
    if "grid" not in base and isinstance(params.get("n"), dict) and "low" in params["n"]:
        base["grid"] = {"n": [params["n"]["low"]]}
    if isinstance(search.get("replicates"), int) and not isinstance(search.get("replicates"), bool):
        base["replicates"] = search["replicates"]
    base.setdefault("replicates", 1)
    objectives = search.get("objectives") if isinstance(search.get("objectives"), dict) else {}
    events = base.get("events") if isinstance(base.get("events"), dict) else {}
    for name, value in objectives.items():
        if name not in ("collapse_probability", "median_collapse_time") or not isinstance(value, dict):
            continue
        event, threshold = value.get("event"), value.get("threshold")
        declared = {kind.name: kind for kind in family.declared_events()} if family is not None else {}
        if not isinstance(event, str) or event not in declared or declared[event].per_symbol:
            continue
        if isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
            listed = events.get(event, list(declared[event].default))  # the family's defaults stay tracked
            listed = list(listed) if isinstance(listed, (list, tuple)) else [listed]
            if threshold not in listed:
                events = {**events, event: listed + [threshold]}
        elif threshold is None and not declared[event].thresholds:
            events = {**events, event: True}
    if events:
        base["events"] = events
    return base, search


def describe_constraint(constraint: Constraint) -> str:
    return describe(constraint.to_raw())
