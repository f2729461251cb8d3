"""Which plan a SpatialConvolutionFFT layer uses for an input geometry (``make_plan``): the
strategy asked for, the fastest one measured (autotuning, autotune.py), or a rule, with a
cost model that says when overlap-save tiles are cheaper than one transform of the whole map.
The plans themselves are in fft_plans.py and fftn_plan.py.
"""
import numpy as np

from .. import backend
from . import autotune, dft
from .fft_plans import Axis, DFTPlan
from .fftn_plan import FFTPlan

STRATEGIES = ('auto', 'dft', 'tiled', 'fft')
# what 'auto' chooses among, in the order autotuning times them: 'tiled' is the cost model's
# cheapest tiling, 'tiled:N' the one N places after it (``tilings``)
PLANS = ('dft', 'fft', 'tiled', 'tiled:1', 'tiled:2')
DFT_MAX = 160                       # 'auto' on the CPU: longest axis the DFT plan takes
TILE_MAX = 64                       # the longest window a tile may have
# Cost model weights, relative to one flop of the complex product GEMMs, fitted on the
# development machine (2 cores): real transform GEMMs run ~3x faster per flop, and every byte
# of spectrum moved costs ~14 product flops (measured ~5 GB/s against ~70 GFLOP/s). Without the
# bytes term the model picked tiles for convnet L1 that measured 2x slower: their spectra are
# (N/T)^2 larger than the untiled ones.
_TRANSFORM_WEIGHT = 1 / 3
_BYTE_WEIGHT = 14
# tiles must be modelled this much cheaper than one window: the model's picks within a few
# percent of it measured as ties or small losses (convnet L1 at batch 16, modelled 0.98x the
# cost, ran 0.96x as fast), the ones below as wins (L5 at batch 16, 0.96: 1.18-1.21x)
_TILE_MARGIN = 0.97
# tilings modelled within this of the cheapest are timed too by autotuning: the model counts
# flops and bytes, not how much faster a complex GEMM runs on more rows (convnet L5 at batch
# 16: three windows of 6 x 13 a map, 48 rows a GEMM, modelled 1.01x the cost of two of 8 x 13,
# 32 rows, ran 0.90-0.94x the time)
_TILE_SPREAD = 1.10


def _dft_cost(S, f, g, tiles, NH, NW):
    """Modelled cost of a training step with DFT transforms of NH x NW on ``tiles`` windows per
    map: the transforms of the S(f+g) maps, the three products, about four passes over the
    maps' spectra, and the kernels' spectrum, written once and read by two products."""
    F = NH * (NW // 2 + 1)
    # along W a real GEMM, along H complex ones over the half spectrum, N1 + N2 a sample
    # for lines long enough to take two stages (dft.LineDFT)
    transforms = (2 * NH * NW * NW + 4 * NW * NH * dft.line_cost(NH)) * (S * (f + g)) * tiles
    products = 3 * 8 * F * S * f * g * tiles
    spectra_bytes = 4 * 8 * F * S * (f + g) * tiles + 3 * 8 * F * f * g
    return _TRANSFORM_WEIGHT * transforms + products + _BYTE_WEIGHT * spectra_bytes


def _tile_choices(a):
    """(outputs per tile, window) along axis ``a``: None and the whole padded input (no
    tiles), then every tile size whose window fits ``TILE_MAX`` and that cuts the axis."""
    yield None, a.Lp
    for T in range(1, min(a.o1, TILE_MAX - a.k + 2)):
        yield T, T + a.k - 1


def tilings(S, f, g, ah, aw):
    """The tile output sizes ``(Th, Tw)`` (None: that axis whole) of the tilings whose
    modelled cost is within ``_TILE_SPREAD`` of the cheapest, cheapest first, one for each
    count of tiles along the two axes, as many as PLANS has 'tiled' labels at most, each
    with its modelled cost; none where tiling does not apply (stride > 1, or no tile size
    fits)."""
    if ah.d != 1 or aw.d != 1:
        return []
    ranked = []
    for Th, NH in _tile_choices(ah):
        for Tw, NW in _tile_choices(aw):
            if Th is None and Tw is None:
                continue
            counts = (-(-ah.o1 // Th) if Th else 1, -(-aw.o1 // Tw) if Tw else 1)
            cost = _dft_cost(S, f, g, counts[0] * counts[1], NH, NW)
            ranked.append((cost, (Th, Tw), counts))
    ranked.sort(key=lambda c: c[0])
    kept, seen = [], set()
    for cost, T, counts in ranked:
        # as many tiles along each axis as a cheaper tiling, in larger windows: that one
        # again, a little slower (convnet L1: 3 tiles of 40, 41 or 42 outputs)
        if cost <= _TILE_SPREAD * ranked[0][0] and counts not in seen:
            kept.append((T, cost))
            seen.add(counts)
    return kept[:sum(p.startswith('tiled') for p in PLANS)]


def choose_tile(S, f, g, ah, aw, force=False, rank=0):
    """The tile output sizes ``(Th, Tw)`` of the ``rank``-th cheapest tiling (``tilings``),
    or None where there is no such tiling, or where tiling is modelled no cheaper than one
    window (the cheapest tiling unless ``force``)."""
    ranked = tilings(S, f, g, ah, aw)
    if rank >= len(ranked):
        return None
    T, cost = ranked[rank]
    if not force and cost >= _TILE_MARGIN * _dft_cost(S, f, g, 1, ah.Lp, aw.Lp):
        return None
    return T


def make_plan(strategy, xp, dtype, S, f, g, H, W, kH, kW, dH, dW, pH, pW, grad_input=True):
    """The plan for one layer geometry. 'auto' with autotuning on (``autotune.enable``): the
    fastest plan measured for this geometry, on training steps with the input gradient or,
    with ``grad_input`` False, without it (see autotune.py). 'auto' without it, on the CPU:
    DFT matrices, on overlapping tiles where the cost model says tiles are cheaper, and FFTs
    for maps over ``DFT_MAX`` points that cannot be tiled; on the GPU, where cuFFT is fast,
    the FFT. 'tiled' falls back to 'dft' where no tile fits, and so does 'tiled:N' (the
    tiling N places after the cheapest, ``tilings``; autotuning times these) where there is
    no such tiling."""
    if strategy not in STRATEGIES + PLANS:
        raise ValueError(f'strategy must be one of {STRATEGIES}, got {strategy!r}')
    geometry = (S, f, g, H, W, kH, kW, dH, dW, pH, pW)
    if strategy == 'auto' and autotune.enabled():
        strategy = autotune.fastest(xp, dtype, geometry, grad_input=grad_input)
    ah, aw = Axis(H, kH, dH, pH, H + 2 * pH), Axis(W, kW, dW, pW, W + 2 * pW)
    if strategy == 'auto' or strategy.startswith('tiled'):
        rank = int(strategy.partition(':')[2] or 0)
        T = choose_tile(S, f, g, ah, aw, force=strategy != 'auto', rank=rank) if (
            xp is np or strategy != 'auto') else None
        if T is not None:
            return DFTPlan(xp, dtype, _tiled(ah, T[0]), _tiled(aw, T[1]))
        if strategy == 'auto':
            strategy = 'dft' if (xp is np and max(ah.Lp, aw.Lp) <= DFT_MAX) else 'fft'
        else:
            strategy = 'dft'
    if strategy == 'dft':
        return DFTPlan(xp, dtype, ah, aw)
    fast = backend.fft_for(xp).next_fast_len
    return FFTPlan(xp, dtype, Axis(H, kH, dH, pH, fast(ah.Lp)), Axis(W, kW, dW, pW, fast(aw.Lp)))


def _tiled(a, T):
    """Axis ``a`` cut into tiles of T outputs (None: left whole)."""
    return a if T is None else Axis(a.L, a.k, a.d, a.p, T + a.k - 1, tile=T)
