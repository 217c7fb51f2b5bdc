"""What a results folder's family declares, as the report reads it: events, metrics, overlays.

``sweep run`` writes the family's declarations into ``sweep.json`` under ``family`` (see
:func:`sweep.runner.family_info`): which events are collapse events and what they mean, which
metric column is the distance to the truth and which the spread, the theory overlays of
:mod:`analysis.theory` that describe it, and the grid axes. The report reads them from there and
never switches on a family's name, so a family from user code (``mypkg.mod:Cls``) gets a report
from its declarations alone.

Folders written before the declarations existed have no ``family`` entry. For those, and for
frames handed to the figures without a folder, :func:`builtin` reads the same declarations from
the class attributes of the built-in families (``sweep.families.REGISTRY``): one source of
truth instead of a copy here that could drift. A name that is not built in is never imported
(a data file must not run code); it gets :func:`generic`, built from the events table alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["EventInfo", "Declarations", "from_entry", "builtin", "generic", "for_folder", "for_frame"]

#: Events no family declares a collapse although the shared ``diverged`` kind says so: a
#: non-finite fit is a numerical failure, counted by the report, not a collapse to time.
_NOT_COLLAPSE = ("diverged",)


@dataclass(frozen=True)
class EventInfo:
    """One declared event kind, by its ``event`` column value (see sweep.families.base.EventKind)."""

    event: str
    description: str = ""
    thresholds: bool = True
    per_symbol: bool = False
    collapse: bool = True
    descending: bool = False


@dataclass(frozen=True)
class Declarations:
    """A family's declarations (``sweep.json``'s ``family`` entry, or a built-in class's).

    ``axes`` maps each grid axis (``n``, ``policy``, ``temperature``, ``family.k``) to its
    column; empty when unknown (the columns are then recognised by name, see
    :func:`analysis._cells.coordinate_columns`). ``side_tables`` maps each side table (read by
    :func:`analysis.load_side`, e.g. ``sequences``) to its ``metric``, ``index`` (the per-item
    column, ``sequence``) and ``value`` (the value column, ``perplexity``). ``source`` says where
    the declarations came from, for the report's header.
    """

    name: str
    events: tuple[EventInfo, ...] = ()
    metrics: dict[str, str] = field(default_factory=dict)
    distance_metric: str | None = None
    spread_metric: str | None = None
    theory_overlays: tuple[str, ...] = ()
    axes: dict[str, str] = field(default_factory=dict)
    side_tables: dict[str, dict[str, str]] = field(default_factory=dict)
    source: str = "sweep.json"

    def event(self, name: str) -> EventInfo | None:
        """The declaration of an ``event`` column value, or None."""
        return next((e for e in self.events if e.event == name), None)

    def collapse_events(self) -> list[EventInfo]:
        """Declared collapse events, in declaration order (``diverged`` is never one)."""
        return [e for e in self.events if e.collapse and not e.per_symbol and e.event not in _NOT_COLLAPSE]

    def per_symbol_events(self) -> list[EventInfo]:
        """Declared events with one row per chain and symbol (``symbol_lost``, ``word_lost``)."""
        return [e for e in self.events if e.per_symbol]


def _flag(entry: dict, key: str, default: bool) -> bool:
    value = entry.get(key, default)
    return value if isinstance(value, bool) else default


def from_entry(entry: dict[str, Any]) -> Declarations:
    """Declarations from ``sweep.json``'s ``family`` entry (as :func:`sweep.runner.family_info` writes)."""
    events = []
    for item in entry.get("events") or ():
        if isinstance(item, dict) and isinstance(item.get("event", item.get("name")), str):
            events.append(
                EventInfo(
                    event=item.get("event", item.get("name")),
                    description=str(item.get("description", "")),
                    thresholds=_flag(item, "thresholds", True),
                    per_symbol=_flag(item, "per_symbol", False),
                    collapse=_flag(item, "collapse", True),
                    descending=_flag(item, "descending", False),
                )
            )
    metrics = entry.get("metrics") if isinstance(entry.get("metrics"), dict) else {}
    axes = entry.get("axes") if isinstance(entry.get("axes"), dict) else {}
    sides = entry.get("side_tables") if isinstance(entry.get("side_tables"), dict) else {}
    text = lambda key: entry[key] if isinstance(entry.get(key), str) else None  # noqa: E731
    return Declarations(
        name=str(entry.get("name", "unknown")),
        events=tuple(events),
        metrics={str(k): str(v) for k, v in metrics.items()},
        distance_metric=text("distance_metric"),
        spread_metric=text("spread_metric"),
        theory_overlays=tuple(str(o) for o in entry.get("theory_overlays") or ()),
        axes={str(k): str(v) for k, v in axes.items()},
        side_tables={
            str(table): {str(k): str(v) for k, v in item.items()}
            for table, item in sides.items()
            if isinstance(item, dict) and isinstance(item.get("value"), str)
        },
        source="sweep.json",
    )


def builtin(name: str) -> Declarations | None:
    """The declarations of a built-in family, read from its class attributes; None if not built in."""
    from sweep.families import REGISTRY  # lazy: scipy, which ``import analysis`` does not pay for

    cls = REGISTRY.get(name)
    if cls is None:
        return None
    events = tuple(
        EventInfo(
            event=k.event,
            description=k.description,
            thresholds=k.thresholds,
            per_symbol=k.per_symbol,
            collapse=k.collapse,
            descending=k.descending,
        )
        for k in cls.declared_events()
    )
    return Declarations(
        name=name,
        events=events,
        metrics=dict(cls.metric_columns),
        distance_metric=cls.distance_metric,
        spread_metric=cls.spread_metric,
        theory_overlays=tuple(cls.theory_overlays),
        side_tables={
            table: {"metric": metric, "index": index, "value": value}
            for metric, (table, index, value) in cls.side_metrics.items()
        },
        source="the built-in family class",
    )


def generic(name: str, event_names: Iterable[str] = (), per_symbol: Iterable[str] = ()) -> Declarations:
    """Declarations of an unknown family without a ``family`` entry: every event in its table but
    ``distance_above``, ``diverged`` and the per-symbol ones (``symbol_lost`` and those named in
    ``per_symbol``: events whose rows carry a symbol) is taken for a collapse; no distance, no
    overlays."""
    symbols = {"symbol_lost", *per_symbol}
    events = tuple(
        EventInfo(
            event=e,
            collapse=e not in ("distance_above", "diverged") and e not in symbols,
            per_symbol=e in symbols,
            thresholds=e not in symbols,
        )
        for e in sorted(set(event_names))
    )
    return Declarations(name=name, events=events, source="none recorded; guessed from the events table")


def for_folder(
    meta: dict[str, Any],
    family: str,
    *,
    only: bool,
    event_names: Iterable[str] = (),
    per_symbol: Iterable[str] = (),
) -> Declarations:
    """The declarations for the rows of ``family`` in a folder whose ``sweep.json`` is ``meta``.

    A folder written by ``sweep run`` holds one family, the one its ``family`` entry describes;
    ``only`` says the rows hold that one family, in which case the entry applies whatever the
    rows call it. Otherwise the entry applies to the rows whose name it bears. ``event_names`` and
    ``per_symbol`` (the events whose rows carry a symbol) serve a family known nowhere.
    """
    entry = meta.get("family") if isinstance(meta, dict) else None
    if isinstance(entry, dict) and (only or entry.get("name") == family):
        return from_entry(entry)
    return builtin(family) or generic(family, event_names, per_symbol)


def for_frame(frame: pd.DataFrame) -> Declarations | None:
    """The built-in declarations of the one family a frame's ``family`` column names, else None."""
    if "family" not in frame or frame.empty:
        return None
    names = frame["family"].astype(str).unique()
    return builtin(str(names[0])) if len(names) == 1 else None
