"""The written-out VAE step: the negative ELBO and every encoder and decoder weight's and bias's
gradient equal autograd's (vae.negative_elbo), for beta 1 and 0.3; a chain's gradients do not
depend on the other chains of its batch."""

from __future__ import annotations

import pytest
import torch

from sweep.families._neural import layers as L
from sweep.families._neural.nets import MLP
from sweep.families._neural.torchkit import ChainRandom
from sweep.families._neural.vae_steps import vae_step
from sweep.families.vae import negative_elbo

CPU = torch.device("cpu")
K, D, Z = 11, 7, 3


def make(seeds):
    random = ChainRandom(seeds, CPU)
    encoder = L.init_mlp((D, 9, 2 * Z), random)
    decoder = L.init_mlp((Z, 8, 6, D), random)
    x = random.uniform(K, D)
    noise = random.normal(K, Z)
    return encoder, decoder, x, noise


@pytest.mark.parametrize("beta", [1.0, 0.3])
def test_gradients_equal_autograd(beta):
    """Loss and gradients match autograd to float32 rounding (3 chains, a 2-layer encoder and a
    3-layer decoder); the KL term is not vacuous (beta changes the encoder's gradients)."""
    encoder, decoder, x, noise = make([1, 2, 3])
    params = L.parameters(encoder) + L.parameters(decoder)
    expected = negative_elbo(MLP(encoder), MLP(decoder), x, noise, beta)
    want = torch.autograd.grad(expected.sum(), params)
    L.gradient_buffers(encoder + decoder)
    loss = vae_step(encoder, decoder, x, noise, beta)
    torch.testing.assert_close(loss, expected.detach(), rtol=1e-5, atol=1e-5)
    for p, w in zip(params, want):
        torch.testing.assert_close(p.grad, w, rtol=1e-4, atol=1e-6)
    other = torch.autograd.grad(negative_elbo(MLP(encoder), MLP(decoder), x, noise, 2 * beta).sum(), params)
    assert float((other[0] - want[0]).abs().max()) > 1e-3


def test_a_chain_gets_the_same_bits_in_any_batch():
    """Chains 0 and 1 get the same loss and gradient bits in a batch of three as in a batch of
    their own (as the family's blocks: a batch of one goes through another torch kernel, whose
    last bits can differ, with autograd as here)."""
    encoder, decoder, x, noise = make([1, 2, 3])
    L.gradient_buffers(encoder + decoder)
    loss = vae_step(encoder, decoder, x, noise, 1.0)
    full = [loss] + [p.grad.clone() for p in L.parameters(encoder + decoder)]
    alone = [
        (w[:2].detach().clone().requires_grad_(), b[:2].detach().clone().requires_grad_()) for w, b in encoder + decoder
    ]
    L.gradient_buffers(alone)
    loss = vae_step(alone[:2], alone[2:], x[:2].clone(), noise[:2].clone(), 1.0)
    single = [loss] + [p.grad for p in L.parameters(alone)]
    for a, b in zip(full, single):
        assert torch.equal(a[:2], b)
