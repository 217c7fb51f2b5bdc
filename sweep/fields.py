"""Small readers that turn raw YAML values into validated Python values.

Every reader takes the dotted path of the field it reads, so an error names exactly the field,
the expectation and the value given (see :class:`sweep.errors.SpecError`).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Iterable, Mapping

from sweep.errors import SpecError

_MISSING = object()


class Section:
    """A mapping of known fields; reading it consumes keys, :meth:`close` refuses the rest."""

    def __init__(self, raw: Any, path: str, known: Iterable[str]):
        if not isinstance(raw, Mapping):
            raise SpecError(path or "(top level)", "a mapping of fields", raw)
        self.raw = dict(raw)
        self.path = path
        self.known = tuple(known)
        for key in self.raw:
            if key not in self.known:
                raise SpecError(
                    self.sub(str(key)),
                    f"one of the known fields ({', '.join(self.known)})",
                    f"unknown field '{key}'",
                    raw=True,
                )

    def sub(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.raw and self.raw[key] is not None

    def take(self, key: str, read: Callable[[Any, str], Any], default: Any = _MISSING) -> Any:
        """Read ``key`` with ``read(value, path)``; a missing key takes ``default`` or is an error."""
        if key not in self.raw or self.raw[key] is None:
            if default is _MISSING:
                raise SpecError(self.sub(key), "a value (the field is required)", "nothing", raw=True)
            return default
        return read(self.raw[key], self.sub(key))


def integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[Any, str], int]:
    """Reader of an integer in [minimum, maximum] (bools are not integers here)."""

    def read(value: Any, path: str) -> int:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        if not ok and isinstance(value, float) and value.is_integer():
            ok, value = True, int(value)
        bounds = _bounds_text(minimum, maximum)
        if not ok or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise SpecError(path, f"an integer{bounds}", value)
        return int(value)

    return read


def number(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[Any, str], float]:
    """Reader of a finite real number in an interval with open or closed ends."""

    def read(value: Any, path: str) -> float:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        where = f" in {left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise SpecError(path, f"a finite number{where}", value)
        x = float(value)
        if low is not None and (x < low or (low_open and x == low)):
            raise SpecError(path, f"a number{where}", value)
        if high is not None and (x > high or (high_open and x == high)):
            raise SpecError(path, f"a number{where}", value)
        return x

    return read


def choice(*options: str) -> Callable[[Any, str], str]:
    """Reader of one string among ``options``."""

    def read(value: Any, path: str) -> str:
        if not isinstance(value, str) or value not in options:
            raise SpecError(path, f"one of {', '.join(options)}", value)
        return value

    return read


def boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(path, "true or false", value)
    return value


def text(pattern_description: str, allowed: Callable[[str], bool]) -> Callable[[Any, str], str]:
    def read(value: Any, path: str) -> str:
        if not isinstance(value, str) or not allowed(value):
            raise SpecError(path, pattern_description, value)
        return value

    return read


def listed(
    item: Callable[[Any, str], Any], *, nonempty: bool = True, scalar_ok: bool = True
) -> Callable[[Any, str], tuple]:
    """Reader of a list of items (a single scalar is taken as a one-item list)."""

    def read(value: Any, path: str) -> tuple:
        if not isinstance(value, (list, tuple)):
            if not scalar_ok:
                raise SpecError(path, "a list", value)
            value = [value]
        if nonempty and len(value) == 0:
            raise SpecError(path, "a non-empty list", value)
        return tuple(item(v, f"{path}[{i}]") for i, v in enumerate(value))

    return read


def _bounds_text(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""
