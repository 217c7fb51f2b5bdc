"""The VAE's training step for MLP encoders and decoders, gradients written out.

A step is a fixed sequence of batched matrix products; at the family's size (32 chains, 128
units) autograd's bookkeeping (graph nodes, zero-filled and accumulated gradient buffers, the
split of the encoder's output, the loss's small ops) cost about as much as the products: the
gradients of the negative ELBO are computed directly into the parameters' ``.grad``.

Per chain and minibatch row, with encoder output (mu, log sigma^2), sigma = exp(log sigma^2 / 2),
z = mu + sigma eps, decoder logits l, the loss is the mean over rows of
BCE(l, x) + beta KL = sum_j [softplus(l_j) - l_j x_j] + beta/2 sum_k [mu_k^2 + sigma_k^2 - 1 - log sigma_k^2]:
d/dl = (sigmoid(l) - x) / k, d/dmu = d/dz + beta mu / k,
d/dlog sigma^2 = d/dz eps sigma / 2 + beta (sigma^2 - 1) / (2k), for k rows. ReLU slopes are read from
the activations' outputs (computed in place). A chain reads only its own rows and weights, so it
gets the same bits in any batch of two or more chains (a batch of one goes through another of
torch's bmm kernels, as with autograd: equal to rounding).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sweep.families._neural.layers import Layer


def _forward(layers: Sequence[Layer], x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The MLP's output (no activation after the last layer) and every layer's input."""
    inputs, h = [], x
    last = len(layers) - 1
    for i, (w, bias) in enumerate(layers):
        inputs.append(h)
        h = torch.bmm(h, w).add_(bias)
        if i < last:
            h = torch.relu_(h)
    return h, inputs


def _backward(layers: Sequence[Layer], inputs: Sequence[torch.Tensor], delta: torch.Tensor, *, to_input: bool):
    """Write every weight's and bias's gradient from d loss / d output ``delta``; return d loss /
    d input when ``to_input``."""
    for i in range(len(layers) - 1, -1, -1):
        w, bias = layers[i]
        torch.bmm(inputs[i].transpose(1, 2), delta, out=w.grad)
        torch.sum(delta, 1, keepdim=True, out=bias.grad)
        if i > 0 or to_input:
            delta = torch.bmm(delta, w.transpose(1, 2))
            if i > 0:  # through the ReLU whose output is this layer's input
                delta = torch.ops.aten.threshold_backward(delta, inputs[i], 0)
    return delta if to_input else None


@torch.no_grad()
def vae_step(
    encoder: Sequence[Layer], decoder: Sequence[Layer], x: torch.Tensor, noise: torch.Tensor, beta: float
) -> torch.Tensor:
    """The negative ELBO per chain (B,) of minibatch x (B, k, D) with latent draws ``noise``
    (B, k, Z), its gradients written into every parameter's ``.grad`` (which must exist)."""
    k, z_dim = x.shape[1], noise.shape[-1]
    out, enc_inputs = _forward(encoder, x)
    mean, log_var = out[..., :z_dim], out[..., z_dim:]
    std = torch.exp(0.5 * log_var)
    code = torch.addcmul(mean, std, noise)
    logits, dec_inputs = _forward(decoder, code)
    reconstruction = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    var = log_var.exp()
    kl = 0.5 * (mean * mean + var - 1.0 - log_var).sum(-1)
    loss = (reconstruction + beta * kl).mean(-1)

    d_logits = torch.sigmoid(logits).sub_(x).div_(k)
    d_code = _backward(decoder, dec_inputs, d_logits, to_input=True)
    d_out = torch.empty_like(out)
    torch.add(d_code, mean, alpha=beta / k, out=d_out[..., :z_dim])
    # d/dlog sigma^2: the draw's term d_code eps sigma / 2, the KL's beta (sigma^2 - 1) / (2k)
    torch.mul(d_code, noise, out=d_out[..., z_dim:]).mul_(std).mul_(0.5).add_(var.sub_(1.0), alpha=0.5 * beta / k)
    _backward(encoder, enc_inputs, d_out, to_input=False)
    return loss
