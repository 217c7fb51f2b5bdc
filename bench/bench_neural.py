"""Neural families: B = 32 chains trained as one batched model against 32 one-model-at-a-time
loops of the same architecture and steps, side by side in one run.

For each family at its default size (vae: 64-128-16 encoder, 8-128-64 decoder, batch 64;
wgan: 16-64-64-64 generator, 64-64-64-1 critic, gradient penalty, 5 critic steps per
generator step, batch 64), on 8x8 digits with n = 500 real images:

- **batched**: the family's ``fit`` on a block of 32 chains (one stacked model, ``torch.bmm``);
- **loop, family code**: the same ``fit`` on 32 blocks of one chain, one after the other (B = 1,
  the plain loop through the same code);
- **loop, nn.Module**: 32 chains of a textbook single-model loop (``nn.Sequential``, one
  optimiser per model, the same minibatches, steps and optimiser), the reference a user would write.

Each side trains ``--steps`` minibatch steps (generator steps for the wgan); seconds per
generation and chain are extrapolated to the family's default steps per generation (800 for the
vae at n = 500, 1000 for the wgan), since a step's cost does not depend on how many are run.
Evaluation (every metric on 359 generated images, once per recorded or checked generation) is
timed apart, per chain. Every figure is the best of ``--repeats``. One thread (``--threads``), as a Ray task has one core.
Besides wall-clock seconds, each side's CPU seconds (``time.process_time``) are shown: on a shared,
loaded machine the wall clock counts the time other processes hold the core, the CPU time much less.
``--device cuda`` runs the same table on a GPU (the batched model only pays off more there: a
tiny model cannot keep a GPU busy alone).

Usage: python bench/bench_neural.py [--device cpu|cuda] [--steps 40] [--repeats 2] [--quick]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sweep.grid import cells  # noqa: E402
from sweep.spec import parse_spec  # noqa: E402

N = 500
CHAINS = 32
DEFAULT_STEPS = {"vae": 800, "wgan": 1000}


def family_for(name: str, steps: int, device: str, hidden: list[int] | None = None):
    extra = {"steps": steps} if hidden is None else {"steps": steps, "hidden": hidden}
    spec = parse_spec(
        {
            "name": "bench",
            "generations": 1,
            "replicates": CHAINS,
            "family": {"name": name, "device": device, **extra},
            "grid": {"n": [N], "policy": ["replace"]},
        }
    )
    return cells(spec)[0].family


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class Clock:
    """Wall-clock and CPU seconds since it started (``stop`` returns both)."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def best(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The least wall-clock and the least CPU seconds of several runs."""
    return min(r[0] for r in runs), min(r[1] for r in runs)


def time_family(family, chains_per_block: int, device: str) -> tuple[float, float]:
    """Seconds to train CHAINS chains in blocks of ``chains_per_block`` (data drawn beforehand;
    the training alone: evaluation is timed apart, by :func:`time_evaluation`)."""
    from sweep.families._neural.torchkit import chain_seeds

    rng = np.random.default_rng(0)
    blocks = [family.sample(family.truth(chains_per_block), N, rng=rng) for _ in range(CHAINS // chains_per_block)]
    sync(device)
    clock = Clock()
    for data in blocks:
        family.train(data, chain_seeds(rng, chains_per_block), None, family.truth(chains_per_block))
    sync(device)
    return clock.stop()


def time_evaluation(family, device: str) -> float:
    """Seconds per chain of one evaluation (every metric, 359 generated images) of a 32-chain block."""
    rng = np.random.default_rng(0)
    model = family.fit(family.sample(family.truth(CHAINS), N, rng=rng), previous=family.truth(CHAINS), rng=rng)
    model.evaluation = None
    sync(device)
    start = time.perf_counter()
    family.evaluation(model)
    sync(device)
    return (time.perf_counter() - start) / CHAINS


def plain_vae(family, steps: int, device: str) -> tuple[float, float]:
    """32 textbook VAEs (nn.Sequential), one after the other."""
    spec, d, z = family.spec, family.data.dim, family.spec.latent_dim
    x_all = torch.from_numpy(np.array(family.data.pool[:N])).to(device)
    clock = Clock()
    for chain in range(CHAINS):
        torch.manual_seed(chain)
        encoder = torch.nn.Sequential(
            torch.nn.Linear(d, spec.hidden[0]), torch.nn.ReLU(), torch.nn.Linear(spec.hidden[0], 2 * z)
        ).to(device)
        decoder = torch.nn.Sequential(
            torch.nn.Linear(z, spec.hidden[0]), torch.nn.ReLU(), torch.nn.Linear(spec.hidden[0], d)
        ).to(device)
        optimiser = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()), lr=spec.lr)
        for _ in range(steps):
            x = x_all[torch.randint(0, N, (spec.batch_size,), device=device)]
            out = encoder(x)
            mean, log_var = out[:, :z], out[:, z:]
            code = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
            loss = (
                torch.nn.functional.binary_cross_entropy_with_logits(decoder(code), x, reduction="none").sum(-1)
                + 0.5 * (mean**2 + log_var.exp() - 1 - log_var).sum(-1)
            ).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    sync(device)
    return clock.stop()


def plain_wgan(family, steps: int, device: str) -> tuple[float, float]:
    """32 textbook WGAN-GP (nn.Sequential), one after the other."""
    spec, d, z = family.spec, family.data.dim, family.spec.latent_dim
    h = list(spec.hidden)
    x_all = torch.from_numpy(np.array(family.data.pool[:N])).to(device)
    clock = Clock()
    for chain in range(CHAINS):
        torch.manual_seed(chain)
        generator = torch.nn.Sequential(
            torch.nn.Linear(z, h[0]),
            torch.nn.ReLU(),
            torch.nn.Linear(h[0], h[1]),
            torch.nn.ReLU(),
            torch.nn.Linear(h[1], d),
            torch.nn.Sigmoid(),
        ).to(device)
        critic = torch.nn.Sequential(
            torch.nn.Linear(d, h[1]),
            torch.nn.LeakyReLU(0.2),
            torch.nn.Linear(h[1], h[0]),
            torch.nn.LeakyReLU(0.2),
            torch.nn.Linear(h[0], 1),
        ).to(device)
        g_opt = torch.optim.Adam(generator.parameters(), lr=spec.lr, betas=(0.0, 0.9))
        c_opt = torch.optim.Adam(critic.parameters(), lr=spec.lr, betas=(0.0, 0.9))
        for _ in range(steps):
            for _ in range(spec.n_critic):
                real = x_all[torch.randint(0, N, (spec.batch_size,), device=device)]
                with torch.no_grad():
                    fake = generator(torch.randn(spec.batch_size, z, device=device))
                alpha = torch.rand(spec.batch_size, 1, device=device)
                between = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
                (grad,) = torch.autograd.grad(critic(between).sum(), between, create_graph=True)
                loss = critic(fake).mean() - critic(real).mean() + spec.penalty * ((grad.norm(dim=1) - 1) ** 2).mean()
                c_opt.zero_grad()
                loss.backward()
                c_opt.step()
            g_loss = -critic(generator(torch.randn(spec.batch_size, z, device=device))).mean()
            g_opt.zero_grad()
            g_loss.backward()
            g_opt.step()
    sync(device)
    return clock.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--steps", type=int, default=40, help="steps timed per side (extrapolated to the default)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=None, help="hidden width of every layer instead of the default")
    parser.add_argument("--quick", action="store_true", help="4 steps, 1 repeat (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats = 4, 1
    torch.set_num_threads(args.threads)
    print(
        f"device {args.device}, {args.threads} thread(s), torch {torch.__version__}, {CHAINS} chains, n = {N}, "
        f"hidden {'default' if args.hidden is None else args.hidden}, "
        f"{args.steps} steps timed, best of {args.repeats}"
    )
    header = (
        f"{'family':6} {'side':22} {'s/step (32 chains)':>19} {'s/generation/chain':>19} {'batched speed-up':>17}"
        f" {'CPU s/step':>11} {'CPU speed-up':>13}"
    )
    print(header)
    print("-" * len(header))
    for name, plain in (("vae", plain_vae), ("wgan", plain_wgan)):
        hidden = None if args.hidden is None else [args.hidden] * (1 if name == "vae" else 2)
        family = family_for(name, args.steps, args.device, hidden)
        family.fit(
            family.sample(family.truth(2), N, rng=np.random.default_rng(1)), rng=np.random.default_rng(2)
        )  # warm up
        sides = {
            "batched B=32": best([time_family(family, CHAINS, args.device) for _ in range(args.repeats)]),
            "loop, family code B=1": best([time_family(family, 1, args.device) for _ in range(args.repeats)]),
            "loop, nn.Module": best([plain(family, args.steps, args.device) for _ in range(args.repeats)]),
        }
        batched, batched_cpu = sides["batched B=32"]
        for side, (seconds, cpu) in sides.items():
            per_step = seconds / args.steps
            per_chain_generation = per_step * DEFAULT_STEPS[name] / CHAINS
            print(
                f"{name:6} {side:22} {per_step:19.4f} {per_chain_generation:19.3f} {seconds / batched:16.1f}x"
                f" {cpu / args.steps:11.4f} {cpu / batched_cpu:12.1f}x"
            )
        print(f"{name:6} {'evaluation, per chain':22} {'':19} {time_evaluation(family, args.device):19.3f}")


if __name__ == "__main__":
    main()
