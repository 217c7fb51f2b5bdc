"""The report of language-model chains: forgetting time of word_lost against initial count, the
per-sequence perplexity distributions of the sequences table and vocabulary survival, all from the
declarations and the folder's tables; and the categorical forgetting section as before."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import yaml
from lifelines import KaplanMeierFitter

import analysis
from analysis._declarations import for_folder, generic
from analysis._report_lm import pick_generations, symbol_shares
from analysis.figures import distribution_figure, share_figure
from tests.analysis.synthetic import categorical_frames, write_results

#: A tiny n-gram sweep: orders 1 and 2 under replace, 8 chains, 12 generations of 320 tokens.
SPEC = {
    "name": "lm_report",
    "seed": 7,
    "generations": 12,
    "replicates": 8,
    "family": {"name": "ngram", "tokenizer": "word", "sequence_length": 32, "tracked_words": 60},
    "grid": {"n": [320], "family.order": [1, 2], "policy": ["replace"]},
    "events": {"words": True, "perplexity_above": [1.5]},
    "record": {"every": 1},
}


@pytest.fixture(scope="module")
def lm_folder(ray_session, tmp_path_factory):
    """The tiny sweep run by ``sweep run`` and reported by ``sweep report``; returns (folder, report text)."""
    from sweep.cli import main

    root = tmp_path_factory.mktemp("lm")
    spec = root / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    assert main(["run", str(spec), "--out", str(root), "--no-progress"]) == 0
    folder = root / SPEC["name"]
    assert main(["report", str(folder), "--bootstrap", "200", "--no-regression"]) == 0
    return folder, (folder / "report" / "report.md").read_text()


def _row(text: str, header: str, cell: int) -> list[str]:
    """The cells of ``cell``'s row in the table under ``header``, after the cell number."""
    section = text[text.index(header) :]
    match = re.search(rf"^\| {cell} \| (.*) \|$", section, re.M)
    assert match, f"no row for cell {cell} under {header!r}"
    return [part.strip() for part in match.group(1).split(" | ")]


def _km_median(rows: pd.DataFrame) -> float:
    return float(
        KaplanMeierFitter().fit(rows["generation"].astype(float), rows["observed"].astype(bool)).median_survival_time_
    )


def _slope(words: pd.DataFrame) -> float:
    """Slope of ln KM median on ln geometric-mean count over count bins, written out from scratch:
    one bin per distinct count when there are at most 12, else powers of two; count 0 left out;
    bins whose median is not reached by T left out."""
    words = words[words["initial_count"] >= 1]
    counts = words["initial_count"].to_numpy(dtype=float)
    distinct = np.unique(counts)
    if distinct.size <= 12:
        edges = np.append(distinct, distinct[-1] + 1)
    else:
        edges = 2.0 ** np.arange(0, np.floor(np.log2(distinct[-1])) + 2)
    x, y = [], []
    for low, high in zip(edges[:-1], edges[1:]):
        rows = words[(counts >= low) & (counts < high)]
        if rows.empty:
            continue
        median = _km_median(rows)
        if np.isfinite(median) and median > 0:
            x.append(np.exp(np.log(rows["initial_count"].to_numpy(dtype=float)).mean()))
            y.append(median)
    assert len(x) >= 2, "the tiny sweep must leave two count bins with a finite median"
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def test_word_lost_gets_the_forgetting_table_and_figure_with_its_slope(lm_folder):
    """word_lost, declared per_symbol, gets the forgetting section; each cell's slope is the
    log-log slope of the KM medians of its own chains (recomputed here from the events table)."""
    folder, text = lm_folder
    header = "### Forgetting (`word_lost`): generations until a symbol is lost, versus its initial count"
    assert header in text and "`word_lost`: a tracked word no longer occurs" in text
    assert "![Forgetting time (`word_lost`) versus initial count](figures/forgetting_ngram.png)" in text
    assert (folder / "report" / "figures" / "forgetting_ngram.png").exists()
    events = analysis.load_events(folder)
    words = events[events["event"] == "word_lost"]
    slopes = {}
    for cell in (0, 1):
        row = _row(text, header, cell)
        reported = float(row[3].split(" [")[0])
        slopes[cell] = _slope(words[words["cell"] == cell])
        assert reported == pytest.approx(slopes[cell], rel=5e-3, abs=1e-3), (cell, row)
        assert row[4] == "1 (2c / ln 2)"  # the family declares the forgetting_time overlay
    # Negative control: the two orders' slopes differ, so pooling the cells would be caught.
    assert abs(slopes[0] - slopes[1]) > 0.05


def test_per_sequence_perplexity_distributions_are_drawn_from_the_sequences_table(lm_folder):
    """The declared sequences table gets a table of per-sequence perplexity medians and 5-95%
    ranges at log-spaced recorded generations (first and last among them) and the histograms."""
    folder, text = lm_folder
    header = "### Per-sequence perplexity across generations (`sequences` table)"
    assert header in text
    name = "sequences_perplexity_ngram"
    assert f"](figures/{name}.png)" in text and (folder / "report" / "figures" / f"{name}.png").exists()
    generations = [1, 2, 3, 6, 12]
    assert "| cell | cell coordinates | " + " | ".join(f"generation {g}" for g in generations) + " |" in text
    side = analysis.load_side(folder, "sequences")
    for cell in (0, 1):
        row = _row(text, header, cell)
        for position, g in ((1, 1), (5, 12)):
            values = side.loc[(side["cell"] == cell) & (side["generation"] == g), "perplexity"]
            assert len(values) == 8 * 320 // 32
            median, low, high = map(float, re.findall(r"[0-9.e+]+", row[position]))
            assert median == pytest.approx(values.median(), rel=5e-3)
            assert low == pytest.approx(values.quantile(0.05), rel=5e-3)
            assert high == pytest.approx(values.quantile(0.95), rel=5e-3)


def test_vocabulary_survival_from_the_metric_and_the_word_lost_events(lm_folder):
    """Vocabulary survival: at T, the median share of each chain's generation-1 word types still in
    its text, and of its tracked words present at generation 1 not yet lost; both below 1 (an
    unsmoothed model only loses words) and above 0 at T = 12."""
    folder, text = lm_folder
    header = "### Vocabulary survival"
    assert header in text and "](figures/vocabulary_ngram.png)" in text
    assert (folder / "report" / "figures" / "vocabulary_ngram.png").exists()
    traj = analysis.load(folder)
    events = analysis.load_events(folder)
    for cell in (0, 1):
        row = _row(text, header, cell)
        rows = traj[traj["cell"] == cell].set_index(["replicate", "generation"])["vocabulary"]
        share = (rows.xs(12, level="generation") / rows.xs(1, level="generation")).median()
        assert float(row[3].split(" [")[0]) == pytest.approx(share, rel=5e-3)
        words = events[(events["event"] == "word_lost") & (events["cell"] == cell) & (events["initial_count"] >= 1)]
        kept = 1 - words.groupby("replicate")["observed"].mean()
        assert float(row[4].split(" [")[0]) == pytest.approx(kept.median(), rel=5e-3)
        assert 0 < share < 1 and 0 < kept.median() < 1


def test_symbol_shares_count_only_symbols_of_the_first_training_set():
    """A chain's share at g is 1 - (symbols with initial count >= 1 lost by g) / (such symbols);
    symbols of count 0 (lost at generation 1 by construction) are not counted at all."""
    events = pd.DataFrame(
        {
            "cell": 0,
            "replicate": 0,
            "n": 10,
            "policy": "replace",
            "event": "word_lost",
            "threshold": np.nan,
            "symbol": [0.0, 1.0, 2.0, 3.0],
            "initial_count": [0.0, 1.0, 2.0, 5.0],
            "generation": [1, 3, 6, 10],
            "observed": [True, True, True, False],
        }
    )
    shares = symbol_shares(events, "word_lost", [1, 2, 3, 5, 6, 10])
    np.testing.assert_allclose(shares["share"], [1, 1, 2 / 3, 2 / 3, 1 / 3, 1 / 3])


def test_pick_generations_keeps_first_and_last_log_spaced():
    """At most five recorded generations >= 1, always the first and the last, log-spaced."""
    assert pick_generations([0, 1, 2, 3]) == [1, 2, 3]
    assert pick_generations(range(0, 1001)) == [1, 6, 32, 178, 1000]
    assert pick_generations(range(0, 101, 10)) == [10, 20, 30, 60, 100]


def test_undeclared_per_symbol_events_are_recognised_by_their_symbols():
    """A folder without declarations: an event whose rows carry a symbol is per symbol (no collapse)."""
    info = generic("mine", ["word_lost", "collapse"], per_symbol=["word_lost"])
    assert [e.event for e in info.per_symbol_events()] == ["word_lost"]
    assert [e.event for e in info.collapse_events()] == ["collapse"]
    assert for_folder({}, "ngram", only=True).side_tables == {
        "sequences": {"metric": "sequence_perplexity", "index": "sequence", "value": "perplexity"}
    }


#: The categorical forgetting section as the report wrote it before word_lost was supported
#: (main at 9e2fc99, the folder below, n_boot=50).
CATEGORICAL_FORGETTING = (
    "### Forgetting: generations until a symbol is lost, versus its initial count\n\n"
    "| cell | cell coordinates | bins fitted | left out (median > T) | slope [95% CI] | theory slope | "
    "resamples dropped (a median > T) |\n|---|---|---|---|---|---|---|\n"
    "| 0 | n=40, replace | 4 of 5 | 16-31 | 1.09 [0.825, 1.32] | 1 (2c / ln 2) | 0% |\n\n"
    "![Forgetting time versus initial count, and surviving symbols](figures/forgetting_categorical.png)\n\n"
)


def test_categorical_forgetting_section_is_unchanged(tmp_path):
    """A categorical folder's forgetting section is character for character what it was, and it
    gets no side-table or vocabulary section (it declares neither)."""
    traj, events = categorical_frames(ns=(40,), replicates=30, generations=50, seed=42)
    folder = write_results(tmp_path / "cat", traj, events, family="categorical")
    analysis.write_report(folder, tmp_path / "out", n_boot=50, regression=False)
    text = (tmp_path / "out" / "report.md").read_text()
    assert CATEGORICAL_FORGETTING in text
    assert "Vocabulary survival" not in text and "across generations (`" not in text


def _side(values: dict[int, np.ndarray]) -> pd.DataFrame:
    return pd.concat(
        [
            pd.DataFrame({"cell": 0, "n": 10, "policy": "replace", "generation": g, "perplexity": v})
            for g, v in values.items()
        ]
    )


def test_distribution_figure_overlays_generations_on_a_log_axis_when_values_span_decades():
    """One step histogram per generation; a log x axis for values over more than a decade (each
    histogram then integrates to 1 over log10 of the value), a linear one otherwise."""
    rng = np.random.default_rng(0)
    wide = _side({1: np.exp(rng.normal(5, 1, 400)), 4: np.exp(rng.normal(6, 1, 400))})
    fig = distribution_figure(wide, value="perplexity", generations=[1, 4])
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.get_legend().get_texts()] == [
        "generation 1",
        "generation 4",
    ]
    for patch in ax.patches:  # StepPatch: density per decade integrates to one over log10(x)
        heights, edges = patch.get_data()[:2]
        assert np.sum(heights * np.diff(np.log10(edges))) == pytest.approx(1.0)
    narrow = _side({1: rng.uniform(20, 30, 100)})
    assert distribution_figure(narrow, value="perplexity", generations=[1]).axes[0].get_xscale() == "linear"
    with pytest.raises(ValueError, match="no finite 'perplexity' values"):
        distribution_figure(narrow, value="perplexity", generations=[2])


def test_share_figure_keeps_shares_above_one_in_view():
    """A share above 1 (fresh real data brings words back) is not clipped by the y axis."""
    quantiles = {0.05: [1.0, 1.1], 0.25: [1.0, 1.2], 0.5: [1.0, 1.3], 0.75: [1.0, 1.4], 0.95: [1.0, 1.5]}
    table = pd.DataFrame({"cell": 0, "generation": [1, 2], **quantiles})
    fig = share_figure([("t", "share", table)], labels={0: "cell 0"})
    assert fig.axes[0].get_ylim()[1] >= 1.5
