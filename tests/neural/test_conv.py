"""Batched conv nets (``architecture: conv``): shapes, B stacked networks computing what B
separate torch modules compute, conv families on 28x28 images (a tiny fake MNIST) whose chains
do not depend on their block and replay bit for bit, and one-line errors for images conv cannot
take."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from sweep.errors import SpecError
from sweep.families._neural import layers as L
from sweep.families._neural.nets import ConvNet
from sweep.families._neural.torchkit import ChainRandom
from sweep.grid import cells
from sweep.spec import parse_spec
from tests.neural.conftest import tiny_spec
from tests.neural.test_data import write_mnist
from tests.neural.test_families import run_block

CPU = torch.device("cpu")


@pytest.mark.parametrize("side, channels", [(28, (3, 5)), (8, (2, 4)), (8, (2,))])
def test_shapes(side, channels):
    """A down net maps (B, k, S*S) images to (B, k, out), an up net (B, k, z) latents back to
    (B, k, S*S); every weight has the chain axis first."""
    random = ChainRandom([1, 2], CPU)
    down = ConvNet.init(side, channels, (6,), 3, random, up=False)
    up = ConvNet.init(side, channels, (6,), 4, random, up=True)
    assert down.forward(random.normal(5, side * side), torch.relu).shape == (2, 5, 3)
    assert up.forward(random.normal(5, 4), torch.relu).shape == (2, 5, side * side)
    assert all(t.shape[0] == 2 for t in down.parameters() + up.parameters())
    assert [m.shape for m in down.matrices()][0] == (2, 16, channels[0])  # (in * 4 * 4, out)


def modules(net: ConvNet, chain: int) -> tuple[list, list]:
    """Chain ``chain`` of a batched conv net as plain torch modules (convolutions, linear head)."""
    convs = []
    for weight, bias in net.convs:
        w = weight[chain].detach()
        if net.up:
            module = torch.nn.ConvTranspose2d(w.shape[0], w.shape[1], 4, stride=2, padding=1)
        else:
            module = torch.nn.Conv2d(w.shape[1], w.shape[0], 4, stride=2, padding=1)
        with torch.no_grad():
            module.weight.copy_(w)
            module.bias.copy_(bias[chain])
        convs.append(module)
    head = []
    for weight, bias in net.head:
        module = torch.nn.Linear(weight.shape[1], weight.shape[2])
        with torch.no_grad():
            module.weight.copy_(weight[chain].T)
            module.bias.copy_(bias[chain, 0])
        head.append(module)
    return convs, head


def plain(net: ConvNet, chain: int, x: torch.Tensor) -> tuple[torch.Tensor, list]:
    """Chain ``chain``'s output through plain modules (the reference), and its modules."""
    convs, head = modules(net, chain)
    act = L.leaky_relu
    if net.up:
        h = x
        for layer in head:
            h = act(layer(h))
        c = convs[0].in_channels
        small = net.side >> len(convs)
        h = h.view(-1, c, small, small)
        for i, layer in enumerate(convs):
            h = layer(h)
            if i < len(convs) - 1:
                h = act(h)
        return h.flatten(1), convs + head
    h = x.view(-1, 1, net.side, net.side)
    for layer in convs:
        h = act(layer(h))
    h = h.flatten(1)
    for i, layer in enumerate(head):
        h = layer(h)
        if i < len(head) - 1:
            h = act(h)
    return h, convs + head


@pytest.mark.parametrize("up", [False, True])
def test_batched_equals_separate_modules(up):
    """Outputs and weight gradients of a 3-chain batched conv net (8x8, two convolutions) equal
    those of 3 separate Conv2d / ConvTranspose2d + Linear stacks, chain by chain."""
    random = ChainRandom([4, 5, 6], CPU)
    net = ConvNet.init(8, (3, 4), (7,), 5, random, up=up)
    x = random.normal(6, 5 if up else 64)
    out = net.forward(x, L.leaky_relu)
    (out**2).mean((1, 2)).sum().backward()
    for b in range(3):
        single, plain_modules = plain(net, b, x[b])
        (single**2).mean().backward()
        torch.testing.assert_close(out[b], single, rtol=1e-5, atol=1e-6)
        batched_convs = [w.grad[b] for w, _ in net.convs]
        conv_modules = plain_modules[: len(net.convs)]
        for grad, module in zip(batched_convs, conv_modules):
            torch.testing.assert_close(grad, module.weight.grad, rtol=1e-4, atol=1e-6)
        for (weight, bias), module in zip(net.head, plain_modules[len(net.convs) :]):
            torch.testing.assert_close(weight.grad[b], module.weight.grad.T, rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(bias.grad[b, 0], module.bias.grad, rtol=1e-4, atol=1e-6)
    assert float(out.detach().std()) > 1e-3  # not vacuous


def test_matrices_round_trip_through_forward():
    """Spectral normalisation's (B, in, out) matrices, given back to forward, give the stored
    weights' output; scaled, a scaled first layer's."""
    random = ChainRandom([7, 8], CPU)
    net = ConvNet.init(8, (2, 3), (5,), 1, random, up=False)
    x = random.normal(4, 64)
    torch.testing.assert_close(net.forward(x, L.leaky_relu, net.matrices()), net.forward(x, L.leaky_relu))
    scaled = net.matrices()
    scaled[0] = 2 * scaled[0]
    assert not torch.allclose(net.forward(x, L.leaky_relu, scaled), net.forward(x, L.leaky_relu))


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    """A tiny fake MNIST: 60 training and 20 test images of 28x28 in IDX files."""
    folder = tmp_path_factory.mktemp("mnist")
    write_mnist(folder, train=60, test=20)
    return {"name": "mnist", "path": str(folder)}


def conv_family(name: str, mnist: dict) -> dict:
    common = {"architecture": "conv", "channels": [2, 3], "hidden": [8], "latent_dim": 3, "eval_samples": 64}
    common["batch_size"] = 8
    if name == "vae":
        return {"name": "vae", "data": mnist, "steps": 3, **common}
    return {"name": "wgan", "data": mnist, "steps": 2, "n_critic": 2, "lipschitz": name, **common}


CONV = ["vae", "clip", "gradient_penalty", "spectral_norm"]
# whole blocks take seconds each (the Frechet distance in 784 pixels): the default run replays the
# vae, -m slow the wgans too (their training is checked by default, chain by chain, below)
BLOCKS = ["vae", *(pytest.param(name, marks=pytest.mark.slow) for name in CONV[1:])]


@pytest.mark.parametrize("name", BLOCKS)
def test_conv_chain_replays_and_does_not_depend_on_its_block(mnist, name):
    """On 28x28 images, a conv chain's rows are the same bit for bit when its block holds one
    chain fewer (so a rerun, or a replay, is too); chains differ; every metric is finite."""
    family = conv_family(name, mnist)
    raw = {"generations": 2, "n": 40, "events": {}}
    full = run_block(tiny_spec(family, replicates=3, block_size=3, **raw))[0]
    part = run_block(tiny_spec(family, replicates=2, block_size=3, **raw))[0]
    pd.testing.assert_frame_equal(full[full.replicate < 2].reset_index(drop=True), part, check_exact=True)
    assert full[["frechet_distance_pixels", "pixel_std"]].iloc[3:].nunique().min() == 6  # chains differ
    assert np.isfinite(full[full.generation > 0].drop(columns=["replicate", "generation"]).to_numpy(float)).all()


@pytest.mark.parametrize("name", CONV)
def test_batched_chains_equal_single_chain_runs(mnist, name):
    """Training B = 3 conv chains as one batch gives each chain the weights that training it
    alone (a batch of one, the same seed and data) gives, and the same samples."""
    cell = cells(parse_spec(tiny_spec(conv_family(name, mnist), n=40, events={})))[0]
    family = cell.family
    data = family.sample(family.truth(3), 40, rng=np.random.default_rng(0))
    seeds = np.array([11, 12, 13])
    batched = family.train(data, seeds, None, family.truth(3))
    images = family.generate(batched, 5, ChainRandom([1, 2, 3], CPU), 1.0)
    for b in range(3):
        alone = family.train(data[b : b + 1], seeds[b : b + 1], None, family.truth(1))
        for key, tensor in alone.state.items():
            torch.testing.assert_close(batched.state[key][b : b + 1], tensor, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(
            images[b : b + 1], family.generate(alone, 5, ChainRandom([b + 1], CPU), 1.0), rtol=1e-4, atol=1e-5
        )
    moved = family.train(data, seeds + 1, None, family.truth(3)).state
    assert max(float((moved[k] - batched.state[k]).abs().max()) for k in moved) > 1e-3  # seeds matter


@pytest.mark.parametrize(
    "shape, channels, got",
    [((30, 8, 6), [2, 3], "conv on 8x6 images"), ((30, 12, 12), [2, 3, 4], "conv on 12x12 images")],
)
def test_conv_on_images_it_cannot_take_is_a_spec_error(tmp_path, shape, channels, got):
    """Non-square images, or a side that 2^len(channels) does not divide: a spec error naming
    family.architecture, what it needs and what was given; channels with mlp: an error too."""
    path = tmp_path / "images.npy"
    np.save(path, np.random.default_rng(0).random(shape).astype(np.float32))
    family = {"name": "vae", "data": {"name": "npy", "path": str(path)}, "architecture": "conv", "channels": channels}
    with pytest.raises(SpecError, match="'family.architecture': expected mlp, or conv on square images") as error:
        parse_spec(tiny_spec(family, n=20, events={}))
    assert str(error.value).endswith(got)
    family = {**family, "architecture": "mlp"}
    with pytest.raises(SpecError, match="'family.channels': expected no channels .only architecture: conv"):
        parse_spec(tiny_spec(family, n=20, events={}))
    del family["channels"]
    parse_spec(tiny_spec(family, n=20, events={}))  # mlp takes any image shape


def test_conv_error_on_the_command_line(tmp_path, cli, write_spec):
    """`sweep run` of a conv spec on 8x6 images: one line on stderr, exit 2, nothing written."""
    path = tmp_path / "images.npy"
    np.save(path, np.random.default_rng(0).random((30, 8, 6)).astype(np.float32))
    family = {"name": "wgan", "data": {"name": "npy", "path": str(path)}, "architecture": "conv"}
    spec = write_spec(tiny_spec(family, n=20, events={}))
    status, out, err = cli("run", spec, "--out", tmp_path / "out", "--no-progress")
    assert status == 2 and err.count("\n") == 1 and out == ""
    assert err.startswith("error: spec field 'family.architecture'") and "8x6" in err
    assert not (tmp_path / "out").exists()


def test_mlp_specs_are_unchanged_and_conv_round_trips(mnist):
    """An mlp spec's raw form has no architecture field (folders written before conv stay
    equal); a conv spec's names it and its channels, and parses back to the same spec."""
    vae = parse_spec(tiny_spec({"name": "vae"}, events={}))
    assert "architecture" not in vae.family.spec.to_raw()
    conv = parse_spec(tiny_spec(conv_family("vae", mnist), n=20, events={}))
    raw = conv.family.spec.to_raw()
    assert raw["architecture"] == "conv" and raw["channels"] == [2, 3]
    again = parse_spec(tiny_spec(raw, n=20, events={}))
    assert again.family.spec == conv.family.spec
