"""The report's metric parts: which declared columns count as metrics, the order-statistic
interval of a median (exact levels and simulated coverage), and final medians per cell."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import _markdown as md
from analysis._declarations import Declarations
from analysis._report_context import FamilyRows, Report
from analysis._report_metrics import _table, declared_metrics, final_medians, median_interval
from tests.analysis.synthetic import gaussian_frames


def _family(traj: pd.DataFrame, **declared) -> FamilyRows:
    return FamilyRows(Declarations(name="toy", **declared), traj, pd.DataFrame(), int(traj["generation"].max()), "ml")


def _toy_trajectories() -> pd.DataFrame:
    rows = []
    for cell in (0, 1):
        for replicate in range(3):
            for generation in (0, 1, 2):
                rows.append(
                    {
                        "family": "toy",
                        "cell": cell,
                        "n": 10,
                        "policy": "replace",
                        "temperature": 1.0,
                        "family_method": "a" if cell == 0 else "b",
                        "replicate": replicate,
                        "generation": generation,
                        "distance": float(generation + replicate),
                        "score": 1.0,
                        "only_truth": 1.0 if generation == 0 else np.nan,
                        "flag": True,
                        "vector": [1.0, 2.0],
                        "undeclared": 3.0,
                    }
                )
    return pd.DataFrame(rows)


def test_declared_metrics_are_numeric_per_chain_columns_distance_first():
    """Only declared, numeric, non-boolean, non-list columns with a finite value after generation 0
    are metrics (not coordinates, nor undeclared columns), the distance metric first."""
    traj = _toy_trajectories()
    declared = {c: "" for c in ("score", "only_truth", "flag", "vector", "missing", "n", "family_method", "distance")}
    fam = _family(traj, metrics=declared, distance_metric="distance")
    assert declared_metrics(fam) == ["distance", "score"]


def test_median_interval_takes_the_exact_order_statistics():
    """For 10 values the 95% interval is [x_(2), x_(9)] with coverage 1 - 2 P(Bin(10, 1/2) <= 1);
    with 4 values no pair reaches 95%, so the range and its coverage 1 - 2^-3 are given; NaNs
    are left out, and no finite value gives NaNs."""
    values = np.array([7, 3, 10, 1, 5, 9, 2, 8, 6, 4], dtype=float)
    median, lower, upper, coverage = median_interval(values)
    assert (median, lower, upper) == (5.5, 2.0, 9.0)
    assert coverage == pytest.approx(1 - 2 * stats.binom.cdf(1, 10, 0.5)) and coverage >= 0.95
    assert median_interval([4.0, np.nan, 1.0, 3.0, 2.0, np.inf]) == (2.5, 1.0, 4.0, 0.875)
    assert np.isnan(median_interval([np.nan, np.nan])[0])


def test_median_interval_covers_the_true_median_at_its_stated_rate():
    """Simulated coverage of the true median of an exponential (ln 2) by 20-chain intervals equals
    the stated exact coverage within 4.5 standard errors; the neighbouring order statistics
    (0.885, 0.988) would be far outside."""
    rng = np.random.default_rng(3)
    samples = rng.exponential(size=(4000, 20))
    hits, stated = 0, None
    for sample in samples:
        _, lower, upper, stated = median_interval(sample)
        hits += lower <= np.log(2) <= upper
    assert stated == pytest.approx(1 - 2 * stats.binom.cdf(5, 20, 0.5))  # [x_(6), x_(15)]: 0.9586
    se = np.sqrt(stated * (1 - stated) / len(samples))
    assert abs(hits / len(samples) - stated) < 4.5 * se


def test_final_medians_are_per_cell_medians_at_the_generation_given():
    """final_medians matches pandas' median per cell at T, and counts non-finite values apart."""
    traj = _toy_trajectories()
    traj.loc[(traj["cell"] == 1) & (traj["generation"] == 2) & (traj["replicate"] == 0), "distance"] = np.nan
    table = final_medians(traj, ["distance"], 2).set_index("cell")
    expected = traj[traj["generation"] == 2].groupby("cell")["distance"].median()
    assert table["median"].to_dict() == expected.to_dict() == {0: 3.0, 1: 3.5}
    assert table["missing"].to_dict() == {0: 0, 1: 1} and table["chains"].to_dict() == {0: 3, 1: 2}
    assert table.loc[0, ["lower", "upper"]].tolist() == [2.0, 4.0]


def test_final_median_table_shows_order_statistic_intervals_and_non_finite_chains(tmp_path):
    """With 30 chains the table gives the median and [x_(10), x_(21)] (the 95% order statistics),
    no † note; a chain whose value at T is NaN is left out and counted in its entry; the n and
    policy coordinates that vary are columns of their own."""
    traj, events = gaussian_frames(ns=(10, 40), reals=(0.0, 0.2), replicates=30, generations=6, seed=8)
    last = traj.index[(traj["generation"] == 6) & (traj["cell"] == 3)]
    traj.loc[last[:1], "spread_ratio"] = np.nan
    info = Declarations(name="gaussian", metrics={"spread_ratio": "sd ratio"}, spread_metric="spread_ratio")
    rep = Report(tmp_path, 10, 0)
    _table(rep, FamilyRows(info, traj, events, 6, "unbiased"), ["spread_ratio"])
    text = "\n".join(rep.lines)
    assert "†" not in text and "- `spread_ratio`: sd ratio" in text
    rows = {int(line.split(" | ")[0][2:]): line for line in rep.lines[-2].splitlines()[2:]}
    # The policy label names its real share, so the real column is not repeated.
    assert rep.lines[-2].splitlines()[0] == "| cell | n | policy | chains | spread_ratio |"
    for cell in range(4):
        values = np.sort(traj.loc[(traj["generation"] == 6) & (traj["cell"] == cell), "spread_ratio"].dropna())
        k = 10 if len(values) == 30 else 9  # 29 finite values: 1 - 2 P(Bin(29, 1/2) <= 8) = 0.976
        expected = md.estimate(float(np.median(values)), values[k - 1], values[len(values) - k])
        assert rows[cell].endswith(f"| 30 | {expected}{' (1 non-finite left out)' if cell == 3 else ''} |")
