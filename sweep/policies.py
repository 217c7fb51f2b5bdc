"""Mixing policies: how each generation's training set is built.

Every generation's training set comes from three sources: the previous training set, fresh
samples of the model fitted at the previous generation, and fresh samples of the true
distribution. The named policies are presets of that mix:

- ``replace``: n fresh samples of the fitted model.
- ``accumulate``: the previous training set plus n fresh synthetic samples (grows by n).
- ``accumulate_subsample``: everything generated so far is kept in a pool; the model is fitted
  on a uniform subsample (without replacement) of size n from the pool.
- ``fresh_real: f``: round(f n) fresh true samples plus the rest synthetic.
- ``mix: {keep, synthetic, real}``: round(keep n) drawn without replacement from the previous
  training set, round(real n) fresh true samples, the rest synthetic. Ratios sum to 1.

At generation 1 every source is the truth (the model at generation 0 is the true distribution
and there is no earlier training set), so every policy starts from n true samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sweep import fields
from sweep.errors import SpecError

KINDS = ("replace", "accumulate", "accumulate_subsample", "fresh_real", "mix")


@dataclass(frozen=True)
class Policy:
    """One mixing policy, as the fractions of each generation's n it draws from each source."""

    kind: str
    keep: float = 0.0
    synthetic: float = 1.0
    real: float = 0.0

    @property
    def label(self) -> str:
        if self.kind == "fresh_real":
            return f"fresh_real({self.real:g})"
        if self.kind == "mix":
            return f"mix({self.keep:g},{self.synthetic:g},{self.real:g})"
        return self.kind

    @property
    def grows(self) -> bool:
        """True when the retained data grows every generation (the accumulate kinds)."""
        return self.kind in ("accumulate", "accumulate_subsample")

    @property
    def subsamples(self) -> bool:
        """True when a generation draws *without replacement* from stored data.

        Families whose state is a sufficient statistic cannot do that exactly (for a Gaussian
        the statistics of a subsample are not a function of the statistics of the whole).
        """
        return self.kind == "accumulate_subsample" or (self.kind == "mix" and 0.0 < self.keep < 1.0)

    def counts(self, n: int) -> tuple[int, int, int]:
        """(kept, synthetic, real) sample counts of one generation of size n (not for accumulate).

        Shares are rounded half up (kept first), so fresh_real(0.25) at n = 10 takes 3 real samples.
        """
        kept = math.floor(self.keep * n + 0.5)
        real = min(n - kept, math.floor(self.real * n + 0.5))
        return kept, n - kept - real, real

    def to_raw(self) -> Any:
        if self.kind == "fresh_real":
            return {"fresh_real": self.real}
        if self.kind == "mix":
            return {"mix": {"keep": self.keep, "synthetic": self.synthetic, "real": self.real}}
        return self.kind

    def columns(self) -> dict[str, Any]:
        """The cell-coordinate columns this policy contributes to every result row."""
        keep = math.nan if self.grows else self.keep
        return {
            "policy": self.label,
            "policy_kind": self.kind,
            "keep": keep,
            "synthetic": self.synthetic,
            "real": self.real,
        }


def parse_policy(raw: Any, path: str) -> Policy:
    """Read one policy from its YAML form (a name, ``{fresh_real: f}`` or ``{mix: {...}}``)."""
    expected = (
        "a policy: replace, accumulate, accumulate_subsample, {fresh_real: f} "
        "or {mix: {keep: a, synthetic: b, real: c}}"
    )
    if isinstance(raw, str):
        if raw in ("replace", "accumulate", "accumulate_subsample"):
            return Policy(kind=raw)
        raise SpecError(path, expected, raw)
    if not isinstance(raw, dict) or len(raw) != 1:
        raise SpecError(path, expected, raw)
    ((kind, value),) = raw.items()
    if kind == "fresh_real":
        f = fields.number(0.0, 1.0)(value, f"{path}.fresh_real")
        return Policy(kind="fresh_real", keep=0.0, synthetic=1.0 - f, real=f)
    if kind == "mix":
        section = fields.Section(value, f"{path}.mix", ("keep", "synthetic", "real"))
        ratio = fields.number(0.0, 1.0)
        keep = section.take("keep", ratio, 0.0)
        synthetic = section.take("synthetic", ratio, 0.0)
        real = section.take("real", ratio, 0.0)
        total = keep + synthetic + real
        if abs(total - 1.0) > 1e-9:
            raise SpecError(
                f"{path}.mix",
                "ratios keep + synthetic + real summing to 1",
                f"{keep:g} + {synthetic:g} + {real:g} = {total:g}",
                raw=True,
            )
        return Policy(kind="mix", keep=keep, synthetic=synthetic, real=real)
    raise SpecError(path, expected, raw)
