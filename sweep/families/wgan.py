"""Wasserstein GANs retrained on their own samples, with three ways of keeping the critic
1-Lipschitz (``lipschitz``):

- ``clip``: weight clipping to [-clip_value, clip_value] after every critic step, RMSprop with
  learning rate 5e-5 (Arjovsky et al. 2017);
- ``gradient_penalty``: lambda E[(|grad f(x_hat)| - 1)^2] on random interpolates of real and
  generated images, lambda = ``penalty``, Adam(1e-4, betas (0, 0.9)) (Gulrajani et al. 2017);
- ``spectral_norm``: every critic weight divided by its largest singular value (one power
  iteration per step), Adam(1e-4, betas (0.5, 0.9)) (Miyato et al. 2018, their setting A).

The generator is an MLP from a standard normal latent (tempered: scaled by sqrt(temperature))
to pixel probabilities (sigmoid), the critic an MLP with leaky ReLUs; each generator step follows
``n_critic`` critic steps, ``steps`` generator steps per generation. ``lr`` replaces the method's
learning rate. Besides the image metrics, each recorded generation has ``critic_wasserstein``
(E f(real) - E f(generated) on held-out images, the critic's estimate of W1) and
``lipschitz_estimate`` (the critic's largest gradient norm on random interpolates).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sweep import fields
from sweep.families._neural.family import Model, NeuralFamily, cost
from sweep.families._neural.metrics_columns import COLUMNS as IMAGE_COLUMNS
from sweep.families._neural.spec import COMMON_FIELDS, common_raw, read_common

METHODS = ("clip", "gradient_penalty", "spectral_norm")
#: Each method's optimiser from its paper: (name, learning rate, Adam betas).
OPTIMISERS = {
    "clip": ("rmsprop", 5e-5, None),
    "gradient_penalty": ("adam", 1e-4, (0.0, 0.9)),
    "spectral_norm": ("adam", 1e-4, (0.5, 0.9)),
}
CHUNK = 25  # generator steps whose random draws are made at once


@dataclass(frozen=True)
class WGANSpec:
    data: Any
    latent_dim: int
    hidden: tuple[int, ...]
    lipschitz: str
    clip_value: float
    penalty: float
    n_critic: int
    steps: int
    batch_size: int
    lr: float
    warm_start: bool
    eval_samples: int
    device: str
    architecture: str = "mlp"
    channels: tuple[int, ...] = (16, 32)

    def to_raw(self) -> dict[str, Any]:
        return {
            "name": "wgan",
            **common_raw(self),
            "lipschitz": self.lipschitz,
            "clip_value": self.clip_value,
            "penalty": self.penalty,
            "n_critic": self.n_critic,
            "steps": self.steps,
        }


class WGANFamily(NeuralFamily):
    """A WGAN (MLP generator and critic) per chain, B chains trained as one batch."""

    name = "wgan"
    spec_fields = COMMON_FIELDS + ("lipschitz", "clip_value", "penalty", "n_critic", "steps")
    model_columns = {
        "critic_wasserstein": "the critic's W1 estimate E f(held-out real) - E f(generated)",
        "lipschitz_estimate": "largest gradient norm of the critic on random real-generated interpolates",
    }
    metric_columns = {**IMAGE_COLUMNS, **model_columns}
    event_kinds = NeuralFamily.common_events

    @classmethod
    def parse_spec(cls, section: fields.Section) -> WGANSpec:
        common = read_common(section, latent_dim=16, hidden=(64, 64))
        lipschitz = section.take("lipschitz", fields.choice(*METHODS), "gradient_penalty")
        return WGANSpec(
            **{**common, "lr": common["lr"] or OPTIMISERS[lipschitz][1]},
            lipschitz=lipschitz,
            clip_value=section.take("clip_value", fields.number(0.0, None, low_open=True), 0.01),
            penalty=section.take("penalty", fields.number(0.0, None), 10.0),
            n_critic=section.take("n_critic", fields.integer(1, 100), 5),
            steps=section.take("steps", fields.integer(1, 10**7), 1000),
        )

    def lipschitz_bound(self) -> float:
        """With weights clipped to +-c, |f|_Lip <= prod over layers of c sqrt(in out) (the
        Frobenius norm bounds the spectral one; leaky ReLU is 1-Lipschitz). A 4x4 stride-2
        convolution: 8 c sqrt(in out) (Schur: rows sum over in * 16 weights, columns over
        out * 4, as an input pixel meets at most 4 kernel positions per output channel)."""
        c, hidden = self.spec.clip_value, tuple(self.spec.hidden)[::-1]
        if self.spec.architecture == "conv":
            channels = (1,) + tuple(self.spec.channels)
            convs = [8 * c * (a * b) ** 0.5 for a, b in zip(channels[:-1], channels[1:])]
            small = self.data.shape[0] >> len(self.spec.channels)
            sizes = (channels[-1] * small * small,) + hidden + (1,)
        else:
            convs, sizes = [], (self.data.dim,) + hidden + (1,)
        return float(np.prod(convs + [c * (a * b) ** 0.5 for a, b in zip(sizes[:-1], sizes[1:])]))

    # -- networks -------------------------------------------------------------------------
    def train(self, data: Any, seeds: np.ndarray, warm: Model | None, previous: Any) -> Model:

        from sweep.families._neural import layers as L
        from sweep.families._neural.nets import MLP
        from sweep.families._neural.torchkit import ChainRandom, ForeachRMSprop, adam, finite_rows, to_cpu
        from sweep.families._neural.wgan_steps import train_mlp

        spec, device = self.spec, data.device
        data = data.contiguous()
        random = ChainRandom(seeds, device)
        hidden = tuple(spec.hidden)
        if warm is not None:
            generator = self.net(warm.state, "gen", device)
            critic = self.net(warm.state, "critic", device)
            norm = L.SpectralNorm.from_state(warm.state, device) if spec.lipschitz == "spectral_norm" else None
        else:
            generator = self.new_net(spec.latent_dim, hidden, random, up=True)
            critic = self.new_net(1, hidden[::-1], random, up=False)
            norm = L.SpectralNorm(_pairs(critic), random) if spec.lipschitz == "spectral_norm" else None
        kind, _, betas = OPTIMISERS[spec.lipschitz]

        def optimiser(tensors):
            if kind == "rmsprop":
                return ForeachRMSprop(tensors, spec.lr)
            return adam(tensors, spec.lr, betas)

        g_params, c_params = generator.parameters(), critic.parameters()
        g_opt, c_opt = optimiser(g_params), optimiser(c_params)
        if isinstance(critic, MLP):  # MLPs: every step's gradients written out (wgan_steps.py)
            finite = train_mlp(spec, generator.layers, critic.layers, norm, data, random, (g_opt, c_opt), chunk=CHUNK)
        else:
            finite = self._train_autograd(data, generator, critic, norm, random, (g_opt, c_opt))
        state = {**generator.state("gen"), **critic.state("critic")}
        if norm is not None:
            state.update(norm.state())
        state = to_cpu(state)
        diverged = ~(finite.cpu().numpy() & finite_rows([t for k, t in state.items() if not k.startswith("sn.")]))
        return Model(state, 0, np.empty(0), diverged)

    def _train_autograd(self, data, generator, critic, norm, random, optimisers):
        """The training loop through autograd (conv nets; the penalty by double backward);
        returns the (B,) mask of chains whose losses stayed finite."""
        import torch

        from sweep.families._neural import layers as L
        from sweep.families._neural.wgan_steps import chunk_draws

        spec = self.spec
        batch, m, dim = data.shape
        g_opt, c_opt = optimisers
        g_params, c_params = generator.parameters(), critic.parameters()
        size = min(spec.batch_size, m)
        finite = torch.ones(batch, dtype=torch.bool, device=data.device)

        def fake(z):
            return torch.sigmoid(generator.forward(z, torch.relu))

        penalised = spec.lipschitz == "gradient_penalty"
        for count, rows, critic_noise, mixing, generator_noise in chunk_draws(spec, data, random, CHUNK):
            for step in range(count):
                # The generator does not change during the critic's n_critic steps: their generated
                # images in one forward, their real minibatches in one gather, each step's generated
                # and real rows side by side (one critic pass over both)
                with torch.no_grad():
                    generated = fake(critic_noise[:, step].reshape(batch, -1, spec.latent_dim))
                generated = generated.view(batch, spec.n_critic, size, dim)
                real = data.view(batch * m, dim).index_select(0, rows[:, step].reshape(-1))
                real = real.view(batch, spec.n_critic, size, dim)
                pairs = torch.cat([generated, real], dim=2)
                if penalised:
                    alpha = mixing[:, step]
                    betweens = alpha * real + (1 - alpha) * generated
                for inner in range(spec.n_critic):
                    weights = norm.weights(_pairs(critic), update=True) if norm is not None else None
                    out = critic.forward(pairs[:, inner], L.leaky_relu, weights)
                    loss = out[:, :size].mean((1, 2)) - out[:, size:].mean((1, 2))
                    if penalised:
                        between = betweens[:, inner]
                        norms = gradient_norms(
                            critic, between.detach().requires_grad_(True), weights, create_graph=True
                        )
                        loss = loss + spec.penalty * ((norms - 1.0) ** 2).mean(-1)
                    c_opt.zero_grad(set_to_none=True)
                    loss.sum().backward()  # a sum over chains: each chain gets its own gradient
                    c_opt.step()
                    finite &= torch.isfinite(loss.detach())
                    if spec.lipschitz == "clip":
                        with torch.no_grad():
                            torch._foreach_clamp_min_(c_params, -spec.clip_value)
                            torch._foreach_clamp_max_(c_params, spec.clip_value)
                weights = norm.weights(_pairs(critic), update=False) if norm is not None else None
                g_loss = -critic.forward(fake(generator_noise[:, step]), L.leaky_relu, weights).mean((1, 2))
                # the generator's gradients only: backward() would also compute the critic's
                for tensor, grad in zip(g_params, torch.autograd.grad(g_loss.sum(), g_params)):
                    tensor.grad = grad
                g_opt.step()
                finite &= torch.isfinite(g_loss.detach())
        return finite

    def generate(self, params: Model, m: int, random: Any, temperature: float) -> Any:
        import torch

        generator = self.net(params.state, "gen", random.device, trainable=False)
        z = random.normal(m, self.spec.latent_dim)
        if temperature != 1.0:
            z = z * temperature**0.5
        return torch.sigmoid(generator.forward(z, torch.relu))

    def critic(self, params: Model, device: Any) -> tuple[list, list | None]:
        """The critic's layers and (spectral_norm) its normalised weights."""
        from sweep.families._neural import layers as L

        critic = self.net(params.state, "critic", device, trainable=False)
        if self.spec.lipschitz != "spectral_norm":
            return critic, None
        return critic, L.SpectralNorm.from_state(params.state, device).weights(_pairs(critic), update=False)

    def model_metrics(self, params: Model, images: Any, ref: Any, random: Any) -> dict[str, np.ndarray]:
        import torch

        from sweep.families._neural import layers as L

        critic, weights = self.critic(params, random.device)
        real = ref.images.unsqueeze(0).expand(params.batch, -1, -1)
        count = min(real.shape[1], images.shape[1])
        with torch.no_grad():
            w1 = critic.forward(real, L.leaky_relu, weights).mean((1, 2)) - critic.forward(
                images, L.leaky_relu, weights
            ).mean((1, 2))
        alpha = random.uniform(count, 1)
        with torch.enable_grad():
            between = (alpha * real[:, :count] + (1 - alpha) * images[:, :count]).requires_grad_(True)
            norms = gradient_norms(critic, between, weights, create_graph=False)
        return {
            "critic_wasserstein": w1.double().cpu().numpy(),
            "lipschitz_estimate": norms.max(-1).values.detach().double().cpu().numpy(),
        }

    def cost(self, n: int, policy: Any, generations: int):
        return cost(
            self,
            n,
            policy,
            generations,
            steps=self.spec.steps * (self.spec.n_critic + 1) * 1.5,
            width=max(self.spec.hidden),
        )


def gradient_norms(critic, x, weights, *, create_graph: bool):
    """|grad_x f(x)| for every row of x (B, k, D): (B, k). Chain b's critic sees only chain b's
    rows, so the gradient of the sum over all rows is every row's own gradient."""
    import torch

    from sweep.families._neural import layers as L

    out = critic.forward(x, L.leaky_relu, weights)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=create_graph)
    return grad.norm(dim=-1)


def _pairs(net) -> list:
    """The network's weights as (B, in, out) matrices, in the (weight, bias) pairs that
    :class:`~sweep.families._neural.layers.SpectralNorm` reads (the biases it ignores)."""
    return [(matrix, None) for matrix in net.matrices()]
