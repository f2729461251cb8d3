"""Work on the CPU's cores: elementwise layers part of a batch by part (``each_part``), and
the FFT plans' chunks of maps and blocks of frequencies (``each``).

NumPy's ufuncs and reductions run on one core, while BLAS and scipy.fft use them all: on the
2-core development machine batch normalisation, pooling and ReLU took more than half of an
imagenet_small training step. ``each_part`` cuts the arrays along their first axis into parts
of about a megabyte and runs a function on each part on the CPU's threads (NumPy releases the
GIL inside its loops). A part is small enough that a function doing several passes over it
finds the data in cache after the first. CuPy arrays (one kernel per call already fills the
GPU), and arrays too small to be worth it, go through the function whole.

The FFT plans' chunks each run a few GEMMs too small to share among cores well, with copies
between them that run on one core; ``each(..., blas=True)`` runs the chunks side by side,
each thread with a single-threaded BLAS (backend.single_threaded_blas).

The threads are a team that the calling thread joins: each call wakes as many helpers as it
has items beyond its own first, and every thread takes the next item until none is left.
A ``ThreadPoolExecutor`` cost about 80 microseconds a call here (a future per item, a queue,
every item handed to another thread), and convnet L4's step makes six such calls.

The helpers are kept off the calling thread's CPU (``_Team.keep_off``). Linux may wake a
thread on its waker's CPU, and on the development VM it did so after the process had slept
(a training step after data loading, a benchmark round after its pause): the helper then
shared the caller's CPU for most of the calls that followed. Convnet L4's step at batch 16
after 0.25 s asleep took 40-52 ms, against 22-24 after 0.25 s of busy waiting.
"""
import ctypes
import functools
import os
import threading

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
_state = {'team': None, 'threads': None}


@functools.lru_cache(maxsize=None)
def _sched_getcpu():
    try:
        return ctypes.CDLL(None).sched_getcpu
    except (OSError, AttributeError, TypeError):  # not glibc, or no C library to load
        return None


def current_cpu():
    """The CPU the calling thread runs on (glibc's ``sched_getcpu``), or None where that is
    unknown."""
    getcpu = _sched_getcpu()
    cpu = getcpu() if getcpu is not None else -1
    return cpu if cpu >= 0 else None


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
    if _state['team'] is not None and previous != _state['threads']:  # sized for the old one
        _state['team'].shutdown()
        _state['team'] = None
    return previous


def slices(n, step):
    """``[0, n)`` cut into slices of ``step`` (the last one shorter)."""
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def split(n, parts, whole=1):
    """``[0, n)`` cut into at most ``parts`` slices of nearly equal length (multiples of
    ``whole``, but for the last), so that threads taking one slice each finish together; none
    for an empty range. The longer slices come first: threads take slices in turn, and where
    the lengths alternated (imagenet_small's conv4: 52 frequencies in 8 blocks, 6, 7, 6, 7,
    ...), the helper, starting last, took every longer one and the caller waited 0.37 ms for
    it at each product. (Where n is not a multiple of ``whole``, the longer slices come last
    instead, so that the last one, short of a whole unit, is one of them.)"""
    if n <= 0:
        return []
    units = -(-n // whole)
    count = min(parts, units)
    each, extra = divmod(units, count)
    longer = range(extra) if units * whole == n else range(count - extra, count)
    bounds = [0]
    for i in range(count):
        bounds.append(min(n, bounds[-1] + (each + (i in longer)) * whole))
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def each(fn, items, blas=False):
    """``[fn(item) for item in items]``, the items shared among the calling thread and the
    team's helpers. With ``blas`` (``fn`` runs GEMMs) the host BLAS is single-threaded
    meanwhile, each thread running its own GEMMs, and where it cannot be made so (not
    OpenBLAS) the items run in turn on the calling thread, each GEMM on all cores. While the
    team is busy (``fn`` calling ``each`` itself, or another thread's call) the items run in
    turn on the calling thread. The first error an item raises is raised once all items
    that started have finished."""
    items = list(items)
    if threads() == 1 or len(items) < 2 or (blas and not backend.can_limit_blas_threads()):
        return [fn(item) for item in items]
    team = _state['team']
    if team is None or team.pid != os.getpid():  # a forked child has none of the threads
        team = _state['team'] = _Team(threads() - 1)
    if not blas:
        return team.run(fn, items)
    with backend.single_threaded_blas():
        return team.run(fn, items)


class _Job:
    """One call's items, taken in turn by whichever thread asks next."""

    def __init__(self, fn, items, helpers):
        self.fn, self.items, self.results = fn, items, [None] * len(items)
        self.error = None
        self.helpers = helpers
        self._next, self._left = 0, helpers
        self._lock = threading.Lock()
        self.finished = threading.Lock()   # held until the last helper is done
        if helpers:
            self.finished.acquire()

    def work(self):
        while self.error is None:
            with self._lock:
                i, self._next = self._next, self._next + 1
            if i >= len(self.items):
                return
            try:
                self.results[i] = self.fn(self.items[i])
            except BaseException as e:  # re-raised on the calling thread
                self.error = self.error or e

    def helper_done(self):
        with self._lock:
            self._left -= 1
            if self._left == 0:
                self.finished.release()


class _Team:
    """``helpers`` daemon threads, each woken to work on the current job by the release of
    its own lock, which it holds while idle. (``threading.Event``s, a condition variable
    each, made a call with two trivial items take 70-80 microseconds here: a wake and a
    reply took 57 between two threads, against 16 with plain locks.)"""

    def __init__(self, helpers):
        self.pid = os.getpid()
        self._busy = threading.Lock()
        self._job, self._stop = None, False
        self._go = [threading.Lock() for _ in range(helpers)]
        for go in self._go:
            go.acquire()
        self._threads = [threading.Thread(target=self._serve, args=(go,), name=f'minifft-{i}',
                                          daemon=True) for i, go in enumerate(self._go)]
        for t in self._threads:
            t.start()
        # the CPUs the helpers may use: those of the thread that made them
        self._cpus = os.sched_getaffinity(0) if hasattr(os, 'sched_setaffinity') else set()
        self._off = None

    def keep_off(self, cpu):
        """Let the helpers run on any of their CPUs but ``cpu`` (the caller's), re-set only
        when it changes; left as they are where that would leave them none, or where
        affinities cannot be set."""
        others = self._cpus - {cpu}
        if cpu is None or cpu == self._off or not others:
            return
        try:
            for t in self._threads:
                os.sched_setaffinity(t.native_id, others)
        except OSError:  # a CPU taken away meanwhile: the next call tries again
            return
        self._off = cpu

    def _serve(self, go):
        while True:
            go.acquire()   # released once per job it serves (or to stop), after the last ended
            if self._stop:
                return
            job = self._job
            job.work()
            job.helper_done()

    def run(self, fn, items):
        if not self._busy.acquire(blocking=False):
            return [fn(item) for item in items]
        try:
            self.keep_off(current_cpu())
            job = self._job = _Job(fn, items, min(len(self._go), len(items) - 1))
            for go in self._go[:job.helpers]:
                go.release()
            job.work()
            if job.helpers:
                job.finished.acquire()
        finally:
            self._busy.release()
        if job.error is not None:
            raise job.error
        return job.results

    def shutdown(self):
        self._stop = True
        for go in self._go:
            go.release()


def each_part(fn, *arrays):
    """``[fn(*parts) ...]``: ``fn`` over slices of ``arrays`` along axis 0, in order, the
    slices of all arrays alike (they must share their first dimension). On NumPy arrays of a
    few megabytes or more the parts run on the team's threads (``each``); otherwise
    ``fn(*arrays)`` runs once, on the calling thread."""
    a = arrays[0]
    n = a.shape[0] if a.ndim else 0
    if (threads() == 1 or not isinstance(a, np.ndarray) or n < 2
            or a.nbytes < 2 * _PART_BYTES):
        return [fn(*arrays)]
    rows = max(1, n * _PART_BYTES // a.nbytes)
    return each(lambda s: fn(*(x[s] for x in arrays)), slices(n, rows))
