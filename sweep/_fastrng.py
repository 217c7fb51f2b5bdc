"""Compiled random draws (numba) from a numpy Generator's own stream of raw 64-bit words.

numpy's ``standard_normal`` costs about 9 ns a value and ``standard_gamma`` about 14.5 ns: these
kernels draw standard normals (a 256-layer ziggurat, Marsaglia & Tsang 2000), standard gammas
(Marsaglia & Tsang 2000, with its squeeze) and 53-bit uniforms from the words of the generator's
own PCG64 stream, the words ``rng.bit_generator.random_raw`` would give, which they step in
compiled code (one 128-bit multiply and add a word, about 1.6 ns, and the rest of a value's work
overlaps it) rather than pulling them through numpy (about 2.2 ns a word plus its memory traffic).

Contract (what :mod:`sweep.streams` needs of a draw):

- one call is one draw of a :class:`~sweep.streams.BlockGenerator`, starting at the position
  ``rng.standard_normal`` would start at (``draw_state`` gives that position's state; the
  fused exact Gaussian step is two draws);
- values are laid out chain by chain (C order, the chain the leading axis) and consume the words
  in that order, so the first B' chains of a draw for B chains equal a draw for B' chains;
- a draw uses exactly the words its values need, in order; a plain Generator is left right after
  them (its next draw continues there), a BlockGenerator is not moved (every draw repositions).

The values differ from numpy's (other algorithms), so a chain's values depend on the kernel; each
is reproducible bit for bit on one machine (no fastmath: the order of every operation is fixed).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from sweep._numba import compile_helpers, jit
from sweep.streams import PCG_MULTIPLIER, pcg_words

LAYERS = 256
_MANTISSA = 1 << 52  # the ziggurat's abscissa is a 52-bit integer times the layer's width / 2^52
_U53 = 1.0 / (1 << 53)  # a 53-bit integer times this: a uniform in [0, 1)
_M64 = (1 << 64) - 1


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


# -- PCG64 in compiled code ------------------------------------------------------------------------
#
# The state is carried as four uint64 (state high, state low, increment high, increment low);
# _pcg_next steps it once and returns (high, low, word). Compiled code gets it as an LLVM
# intrinsic on 128-bit integers (installed by _ready under that name), which compiles to a few
# multiplies; _pcg_step says in Python what it computes, and the tests hold both to numpy's
# random_raw.


def _pcg_step(hi, lo, inc_hi, inc_lo):
    """One PCG64 step (numpy's: the LCG, then XSL-RR of the new state), in Python integers."""
    state = (((int(hi) << 64) | int(lo)) * PCG_MULTIPLIER + ((int(inc_hi) << 64) | int(inc_lo))) & ((1 << 128) - 1)
    high, low = state >> 64, state & _M64
    x, rot = high ^ low, high >> 58
    return high, low, ((x >> rot) | (x << ((64 - rot) & 63))) & _M64


_pcg_next = _pcg_step  # what the kernels call: _ready puts the compiled step here


def _pcg_intrinsic():
    """_pcg_next as a numba intrinsic on LLVM's i128 (numba has no 128-bit integer type)."""
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def pcg_next(typingctx, hi, lo, inc_hi, inc_lo):
        u64 = types.uint64
        signature = types.UniTuple(u64, 3)(u64, u64, u64, u64)

        def codegen(context, builder, signature, args):
            i128, i64 = ir.IntType(128), ir.IntType(64)
            shift = ir.Constant(i128, 64)

            def wide(high, low):
                return builder.or_(builder.shl(builder.zext(high, i128), shift), builder.zext(low, i128))

            state = builder.add(builder.mul(wide(*args[:2]), ir.Constant(i128, PCG_MULTIPLIER)), wide(*args[2:]))
            high = builder.trunc(builder.lshr(state, shift), i64)
            low = builder.trunc(state, i64)
            x, rot = builder.xor(high, low), builder.lshr(high, ir.Constant(i64, 58))
            left = builder.and_(builder.sub(ir.Constant(i64, 64), rot), ir.Constant(i64, 63))
            word = builder.or_(builder.lshr(x, rot), builder.shl(x, left))  # rotate right by rot
            return context.make_tuple(builder, signature.return_type, [high, low, word])

        return signature, codegen

    return pcg_next


# -- one value from the stream (inlined into every kernel) ---------------------------------------
#
# The ziggurat, per word: bits 0-7 pick the layer, bit 8 the sign, bits 12-63 (52 bits) the
# abscissa u W[layer]; below K[layer] it is under the curve at once. Otherwise layer 0 draws from
# the tail beyond R (Marsaglia 1964, two words a try) and the other layers test a uniform height
# within the layer's wedge (one word), a rejection starting over with a new word. Integers stay
# int64: numba compares and adds uint64 with int64 through float64. The tables are globals, which
# numba freezes into the code (passed as arguments they cost as much again as the ziggurat).
#
# These helpers are compiled with inline="always" (numba's own inlining, before LLVM sees them):
# an ordinary call returning (value, state) cost 15 ns a value (measured).


def _normal(hi, lo, inc_hi, inc_lo):
    while True:
        hi, lo, bits = _pcg_next(hi, lo, inc_hi, inc_lo)
        layer = np.int64(bits & np.uint64(0xFF))
        u = np.int64(bits >> np.uint64(12))
        z = float(u) * W[layer]
        if u < K[layer]:
            break
        if layer == 0:
            while True:
                hi, lo, first = _pcg_next(hi, lo, inc_hi, inc_lo)
                hi, lo, second = _pcg_next(hi, lo, inc_hi, inc_lo)
                e1 = -math.log(float(np.int64(first >> np.uint64(11)) + 1) * _U53)
                e2 = -math.log(float(np.int64(second >> np.uint64(11)) + 1) * _U53)
                t = e1 / R
                if not e2 + e2 < t * t:
                    break
            z = R + t
            break
        hi, lo, word = _pcg_next(hi, lo, inc_hi, inc_lo)
        height = float(np.int64(word >> np.uint64(11))) * _U53
        if F[layer] + height * (F[layer + 1] - F[layer]) < math.exp(-0.5 * z * z):
            break
    if bits & np.uint64(0x100):
        z = -z
    return z, hi, lo


def _uniform(hi, lo, inc_hi, inc_lo):
    """In [0, 1): the word's top 53 bits."""
    hi, lo, word = _pcg_next(hi, lo, inc_hi, inc_lo)
    return float(np.int64(word >> np.uint64(11))) * _U53, hi, lo


def _uniform_open(hi, lo, inc_hi, inc_lo):
    """In (0, 1]: for logarithms and powers."""
    hi, lo, word = _pcg_next(hi, lo, inc_hi, inc_lo)
    return (float(np.int64(word >> np.uint64(11))) + 1.0) * _U53, hi, lo


def _gamma(hi, lo, inc_hi, inc_lo, d, c, boost):
    # Marsaglia & Tsang (2000) for shape d + 1/3 >= 1, c = 1 / sqrt(9 d) (computed once: a root
    # and a division a value cost as much as the rest); boost > 0 (shape s < 1, drawn as
    # Gamma(s + 1) U^(1/s)) multiplies by U^boost, boost = 1 / s, U in (0, 1].
    while True:
        z, hi, lo = _normal(hi, lo, inc_hi, inc_lo)
        v = 1.0 + c * z
        if v <= 0.0:
            continue
        v = v * v * v
        uniform, hi, lo = _uniform(hi, lo, inc_hi, inc_lo)
        z2 = z * z
        # the squeeze accepts most values without a logarithm
        if uniform < 1.0 - 0.0331 * z2 * z2 or math.log(uniform) < 0.5 * z2 + d * (1.0 - v + math.log(v)):
            break
    value = d * v
    if boost > 0.0:
        power, hi, lo = _uniform_open(hi, lo, inc_hi, inc_lo)
        value *= power**boost
    return value, hi, lo


_INLINED = ("_normal", "_uniform", "_uniform_open", "_gamma")  # callees before callers


# -- kernels: fill ``out`` from the state, and leave the state after the last word used --------


@jit()
def _fill_normal(state, out):
    hi, lo, inc_hi, inc_lo = state[0], state[1], state[2], state[3]
    for i in range(out.size):
        out[i], hi, lo = _normal(hi, lo, inc_hi, inc_lo)
    state[0], state[1] = hi, lo


@jit()
def _fill_gamma(state, out, d, c, boost):
    hi, lo, inc_hi, inc_lo = state[0], state[1], state[2], state[3]
    for i in range(out.size):
        out[i], hi, lo = _gamma(hi, lo, inc_hi, inc_lo, d, c, boost)
    state[0], state[1] = hi, lo


@jit()
def _fill_uniform(state, out):
    hi, lo, inc_hi, inc_lo = state[0], state[1], state[2], state[3]
    for i in range(out.size):
        out[i], hi, lo = _uniform(hi, lo, inc_hi, inc_lo)
    state[0], state[1] = hi, lo


@jit()
def _fill_mixture(state, out, cum, sd, mean):
    # Per sample: a uniform u picks the component (the first j with u < cum[chain, j], the last
    # when none: one comparison per threshold, as sample_gmm's numpy path counts them), then a
    # standard normal, scaled and shifted by the component's.
    hi, lo, inc_hi, inc_lo = state[0], state[1], state[2], state[3]
    thresholds = cum.shape[1]
    for chain in range(out.shape[0]):
        for column in range(out.shape[1]):
            uniform, hi, lo = _uniform(hi, lo, inc_hi, inc_lo)
            z, hi, lo = _normal(hi, lo, inc_hi, inc_lo)
            label = 0
            for j in range(thresholds):  # counted without a branch: u against a weight is a coin toss
                label += np.int64(uniform >= cum[chain, j])
            out[chain, column] = z * sd[chain, label] + mean[chain, label]
    state[0], state[1] = hi, lo


@jit()
def _fill_exact_1d(first, second, follow, previous, var, inverse_m, d, c, boost, mean, scatter):
    # The 1-D Gaussian's exact step as two draws: the means' normals from ``first``, then the
    # scatters' gammas from ``second`` (from where the normals ended when ``follow``), each
    # scaled as GaussianFamily.draw's numpy arithmetic does it, operation for operation.
    hi, lo, inc_hi, inc_lo = first[0], first[1], first[2], first[3]
    for i in range(mean.size):
        z, hi, lo = _normal(hi, lo, inc_hi, inc_lo)
        mean[i] = z * math.sqrt(var[i] * inverse_m) + previous[i]
    if not follow:
        hi, lo, inc_hi, inc_lo = second[0], second[1], second[2], second[3]
    for i in range(scatter.size):
        g, hi, lo = _gamma(hi, lo, inc_hi, inc_lo, d, c, boost)
        scatter[i] = g * (2.0 * var[i])
    second[0], second[1] = hi, lo  # where the last draw ended (the caller writes it back when it follows)


# -- drivers: one draw of the generator --------------------------------------------------------

_compiled: list[bool] = []


def _ready() -> None:
    """Install the compiled PCG64 step and the inlined helpers before any kernel compiles (or
    loads from numba's cache): compiled code resolves these globals when it compiles."""
    if not _compiled:
        namespace = globals()
        namespace["_pcg_next"] = _pcg_intrinsic()
        compile_helpers(namespace, _INLINED, inline="always")
        _compiled.append(True)


def begin_draw(rng: np.random.Generator) -> None:
    """Start one draw: a :class:`~sweep.streams.BlockGenerator` moves to its next draw's position
    (as its own drawing methods do); any other generator continues where it is."""
    hook = getattr(rng, "begin_draw", None)
    if hook is not None:
        hook()


def _read_state(rng: np.random.Generator) -> np.ndarray:
    """The generator's PCG64 state as (state high, state low, increment high, increment low)."""
    state = rng.bit_generator.state
    if state["bit_generator"] != "PCG64":
        raise TypeError(f"compiled draws step PCG64 (numpy's default), got a {state['bit_generator']} generator")
    return pcg_words(state["state"]["state"], state["state"]["inc"])


def _write_state(rng: np.random.Generator, words: np.ndarray) -> None:
    state = rng.bit_generator.state
    state["state"]["state"] = (int(words[0]) << 64) | int(words[1])
    rng.bit_generator.state = state


def _start(rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """One draw's starting state, and whether the generator must be left after its words: a
    BlockGenerator gives its next draw's state (:meth:`~sweep.streams.BlockGenerator.draw_state`),
    and repositions itself for every draw, so it is never written; any other generator is read
    where it is and written back after the draw, so that its next draw continues there."""
    draw_state = getattr(rng, "draw_state", None)
    if draw_state is not None:
        return draw_state(), False
    return _read_state(rng), True


def _draw(rng: np.random.Generator, out: np.ndarray, fill: Callable, *args) -> None:
    """Fill ``out`` (a kernel's layout: flat, or chains by samples) as one draw of ``rng``."""
    _ready()
    state, write_back = _start(rng)
    fill(state, out, *args)
    if write_back:
        _write_state(rng, state)


def _shape(size) -> tuple[int, ...]:
    return (int(size),) if np.ndim(size) == 0 else tuple(int(s) for s in size)


def _gamma_constants(shape: float) -> tuple[float, float, float]:
    """(d, c, boost) of Marsaglia & Tsang's method for a shape > 0 (below 1, boosted)."""
    d = (shape if shape >= 1.0 else shape + 1.0) - 1.0 / 3.0
    return d, 1.0 / math.sqrt(9.0 * d), 0.0 if shape >= 1.0 else 1.0 / shape


def _check_shape(shape: float) -> float:
    shape = float(shape)
    if not shape >= 0.0:
        raise ValueError(f"standard_gamma: expected shape >= 0, got {shape!r}")
    return shape


def standard_normal(rng: np.random.Generator, size) -> np.ndarray:
    """Standard normal float64 values of shape ``size`` from ``rng``'s stream (one draw).

    Parameters
    ----------
    rng : numpy.random.Generator
        A PCG64 generator (numpy's default); a BlockGenerator counts this as one draw.
    size : int or tuple of int

    Returns
    -------
    ndarray
    """
    out = np.empty(_shape(size))
    _draw(rng, out.reshape(-1), _fill_normal)
    return out


def standard_gamma(rng: np.random.Generator, shape: float, size) -> np.ndarray:
    """Standard gamma float64 values (``shape`` >= 0, one for all values) from ``rng``'s stream.

    Shape 0 gives zeros (as numpy does); below 1, Gamma(shape + 1) U^(1/shape).
    """
    shape = _check_shape(shape)
    out = np.empty(_shape(size))
    if shape == 0.0:  # as numpy: zeros, and no words (the draw still counts)
        begin_draw(rng)
        out[...] = 0.0
        return out
    _draw(rng, out.reshape(-1), _fill_gamma, *_gamma_constants(shape))
    return out


def random(rng: np.random.Generator, size) -> np.ndarray:
    """Uniform float64 values in [0, 1) of shape ``size``, 53 bits each, one word each (one draw)."""
    out = np.empty(_shape(size))
    _draw(rng, out.reshape(-1), _fill_uniform)
    return out


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
    out = np.empty((sd.shape[0], int(n)))
    cum = np.ascontiguousarray(cum, dtype=np.float64)
    sd = np.ascontiguousarray(sd, dtype=np.float64)
    mean = np.ascontiguousarray(mean, dtype=np.float64)
    _draw(rng, out, _fill_mixture, cum, sd, mean)
    return out


def exact_gaussian_1d(
    rng: np.random.Generator, previous: np.ndarray, var: np.ndarray, m: int
) -> tuple[np.ndarray, np.ndarray]:
    """The 1-D Gaussian's exact statistics of m samples per chain, as two draws in one pass.

    The same values as ``standard_normal(rng, B) * sqrt(var * (1 / m)) + previous`` followed by
    ``standard_gamma(rng, (m - 1) / 2, B) * (2 var)``, computed in one compiled call.

    Parameters
    ----------
    rng : numpy.random.Generator
    previous : ndarray (B,)
        The fitted means, around which the new sample means are drawn.
    var : ndarray (B,)
        The fitted variances (tempered where the caller tempers).
    m : int
        Samples per chain (>= 1).

    Returns
    -------
    mean, scatter : ndarray (B,)
        The sample means, and the scatters sum (x - mean)^2 (var chi2(m - 1)).
    """
    shape = _check_shape((m - 1) / 2.0)
    if shape == 0.0:
        return standard_normal(rng, var.size) * np.sqrt(var * (1.0 / m)) + previous, standard_gamma(rng, 0.0, var.size)
    _ready()
    first, follow = _start(rng)
    # a BlockGenerator's gammas are its next draw, at their own position; any other generator's
    # continue from where the normals end
    second = first if follow else _start(rng)[0]
    mean, scatter = np.empty(var.size), np.empty(var.size)
    previous = np.ascontiguousarray(previous, dtype=np.float64)
    var = np.ascontiguousarray(var, dtype=np.float64)
    _fill_exact_1d(first, second, follow, previous, var, 1.0 / m, *_gamma_constants(shape), mean, scatter)
    if follow:
        _write_state(rng, second)
    return mean, scatter
