"""The per-layer FFT buffer cache of SpatialConvolutionFFT.

Two ways to know that a kept spectrum still belongs to the array offered now:

* ``'fingerprint'`` (NumPy arrays): each spectrum is kept with a fingerprint of the array it
  came from, and reused only while a fresh fingerprint of the array offered now equals it, so
  a different input, an input changed in place, or a weight changed by ``updateParameters``,
  the optimizer or the user's own assignment all lead to a new transform, never a stale one.
* ``'identity'`` (CuPy arrays, where comparing fingerprints would stop the host at every
  lookup until the GPU catches up): a spectrum is reused only for the very same memory (the
  entry holds the array, so its memory cannot be handed to another one meanwhile), and the
  callers ask for a fresh transform where the data may have changed: ``updateOutput``
  transforms its input and the weight anew every call, ``updateGradInput`` its gradOutput, and
  only the backward operations of a step reuse them. That is Torch7's contract: backward's
  input and gradOutput are forward's and updateGradInput's, unchanged.

The fingerprint is a random projection of the array's contents: the array is viewed as rows of
``_ROW`` values and each row is dotted with a fixed random vector, giving ``size/_ROW`` numbers.
Any change to the contents larger than the rounding of those dot products changes them (a
permutation too, unlike a plain sum); computing it is one pass over the array with no copy,
far cheaper than the transform it guards.
"""
import numpy as np

from .. import backend, parallel

_ROW = 1024
_SHARED_BYTES = 16 << 20
_PROJECTION = {}


def _projection(xp, dtype):
    key = (xp.__name__, np.dtype(dtype).str)
    if key not in _PROJECTION:
        v = np.random.default_rng(12345).standard_normal(_ROW).astype(dtype)
        _PROJECTION[key] = xp.asarray(v)
    return _PROJECTION[key]


def fingerprint(a):
    stamp, (fn, parts) = _fingerprint_step(a)
    # large arrays on the team's threads, so that no BLAS thread of its own is woken (see
    # fft_plans.own_threads); below _SHARED_BYTES waking the team costs more than it saves
    if backend.get_array_module(a) is np and a.nbytes >= _SHARED_BYTES:
        parallel.each(fn, parts, blas=True)
    else:
        _run_in_turn([(fn, parts)])
    return stamp


def _fingerprint_step(a):
    """``a``'s fingerprint, still to be written, and the step that writes it (a function and
    the parts of the array it takes: one per thread, however the parts are then run, so that
    every way of running them gives the same bits)."""
    xp = backend.get_array_module(a)
    flat = xp.ascontiguousarray(a).reshape(-1)
    w = _projection(xp, a.dtype)
    rows = flat.size // _ROW
    stamp = xp.empty(rows + 1, a.dtype)
    lines = flat[:rows * _ROW].reshape(rows, _ROW)

    def part(s):
        xp.matmul(lines[s], w, out=stamp[s])
        if s.stop == rows:  # the last part takes the tail
            stamp[rows] = flat[rows * _ROW:] @ w[:flat.size - rows * _ROW]
    parts = parallel.split(rows, parallel.threads() if xp is np else 1) or [slice(0, 0)]
    return stamp, (part, parts)


class _Entry:
    __slots__ = ('meta', 'shape', 'dtype', 'print', 'source', 'value')

    def __init__(self, meta, source, value, stamp):
        """``stamp``: the source's fingerprint, or None to know it by identity."""
        self.meta, self.shape, self.dtype = meta, tuple(source.shape), source.dtype
        self.source = source if stamp is None else None
        self.print = stamp
        self.value = value

    def fits(self, meta, source):
        """Made for this geometry from an array of this shape and dtype."""
        return (meta == self.meta and tuple(source.shape) == self.shape
                and source.dtype == self.dtype)

    def matches(self, meta, source, stamp):
        if not self.fits(meta, source):
            return False
        if self.source is not None:
            return (type(source) is type(self.source) and source.strides == self.source.strides
                    and backend.address(source) == backend.address(self.source))
        return self.printed(stamp)

    def printed(self, stamp):
        """Made from an array whose fingerprint was ``stamp``."""
        if stamp is None or self.print is None or (backend.device_of(stamp)
                                                    != backend.device_of(self.print)):
            return False
        xp = backend.get_array_module(stamp)
        return bool(xp.array_equal(stamp, self.print))


def _run_in_turn(*operations):
    """Runs operations given as lists of steps, each a function and its items, on the calling
    thread (see fft_plans.DFTPlan.run)."""
    for steps in operations:
        for fn, items in steps:
            for item in items:
                fn(item)


class FFTCache:
    """Arrays derived from a layer's operands (the spectra, by kind 'input', 'weight',
    'gradOutput'; the direct layer's im2col 'columns'), with counters of what was done."""
    KINDS = ('input', 'weight', 'gradOutput')
    POLICIES = ('auto', 'fingerprint', 'identity')

    def __init__(self, policy='auto'):
        """``policy``: 'fingerprint', 'identity' (see the module's notes), or 'auto': identity
        for GPU arrays, fingerprints for the others."""
        if policy not in self.POLICIES:
            raise ValueError(f'FFTCache: policy must be one of {self.POLICIES}, got {policy!r}')
        self.policy = policy
        self._entries = {}
        self._spare = {}   # kind -> memory for its next spectrum, lent out and given back
        self._forward = dict.fromkeys(self.KINDS, 0)
        self._reused = dict.fromkeys(self.KINDS, 0)
        self._inverse = {}

    def _by_identity(self, source):
        return self.policy == 'identity' or (self.policy == 'auto'
                                             and backend.is_gpu_array(source))

    def get(self, kind, source, meta, transform, fresh=False):
        """The spectrum of ``source`` for geometry ``meta``: reused if still valid, else
        ``transform(source, spare)`` stored and returned, where ``spare`` is the stale
        spectrum, whose memory the transform may write the new one into (allocating it anew
        each step costs page faults). ``fresh``: the caller's data may have changed since
        (a new forward), so under the identity policy it is transformed anew."""
        def make(kind, source, spare):
            return transform(source, spare), []
        return self.get_all([(kind, source, fresh)], meta, make, _run_in_turn)[0]

    def get_all(self, requests, meta, make, run):
        """The spectra for ``requests``, ``(kind, source, fresh)`` each (kinds distinct), as
        ``get`` would return them one by one, with their work shared: ``make(kind, source,
        spare)`` gives a spectrum still to be written and the steps that write it, and
        ``run(*operations)`` runs the steps of all the transforms needed at once (a plan's
        ``run``: their first steps in one parallel call, and so on). A spectrum kept from
        earlier and not asked for ``fresh`` is checked meanwhile, under fingerprints: its
        fingerprint taken among those steps rather than in a pass of its own before them, on
        one thread, and the spectrum transformed anew after them if it no longer matches."""
        values, pending, checks = {}, [], []
        for kind, source, fresh in requests:
            entry = self._entries.get(kind)
            if self._by_identity(source):
                if entry is not None and not fresh and entry.matches(meta, source, None):
                    values[kind] = self._reuse(kind, entry)
                else:
                    pending.append(self._start(kind, source, None, make))
            elif entry is not None and not fresh and entry.fits(meta, source):
                checks.append((kind, source) + _fingerprint_step(source))
            else:
                # one pass over the source, for the check and for the new entry alike (on
                # convnet L1 at batch 64 gradOutput is 342 MB, a pass ~17 ms)
                stamp = fingerprint(source)
                if entry is not None and entry.matches(meta, source, stamp):
                    values[kind] = self._reuse(kind, entry)
                else:
                    pending.append(self._start(kind, source, stamp, make))
        check_steps = [[step] for *_, step in checks]   # each alongside the first steps
        if pending:
            run(*[steps for *_, steps in pending], *check_steps)
        else:  # nothing to share them with: on this thread, as waking helpers costs more
            _run_in_turn(*check_steps)
        stale = []
        for kind, source, stamp, _ in checks:
            if self._entries[kind].printed(stamp):
                values[kind] = self._reuse(kind, self._entries[kind])
            else:
                stale.append(self._start(kind, source, stamp, make))
        if stale:
            run(*[steps for *_, steps in stale])
        for kind, source, stamp, value, _ in pending + stale:
            self._entries[kind] = _Entry(meta, source, value, stamp)
            self._forward[kind] = self._forward.get(kind, 0) + 1
            values[kind] = value
        return [values[kind] for kind, _, _ in requests]

    def _reuse(self, kind, entry):
        self._reused[kind] = self._reused.get(kind, 0) + 1
        return entry.value

    def _start(self, kind, source, stamp, make):
        """A transform of ``source`` begun (its steps still to run), into the memory of the
        stale spectrum of ``kind``, which is dropped, or of the one ``give`` left (``take``):
        ``(kind, source, stamp, value, steps)``."""
        value, steps = make(kind, source, self.take(kind))
        return kind, source, stamp, value, steps

    def take(self, kind):
        """The memory of the spectrum of ``kind``, which is dropped, or of the one ``give``
        left, for the caller to use meanwhile (None if there is none). SpatialConvolutionFFT's
        forward writes the output's spectrum into gradOutput's: the two have the same shape,
        and a gradOutput spectrum is only ever reused within the backward operations of the
        step that made it (``updateGradInput`` then ``accGradParameters``), so holding both
        whole nearly doubled the layer's memory (convnet L1 at batch 64: 409 MB each)."""
        entry = self._entries.pop(kind, None)
        return entry.value if entry is not None else self._spare.pop(kind, None)

    def give(self, kind, memory):
        """Keeps ``memory`` for the next spectrum of ``kind`` to be written into (None: there
        is none to keep)."""
        if memory is not None:
            self._spare[kind] = memory

    def count_inverse(self, kind):
        self._inverse[kind] = self._inverse.get(kind, 0) + 1

    def nbytes(self):
        return (sum(int(e.value.nbytes) for e in self._entries.values())
                + sum(int(a.nbytes) for a in self._spare.values()))

    def stats(self):
        on_gpu = any(backend.is_gpu_array(e.value) for e in self._entries.values())
        return {'forward': dict(self._forward), 'inverse': dict(self._inverse),
                'reused': dict(self._reused), 'bytes': self.nbytes(),
                'spectra': {k: tuple(e.value.shape) for k, e in self._entries.items()},
                **(backend.memory_stats() if on_gpu else {})}

    def clear(self):
        self._entries, self._spare = {}, {}

    def __getstate__(self):
        # spectra are scratch: a pickled or copied layer starts with an empty cache
        state = dict(self.__dict__)
        state['_entries'], state['_spare'] = {}, {}
        return state

    def __repr__(self):
        return f'FFTCache({self.nbytes()} bytes, kinds={sorted(self._entries)})'
