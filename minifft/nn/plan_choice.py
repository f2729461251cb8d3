"""Which plan a SpatialConvolutionFFT layer uses for an input geometry (``make_plan``): the
strategy asked for, the fastest one measured (autotuning, autotune.py), or a rule, with a
cost model that says when overlap-save tiles are cheaper than one transform of the whole map.
The plans themselves are in fft_plans.py.
"""
import numpy as np

from .. import backend
from . import autotune
from .fft_plans import Axis, DFTPlan, FFTPlan, TiledPlan

STRATEGIES = ('auto', 'dft', 'tiled', 'fft')
DFT_MAX = 160                       # 'auto' on the CPU: longest axis the DFT plan takes
TILE_SIZES = (8, 12, 16, 24, 32, 48, 64)   # transform sizes a tile may have
# Cost model weights, relative to one flop of the complex product GEMMs, fitted on the
# development machine (2 cores): real transform GEMMs run ~3x faster per flop, and every byte
# of spectrum moved costs ~14 product flops (measured ~5 GB/s against ~70 GFLOP/s). Without the
# bytes term the model picked tiles for convnet L1 that measured 2x slower: their spectra are
# (N/T)^2 larger than the untiled ones.
_TRANSFORM_WEIGHT = 1 / 3
_BYTE_WEIGHT = 14


def _dft_cost(S, f, g, n_tiles, N, Q):
    """Modelled cost of a training step with DFT transforms of size N on n_tiles per map: the
    transforms of the S(f+g) maps, the three products, and about four passes over the maps'
    spectra."""
    transforms = 6 * N * N * N * (S * (f + g)) * n_tiles
    products = 3 * 8 * N * Q * S * f * g * n_tiles
    spectra_bytes = 4 * 8 * N * Q * S * (f + g) * n_tiles
    return _TRANSFORM_WEIGHT * transforms + products + _BYTE_WEIGHT * spectra_bytes


def choose_tile(S, f, g, ah, aw, force=False):
    """The tile output size T with the lowest modelled cost, or None when not tiling is
    cheapest (unless ``force``) or tiling does not apply (stride > 1, or no tile size fits)."""
    if ah.d != 1 or aw.d != 1:
        return None
    n = max(ah.Lp, aw.Lp)
    best, best_cost = None, float('inf') if force else _dft_cost(S, f, g, 1, n, n // 2 + 1)
    for N in TILE_SIZES:
        T = N - max(ah.k, aw.k) + 1
        if T < max(ah.k, aw.k) or T >= max(ah.o1, aw.o1):
            continue
        tiles = -(-ah.o1 // T) * -(-aw.o1 // T)
        cost = _dft_cost(S, f, g, tiles, N, N // 2 + 1)
        if cost < best_cost:
            best, best_cost = T, cost
    return best


def make_plan(strategy, xp, dtype, S, f, g, H, W, kH, kW, dH, dW, pH, pW):
    """The plan for one layer geometry. 'auto' with autotuning on (``autotune.enable``): the
    fastest plan measured for this geometry (see autotune.py). 'auto' without it, on the CPU:
    DFT matrices, on overlapping tiles where the cost model says tiles are cheaper, and FFTs
    for maps over ``DFT_MAX`` points that cannot be tiled; on the GPU, where cuFFT is fast,
    the FFT. 'tiled' falls back to 'dft' where no tile fits."""
    if strategy not in STRATEGIES:
        raise ValueError(f'strategy must be one of {STRATEGIES}, got {strategy!r}')
    geometry = (S, f, g, H, W, kH, kW, dH, dW, pH, pW)
    if strategy == 'auto' and autotune.enabled():
        strategy = autotune.fastest(xp, dtype, geometry)
    ah, aw = Axis(H, kH, dH, pH, H + 2 * pH), Axis(W, kW, dW, pW, W + 2 * pW)
    if strategy in ('auto', 'tiled'):
        T = choose_tile(S, f, g, ah, aw, force=strategy == 'tiled') if (
            xp is np or strategy == 'tiled') else None
        if T is not None:
            return TiledPlan(xp, dtype, ah, aw, T)
        if strategy == 'auto':
            strategy = 'dft' if (xp is np and max(ah.Lp, aw.Lp) <= DFT_MAX) else 'fft'
        else:
            strategy = 'dft'
    if strategy == 'dft':
        return DFTPlan(xp, dtype, ah, aw)
    fast = backend.fft_for(xp).next_fast_len
    return FFTPlan(xp, dtype, Axis(H, kH, dH, pH, fast(ah.Lp)), Axis(W, kW, dW, pW, fast(aw.Lp)))
