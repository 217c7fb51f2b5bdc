"""Compiled random draws (numba) from a numpy Generator's own stream of raw 64-bit words.

numpy's ``standard_normal`` costs about 9 ns a value and ``standard_gamma`` about 14.5 ns, while
the bit generator's raw output costs about 2 ns a word: these kernels draw standard normals (a
256-layer ziggurat, Marsaglia & Tsang 2000), standard gammas (Marsaglia & Tsang 2000, with its
squeeze) and 53-bit uniforms from the words of ``rng.bit_generator.random_raw``.

Contract (what :mod:`sweep.streams` needs of a draw):

- one call is one draw of a :class:`~sweep.streams.BlockGenerator` (it calls ``begin_draw``,
  which repositions the block's stream exactly as ``rng.standard_normal`` does);
- values are laid out chain by chain (C order, the chain the leading axis) and consume the words
  in that order, so the first B' chains of a draw for B chains equal a draw for B' chains;
- words are pulled in chunks as rejections need them, with a continuing pointer (the words left
  over from one chunk start the next), so no value depends on the chunk size.

The values differ from numpy's (other algorithms), so a chain's values depend on the kernel; each
is reproducible bit for bit on one machine (no fastmath: the order of every operation is fixed).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from sweep._numba import jit

LAYERS = 256
_MANTISSA = 1 << 52  # the ziggurat's abscissa is a 52-bit integer times the layer's width / 2^52
_U53 = 1.0 / (1 << 53)  # a 53-bit integer times this: a uniform in [0, 1)
#: Most words pulled at once (512 KiB, which stay in cache): a large draw fills in chunks. 1 << 20
#: words cost sample_gmm (64 chains x 10000 samples) 16 ns a sample instead of 10, mostly page
#: faults of the fresh 8 MiB arrays. Tests lower it to check that values do not depend on chunks.
MAX_CHUNK = 1 << 16


def _zig_tables() -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 256-layer ziggurat of f(x) = exp(-x^2 / 2) on x >= 0, built in float64.

    Layer 0 is the base, the rectangle [0, r] x [0, f(r)] plus the tail beyond r, of area
    v = r f(r) + int_r^inf f; layer i >= 1 is [0, x_i] x [f(x_i), f(x_{i+1})] with
    x_{i+1} = f^-1(f(x_i) + v / x_i), x_1 = r, and the top layer ends at f = 1 (x_256 = 0).
    r is found by bisection so that the top layer closes (its area is v too); the published
    r = 3.6541528853610088 comes out. Deterministic: the same float64 operations every import.

    Returns
    -------
    r, x (257,), w (256,) the widths / 2^52, k (256,) the core bounds (int64: accept at once
    when the 52-bit integer is below), f (257,) f(x_i)
    """

    def closure(r: float) -> tuple[float, np.ndarray]:
        v = r * math.exp(-0.5 * r * r) + math.sqrt(math.pi / 2) * math.erfc(r / math.sqrt(2))
        x = np.empty(LAYERS + 1)
        x[0], x[1] = v / math.exp(-0.5 * r * r), r
        for i in range(1, LAYERS - 1):
            level = math.exp(-0.5 * x[i] * x[i]) + v / x[i]
            if level >= 1.0:  # reached the top too early: layers too thick, r too small
                return 1.0, x
            x[i + 1] = math.sqrt(-2.0 * math.log(level))
        top = LAYERS - 1
        # the top layer [0, x_255] x [f(x_255), 1] has area v exactly when this is 0
        return math.exp(-0.5 * x[top] * x[top]) + v / x[top] - 1.0, x

    low, high = 3.0, 4.0
    for _ in range(200):
        mid = 0.5 * (low + high)
        if mid in (low, high):
            break
        if closure(mid)[0] > 0:
            low = mid
        else:
            high = mid
    r = low
    x = closure(r)[1]
    x[LAYERS] = 0.0
    f = np.exp(-0.5 * x * x)
    w = x[:LAYERS] / _MANTISSA
    # accept at once when the abscissa lies below the next layer's width (the rectangle is then
    # wholly under the curve; layer 0: below r); floor, so every accepted point truly is
    k = np.array([math.floor(x[i + 1] / x[i] * _MANTISSA) for i in range(LAYERS)], dtype=np.int64)
    return r, x, w, k, f


R, X, W, K, F = _zig_tables()


# -- kernels: fill out[done:] from words[pos:]; return (values done, next word) -----------------
#
# Each kernel stops at a value's first word when the words run out and returns where it stopped;
# the driver appends words and calls it again from there, so a value never depends on the chunks.
# The ziggurat is written out in each kernel rather than called: a numba function returning
# (value, position) made every value cost 15 ns more (measured), and the tables are globals,
# which numba freezes into the code (passed as arguments they cost as much again). Integers stay
# int64: numba compares and adds uint64 with int64 through float64.
#
# The ziggurat, per word: bits 0-7 pick the layer, bit 8 the sign, bits 12-63 (52 bits) the
# abscissa u W[layer]; below K[layer] it is under the curve at once. Otherwise layer 0 draws from
# the tail beyond R (Marsaglia 1964, two words a try) and the other layers test a uniform height
# within the layer's wedge (one word), a rejection starting over with a new word.


@jit()
def _fill_normal(words, pos, out, done):
    n = words.size
    for i in range(done, out.size):
        start = pos
        while True:
            if pos >= n:
                return i, start
            bits = words[pos]
            pos += 1
            layer = np.int64(bits & np.uint64(0xFF))
            u = np.int64(bits >> np.uint64(12))
            z = float(u) * W[layer]
            if u < K[layer]:
                break
            if layer == 0:
                if pos + 2 > n:
                    return i, start
                e1 = -math.log(float(np.int64(words[pos] >> np.uint64(11)) + 1) * _U53)
                e2 = -math.log(float(np.int64(words[pos + 1] >> np.uint64(11)) + 1) * _U53)
                pos += 2
                t = e1 / R
                while e2 + e2 < t * t:
                    if pos + 2 > n:
                        return i, start
                    e1 = -math.log(float(np.int64(words[pos] >> np.uint64(11)) + 1) * _U53)
                    e2 = -math.log(float(np.int64(words[pos + 1] >> np.uint64(11)) + 1) * _U53)
                    pos += 2
                    t = e1 / R
                z = R + t
                break
            if pos >= n:
                return i, start
            height = float(np.int64(words[pos] >> np.uint64(11))) * _U53
            pos += 1
            if F[layer] + height * (F[layer + 1] - F[layer]) < math.exp(-0.5 * z * z):
                break
        out[i] = -z if bits & np.uint64(0x100) else z
    return out.size, pos


@jit()
def _fill_gamma(words, pos, out, done, d, c, boost):
    # Marsaglia & Tsang (2000) for shape d + 1/3 >= 1, c = 1 / sqrt(9 d) (computed once: a root
    # and a division a value cost as much as the rest); boost > 0 (shape s < 1, drawn as
    # Gamma(s + 1) U^(1/s)) multiplies by U^boost, boost = 1 / s, U in (0, 1].
    n = words.size
    for i in range(done, out.size):
        start = pos
        while True:
            while True:  # a standard normal z, as in _fill_normal
                if pos >= n:
                    return i, start
                bits = words[pos]
                pos += 1
                layer = np.int64(bits & np.uint64(0xFF))
                u = np.int64(bits >> np.uint64(12))
                z = float(u) * W[layer]
                if u < K[layer]:
                    break
                if layer == 0:
                    if pos + 2 > n:
                        return i, start
                    e1 = -math.log(float(np.int64(words[pos] >> np.uint64(11)) + 1) * _U53)
                    e2 = -math.log(float(np.int64(words[pos + 1] >> np.uint64(11)) + 1) * _U53)
                    pos += 2
                    t = e1 / R
                    while e2 + e2 < t * t:
                        if pos + 2 > n:
                            return i, start
                        e1 = -math.log(float(np.int64(words[pos] >> np.uint64(11)) + 1) * _U53)
                        e2 = -math.log(float(np.int64(words[pos + 1] >> np.uint64(11)) + 1) * _U53)
                        pos += 2
                        t = e1 / R
                    z = R + t
                    break
                if pos >= n:
                    return i, start
                height = float(np.int64(words[pos] >> np.uint64(11))) * _U53
                pos += 1
                if F[layer] + height * (F[layer + 1] - F[layer]) < math.exp(-0.5 * z * z):
                    break
            if bits & np.uint64(0x100):
                z = -z
            v = 1.0 + c * z
            if v <= 0.0:
                continue
            v = v * v * v
            if pos >= n:
                return i, start
            uniform = float(np.int64(words[pos] >> np.uint64(11))) * _U53
            pos += 1
            z2 = z * z
            # the squeeze accepts most values without a logarithm
            if uniform < 1.0 - 0.0331 * z2 * z2 or math.log(uniform) < 0.5 * z2 + d * (1.0 - v + math.log(v)):
                break
        value = d * v
        if boost > 0.0:
            if pos >= n:
                return i, start
            value *= (float(np.int64(words[pos] >> np.uint64(11)) + 1) * _U53) ** boost
            pos += 1
        out[i] = value
    return out.size, pos


@jit()
def _fill_uniform(words, pos, out, done):
    m = min(out.size - done, words.size - pos)
    for i in range(m):
        out[done + i] = float(np.int64(words[pos + i] >> np.uint64(11))) * _U53
    return done + m, pos + m


@jit()
def _fill_mixture(words, pos, out, done, n_per_chain, cum, sd, mean):
    # Per sample: a uniform u picks the component (the first j with u < cum[chain, j], the last
    # when none: one comparison per threshold, as sample_gmm's numpy path counts them), then a
    # standard normal, as in _fill_normal, scaled and shifted by the component's.
    n = words.size
    thresholds = cum.shape[1]
    # the chain of value i, kept by counting: a 64-bit division per value cost 10 ns
    chain, column = done // n_per_chain, done % n_per_chain
    for i in range(done, out.size):
        if column == n_per_chain:
            chain, column = chain + 1, 0
        start = pos
        if pos >= n:
            return i, start
        uniform = float(np.int64(words[pos] >> np.uint64(11))) * _U53
        pos += 1
        while True:
            if pos >= n:
                return i, start
            bits = words[pos]
            pos += 1
            layer = np.int64(bits & np.uint64(0xFF))
            u = np.int64(bits >> np.uint64(12))
            z = float(u) * W[layer]
            if u < K[layer]:
                break
            if layer == 0:
                if pos + 2 > n:
                    return i, start
                e1 = -math.log(float(np.int64(words[pos] >> np.uint64(11)) + 1) * _U53)
                e2 = -math.log(float(np.int64(words[pos + 1] >> np.uint64(11)) + 1) * _U53)
                pos += 2
                t = e1 / R
                while e2 + e2 < t * t:
                    if pos + 2 > n:
                        return i, start
                    e1 = -math.log(float(np.int64(words[pos] >> np.uint64(11)) + 1) * _U53)
                    e2 = -math.log(float(np.int64(words[pos + 1] >> np.uint64(11)) + 1) * _U53)
                    pos += 2
                    t = e1 / R
                z = R + t
                break
            if pos >= n:
                return i, start
            height = float(np.int64(words[pos] >> np.uint64(11))) * _U53
            pos += 1
            if F[layer] + height * (F[layer + 1] - F[layer]) < math.exp(-0.5 * z * z):
                break
        if bits & np.uint64(0x100):
            z = -z
        label = 0
        for j in range(thresholds):  # counted without a branch: u against a weight is a coin toss
            label += np.int64(uniform >= cum[chain, j])
        out[i] = z * sd[chain, label] + mean[chain, label]
        column += 1
    return out.size, pos


# -- drivers: one draw of the generator, words pulled as the values need them -------------------


def begin_draw(rng: np.random.Generator) -> None:
    """Start one draw: a :class:`~sweep.streams.BlockGenerator` moves to its next draw's position
    (as its own drawing methods do); any other generator continues where it is."""
    hook = getattr(rng, "begin_draw", None)
    if hook is not None:
        hook()


def _draw(rng: np.random.Generator, out: np.ndarray, words_per_value: float, fill: Callable, *args) -> np.ndarray:
    begin_draw(rng)
    flat = out.reshape(-1)
    bit_generator = rng.bit_generator
    words = np.empty(0, dtype=np.uint64)
    pos = done = 0
    while done < flat.size:
        # enough words for the rest on average, plus a margin for rejections; what is left over
        # continues into the next chunk, so the values do not depend on the chunking
        want = min(int((flat.size - done) * words_per_value * 1.02) + 64, MAX_CHUNK)
        chunk = bit_generator.random_raw(want)
        words = chunk if pos >= words.size else np.concatenate((words[pos:], chunk))
        done, pos = fill(words, 0, flat, done, *args)
    return out


def _shape(size) -> tuple[int, ...]:
    return (int(size),) if np.ndim(size) == 0 else tuple(int(s) for s in size)


def standard_normal(rng: np.random.Generator, size) -> np.ndarray:
    """Standard normal float64 values of shape ``size`` from ``rng``'s raw words (one draw).

    Parameters
    ----------
    rng : numpy.random.Generator
        Its bit generator supplies the words; a BlockGenerator counts this as one draw.
    size : int or tuple of int

    Returns
    -------
    ndarray
    """
    out = np.empty(_shape(size))
    return _draw(rng, out, 1.02, _fill_normal)


def standard_gamma(rng: np.random.Generator, shape: float, size) -> np.ndarray:
    """Standard gamma float64 values (``shape`` >= 0, one for all values) from ``rng``'s raw words.

    Shape 0 gives zeros (as numpy does); below 1, Gamma(shape + 1) U^(1/shape).
    """
    shape = float(shape)
    if not shape >= 0.0:
        raise ValueError(f"standard_gamma: expected shape >= 0, got {shape!r}")
    out = np.empty(_shape(size))
    if shape == 0.0:  # as numpy: zeros, and no words (the draw still counts)
        begin_draw(rng)
        out[...] = 0.0
        return out
    d = (shape if shape >= 1.0 else shape + 1.0) - 1.0 / 3.0
    boost = 0.0 if shape >= 1.0 else 1.0 / shape
    return _draw(rng, out, 2.05 + (boost > 0.0), _fill_gamma, d, 1.0 / math.sqrt(9.0 * d), boost)


def random(rng: np.random.Generator, size) -> np.ndarray:
    """Uniform float64 values in [0, 1) of shape ``size``, 53 bits each, one word each (one draw)."""
    out = np.empty(_shape(size))
    return _draw(rng, out, 1.0, _fill_uniform)


def mixture(rng: np.random.Generator, n: int, cum: np.ndarray, sd: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """n samples per chain of B 1-D Gaussian mixtures in one compiled pass (one draw).

    Parameters
    ----------
    rng : numpy.random.Generator
    n : int
        Samples per chain.
    cum : ndarray (B, k - 1)
        The component thresholds: sample takes the first component j with u < cum[:, j] (the last
        when none), u uniform in [0, 1).
    sd, mean : ndarray (B, k)

    Returns
    -------
    ndarray (B, n)
    """
    b = sd.shape[0]
    out = np.empty((b, int(n)))
    cum = np.ascontiguousarray(cum, dtype=np.float64)
    sd = np.ascontiguousarray(sd, dtype=np.float64)
    mean = np.ascontiguousarray(mean, dtype=np.float64)
    return _draw(rng, out, 2.02, _fill_mixture, int(n), cum, sd, mean)
