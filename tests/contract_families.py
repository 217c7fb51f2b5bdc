"""Families for the tests of the family contract, loaded by import path (``tests.contract_families:X``).

Tasks import this module in Ray's workers, whose ``sys.path`` holds the driver's working directory
(the repository root when the tests run).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from examples.custom_family.exponential import ExponentialFamily, ExponentialSpec
from sweep import fields
from sweep.families import Family, GaussianFamily, Resources


class GPUGaussian(GaussianFamily):
    """The Gaussian family declaring that each task needs a GPU."""

    name = "gpu-gaussian"
    resources = Resources(num_gpus=1)


@dataclass(frozen=True)
class SlowSpec(ExponentialSpec):
    """The exponential's spec plus the file each fit appends its process id to (none: no log)."""

    log: str | None = None

    def to_raw(self) -> dict[str, Any]:
        return {**super().to_raw(), "log": self.log}


class SlowExponential(ExponentialFamily):
    """The example family with a checkpoint every 5 generations and a generation of 20 ms, as a
    family whose generation takes long; it logs each fit's process id to ``family.log``, a field
    of the spec so that it reaches the tasks (their environment is fixed when Ray starts)."""

    name = "slow-exponential"
    spec_fields = ExponentialFamily.spec_fields + ("log",)
    checkpoint_every = 5
    seconds_per_generation = 0.02

    @classmethod
    def parse_spec(cls, section: fields.Section) -> SlowSpec:
        base = super().parse_spec(section)
        return SlowSpec(base.rate, base.path, section.take("log", fields.text("a file path", bool), None))

    def fit_stats(self, stats: Any) -> Any:
        time.sleep(self.seconds_per_generation)
        if self.spec.log:
            # O_APPEND: lines of concurrent writers do not interleave
            descriptor = os.open(self.spec.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            try:
                os.write(descriptor, f"{os.getpid()}\n".encode())
            finally:
                os.close(descriptor)
        return super().fit_stats(stats)


class NotAFamily:
    """A class with the right methods that does not derive from Family."""

    name = "not-a-family"

    def sample(self, *args: Any, **kwargs: Any) -> None:
        return None


class NoSample(Family):
    """A Family subclass that forgets ``sample``."""

    name = "no-sample"
    parse_spec = classmethod(lambda cls, section: None)
    truth = fit = events = metrics = cost = lambda self, *args, **kwargs: None
