"""Draw docs/study.md's neural figures (section 12) from a vae_digits or wgan_digits folder.

For a wgan folder:

- ``neural_wgan_curves.png``: Frechet distance, classes covered and recall against the
  generation, one colour per Lipschitz method and one line style per policy: the median over the
  cell's chains, with the range of the chains shaded under ``replace``;
- ``neural_wgan_samples.png``: the sample grids the run saved for chain 0 of each method under
  ``replace``, next to the real images.

For a vae folder, ``neural_vae_curves.png`` (latent spread on a log scale, classes covered,
Frechet distance; median and range of the chains per policy) and ``neural_vae_samples.png``
(chain 0 of each policy).

Usage: python docs/scripts/neural_figures.py RESULTS [--out docs/figures]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

import analysis  # noqa: E402

METHODS = ("clip", "gradient_penalty", "spectral_norm")
COLOURS = {"clip": "tab:blue", "gradient_penalty": "tab:orange", "spectral_norm": "tab:green"}
STYLES = {"replace": "-", "fresh_real(0.1)": "--", "accumulate": ":"}
PANELS = (("frechet_distance", "Frechet distance"), ("classes_covered", "classes covered"), ("recall", "recall"))


def curves(frame, out: Path) -> None:
    chains = frame.groupby("cell").replicate.nunique().max()
    fig, axes = plt.subplots(1, len(PANELS), figsize=(13, 3.6), constrained_layout=True)
    live = frame[frame.generation > 0]
    for ax, (column, title) in zip(axes, PANELS):
        for (method, policy), group in live.groupby(["family_lipschitz", "policy"], sort=False):
            by_gen = group.groupby("generation")[column]
            med = by_gen.median()
            ax.plot(med.index, med.values, STYLES[policy], color=COLOURS[method], label=f"{method}, {policy}")
            if policy == "replace":
                ax.fill_between(med.index, by_gen.min().values, by_gen.max().values, color=COLOURS[method], alpha=0.12)
        ax.set_title(title)
        ax.set_xlabel("generation")
    axes[-1].legend(fontsize=7, loc="best")
    fig.suptitle(f"WGAN on 8x8 digits: median of {chains} chains per cell (shaded: range of the chains under replace)")
    fig.savefig(out / "neural_wgan_curves.png", dpi=90)
    plt.close(fig)


VAE_PANELS = (
    ("latent_std", "latent_std (generation-1 encoder)"),
    ("classes_covered", "classes covered"),
    ("frechet_distance", "Frechet distance (classifier features)"),
)
VAE_COLOURS = {"replace": "tab:green", "fresh_real(0.1)": "tab:orange", "accumulate": "tab:blue"}


def vae_curves(frame, out: Path) -> None:
    chains = frame.groupby("cell").replicate.nunique().max()
    fig, axes = plt.subplots(1, len(VAE_PANELS), figsize=(13, 3.6), constrained_layout=True)
    for ax, (column, title) in zip(axes, VAE_PANELS):
        live = frame[frame.generation > 0] if column == "latent_std" else frame
        for policy, group in live.groupby("policy", sort=False):
            by_gen = group.groupby("generation")[column]
            med = by_gen.median()
            ax.plot(med.index, med.values, ".-", color=VAE_COLOURS[policy], label=policy)
            ax.fill_between(med.index, by_gen.min().values, by_gen.max().values, color=VAE_COLOURS[policy], alpha=0.15)
        if column == "latent_std":
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("generation")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"VAE on 8x8 digits: median of {chains} chains per policy (shaded: their range)")
    fig.savefig(out / "neural_vae_curves.png", dpi=90)
    plt.close(fig)


def samples(results: Path, frame, out: Path, *, family: str) -> None:
    if family == "wgan":
        cells = frame[frame.policy == "replace"].groupby("family_lipschitz").cell.first()
        rows, title = METHODS, "WGAN under replace, by Lipschitz method: chain 0"
    else:
        cells = frame.groupby("policy", sort=False).cell.first()
        rows, title = tuple(cells.index), "VAE by policy: chain 0"
    gens = sorted(
        int(p.stem.split("-")[1])
        for p in (results / "samples" / f"cell={cells.iloc[0]}" / "replicate=0").glob("generation-*.png")
    )
    fig, axes = plt.subplots(len(rows), len(gens) + 1, figsize=(2.0 * (len(gens) + 1), 2.0 * len(rows) + 0.5))
    for row, method in enumerate(rows):
        folder = results / "samples" / f"cell={cells[method]}"
        images = [folder / "real.png"] + [folder / "replicate=0" / f"generation-{g}.png" for g in gens]
        for col, path in enumerate(images):
            ax = axes[row, col]
            ax.imshow(mpimg.imread(path), cmap="gray")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title("real" if col == 0 else f"generation {gens[col - 1]}", fontsize=9)
            if col == 0:
                ax.set_ylabel(method.replace("_", " "), fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out / f"neural_{family}_samples.png", dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    args = parser.parse_args()
    frame = analysis.load(str(args.results))
    family = str(frame.family.iloc[0])
    if family == "wgan":
        curves(frame, args.out)
    else:
        vae_curves(frame, args.out)
    samples(args.results, frame, args.out, family=family)


if __name__ == "__main__":
    main()
