"""Fan charts of many metrics: one panel per metric, the drawn medians are the chains' medians
per generation, and generation 0 is drawn as the truth's line only where it has a value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.figures.metrics import MAX_CELLS, metric_fans


def _frame(cells: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    rows = []
    for cell in range(cells):
        for replicate in range(9):
            for generation in range(4):
                rows.append(
                    {
                        "cell": cell,
                        "n": 50,
                        "policy": "replace" if cell == 0 else "accumulate",
                        "replicate": replicate,
                        "generation": generation,
                        "score": 10.0 + cell + generation * rng.normal(),
                        "model_only": np.nan if generation == 0 else rng.normal(),
                    }
                )
    return pd.DataFrame(rows)


def test_metric_fans_draw_the_chains_medians_and_the_truth_line():
    """Each panel's line per cell is the median over chains at each generation >= 1; the dotted
    generation-0 line is at the truth's value, and absent for a metric undefined at generation 0."""
    frame = _frame()
    fig = metric_fans(frame, ["score", "model_only"])
    score, model_only = fig.axes
    assert [ax.get_title() for ax in fig.axes] == ["score", "model_only"]
    for cell, line in zip((0, 1), [ln for ln in score.get_lines() if ln.get_linestyle() == "-"]):
        rows = frame[(frame["cell"] == cell) & (frame["generation"] > 0)]
        expected = rows.groupby("generation")["score"].median()
        np.testing.assert_array_equal(line.get_xdata(), expected.index.to_numpy())
        np.testing.assert_allclose(line.get_ydata(), expected.to_numpy())
    truth = [ln for ln in score.get_lines() if ln.get_linestyle() == ":"]
    assert len(truth) == 1 and truth[0].get_ydata()[0] == pytest.approx(10.5)
    assert not [ln for ln in model_only.get_lines() if ln.get_linestyle() == ":"]


def test_metric_fans_refuse_too_many_cells_or_unknown_ones():
    """More cells than MAX_CELLS, or a cell not in the frame, is a ValueError naming the limit or the cell."""
    frame = _frame(MAX_CELLS + 1)
    with pytest.raises(ValueError, match=f"at most {MAX_CELLS}"):
        metric_fans(frame, ["score"])
    with pytest.raises(ValueError, match=r"cells \[99\]"):
        metric_fans(frame, ["score"], cells=[0, 99])
