"""Events of the neural families, checked on each generation's evaluation."""

from __future__ import annotations

from typing import Any

import numpy as np

from sweep.events import EventSet


class NeuralEvents:
    """classes_below, distance_above (Frechet distance) and diverged (non-finite training loss)."""

    def __init__(self, family: Any, batch: int, horizon: int, spec: Any):
        self.family = family
        self.set = EventSet(batch, horizon)
        self.classes = [(self.set.add("classes_below", c), c) for c in spec.classes_below]
        self.distance = [(self.set.add("distance_above", d), d) for d in spec.distance_above]
        self.diverged = self.set.add("diverged") if spec.diverged else None

    def update(self, generation: int, params: Any, state: Any) -> None:
        if self.classes or self.distance:
            values = self.family.evaluation(params)
            for slot, threshold in self.classes:
                self.set.mark(slot, generation, values["classes_covered"] < threshold)
            with np.errstate(invalid="ignore"):
                for slot, threshold in self.distance:
                    self.set.mark(slot, generation, values["frechet_distance"] > threshold)
        diverged = getattr(params, "diverged", None)  # the truth (generation 0) has none
        if self.diverged is not None and diverged is not None:
            self.set.mark(self.diverged, generation, diverged)
