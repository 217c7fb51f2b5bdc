"""The language-model experiments run through Ray and Parquet and write every metric, the
sequences table and the events; a chain replays bit for bit on CPU. The shipped _small specs
run whole under -m slow (about a minute each on 2 cores); by default at 2-3 generations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import analysis
from sweep.spec import parse_spec

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def _check_folder(location: Path) -> None:
    meta = json.loads((location / "sweep.json").read_text())
    spec = parse_spec(meta["spec"])
    assert meta["status"] == "complete" and meta["family"]["side_tables"] == {
        "sequences": {"metric": "sequence_perplexity", "index": "sequence", "value": "perplexity"}
    }
    traj = analysis.load(location)
    last = traj[traj["generation"] == traj["generation"].max()]
    for column in meta["family"]["metrics"]:
        assert column in traj, column
        assert np.isfinite(last[column].to_numpy(dtype=float)).all(), column
    assert (traj.loc[traj["generation"] == 0, "perplexity"].isna()).all()
    sequences = analysis.load_side(location, "sequences")
    recorded = traj[traj["generation"] > 0]
    blocks = {cell: n // spec.family_spec.text.sequence_length for cell, n in traj.groupby("cell")["n"].first().items()}
    per_row = sequences.groupby(["cell", "replicate", "generation"]).size()
    assert len(per_row) == len(recorded)
    replace = [c for c, p in traj.groupby("cell")["policy"].first().items() if p == "replace"]
    assert all(per_row.loc[c].eq(blocks[c]).all() for c in replace)  # replace: n / L sequences
    assert (sequences["perplexity"] > 1).all()
    # generated_perplexity is the per-sequence perplexities' geometric mean
    geo = np.exp(
        np.log(sequences["perplexity"]).groupby([sequences[k] for k in ("cell", "replicate", "generation")]).mean()
    )
    mine = recorded.set_index(["cell", "replicate", "generation"])["generated_perplexity"]
    np.testing.assert_allclose(mine.loc[geo.index].to_numpy(), geo.to_numpy(), rtol=1e-9)
    events = analysis.load_events(location)
    words = events[events["event"] == "word_lost"]
    assert len(words) == spec.replicates * len(blocks) * spec.family_spec.text.tracked_words
    assert words["initial_count"].notna().all() and set(events["event"]) >= {"perplexity_above", "diverged"}


#: The default run: every metric and table at 2-3 generations; the transformer on two of its cells
#: (sampling, and beam search with the repetition penalty), each chain once, to keep it short.
SMALL = [
    ("lm_ngram_small", ["generations=3", "replicates=3"]),
    (
        "lm_transformer_small",
        [
            "generations=2",
            "replicates=1",
            "grid=[{n: [1024], policy: [{fresh_real: 0.125}], "
            "family.num_beams: [1, 5], family.repetition_penalty: [3.0]}]",
        ],
    ),
]


@pytest.mark.parametrize("name, settings", SMALL, ids=[s[0] for s in SMALL])
def test_small_experiment_writes_every_metric_and_replays(name, settings, ray_session, tmp_path, cli):
    """Every cell writes every declared metric, finite after generation 0, one sequences row per
    generated sequence whose geometric mean is generated_perplexity, and word_lost rows with
    initial counts; a chain of cell 1 (the transformer's beam search) replays bit for bit on CPU."""
    if name == "lm_transformer_small":
        pytest.importorskip("torch")
    overrides = [arg for setting in settings for arg in ("--set", setting)]
    status, _, err = cli("run", EXPERIMENTS / f"{name}.yaml", "--out", tmp_path, "--no-progress", *overrides)
    assert status == 0, err
    _check_folder(tmp_path / name)
    status, out, err = cli("replay", tmp_path / name, "--cell", "1", "--replicate", "0", "--check")
    assert status == 0 and "identical to the stored rows" in out, out + err


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lm_ngram_small", "lm_transformer_small"])
def test_shipped_small_experiment_runs_whole(name, ray_session, tmp_path, cli):
    """The _small spec as shipped runs and writes every metric, table and event."""
    if name == "lm_transformer_small":
        pytest.importorskip("torch")
    status, _, err = cli("run", EXPERIMENTS / f"{name}.yaml", "--out", tmp_path, "--no-progress")
    assert status == 0, err
    _check_folder(tmp_path / name)
