"""Errors a user can act on, each rendered as one line."""

from __future__ import annotations

from typing import Any


def describe(value: Any) -> str:
    """Render a user-given value compactly for an error message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class SpecError(ValueError):
    """A spec field that is missing, unknown or has a value outside what it accepts.

    The message always has the same shape, in the manner of scikit-learn's parameter
    validation: the field's dotted path, what was expected, what was given.
    """

    def __init__(self, field: str, expected: str, got: Any, *, raw: bool = False):
        self.field = field
        self.expected = expected
        self.got = got if raw else describe(got)
        super().__init__(f"spec field '{field}': expected {expected}, got {self.got}")


class UsageError(ValueError):
    """A command-line or results-folder problem the user must fix (exit status 2)."""
