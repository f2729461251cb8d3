"""Autotuning of SpatialConvolutionFFT's plans, like cuDNN's benchmark mode: with it on,
strategy 'auto' times the candidate plans on training steps of each new layer geometry,
once per process, and keeps the fastest (``fastest``). Off by default (``enable``).
"""
import contextlib
import time

import numpy as np

from .. import backend
from . import conv_fft, plan_choice  # a cycle: make_plan asks this module; used at call time
from .fft_cache import FFTCache
from .fft_plans import own_threads

_state = {'enabled': False}
_tuned = {}    # (array module, dtype, geometry) -> {strategy: seconds}, the fastest first


def enable(on):
    """Let ``strategy='auto'`` time the candidate plans on each new layer geometry and keep
    the fastest. Off by default: without it the plan, and so the last bits of every result,
    depend only on the geometry, never on timings. Returns the previous setting."""
    previous, _state['enabled'] = _state['enabled'], bool(on)
    return previous


def enabled():
    return _state['enabled']


@contextlib.contextmanager
def disabled():
    """Autotuning off inside (a pass whose plans must not be timed: one that finds a model's
    shapes at batch 1, or measures its memory), the previous setting back after."""
    previous = enable(False)
    try:
        yield
    finally:
        enable(previous)


def tuned():
    """What autotuning measured so far: ``{(module, dtype, geometry, grad_input): {strategy:
    seconds}}``, each geometry's fastest first; geometry is ``(S, f, f', H, W, kH, kW, dH,
    dW, padH, padW)``, and ``grad_input`` whether the steps timed made the input gradient."""
    return {k: dict(v) for k, v in _tuned.items()}


def choices():
    """The strategy autotuning settled on for each geometry, as JSON-friendly rows
    ``[module, dtype, geometry, strategy, grad_input]``: train.py keeps them in its
    checkpoints, so that a resumed run uses the plans of the run it continues (and its
    results bit for bit)."""
    return [[k[0], k[1], list(k[2]), next(iter(v)), k[3]] for k, v in _tuned.items()]


def adopt(rows):
    """Take earlier choices (see ``choices``) for those geometries instead of measuring them;
    geometries measured already in this process keep their own. Adopted ones show no time
    in ``tuned()``. A row without ``grad_input`` (checkpoints written before autotuning
    told the two apart, when every step it timed made the input gradient) was the choice
    for every layer of its geometry, and is taken for both."""
    for row in rows:
        if not isinstance(row, (list, tuple)) or len(row) not in (4, 5):
            raise ValueError(f'not an autotuning choice: {row!r}')
        module, dtype, geometry, strategy = row[:4]
        flags = row[4:] or [True, False]
        if (strategy not in plan_choice.PLANS or len(geometry) != 11
                or any(not isinstance(g, bool) for g in flags)):
            raise ValueError(f'not an autotuning choice: {row!r}')
        for grad_input in flags:
            _tuned.setdefault((module, dtype, tuple(geometry), grad_input), {strategy: None})


def fastest(xp, dtype, geometry, rounds=3, extra=6, close=1.2, grad_input=True):
    """The fastest strategy for ``geometry`` among 'dft', 'fft' and (stride 1) the tilings
    modelled cheapest ('tiled', 'tiled:1', ...: plan_choice.tilings), each timed over a
    whole training step on random maps, run as SpatialConvolutionFFT runs it (its spectra
    through a cache of its own, fingerprints and all; two sets of operands taken in turn, so
    that every step transforms all three; without the input gradient where ``grad_input``
    is False, as a network's first layer runs); measured once per process. After a warm-up
    step each, the candidates take turns for ``rounds`` rounds and each keeps its best time,
    so that a machine whose speed drifts does not favour whichever ran in a fast spell. Then
    those within ``close`` of the best take turns for up to ``extra`` more rounds, while more
    than one is left: convnet L1's DFT and FFT plans, 10% apart in training steps (FFT 188
    ms, DFT 209), measured within a few percent of each other in three rounds, and either
    could win (the DFT plan in one of three benchmark runs, its step 25% slower there); c9's
    tiles, 10-15% behind the DFT plan in three rounds, won one run in four with rounds only
    for candidates within 10%. (The plans alone, without the layer's cache and its
    fingerprints, timed imagenet_small's conv1 with the DFT plan at 0.86-0.91x the FFT plan's
    step, where the layer, the benchmark and the model's training steps took 1.03-1.12x; as
    the layer runs them, the two measure within a few percent here, and either can win:
    without the input gradient, as conv1 runs in training, 70.6-72.4 ms against 72.7-74.8.)"""
    key = (xp.__name__, np.dtype(dtype).str, tuple(geometry), bool(grad_input))
    if key not in _tuned:
        S, f, g, H, W, kH, kW, dH, dW, pH, pW = geometry
        rng = np.random.default_rng(0)

        def maps(*shape):
            return xp.asarray(rng.standard_normal(shape).astype(dtype))

        oH, oW = (H + 2 * pH - kH) // dH + 1, (W + 2 * pW - kW) // dW + 1
        operands = [(maps(S, f, H, W), maps(g, f, kH, kW), maps(S, g, oH, oW))
                    for _ in range(2)]
        plans, times, failures = {}, {}, {}
        for name in plan_choice.PLANS:
            plan = plan_choice.make_plan(name, xp, dtype, *geometry)
            # 'tiled' where no tile fits is the DFT plan again, and so is 'tiled:N' where
            # fewer tilings are modelled close to the cheapest
            if plan.kind == name.partition(':')[0]:
                plans[name], times[name] = plan, float('inf')
        caches = {name: FFTCache() for name in plans}
        contenders = list(plans)
        for i in range(rounds + 1 + extra):
            if i > rounds:
                best = min(times.values())
                contenders = [n for n in contenders if times[n] <= close * best]
                if len(contenders) < 2:
                    break
            for name in contenders:
                if name in failures:
                    continue
                try:
                    t = _time_step(plans[name], caches[name], *operands[i % 2], grad_input)
                except MemoryError as e:  # too large here (as cuDNN's benchmark mode skips
                    failures[name] = f'{name}: {e}'  # algorithms whose workspace does not fit)
                    continue
                if i:  # round 0 warms up (workspaces, BLAS threads, caches)
                    times[name] = min(times[name], t)
        if len(failures) == len(plans):
            raise MemoryError(f'no FFT plan fits geometry {geometry}: '
                              + '; '.join(failures.values()))
        _tuned[key] = dict(sorted(times.items(), key=lambda kv: kv[1]))
    return next(iter(_tuned[key]))


def _time_step(plan, cache, x, w, go, grad_input=True):
    """Seconds a training step takes with ``plan`` and ``cache``: the layer's forward and
    backward passes (conv_fft.forward_pass, then backward_pass, or weight_pass where
    ``grad_input`` is False)."""
    backend.synchronize()
    start = time.perf_counter()
    with own_threads(plan.xp):
        conv_fft.forward_pass(plan, cache, x, w)
        if grad_input:
            conv_fft.backward_pass(plan, cache, x, w, go)
        else:
            conv_fft.weight_pass(plan, cache, x, go)
    backend.synchronize()
    return time.perf_counter() - start
