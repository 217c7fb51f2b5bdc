"""Neural families: B = 32 chains trained as one batched model against 32 one-model-at-a-time
loops of the same architecture and steps, side by side in one run.

For each family at its default size (vae: 64-128-16 encoder, 8-128-64 decoder, batch 64;
wgan: 16-64-64-64 generator, 64-64-64-1 critic, 5 critic steps per generator step, batch 64,
each Lipschitz method: ``wgan-clip``, ``wgan-gp`` (gradient penalty), ``wgan-sn`` (spectral
normalisation)), on 8x8 digits with n = 500 real images:

- **batched**: the family's ``fit`` on a block of 32 chains (one stacked model, ``torch.bmm``);
- **loop, family code**: the same ``fit`` on 32 blocks of one chain, one after the other (B = 1,
  the plain loop through the same code);
- **loop, nn.Module**: 32 chains of a textbook single-model loop (``nn.Sequential``, one
  optimiser per model, the same minibatches, steps and optimiser: RMSprop and clipping every
  critic parameter after each critic step; Adam and the penalty by ``autograd.grad`` with
  ``create_graph``; Adam and ``torch.nn.utils.parametrizations.spectral_norm`` on every critic
  layer, the critic called once on generated and real images together so that each critic step
  makes one power iteration, as the family does, and in eval mode for the generator step, where
  the family makes none), the reference a user would write.

``--architecture conv`` runs the same table with the families' small conv nets (two stride-2 4x4
convolutions, channels 16 and 32) on 28x28 images: random but fixed ones (a seeded uniform
array written to a temporary .npy) stand in for MNIST, which has no files here; the timing does
not depend on the pixels.

Each side trains ``--steps`` minibatch steps (generator steps for the wgan); seconds per
generation and chain are extrapolated to the family's default steps per generation (800 for the
vae at n = 500, 1000 for the wgan), since a step's cost does not depend on how many are run.
Evaluation (every metric on 359 generated images, once per recorded or checked generation) is
timed apart, per chain. Every figure is the best of ``--repeats``. One thread (``--threads``), as a Ray task has one core.
Besides wall-clock seconds, each side's CPU seconds (``time.process_time``) are shown: on a shared,
loaded machine the wall clock counts the time other processes hold the core, the CPU time much less.
``--device cuda`` runs the same table on a GPU (the batched model only pays off more there: a
tiny model cannot keep a GPU busy alone).

Usage: python bench/bench_neural.py [--device cpu|cuda] [--architecture mlp|conv] [--only vae,wgan-gp]
[--steps 40] [--repeats 2] [--quick]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sweep.grid import cells  # noqa: E402
from sweep.spec import parse_spec  # noqa: E402

N = 500
CHAINS = 32
DEFAULT_STEPS = {"vae": 800, "wgan": 1000}
#: The table's rows: (label, family name, extra spec fields).
ROWS = {
    "vae": ("vae", {}),
    "wgan-clip": ("wgan", {"lipschitz": "clip"}),
    "wgan-gp": ("wgan", {"lipschitz": "gradient_penalty"}),
    "wgan-sn": ("wgan", {"lipschitz": "spectral_norm"}),
}
SIDE = 28  # conv: the stand-in for MNIST's 28x28 images


def fake_mnist(folder: str) -> dict:
    """A data section of 1200 random but fixed 28x28 images (seeded uniform pixels) in a .npy:
    the stand-in for MNIST, whose files are not here (the timing does not depend on the pixels)."""
    path = os.path.join(folder, "fake_mnist.npy")
    np.save(path, np.random.default_rng(0).random((1200, SIDE, SIDE), dtype=np.float32))
    return {"name": "npy", "path": path}


def family_for(name: str, steps: int, device: str, hidden: list[int] | None = None, **extra):
    extra = {"steps": steps, **extra} if hidden is None else {"steps": steps, "hidden": hidden, **extra}
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


# -- the textbook networks: nn.Sequential, the families' architectures -----------------------------
def _mlp(sizes, activation, *, after_last: bool = False) -> list:
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2 or after_last:
            layers.append(activation())
    return layers


def down_net(family, out: int, hidden, activation) -> torch.nn.Sequential:
    """Images (rows of D pixels) to ``out`` values: the encoder's and the critic's shape."""
    spec = family.spec
    if spec.architecture != "conv":
        return torch.nn.Sequential(*_mlp((family.data.dim,) + tuple(hidden) + (out,), activation))
    side, path = family.data.shape[0], (1,) + tuple(spec.channels)
    layers = [torch.nn.Unflatten(1, (1, side, side))]
    for c_in, c_out in zip(path[:-1], path[1:]):
        layers += [torch.nn.Conv2d(c_in, c_out, 4, 2, 1), activation()]
    small = side >> len(spec.channels)
    flat = path[-1] * small * small
    return torch.nn.Sequential(*layers, torch.nn.Flatten(), *_mlp((flat,) + tuple(hidden) + (out,), activation))


def up_net(family, latent: int, hidden, activation) -> torch.nn.Sequential:
    """A latent to image logits (rows of D): the decoder's and the generator's shape."""
    spec = family.spec
    if spec.architecture != "conv":
        return torch.nn.Sequential(*_mlp((latent,) + tuple(hidden) + (family.data.dim,), activation))
    side, path = family.data.shape[0], tuple(spec.channels[::-1]) + (1,)
    small = side >> len(spec.channels)
    layers = _mlp((latent,) + tuple(hidden) + (path[0] * small * small,), activation, after_last=True)
    layers.append(torch.nn.Unflatten(1, (path[0], small, small)))
    for i, (c_in, c_out) in enumerate(zip(path[:-1], path[1:])):
        layers.append(torch.nn.ConvTranspose2d(c_in, c_out, 4, 2, 1))
        if i < len(path) - 2:
            layers.append(activation())
    return torch.nn.Sequential(*layers, torch.nn.Flatten())


def plain_vae(family, steps: int, device: str) -> tuple[float, float]:
    """32 textbook VAEs (nn.Sequential), one after the other."""
    spec, z = family.spec, family.spec.latent_dim
    hidden = tuple(spec.hidden)
    x_all = torch.from_numpy(np.array(family.data.pool[:N])).to(device)
    clock = Clock()
    for chain in range(CHAINS):
        torch.manual_seed(chain)
        encoder = down_net(family, 2 * z, hidden, torch.nn.ReLU).to(device)
        decoder = up_net(family, z, hidden[::-1], torch.nn.ReLU).to(device)
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
    """32 textbook WGANs (nn.Sequential) of the family's Lipschitz method, one after the other."""
    spec, z, method = family.spec, family.spec.latent_dim, family.spec.lipschitz
    hidden = tuple(spec.hidden)
    x_all = torch.from_numpy(np.array(family.data.pool[:N])).to(device)
    size = spec.batch_size
    clock = Clock()
    for chain in range(CHAINS):
        torch.manual_seed(chain)
        generator = torch.nn.Sequential(*up_net(family, z, hidden, torch.nn.ReLU), torch.nn.Sigmoid()).to(device)
        critic = down_net(family, 1, hidden[::-1], lambda: torch.nn.LeakyReLU(0.2)).to(device)
        if method == "spectral_norm":
            for module in critic.modules():
                if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                    torch.nn.utils.parametrizations.spectral_norm(module)
        if method == "clip":
            g_opt = torch.optim.RMSprop(generator.parameters(), lr=spec.lr)
            c_opt = torch.optim.RMSprop(critic.parameters(), lr=spec.lr)
        else:
            betas = (0.0, 0.9) if method == "gradient_penalty" else (0.5, 0.9)
            g_opt = torch.optim.Adam(generator.parameters(), lr=spec.lr, betas=betas)
            c_opt = torch.optim.Adam(critic.parameters(), lr=spec.lr, betas=betas)
        for _ in range(steps):
            critic.train()
            for _ in range(spec.n_critic):
                real = x_all[torch.randint(0, N, (size,), device=device)]
                with torch.no_grad():
                    fake = generator(torch.randn(size, z, device=device))
                if method == "spectral_norm":  # one pass, one power iteration per critic step
                    out = critic(torch.cat([fake, real]))
                    loss = out[:size].mean() - out[size:].mean()
                else:
                    loss = critic(fake).mean() - critic(real).mean()
                if method == "gradient_penalty":
                    alpha = torch.rand(size, 1, device=device)
                    between = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
                    (grad,) = torch.autograd.grad(critic(between).sum(), between, create_graph=True)
                    loss = loss + spec.penalty * ((grad.norm(dim=1) - 1) ** 2).mean()
                c_opt.zero_grad()
                loss.backward()
                c_opt.step()
                if method == "clip":
                    with torch.no_grad():
                        for p in critic.parameters():
                            p.clamp_(-spec.clip_value, spec.clip_value)
            critic.eval()  # spectral_norm: no power iteration in the generator's step
            g_loss = -critic(generator(torch.randn(size, z, device=device))).mean()
            g_opt.zero_grad()
            g_loss.backward()
            g_opt.step()
    sync(device)
    return clock.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--architecture", default="mlp", choices=("mlp", "conv"))
    parser.add_argument("--only", default=",".join(ROWS), help=f"rows to run, comma-separated among {list(ROWS)}")
    parser.add_argument("--steps", type=int, default=40, help="steps timed per side (extrapolated to the default)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=None, help="hidden width of every layer instead of the default")
    parser.add_argument("--quick", action="store_true", help="4 steps, 1 repeat (a smoke test)")
    args = parser.parse_args()
    rows = [r.strip() for r in args.only.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error(f"--only: expected rows among {list(ROWS)}, got {unknown}")
    if args.quick:
        args.steps, args.repeats = 4, 1
    torch.set_num_threads(args.threads)
    folder = tempfile.TemporaryDirectory()
    extra = {}
    if args.architecture == "conv":
        extra = {"architecture": "conv", "data": fake_mnist(folder.name)}
    print(
        f"device {args.device}, {args.threads} thread(s), torch {torch.__version__}, {CHAINS} chains, n = {N}, "
        f"hidden {'default' if args.hidden is None else args.hidden}, "
        f"{args.steps} steps timed, best of {args.repeats}, architecture {args.architecture}"
    )
    if args.architecture == "conv":
        print(
            f"conv: random but fixed {SIDE}x{SIDE} images (seeded uniform pixels) stand in for MNIST, "
            "which has no files here"
        )
    header = (
        f"{'family':9} {'side':22} {'s/step (32 chains)':>19} {'s/generation/chain':>19} {'batched speed-up':>17}"
        f" {'CPU s/step':>11} {'CPU speed-up':>13}"
    )
    print(header)
    print("-" * len(header), flush=True)
    for row in rows:
        name, fields = ROWS[row]
        plain = plain_vae if name == "vae" else plain_wgan
        hidden = None if args.hidden is None else [args.hidden] * (1 if name == "vae" else 2)
        family = family_for(name, args.steps, args.device, hidden, **fields, **extra)
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
                f"{row:9} {side:22} {per_step:19.4f} {per_chain_generation:19.3f} {seconds / batched:16.1f}x"
                f" {cpu / args.steps:11.4f} {cpu / batched_cpu:12.1f}x"
            )
        print(f"{row:9} {'evaluation, per chain':22} {'':19} {time_evaluation(family, args.device):19.3f}", flush=True)
    folder.cleanup()


if __name__ == "__main__":
    main()
