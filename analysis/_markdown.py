"""Markdown formatting for the report: tables and estimates with their intervals."""

from __future__ import annotations

import math
from typing import Sequence

from analysis.figures._common import format_time


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table (pandas' ``to_markdown`` needs tabulate; avoid the dependency)."""

    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, headers)) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)


def number(value, digits: int = 3) -> str:
    """A float with ``digits`` significant digits; ``–`` for NaN, ``∞`` for inf."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.{digits}g}"


def estimate(value, lower, upper, digits: int = 3) -> str:
    """``"0.42 [0.31, 0.53]"``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{number(value, digits)} [{number(lower, digits)}, {number(upper, digits)}]"


def probability(value, lower, upper) -> str:
    """``"0.42 [0.31, 0.53]"`` with two decimals, so 1 reads ``1.00``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.2f} [{lower:.2f}, {upper:.2f}]"


def median_time(row) -> str:
    """A KM median with its CI, ``"37 [30, 45]"``, where inf reads ``"> T"``: ``"> 200 [150, > 200]"``."""
    horizon = int(row["horizon"])
    return (
        f"{format_time(row['median'], horizon)} "
        f"[{format_time(row['median_lower'], horizon)}, {format_time(row['median_upper'], horizon)}]"
    )


def share(value) -> str:
    """A share as a percentage, ``"12%"``."""
    return "–" if value is None or math.isnan(value) else f"{100 * value:.0f}%"
