"""The report's collapse sections where every chain collapses before the horizon (a neural sweep's
``classes_below`` often does at generation 1): the heatmap asks for P(collapsed by T) at the
folder's horizon, not at one guessed from the events."""

from __future__ import annotations

import numpy as np

import analysis
from analysis._declarations import Declarations, EventInfo
from analysis._report_collapse import _heatmaps
from analysis._report_context import FamilyRows, Report
from analysis._survival import collapse_times, survival
from tests.analysis.synthetic import gaussian_frames


def _all_collapsed_at_one():
    traj, events = gaussian_frames(ns=(10, 40), reals=(0.0, 0.2), replicates=12, generations=8, seed=4)
    spread = events["event"] == "spread_below"
    events.loc[spread, "generation"] = np.int32(1)
    events.loc[spread, "observed"] = True
    return traj, events


def test_collapsed_by_at_a_given_horizon_beyond_the_last_event():
    """With the horizon given, P(collapsed by T) is answerable past the last event (here 1: every
    chain collapsed at generation 1); without it T is guessed from the events and T = 8 is refused."""
    _, events = _all_collapsed_at_one()
    table = analysis.collapsed_by(events, "spread_below", 0.5, [8], horizon=8)
    assert (table["probability"] == 1.0).all() and (table["count"] == 12).all() and len(table) == 4
    try:
        analysis.collapsed_by(events, "spread_below", 0.5, [8])
    except ValueError as error:
        assert "horizon is T=1" in str(error)
    else:
        raise AssertionError("a horizon guessed from the events must not be exceeded")


def test_heatmap_of_a_section_whose_chains_all_collapsed_before_the_horizon(tmp_path):
    """The (n, real) heatmap is drawn (it raised ValueError before) and shows probability 1."""
    traj, events = _all_collapsed_at_one()
    info = Declarations(name="gaussian", events=(EventInfo("spread_below"),), spread_metric="spread_ratio")
    fam = FamilyRows(info, traj, events, 8, "unbiased")
    summary = survival(collapse_times(events, "spread_below", 0.5, horizon=8))
    rep = Report(tmp_path, 10, 0)
    _heatmaps(rep, fam, summary, "spread_below", 0.5, 8, "spread < 0.5", "tag")
    assert (tmp_path / "figures" / "heatmap_tag.png").exists()
    assert any("Probability of spread < 0.5 by the horizon" in line for line in rep.lines)
