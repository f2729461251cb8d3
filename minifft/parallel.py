"""Elementwise work on the CPU's cores, part of a batch by part.

NumPy's ufuncs and reductions run on one core, while BLAS and scipy.fft use them all: on the
2-core development machine batch normalisation, pooling and ReLU took more than half of an
imagenet_small training step. ``each_part`` cuts the arrays along their first axis into parts
of about a megabyte and runs a function on each part in a pool of threads (NumPy releases the
GIL inside its loops). A part is small enough that a function doing several passes over it
finds the data in cache after the first. CuPy arrays (one kernel per call already fills the
GPU), and arrays too small to be worth it, go through the function whole.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_PART_BYTES = 1 << 20
_state = {'pool': None, 'threads': int(os.environ.get('MINIFFT_THREADS', 0)) or os.cpu_count() or 1}


def threads():
    return _state['threads']


def set_threads(n):
    """Use ``n`` threads from now on (1: everything on the calling thread). Returns the
    previous number."""
    if int(n) < 1:
        raise ValueError(f'threads must be at least 1, got {n!r}')
    previous, _state['threads'] = _state['threads'], int(n)
    if _state['pool'] is not None and previous != _state['threads']:
        _state['pool'].shutdown()
        _state['pool'] = None
    return previous


def each_part(fn, *arrays):
    """``[fn(*parts) ...]``: ``fn`` over slices of ``arrays`` along axis 0, in order, the
    slices of all arrays alike (they must share their first dimension). On NumPy arrays of a
    few megabytes or more the parts run on the pool's threads; otherwise ``fn(*arrays)`` runs
    once, on the calling thread. ``fn`` must not call ``each_part`` itself: a part waiting
    for parts queued behind it on the same pool would wait for ever."""
    a = arrays[0]
    n = a.shape[0] if a.ndim else 0
    if (threads() == 1 or not isinstance(a, np.ndarray) or n < 2
            or a.nbytes < 2 * _PART_BYTES):
        return [fn(*arrays)]
    rows = max(1, n * _PART_BYTES // a.nbytes)
    parts = [slice(i, min(i + rows, n)) for i in range(0, n, rows)]
    if _state['pool'] is None:
        _state['pool'] = ThreadPoolExecutor(threads(), thread_name_prefix='minifft')
    return list(_state['pool'].map(lambda s: fn(*(x[s] for x in arrays)), parts))
