"""The WGAN's training steps for MLP generators and critics, gradients written out.

The critic's loss per chain is E f(generated) - E f(real), plus, for the gradient penalty,
lambda E[(|grad_x f(x_hat)| - 1)^2] on interpolates x_hat = alpha x_real + (1 - alpha) x_gen;
the generator's is -E f(generated). Each step is a fixed sequence of batched matrix products,
and at the families' size (32 chains, 64 units) autograd's bookkeeping (graph nodes, zero-filled
and accumulated gradient buffers, slices' backward, the penalty's second graph) cost more than
the products themselves: :func:`critic_step` and :func:`generator_step` compute the gradients
directly into the parameters' ``.grad`` (kept between steps), and :func:`train_mlp` runs the
training loop with one reused buffer of generated and real rows.

Notation: layer i maps h_i to a_i = h_i W_i + b_i, h_{i+1} = act(a_i), f = a_{L-1}. The input gradient at a row is q_0 with q_{L-1} = W_{L-1}^T and
q_i = (q_{i+1} * s_i) W_i^T, s_i the activation's slope at a_i (piecewise constant: the penalty's
gradient with respect to the weights flows only through the W's). Activations run in place: the
slope of a leaky ReLU (or ReLU) is read from its output, whose sign is its input's.

The interpolates' first-layer pre-activations are not computed again: W_0 is linear, so
x_hat W_0 + b_0 = alpha (x_real W_0 + b_0) + (1 - alpha) (x_gen W_0 + b_0), both terms already in
the forward pass over generated and real rows (equal up to rounding).

Everything a chain computes reads only its own rows and weights (batched products, per-chain
reductions), so a chain gets the same bits in any batch of two or more chains (a batch of one
goes through another of torch's bmm kernels, as with autograd: equal to rounding).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from sweep.families._neural.layers import Layer, gradient_buffers

__all__ = ["chunk_draws", "critic_step", "generator_step", "gradient_buffers", "spectral_backward", "train_mlp"]

SLOPE = 0.2  # the critic's leaky ReLU (layers.leaky_relu)


def _leaky_backward(grad: torch.Tensor, at: torch.Tensor, *, output: bool) -> torch.Tensor:
    """grad where the leaky ReLU's input is > 0, else 0.2 grad (one kernel); ``at``: its input,
    or (``output``) its output, which has the same sign."""
    return torch.ops.aten.leaky_relu_backward(grad, at, SLOPE, output)


@torch.no_grad()
def critic_step(
    layers: Sequence[Layer],
    pairs: torch.Tensor,
    *,
    weights: Sequence[torch.Tensor] | None = None,
    mixing: torch.Tensor | None = None,
    penalty: float = 0.0,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The critic's loss per chain and its gradients with respect to the weights used.

    Parameters
    ----------
    layers : list of (W, b)
        The batched critic (:mod:`.layers`), W of shape (B, in, out), the last out = 1; every
        parameter has a ``.grad`` (:func:`gradient_buffers`).
    pairs : torch.Tensor
        (B, 2k, D): each chain's k generated rows, then its k real rows.
    weights : list of torch.Tensor, optional
        Replacements of the W's (spectrally normalised ones); the W gradients returned are then
        with respect to these, and not written into the W's ``.grad`` (see :func:`spectral_backward`).
    mixing : torch.Tensor, optional
        (B, k, 1) interpolation weights alpha: given, the gradient penalty is added.
    penalty : float
        Its weight lambda.

    Returns
    -------
    loss : torch.Tensor
        (B,) per-chain losses.
    weight_grads : list of torch.Tensor
        The W gradients (B, in, out); the biases' are in their ``.grad``.
    """
    ws = [w for w, _ in layers] if weights is None else list(weights)
    last = len(layers) - 1
    k = pairs.shape[1] // 2
    inputs, slopes = [pairs], []  # h_i, and where each activation's slope is read (a_i or h_{i+1})
    first = None  # a_0, kept for the interpolates
    h = pairs
    for i, ((_, bias), w) in enumerate(zip(layers, ws)):
        a = torch.bmm(h, w).add_(bias)
        if i < last:
            if i == 0 and mixing is not None:
                first, h = a, torch.nn.functional.leaky_relu(a, SLOPE)
            else:
                h = torch.nn.functional.leaky_relu_(a, SLOPE)
            slopes.append(h)
            inputs.append(h)
    loss = a[:, :k].mean((1, 2)) - a[:, k:].mean((1, 2))

    grads = [torch.empty_like(w) if weights is not None else w_.grad for w, (w_, _) in zip(ws, layers)]
    # d loss / d f: +1/k at generated rows, -1/k at real ones. Last layer: the difference of the
    # mean inputs; its bias's gradient is exactly zero.
    top = inputs[last]
    torch.sub(top[:, :k].mean(1), top[:, k:].mean(1), out=grads[last].view(top.shape[0], -1))
    layers[last][1].grad.zero_()
    if last > 0:
        sign = torch.full((1, 2 * k, 1), 1.0 / k, dtype=pairs.dtype, device=pairs.device)
        sign[:, k:] = -1.0 / k
        delta = _leaky_backward(sign * ws[last].transpose(1, 2), slopes[last - 1], output=True)
        for i in range(last - 1, -1, -1):
            torch.bmm(inputs[i].transpose(1, 2), delta, out=grads[i])
            torch.sum(delta, 1, keepdim=True, out=layers[i][1].grad)
            if i > 0:
                delta = _leaky_backward(torch.bmm(delta, ws[i].transpose(1, 2)), slopes[i - 1], output=True)

    if mixing is not None:
        loss = loss + _penalty(layers, ws, first, mixing, penalty, k, grads)
    return loss, grads


def _penalty(layers, ws, first, mixing, penalty, k, grads) -> torch.Tensor:
    """Add the gradient penalty's weight gradients to ``grads``; return its value per chain."""
    last = len(ws) - 1
    at = []  # the leaky ReLUs' outputs at the interpolates (their slopes)
    if last > 0:
        a = torch.lerp(first[:, :k], first[:, k:], mixing)  # alpha real + (1 - alpha) generated
        for i in range(1, last + 1):
            h = torch.nn.functional.leaky_relu_(a, SLOPE)
            at.append(h)
            if i < last:
                a = torch.bmm(h, ws[i]).add_(layers[i][1])
    q = ws[last].transpose(1, 2)  # (B, 1, H): d f / d h_{L-1}, the same for every row
    scaled = []  # e_i = q_{i+1} * s_i
    for i in range(last - 1, -1, -1):
        e = _leaky_backward(q.expand_as(at[i]), at[i], output=True)
        scaled.append(e)
        q = torch.bmm(e, ws[i].transpose(1, 2))
    batch, dim = ws[0].shape[0], ws[0].shape[1]
    if last == 0:
        q = q.expand(batch, k, dim)
    norms = torch.linalg.vector_norm(q, dim=-1)  # (B, k)
    excess = norms - 1.0
    value = penalty * (excess * excess).mean(-1)
    # d value / d q_0 = (2 lambda / k) (|q| - 1) q / |q|; a zero row (q = 0) gets zero
    coef = excess.mul_(2.0 * penalty / k).div_(norms.clamp_min_(torch.finfo(q.dtype).tiny))
    back = q * coef.unsqueeze(-1)
    for i in range(last):  # q_i = e_i W_i^T
        e = scaled[last - 1 - i]
        grads[i].baddbmm_(back.transpose(1, 2), e)
        back = _leaky_backward(torch.bmm(back, ws[i]), at[i], output=True)
    grads[last].add_(back.sum(1).unsqueeze(-1))
    return value


@torch.no_grad()
def generator_step(
    generator: Sequence[Layer],
    critic: Sequence[Layer],
    noise: torch.Tensor,
    *,
    weights: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    """The generator's loss -E f(sigmoid(g(z))) per chain (B,), its gradients written into the
    generator's ``.grad`` (ReLU hidden layers, sigmoid output; the critic as in
    :func:`critic_step`, ``weights`` replacing its W's; the critic's gradients are not computed)."""
    g_last, c_last = len(generator) - 1, len(critic) - 1
    k = noise.shape[1]
    inputs, h = [noise], noise
    for i, (w, bias) in enumerate(generator):
        a = torch.bmm(h, w).add_(bias)
        h = torch.relu_(a) if i < g_last else torch.sigmoid_(a)
        inputs.append(h)
    images = inputs.pop()
    ws = [w for w, _ in critic] if weights is None else list(weights)
    slopes, h = [], images
    for i, ((_, bias), w) in enumerate(zip(critic, ws)):
        a = torch.bmm(h, w).add_(bias)
        if i < c_last:
            h = torch.nn.functional.leaky_relu_(a, SLOPE)
            slopes.append(h)
    loss = -a.mean((1, 2))
    # d loss / d images: -1/k times each row's input gradient q_0 (as in the penalty)
    back = ws[c_last].transpose(1, 2) * (-1.0 / k)
    for i in range(c_last - 1, -1, -1):
        back = torch.bmm(_leaky_backward(back.expand_as(slopes[i]), slopes[i], output=True), ws[i].transpose(1, 2))
    if c_last == 0:
        back = back.expand_as(images)
    delta = torch.ops.aten.sigmoid_backward(back, images)
    for i in range(g_last, -1, -1):
        w, bias = generator[i]
        torch.bmm(inputs[i].transpose(1, 2), delta, out=w.grad)
        torch.sum(delta, 1, keepdim=True, out=bias.grad)
        if i > 0:
            delta = torch.ops.aten.threshold_backward(torch.bmm(delta, w.transpose(1, 2)), inputs[i], 0)
    return loss


@torch.no_grad()
def spectral_backward(
    grads: Sequence[torch.Tensor], factors: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]
) -> list[torch.Tensor]:
    """Gradients with respect to W from those with respect to W / sigma(W), sigma = v^T W u (u, v
    held constant, as autograd sees the power iteration): (G - <G, W / sigma> v u^T) / sigma.

    ``factors``: (v, u, sigma, W / sigma) per layer (:meth:`.layers.SpectralNorm.factors`).
    """
    out = []
    for grad, (v, u, sigma, normalised) in zip(grads, factors):
        inner = (grad * normalised).sum((1, 2))
        outer = torch.bmm(v.unsqueeze(2), u.unsqueeze(1)).mul_(inner[:, None, None])
        out.append(grad.sub(outer).div_(sigma[:, None, None]))
    return out


@torch.no_grad()
def train_mlp(
    spec: Any, generator: Sequence[Layer], critic: Sequence[Layer], norm: Any, data, random, optimisers, *, chunk: int
) -> torch.Tensor:
    """Train B MLP WGANs on data (B, m, D) for ``spec.steps`` generator steps, each after
    ``spec.n_critic`` critic steps; returns a (B,) mask of chains whose losses stayed finite.

    ``norm``: the critic's :class:`~.layers.SpectralNorm` or None; ``optimisers``: the
    generator's and the critic's. Random draws per ``chunk`` generator steps, in the order the
    autograd loop made them (minibatch indices, the critic's latents, interpolation weights, the
    generator's latents), so each chain's stream is the same.
    """
    g_opt, c_opt = optimisers
    batch, m, dim = data.shape
    size = min(spec.batch_size, m)
    flat = data.view(batch * m, dim)
    gradient_buffers(generator)
    gradient_buffers(critic)
    c_params = [t for layer in critic for t in layer]
    pairs = torch.empty(batch, 2 * size, dim, dtype=data.dtype, device=data.device)  # generated, then real
    real = torch.empty(batch * size, dim, dtype=data.dtype, device=data.device)
    finite = torch.ones(batch, dtype=torch.bool, device=data.device)
    penalised = spec.lipschitz == "gradient_penalty"
    for count, rows, critic_noise, mixing, generator_noise in chunk_draws(spec, data, random, chunk):
        for step in range(count):
            for inner in range(spec.n_critic):
                h = critic_noise[:, step, inner]
                for i, (w, bias) in enumerate(generator):
                    h = torch.bmm(h, w).add_(bias)
                    h = torch.relu_(h) if i < len(generator) - 1 else torch.sigmoid(h, out=pairs[:, :size])
                torch.index_select(flat, 0, rows[:, step, inner].reshape(-1), out=real)
                pairs[:, size:].copy_(real.view(batch, size, dim))
                factors = norm.factors(critic, update=True) if norm is not None else None
                loss, grads = critic_step(
                    critic,
                    pairs,
                    weights=None if factors is None else [f[3] for f in factors],
                    mixing=mixing[:, step, inner] if penalised else None,
                    penalty=spec.penalty,
                )
                if factors is not None:
                    for (weight, _), grad in zip(critic, spectral_backward(grads, factors)):
                        weight.grad.copy_(grad)
                c_opt.step()
                finite &= torch.isfinite(loss)
                if spec.lipschitz == "clip":
                    torch._foreach_clamp_min_(c_params, -spec.clip_value)
                    torch._foreach_clamp_max_(c_params, spec.clip_value)
            factors = norm.factors(critic, update=False) if norm is not None else None
            g_loss = generator_step(
                generator,
                critic,
                generator_noise[:, step],
                weights=None if factors is None else [f[3] for f in factors],
            )
            g_opt.step()
            finite &= torch.isfinite(g_loss)
    return finite


def chunk_draws(spec: Any, data: torch.Tensor, random: Any, chunk: int):
    """The training loop's random draws, ``chunk`` generator steps at a time, in the one order
    both WGAN loops (this module's and the family's autograd loop) make them: minibatch indices,
    the critic's latents, interpolation weights, the generator's latents. The order is part of
    each chain's stream.

    Yields
    ------
    (count, rows, critic_noise, mixing, generator_noise)
        Generator steps in the chunk; the real minibatches as rows of the flattened data
        (B, count, n_critic, size); latents (B, count, n_critic, size, latent_dim); weights
        (B, count, n_critic, size, 1); latents (B, count, size, latent_dim).
    """
    from sweep.families._neural.torchkit import BatchIndexer, flat_rows

    batch, m = data.shape[:2]
    size = min(spec.batch_size, m)
    indexer = BatchIndexer(random, m)
    done = 0
    while done < spec.steps:
        count = min(chunk, spec.steps - done)
        index = indexer.take(count * spec.n_critic * size).view(batch, count, spec.n_critic, size)
        rows = flat_rows(data, index)
        critic_noise = random.normal(count, spec.n_critic, size, spec.latent_dim)
        mixing = random.uniform(count, spec.n_critic, size, 1)
        generator_noise = random.normal(count, size, spec.latent_dim)
        yield count, rows, critic_noise, mixing, generator_noise
        done += count
