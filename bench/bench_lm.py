"""Language-model chains: tokens trained and generated per second, all chains of a block at once
against a one-chain-at-a-time loop, for each family at its default size.

- ``ngram`` (order 2, word-level pydoc corpus, n = 3200 tokens, blocks of 32): the batched fit
  (sorting the block's n-grams) and generation (L vectorised sampling steps) of B chains,
  against the same code run on one chain at a time.
- ``transformer`` (default model: 2 layers, 4 heads, width 64, context 32, about 310,000
  parameters with the word vocabulary; 3 epochs, minibatches of 16 windows): training and
  sampling of B chains' models in batched products, against one chain at a time. On CPU it runs on
  one thread (as a Ray task does); on a GPU too when one is visible (``torch.cuda.is_available()``),
  with a larger B.

Trained tokens count every epoch (n x epochs per chain); generated tokens are the n tokens of the
next generation's data. Each figure is the best of ``--repeats`` runs (this machine's speed
drifts). The first call of each configuration is a warm-up and not timed.

Usage: python bench/bench_lm.py [--quick] [--repeats 3] [--gpu-chains 64]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from sweep.grid import cells  # noqa: E402
from sweep.spec import parse_spec  # noqa: E402


def family_for(name: str, n: int, **fields):
    spec = parse_spec(
        {
            "name": "bench",
            "seed": 1,
            "generations": 1,
            "replicates": 1,
            "family": {"name": name, **fields},
            "grid": {"n": [n], "policy": ["replace"]},
        }
    )
    return cells(spec)[0].family


def one_generation(family, data: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """(seconds fitting, seconds generating n tokens per chain) of one generation on ``data``: the
    model's fit and decoding only (no metrics, no held-out perplexity)."""
    blocks = family.blocks(data)
    started = time.perf_counter()
    model, _ = family.fit_model(blocks, None, rng)
    fitted = time.perf_counter()
    family.generate(model, blocks.shape[1], rng=rng, temperature=1.0, prompts=None)
    return fitted - started, time.perf_counter() - fitted


def measure(family, chains: int, n: int, repeats: int, epochs: int) -> dict[str, float]:
    """Tokens per second, batched (all chains at once) and looped (one chain at a time); the two
    alternate within each repeat, so that a change of the machine's load hits both alike."""
    rng = np.random.default_rng(0)
    data = family.sample(family.truth(chains), n, rng=rng)
    modes = {"batched": [data], "loop": [data[i : i + 1] for i in range(chains)]}
    best = {mode: [np.inf, np.inf] for mode in modes}
    for groups in modes.values():
        one_generation(family, groups[0], rng)  # warm-up (imports, caches, first torch calls)
    for _ in range(repeats):
        for mode, groups in modes.items():
            fit = gen = 0.0
            for group in groups:
                f, g = one_generation(family, group, rng)
                fit, gen = fit + f, gen + g
            best[mode] = [min(best[mode][0], fit), min(best[mode][1], gen)]
    out = {}
    for mode, (fit, gen) in best.items():
        out[f"{mode}_trained"] = chains * n * epochs / fit
        out[f"{mode}_generated"] = chains * n / gen
    return out


def row(label: str, chains: int, figures: dict[str, float]) -> str:
    return (
        f"| {label} | {chains} | {figures['batched_trained']:,.0f} | {figures['loop_trained']:,.0f} | "
        f"{figures['batched_trained'] / figures['loop_trained']:.1f}x | {figures['batched_generated']:,.0f} | "
        f"{figures['loop_generated']:,.0f} | {figures['batched_generated'] / figures['loop_generated']:.1f}x |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer chains and one repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gpu-chains", type=int, default=64)
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    n = 3200
    print(
        "| family, device | chains | trained tok/s, batched | one at a time | speed-up | generated tok/s, "
        "batched | one at a time | speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|")
    ngram = family_for("ngram", n)
    chains = 16 if args.quick else 64
    print(row("ngram (order 2), cpu", chains, measure(ngram, chains, n, repeats, 1)), flush=True)

    import torch

    torch.set_num_threads(1)
    transformer = family_for("transformer", n, device="cpu")
    chains = 2 if args.quick else 8
    epochs = transformer.settings.epochs
    print(
        row("transformer (default), cpu, 1 thread", chains, measure(transformer, chains, n, repeats, epochs)),
        flush=True,
    )
    if torch.cuda.is_available():
        gpu = family_for("transformer", n, device="cuda")
        print(
            row(
                f"transformer (default), {torch.cuda.get_device_name(0)}",
                args.gpu_chains,
                measure(gpu, args.gpu_chains, n, repeats, epochs),
            ),
            flush=True,
        )
    else:
        print("(no GPU visible: the GPU row needs torch.cuda.is_available())")


if __name__ == "__main__":
    main()
