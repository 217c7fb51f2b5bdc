"""Variational autoencoders retrained on their own samples (Shumailov et al., Nature 2024).

Each chain's model is an MLP encoder q(z | x) = N(mu(x), diag sigma^2(x)) and an MLP decoder
with Bernoulli pixel likelihoods (logits), a standard normal prior on the ``latent_dim``-
dimensional latent, trained by Adam on the (beta-weighted) negative ELBO. A sample is the
decoder's mean image (pixel probabilities) of a prior draw; tempered, the prior draw is scaled by
sqrt(temperature) (a latent N(0, T I)). Each generation trains ``epochs`` passes over the training
set, or ``steps`` minibatch steps when given (the same budget whatever the policy: an accumulating
training set would otherwise cost more every generation). ``warm_start: true`` continues from the previous
generation's weights (a fresh optimiser); false trains a fresh model every generation.

Besides the image metrics (:mod:`sweep.families._neural.metrics`), every recorded generation
has ``elbo`` (nats per held-out image, beta = 1) and ``latent_std``: the standard deviation of
the latent means that the *generation-1* encoder gives the generated images (root mean square
over latent dimensions), the quantity whose narrowing Shumailov et al. plot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sweep import fields
from sweep.families._neural.family import Model, NeuralFamily, cost, steps_per_epoch
from sweep.families._neural.metrics_columns import COLUMNS as IMAGE_COLUMNS
from sweep.families._neural.spec import COMMON_FIELDS, common_raw, read_common


@dataclass(frozen=True)
class VAESpec:
    data: Any
    latent_dim: int
    hidden: tuple[int, ...]
    beta: float
    epochs: int
    steps: int | None
    batch_size: int
    lr: float
    warm_start: bool
    eval_samples: int
    device: str
    architecture: str = "mlp"
    channels: tuple[int, ...] = (16, 32)

    def to_raw(self) -> dict[str, Any]:
        return {"name": "vae", **common_raw(self), "beta": self.beta, "epochs": self.epochs, "steps": self.steps}


class VAEFamily(NeuralFamily):
    """A VAE (MLP encoder and decoder, Gaussian latent) per chain, B chains trained as one batch."""

    name = "vae"
    spec_fields = COMMON_FIELDS + ("beta", "epochs", "steps")
    model_columns = {
        "elbo": "evidence lower bound on held-out real images, nats per image (beta = 1, one latent draw)",
        "latent_std": "std of the generation-1 encoder's latent means of generated images (RMS over dimensions)",
    }
    metric_columns = {**IMAGE_COLUMNS, **model_columns}
    event_kinds = NeuralFamily.common_events

    @classmethod
    def parse_spec(cls, section: fields.Section) -> VAESpec:
        common = read_common(section, latent_dim=8, hidden=(128,))
        return VAESpec(
            **{**common, "lr": common["lr"] or 2e-3},
            beta=section.take("beta", fields.number(0.0, None, low_open=True), 1.0),
            epochs=section.take("epochs", fields.integer(1, 100_000), 100),
            steps=section.take("steps", fields.integer(1, 10**8), None),
        )

    # -- networks -------------------------------------------------------------------------
    def train(self, data: Any, seeds: np.ndarray, warm: Model | None, previous: Any) -> Model:
        import torch

        from sweep.families._neural.layers import gradient_buffers
        from sweep.families._neural.nets import MLP
        from sweep.families._neural.torchkit import BatchIndexer, ChainRandom, adam, finite_rows, gather_rows, to_cpu
        from sweep.families._neural.vae_steps import vae_step

        spec, device = self.spec, data.device
        batch, m, _ = data.shape
        random = ChainRandom(seeds, device)
        if warm is not None:
            encoder, decoder = self.net(warm.state, "enc", device), self.net(warm.state, "dec", device)
        else:
            hidden = tuple(spec.hidden)
            encoder = self.new_net(2 * spec.latent_dim, hidden, random, up=False)
            decoder = self.new_net(spec.latent_dim, hidden[::-1], random, up=True)
        optimiser = adam(encoder.parameters() + decoder.parameters(), spec.lr)
        size = min(spec.batch_size, m)
        per_epoch = steps_per_epoch(m, size)
        indexer = BatchIndexer(random, m)
        finite = torch.ones(batch, dtype=torch.bool, device=device)
        total = self.steps_for(m)
        written = isinstance(encoder, MLP) and isinstance(decoder, MLP)
        if written:
            gradient_buffers(encoder.layers + decoder.layers)
        for first in range(0, total, per_epoch):  # the draws of one epoch's steps at a time
            chunk = min(per_epoch, total - first)
            index = indexer.take(chunk * size).view(batch, chunk, size)
            noise = random.normal(chunk, size, spec.latent_dim)
            for step in range(chunk):
                x = gather_rows(data, index[:, step])
                if written:  # MLPs: the gradients written out (vae_steps.py)
                    loss = vae_step(encoder.layers, decoder.layers, x, noise[:, step], spec.beta)
                    optimiser.step()
                    finite &= torch.isfinite(loss)
                    continue
                loss = negative_elbo(encoder, decoder, x, noise[:, step], spec.beta)
                optimiser.zero_grad(set_to_none=True)
                loss.sum().backward()  # a sum over chains: each chain gets its own gradient
                optimiser.step()
                finite &= torch.isfinite(loss.detach())
        state = to_cpu({**encoder.state("enc"), **decoder.state("dec")})
        diverged = ~(finite.cpu().numpy() & finite_rows(list(state.values())))
        reference = (
            previous.extra["reference"]
            if isinstance(previous, Model)
            else {k: v for k, v in state.items() if k.startswith("enc.")}
        )
        return Model(state, 0, np.empty(0), diverged, extra={"reference": reference})

    def generate(self, params: Model, m: int, random: Any, temperature: float) -> Any:
        import torch

        decoder = self.net(params.state, "dec", random.device, trainable=False)
        z = random.normal(m, self.spec.latent_dim)
        if temperature != 1.0:
            z = z * temperature**0.5
        return torch.sigmoid(decoder.forward(z, torch.relu))

    def model_metrics(self, params: Model, images: Any, ref: Any, random: Any) -> dict[str, np.ndarray]:
        import torch

        device, batch = random.device, params.batch
        with torch.no_grad():
            encoder = self.net(params.state, "enc", device, trainable=False)
            decoder = self.net(params.state, "dec", device, trainable=False)
            real = ref.images.unsqueeze(0).expand(batch, -1, -1)
            noise = random.normal(real.shape[1], self.spec.latent_dim)
            elbo = -negative_elbo(encoder, decoder, real, noise, 1.0)
            first = self.net(params.extra["reference"], "enc", device, trainable=False)
            means = first.forward(images, torch.relu)[..., : self.spec.latent_dim]
            latent_std = means.var(dim=1).mean(-1).sqrt()
        return {"elbo": elbo.double().cpu().numpy(), "latent_std": latent_std.double().cpu().numpy()}

    def steps_for(self, m: int) -> int:
        """Training steps on a training set of m images: ``steps`` if given, else ``epochs``
        passes (so accumulating policies, whose sets grow, train longer each generation)."""
        return self.spec.steps or self.spec.epochs * steps_per_epoch(m, min(self.spec.batch_size, m))

    def cost(self, n: int, policy: Any, generations: int):
        m = n * (generations // 2 + 1) if policy.kind == "accumulate" else n
        steps = self.steps_for(m)
        return cost(self, n, policy, generations, steps=steps, width=max(self.spec.hidden))


def negative_elbo(encoder, decoder, x, noise, beta: float):
    """Per chain, the mean over the batch of -ELBO_beta: Bernoulli reconstruction loss (summed
    over pixels) plus beta KL(q(z|x) || N(0, I)), with one reparameterised draw z = mu + sigma eps."""
    import torch

    out = encoder.forward(x, torch.relu)
    z_dim = noise.shape[-1]
    mean, log_var = out[..., :z_dim], out[..., z_dim:]
    z = mean + torch.exp(0.5 * log_var) * noise
    logits = decoder.forward(z, torch.relu)
    reconstruction = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    kl = 0.5 * (mean * mean + log_var.exp() - 1.0 - log_var).sum(-1)
    return (reconstruction + beta * kl).mean(-1)
