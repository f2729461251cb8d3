"""Work on the CPU's cores: elementwise layers part of a batch by part (``each_part``), and
the FFT plans' chunks of maps and blocks of frequencies (``each``).

NumPy's ufuncs and reductions run on one core, while BLAS and scipy.fft use them all: on the
2-core development machine batch normalisation, pooling and ReLU took more than half of an
imagenet_small training step. ``each_part`` cuts the arrays along their first axis into parts
of about a megabyte and runs a function on each part in a pool of threads (NumPy releases the
GIL inside its loops). A part is small enough that a function doing several passes over it
finds the data in cache after the first. CuPy arrays (one kernel per call already fills the
GPU), and arrays too small to be worth it, go through the function whole.

The FFT plans' chunks each run a few GEMMs too small to share among cores well, with copies
between them that run on one core; ``each(..., blas=True)`` runs the chunks side by side,
each thread with a single-threaded BLAS (backend.single_threaded_blas).
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import backend
from .cli import parse_whole

_PART_BYTES = 1 << 20


def requested_threads():
    """The thread count set by the ``MINIFFT_THREADS`` environment variable, or None where it
    is unset or empty."""
    value = os.environ.get('MINIFFT_THREADS', '').strip()
    if not value:
        return None
    n = parse_whole(value, 1)
    if n is None:
        raise ValueError(f'MINIFFT_THREADS must be a whole number of threads, at least 1, '
                         f'got {value!r}')
    return n


# the thread count is resolved on first use, so that a bad MINIFFT_THREADS is reported where
# the caller can say so (train.py: one line), not as a traceback out of ``import minifft``
_state = {'pool': None, 'threads': None}


def threads():
    if _state['threads'] is None:
        _state['threads'] = requested_threads() or os.cpu_count() or 1
    return _state['threads']


def set_threads(n):
    """Use ``n`` threads from now on (1: everything on the calling thread), or with None the
    default again (``MINIFFT_THREADS``, else the cores), resolved on next use. Returns what
    was set before, None where nothing was yet, so that ``set_threads(previous)`` restores it.
    A program's own count needs no valid ``MINIFFT_THREADS``."""
    if n is not None and int(n) < 1:
        raise ValueError(f'threads must be at least 1, got {n!r}')
    previous, _state['threads'] = _state['threads'], None if n is None else int(n)
    if _state['pool'] is not None and previous != _state['threads']:  # sized for the old one
        _state['pool'].shutdown()
        _state['pool'] = None
    return previous


def slices(n, step):
    """``[0, n)`` cut into slices of ``step`` (the last one shorter)."""
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def split(n, parts, whole=1):
    """``[0, n)`` cut into at most ``parts`` slices of nearly equal length (multiples of
    ``whole``, but for the last), so that threads taking one slice each finish together; none
    for an empty range."""
    if n <= 0:
        return []
    units = -(-n // whole)
    bounds = sorted({min(n, units * i // parts * whole) for i in range(parts + 1)})
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def each(fn, items, blas=False):
    """``[fn(item) for item in items]``, the items shared among the pool's threads. With
    ``blas`` (``fn`` runs GEMMs) the host BLAS is single-threaded meanwhile, each thread
    running its own GEMMs, and where it cannot be made so (not OpenBLAS) the items run in
    turn on the calling thread, each GEMM on all cores. ``fn`` must not call ``each`` (or
    ``each_part``) itself: an item waiting for items queued behind it on the same pool would
    wait for ever."""
    items = list(items)
    if threads() == 1 or len(items) < 2 or (blas and not backend.can_limit_blas_threads()):
        return [fn(item) for item in items]
    if _state['pool'] is None:
        _state['pool'] = ThreadPoolExecutor(threads(), thread_name_prefix='minifft')
    if not blas:
        return list(_state['pool'].map(fn, items))
    with backend.single_threaded_blas():
        return list(_state['pool'].map(fn, items))


def each_part(fn, *arrays):
    """``[fn(*parts) ...]``: ``fn`` over slices of ``arrays`` along axis 0, in order, the
    slices of all arrays alike (they must share their first dimension). On NumPy arrays of a
    few megabytes or more the parts run on the pool's threads (``each``); otherwise
    ``fn(*arrays)`` runs once, on the calling thread."""
    a = arrays[0]
    n = a.shape[0] if a.ndim else 0
    if (threads() == 1 or not isinstance(a, np.ndarray) or n < 2
            or a.nbytes < 2 * _PART_BYTES):
        return [fn(*arrays)]
    rows = max(1, n * _PART_BYTES // a.nbytes)
    return each(lambda s: fn(*(x[s] for x in arrays)), slices(n, rows))
