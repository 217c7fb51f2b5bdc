"""Covariates of a collapse-time regression: grid axes, transformed, as design-matrix columns.

A covariate is written as a small formula over grid-axis columns (``docs/schema.md``):

* ``n``, ``real``, ``temperature``, ``family_k`` (or ``family.k``): the axis as a number;
* ``log(n)``, ``log(temperature)``: its natural log (every value must be > 0);
* ``policy``, ``policy_kind``, a text axis, or ``C(axis)`` for a numeric one: one indicator per
  level but the reference (``replace`` when present, temperature 1 when present, else the first
  level in sorted order), named ``policy[fresh_real(0.1)]``, ``C(temperature)[0.9]``;
* ``a:b``: the product of two covariates (every pair of their columns); ``a*b``: ``a + b + a:b``.

Only grid axes are accepted, never per-chain columns (``replicate``, ``generation``): every
covariate is a property of the cell, so the design is one row per cell.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["AXIS_COLUMNS", "Design", "axis_columns", "design_matrix"]

#: Grid-axis columns every folder may hold; ``family_<field>`` columns are axes too.
AXIS_COLUMNS = ("n", "policy", "policy_kind", "keep", "synthetic", "real", "temperature")
_FAMILY_PREFIX = "family_"
_FACTOR = re.compile(r"^(?:(?P<fn>log|C)\((?P<inner>[^()]+)\)|(?P<bare>[^()]+))$")
_EXPECTED = (
    "a grid axis (n, policy, policy_kind, keep, synthetic, real, temperature or family_<field>), "
    "optionally as log(axis) or C(axis), joined by ':' or '*'"
)


@dataclass(frozen=True)
class Design:
    """Covariate columns, one row per cell.

    Attributes
    ----------
    columns : pandas.DataFrame
        Indexed by ``cell``; one numeric column per design term (``log(n)``,
        ``policy[fresh_real(0.1)]``, ``log(n):real``).
    terms : tuple of str
        The design columns in order.
    factors : dict
        For each term, the covariate factors it multiplies (``("log(n)", "real")``).
    levels : dict
        For each categorical factor (``policy``, ``C(temperature)``): level -> its cells,
        the reference level included.
    """

    columns: pd.DataFrame
    terms: tuple[str, ...]
    factors: dict[str, tuple[str, ...]]
    levels: dict[str, dict[str, list[int]]]


def axis_columns(cells: pd.DataFrame) -> list[str]:
    """The grid-axis columns present in ``cells``."""
    return [c for c in cells.columns if c in AXIS_COLUMNS or c.startswith(_FAMILY_PREFIX)]


def _reference(column: str, levels: list) -> object:
    """The level the others are compared with: replace, temperature 1, else the first in order."""
    if "replace" in levels:
        return "replace"
    if column == "temperature" and 1.0 in levels:
        return 1.0
    return levels[0]


def _factor(text: str, where: str, cells: pd.DataFrame, levels: dict) -> dict[str, np.ndarray]:
    """Columns of one factor (``log(n)``, ``policy``, ``C(temperature)``), one value per cell; a
    categorical factor's levels and their cells go into ``levels``."""
    match = _FACTOR.match(text.strip())
    name = (match.group("inner") or match.group("bare")).strip() if match else ""
    column = name.replace(".", "_")  # family.k, as the spec writes it, is the column family_k
    if not match or column not in axis_columns(cells):
        present = ", ".join(axis_columns(cells))
        raise ValueError(
            f"{where} = {text!r}: expected {_EXPECTED} with a column in the events (present: {present}), got {text!r}"
        )
    values = cells[column]
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    function = match.group("fn")
    if numeric and values.isna().any():
        nan_cells = cells.loc[values.isna(), "cell"].tolist()
        raise ValueError(
            f"{where} = {text!r}: expected a value in every cell, got NaN in cells {nan_cells} "
            "(accumulate policies have keep = NaN); use policy or policy_kind instead"
        )
    if function == "C" or not numeric:
        if function == "log":
            raise ValueError(f"{where} = {text!r}: expected log() of a numeric axis, got the text axis '{column}'")
        labels = values.astype(str) if not numeric else values
        ordered = sorted(labels.unique().tolist())
        reference = _reference(column, ordered)
        prefix = f"C({column})" if function == "C" else column
        levels[prefix] = {str(level): cells.loc[(labels == level).to_numpy(), "cell"].tolist() for level in ordered}
        return {
            f"{prefix}[{level}]": (labels == level).to_numpy(dtype=float) for level in ordered if level != reference
        }
    numbers = values.to_numpy(dtype=float)
    if function == "log":
        if np.any(numbers <= 0):
            raise ValueError(
                f"{where} = {text!r}: expected {column} > 0 in every cell to take its log, "
                f"got {sorted(set(numbers[numbers <= 0].tolist()))}"
            )
        return {f"log({column})": np.log(numbers)}
    return {column: numbers}


def _term(
    text: str, where: str, cells: pd.DataFrame, levels: dict
) -> list[tuple[tuple[str, ...], dict[str, np.ndarray]]]:
    """Expand one covariate string into (factors, columns) pieces: ``a*b`` is a, b and a:b."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: expected {_EXPECTED}, got {text!r}")
    if "*" in text and ":" in text:
        raise ValueError(f"{where} = {text!r}: expected either ':' or '*' in one covariate, got both")
    parts = [p.strip() for p in re.split(r"[*:]", text)]
    if len(set(parts)) < len(parts):
        raise ValueError(f"{where} = {text!r}: expected distinct factors in an interaction, got {parts}")
    columns = [_factor(p, where, cells, levels) for p in parts]
    sizes = range(1, len(parts) + 1) if "*" in text else [len(parts)]
    pieces = []
    for size in sizes:
        for chosen in itertools.combinations(range(len(parts)), size):
            product = {}
            for names in itertools.product(*(columns[i] for i in chosen)):
                product[":".join(names)] = np.prod([columns[i][name] for i, name in zip(chosen, names)], axis=0)
            pieces.append((tuple(parts[i] for i in chosen), product))
    return pieces


def design_matrix(cells: pd.DataFrame, covariates: Sequence[str]) -> Design:
    """Design columns of ``covariates`` over ``cells`` (one row per cell, with its axis columns).

    Parameters
    ----------
    cells : pandas.DataFrame
        One row per cell: ``cell`` and the grid-axis columns.
    covariates : sequence of str
        Covariate formulas (see the module docstring).

    Returns
    -------
    Design

    Raises
    ------
    ValueError
        A covariate that is not a grid axis or is malformed, a log of a non-positive value, a
        covariate that takes one value in every cell, or covariates that are collinear.
    """
    if isinstance(covariates, str) or not len(covariates):
        raise ValueError(
            f"covariates: expected a non-empty list of covariates such as ['log(n)', 'real'], got {covariates!r}"
        )
    columns: dict[str, np.ndarray] = {}
    factors: dict[str, tuple[str, ...]] = {}
    levels: dict[str, dict[str, list[int]]] = {}
    for i, text in enumerate(covariates):
        for parts, pieces in _term(text, f"covariates[{i}]", cells, levels):
            for name, values in pieces.items():
                if name in columns:
                    continue  # 'a*b' and 'a' both name a: keep it once
                if np.ptp(values) == 0:
                    raise ValueError(
                        f"covariates[{i}] = {text!r}: expected a term that varies across the cells, "
                        f"got {name} = {values[0]:g} in all {len(values)} of them; drop it"
                    )
                columns[name], factors[name] = values, parts
    frame = pd.DataFrame(columns, index=pd.Index(cells["cell"].to_numpy(), name="cell"))
    # The intercept is fitted too: a design that does not have full rank with it cannot be fitted.
    matrix = np.column_stack([np.ones(len(frame)), frame.to_numpy()])
    scaled = matrix / np.abs(matrix).max(axis=0)  # every column varies, so no maximum is 0
    if np.linalg.matrix_rank(scaled) < matrix.shape[1]:
        raise ValueError(
            f"covariates: expected terms that are not collinear over the {len(frame)} cells, got "
            f"{list(frame.columns)} (with the intercept); drop one of the terms that repeat another"
        )
    return Design(frame, tuple(frame.columns), factors, levels)
