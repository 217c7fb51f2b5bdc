"""One WGAN critic step of a batched leaky-ReLU MLP critic, its gradients written out.

The critic's loss per chain is E f(generated) - E f(real), plus, for the gradient penalty,
lambda E[(|grad_x f(x_hat)| - 1)^2] on interpolates x_hat = alpha x_real + (1 - alpha) x_gen.
:func:`critic_step` computes the loss and writes every weight's and bias's gradient into their
``.grad`` (kept between steps), without autograd: a critic step is a fixed sequence of batched
matrix products, and autograd's bookkeeping (graph nodes, zero-filled and accumulated gradient
buffers, slices' backward, the penalty's second graph) cost more than the products themselves at
this size (32 chains, 64 units: half of a step was not ``bmm``).

Notation (as in :mod:`.penalty`): layer i maps h_i to a_i = h_i W_i + b_i, h_{i+1} = leaky_relu(a_i),
f = a_{L-1}. The input gradient at a row is q_0 with q_{L-1} = W_{L-1}^T and
q_i = (q_{i+1} * s_i) W_i^T, s_i the leaky ReLU's slope at a_i (piecewise constant: the penalty's
gradient with respect to the weights flows only through the W's).

The interpolates' first-layer pre-activations are not computed again: W_0 is linear, so
x_hat W_0 + b_0 = alpha (x_real W_0 + b_0) + (1 - alpha) (x_gen W_0 + b_0), both terms already in
the forward pass over generated and real rows (equal up to rounding: the slopes at an
interpolate within rounding of a kink may differ from the old product's).

Everything a chain computes reads only its own rows and weights (batched products, per-chain
reductions), so B chains trained together get the bits each would get alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sweep.families._neural.layers import Layer

SLOPE = 0.2  # the critic's leaky ReLU (layers.leaky_relu)


def _slope_times(grad: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
    """grad where pre > 0, else 0.2 grad (the leaky ReLU's backward, one kernel)."""
    return torch.ops.aten.leaky_relu_backward(grad, pre, SLOPE, False)


def gradient_buffers(layers: Sequence[Layer]) -> None:
    """Give every parameter a ``.grad`` of its shape, which :func:`critic_step` overwrites."""
    for tensor in (t for layer in layers for t in layer):
        if tensor.grad is None:
            tensor.grad = torch.zeros_like(tensor)


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
        The batched critic (:mod:`.layers`), W of shape (B, in, out), the last out = 1.
    pairs : torch.Tensor
        (B, 2k, D): each chain's k generated rows, then its k real rows.
    weights : list of torch.Tensor, optional
        Replacements of the W's (spectrally normalised ones); the W gradients returned are then
        with respect to these.
    mixing : torch.Tensor, optional
        (B, k, 1) interpolation weights alpha: given, the gradient penalty is added.
    penalty : float
        Its weight lambda.

    Returns
    -------
    loss : torch.Tensor
        (B,) per-chain losses.
    weight_grads : list of torch.Tensor
        The W gradients (B, in, out), also written, with the biases', into the parameters'
        ``.grad`` unless ``weights`` replaced them (the caller maps those back).
    """
    ws = [w for w, _ in layers] if weights is None else list(weights)
    last = len(layers) - 1
    k = pairs.shape[1] // 2
    inputs, pre = [pairs], []  # h_i and a_i at generated and real rows
    h = pairs
    for i, ((_, bias), w) in enumerate(zip(layers, ws)):
        a = torch.bmm(h, w).add_(bias)
        if i < last:
            pre.append(a)
            h = torch.nn.functional.leaky_relu(a, SLOPE)
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
        delta = _slope_times(sign * ws[last].transpose(1, 2), pre[last - 1])  # d loss / d a_{L-2}
        for i in range(last - 1, -1, -1):
            torch.bmm(inputs[i].transpose(1, 2), delta, out=grads[i])
            torch.sum(delta, 1, keepdim=True, out=layers[i][1].grad)
            if i > 0:
                delta = _slope_times(torch.bmm(delta, ws[i].transpose(1, 2)), pre[i - 1])

    if mixing is not None:
        loss = loss + _penalty(layers, ws, pre, mixing, penalty, k, grads)
    return loss, grads


def _penalty(layers, ws, pre, mixing, penalty, k, grads) -> torch.Tensor:
    """Add the gradient penalty's weight gradients to ``grads``; return its value per chain."""
    last = len(ws) - 1
    at = []  # a_i at the interpolates, i < L - 1
    if last > 0:
        a = torch.lerp(pre[0][:, :k], pre[0][:, k:], mixing)  # alpha real + (1 - alpha) generated
        at.append(a)
        for i in range(1, last):
            a = torch.bmm(torch.nn.functional.leaky_relu(a, SLOPE), ws[i]).add_(layers[i][1])
            at.append(a)
    q = ws[last].transpose(1, 2)  # (B, 1, H): d f / d h_{L-1}, the same for every row
    scaled = []  # e_i = q_{i+1} * s_i
    for i in range(last - 1, -1, -1):
        e = _slope_times(q.expand_as(at[i]), at[i])
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
        back = _slope_times(torch.bmm(back, ws[i]), at[i])
    grads[last].add_(back.sum(1).unsqueeze(-1))
    return value


@torch.no_grad()
def spectral_backward(
    grads: Sequence[torch.Tensor], factors: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
) -> list[torch.Tensor]:
    """Gradients with respect to W from those with respect to W / sigma(W), sigma = v^T W u (u, v
    held constant, as autograd sees the power iteration): (G - <G, W / sigma> v u^T) / sigma.

    ``factors``: (v, u, sigma, normalised weight) per layer (:meth:`.layers.SpectralNorm.factors`).
    """
    out = []
    for grad, (v, u, sigma, normalised) in zip(grads, factors):
        inner = (grad * normalised).sum((1, 2))
        outer = torch.bmm(v.unsqueeze(2), u.unsqueeze(1)).mul_(inner[:, None, None])
        out.append(grad.sub(outer).div_(sigma[:, None, None]))
    return out
