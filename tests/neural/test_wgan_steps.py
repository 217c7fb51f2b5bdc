"""The written-out critic step: its loss and every weight's and bias's gradient equal autograd's
on the textbook critic loss (generated and real rows, interpolates formed in pixel space, double
backward), with and without the penalty, plain and spectrally normalised, 0-2 hidden layers; and
a chain's gradients do not depend on the other chains of its batch."""

from __future__ import annotations

import pytest
import torch

from sweep.families._neural import layers as L
from sweep.families._neural.torchkit import ChainRandom
from sweep.families._neural.wgan_steps import critic_step, generator_step, gradient_buffers, spectral_backward

CPU = torch.device("cpu")
K, D = 13, 6


def textbook(critic, pairs, alpha, penalty, weights=None):
    """The loss per chain as the old training loop wrote it, for autograd."""
    fake, real = pairs[:, :K], pairs[:, K:]
    out = L.forward(critic, pairs, L.leaky_relu, weights)
    loss = out[:, :K].mean((1, 2)) - out[:, K:].mean((1, 2))
    if alpha is not None:
        between = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(
            L.forward(critic, between, L.leaky_relu, weights).sum(), between, create_graph=True
        )
        loss = loss + penalty * ((grad.norm(dim=-1) - 1) ** 2).mean(-1)
    return loss


def make(sizes, seeds, steep=3.0):
    random = ChainRandom(seeds, CPU)
    critic = [(steep * w.detach(), b.detach()) for w, b in L.init_mlp(sizes, random)]  # slopes of both signs
    critic = [(w.requires_grad_(), b.requires_grad_()) for w, b in critic]
    pairs = random.normal(2 * K, sizes[0])
    alpha = random.uniform(K, 1)
    return critic, pairs, alpha


@pytest.mark.parametrize("sizes", [(D, 9, 7, 1), (D, 5, 1), (D, 1)])
@pytest.mark.parametrize("method", ["clip", "gradient_penalty", "spectral_norm"])
def test_gradients_equal_autograd(sizes, method):
    """Loss and gradients match autograd to float32 rounding for 3 chains; the penalty's and the
    normalisation's terms are not vacuous (they change the gradients by far more than the
    tolerance)."""
    critic, pairs, alpha = make(sizes, [1, 2, 3])
    mixing = alpha if method == "gradient_penalty" else None
    norm = L.SpectralNorm(critic, ChainRandom([4, 5, 6], CPU)) if method == "spectral_norm" else None
    weights = None if norm is None else norm.weights(critic, update=False)
    expected = textbook(critic, pairs, mixing, 10.0, weights)
    want = torch.autograd.grad(expected.sum(), L.parameters(critic))

    gradient_buffers(critic)
    factors = None if norm is None else norm.factors(critic, update=False)
    loss, grads = critic_step(
        critic, pairs, weights=None if factors is None else [f[3] for f in factors], mixing=mixing, penalty=10.0
    )
    if factors is not None:
        grads = spectral_backward(grads, factors)
    got = [t for (_, b), g in zip(critic, grads) for t in (g, b.grad)]
    torch.testing.assert_close(loss, expected.detach(), rtol=1e-5, atol=1e-5)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)
    plain = torch.autograd.grad(textbook(critic, pairs, None, 0.0).sum(), L.parameters(critic))
    if method != "clip":  # the penalty or the normalisation does change the gradient
        assert max(float((a - b).abs().max()) for a, b in zip(plain, want)) > 1e-2


def test_a_chain_gets_the_same_bits_in_any_batch():
    """Chains 0 and 1 get the same loss and gradient bits (penalty included) in a batch of three
    as in a batch of their own (a batch of one goes through another torch kernel, whose last
    bits can differ, with autograd as here)."""
    critic, pairs, alpha = make((D, 9, 7, 1), [1, 2, 3])
    gradient_buffers(critic)
    loss, grads = critic_step(critic, pairs, mixing=alpha, penalty=10.0)
    full = [loss.clone()] + [t.clone() for (_, b), g in zip(critic, grads) for t in (g, b.grad)]
    alone = [(w[:2].detach().clone().requires_grad_(), b[:2].detach().clone().requires_grad_()) for w, b in critic]
    gradient_buffers(alone)
    loss, grads = critic_step(alone, pairs[:2].clone(), mixing=alpha[:2].clone(), penalty=10.0)
    single = [loss] + [t for (_, b), g in zip(alone, grads) for t in (g, b.grad)]
    for a, b in zip(full, single):
        assert torch.equal(a[:2], b)


@pytest.mark.parametrize("sizes", [(D, 9, 7, 1), (D, 1)])
@pytest.mark.parametrize("normalised", [False, True])
def test_generator_gradients_equal_autograd(sizes, normalised):
    """The generator's loss -E f(sigmoid(g(z))) and every generator weight's and bias's gradient
    match autograd's (ReLU generator 3-8-5-D; critic plain or with replaced weights)."""
    critic, _, _ = make(sizes, [1, 2, 3])
    random = ChainRandom([7, 8, 9], CPU)
    generator = L.init_mlp((3, 8, 5, D), random)
    noise = random.normal(K, 3)
    weights = [0.5 * w.detach() for w, _ in critic] if normalised else None
    images = torch.sigmoid(L.forward(generator, noise, torch.relu))
    expected = -L.forward(critic, images, L.leaky_relu, weights).mean((1, 2))
    want = torch.autograd.grad(expected.sum(), L.parameters(generator))
    gradient_buffers(generator)
    loss = generator_step(generator, critic, noise, weights=weights)
    torch.testing.assert_close(loss, expected.detach(), rtol=1e-5, atol=1e-6)
    got = [t.grad for t in L.parameters(generator)]
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)
    assert min(float(w.abs().max()) for w in want) > 1e-4  # every layer does get a gradient
