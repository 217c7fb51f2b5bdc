from __future__ import annotations

import numpy as np
import pandas as pd

import analysis
from analysis._cells import cell_labels, coordinate_columns, group_columns, group_labels
from analysis._declarations import builtin, for_folder
from analysis import theory


def _cells(**axes):
    """Four cells of n x one other axis, with the coordinate columns sweep run writes."""
    base = pd.DataFrame(
        {
            "family": "gmm1d",
            "cell": np.arange(4, dtype=np.int32),
            "cell_key": np.arange(4),
            "n": [10, 20, 10, 20],
            "policy": "replace",
            "policy_kind": "replace",
            "keep": 0.0,
            "synthetic": 1.0,
            "real": 0.0,
            "temperature": 1.0,
            "replicate": 0,
            "w2": 0.1,
        }
    )
    return base.assign(**axes)


def test_coordinates_are_the_fixed_ones_then_every_axis_column():
    """temperature and family_<field> columns are coordinates (metrics and replicate are not), after the fixed ones."""
    frame = _cells(family_k=[2, 2, 3, 3], family_init="kmeans")
    assert coordinate_columns(frame) == [
        "family",
        "cell",
        "cell_key",
        "n",
        "policy",
        "policy_kind",
        "keep",
        "synthetic",
        "real",
        "temperature",
        "family_k",
        "family_init",
    ]
    assert (
        "family_k"
        in analysis.survival(
            analysis.collapse_times(
                pd.DataFrame(
                    {
                        **frame.drop(columns="w2"),
                        "event": "collapse",
                        "threshold": np.nan,
                        "generation": [3, 4, 5, 6],
                        "observed": True,
                    }
                ),
                "collapse",
            )
        ).columns
    )


def test_labels_name_every_axis_that_varies_and_only_those():
    """k and temperature join 'n=10, replace' where they differ between the cells shown; a constant axis stays out."""
    frame = _cells(family_k=[2, 2, 3, 3], temperature=[1.0, 1.0, 0.5, 0.5])
    assert cell_labels(frame) == {
        0: "n=10, replace, temperature=1, k=2",
        1: "n=20, replace, temperature=1, k=2",
        2: "n=10, replace, temperature=0.5, k=3",
        3: "n=20, replace, temperature=0.5, k=3",
    }
    assert cell_labels(frame[frame["family_k"] == 3]) == {2: "n=10, replace", 3: "n=20, replace"}


def test_rate_lines_are_the_combinations_of_every_axis_but_n():
    """Lines of a rate fit group by family, policy and every other axis, so n varies within each line only."""
    frame = _cells(family_k=[2, 2, 3, 3])
    keys = group_columns(frame, "policy")
    assert keys == ["family", "policy", "temperature", "family_k"]
    lines = frame.groupby(keys)["n"].apply(sorted)
    assert lines.tolist() == [[10, 20], [10, 20]]
    assert group_labels(frame, keys) == {
        ("gmm1d", "replace", 1.0, 2): "replace, k=2",
        ("gmm1d", "replace", 1.0, 3): "replace, k=3",
    }


def test_replay_printout_leaves_out_every_coordinate():
    """sweep replay's printout drops the cell's coordinates, the axis columns included, and keeps the metrics."""
    from sweep.replay import describe

    frame = _cells(family_k=2).assign(generation=np.arange(4), seed="1")
    table = describe("cell 0", 0, frame, pd.DataFrame())
    header = table.split("recorded generations):")[1].splitlines()[1]
    assert sorted(header.split()) == ["generation", "w2"]


def test_every_overlay_a_built_in_family_declares_is_known_to_the_theory():
    """The built-in families' theory overlays all name entries of analysis.theory.OVERLAYS (a typo draws nothing)."""
    from sweep.families import REGISTRY

    declared = {o for name in REGISTRY for o in builtin(name).theory_overlays}
    assert declared and declared <= set(theory.OVERLAYS)
    assert "spread_collapse_time" in theory.overlay_draws(["gaussian_log_variance"])
    assert theory.overlay_draws(["mixture_density", "unknown"]) == {"mixture_density"}


def test_folders_without_a_family_entry_fall_back_to_the_built_in_declarations():
    """No 'family' in sweep.json: a built-in family's class declarations, or, for another name, a guess from
    the events in which distance_above, diverged and symbol_lost are not collapses."""
    gaussian = for_folder({}, "gaussian", only=True)
    assert gaussian.distance_metric == "w2" and [e.event for e in gaussian.collapse_events()] == ["spread_below"]
    other = for_folder({}, "mypkg.mod:Cls", only=True, event_names=["my_event", "distance_above", "diverged"])
    assert [e.event for e in other.collapse_events()] == ["my_event"] and other.distance_metric is None
    entry = {"name": "x", "events": [{"event": "e", "collapse": True}], "distance_metric": "d"}
    assert for_folder({"family": entry}, "gaussian", only=True).distance_metric == "d"
