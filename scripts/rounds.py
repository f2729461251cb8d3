"""Timing implementations against each other in rounds: each runs its step in turn, so that
a machine whose speed drifts slows them all alike (benchmark.py's protocol), and how far one
implementation's results are from another's."""
import time

import numpy as np

from minifft import backend


def timed(fn, sync):
    """Seconds ``fn()`` takes, the device synchronised before and after by ``sync()``."""
    sync()
    t = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t


# Seconds of idleness before each implementation's round on a CPU. Thread pools keep
# spinning after their last call (OpenBLAS's workers for 2^28 cycles, ~0.1 s; libgomp's, under
# PyTorch, for a while too), and on 2 cores the spinning threads of the library that ran just
# before took half the machine: PyTorch's ops measured 1.5-2.3x slower right after a minifft
# round than after a pause, minifft's forward 1.2x slower after a PyTorch round. A GPU's
# rounds are synchronised and need no pause. After the pause each implementation runs one
# untimed step before its timed one (see ``measure``).
IDLE_GAP = 0.25


def measure(rounds, repeat, warmup, ops, gap):
    """Runs every implementation's round in turn, ``warmup`` then ``repeat`` times, so that a
    machine whose speed drifts (a shared VM's does, by 2x over minutes) slows all alike, each
    round after ``gap`` seconds of idleness, as if it ran alone. Per implementation: the median
    of each op, of their sum ('total') and of the whole step where its rounds time one
    ('step'); per pair, the median of the per-round ratios of the sums ('vs') and of the
    steps ('step_vs'), and their quartiles ('vs_quartiles'): how far one round strays from
    another.

    With a gap, each timed round follows an untimed one of the same implementation, as a
    training step follows the one before: the first step after the process slept runs on
    cores that were idle, and that cost fell unevenly. PyTorch's autograd step, timed after
    its three ops, ran warm (40.0 ms on convnet L4 at batch 16, 41.0 first after a pause),
    while the FFT layer's ops, timed first, ran cold (19.1-19.5 warm, 20.5-21.9 first after
    a pause: then nine hand-overs to a helper thread whose core had gone idle, now six).
    Every round's step is timed after its ops."""
    for _ in range(warmup):
        for run in rounds.values():
            time.sleep(gap)
            run()
    samples = {name: [] for name in rounds}
    for _ in range(repeat):
        for name, run in rounds.items():
            if gap:
                time.sleep(gap)
                run()
            t = run()
            t['total'] = sum(t[op] for op in ops)
            samples[name].append(t)
    result = {name: {k: float(np.median([t[k] for t in ts])) for k in ts[0]}
              for name, ts in samples.items()}
    fft = samples['fft']
    for name, ts in samples.items():
        if name == 'fft':
            continue
        for key, op in (('vs', 'total'), ('step_vs', 'step')):
            if op in ts[0] and op in fft[0]:
                ratios = [t[op] / u[op] for t, u in zip(ts, fft)]
                result[name][key] = float(np.median(ratios))
                result[name][key + '_quartiles'] = [float(q) for q in
                                                    np.percentile(ratios, (25, 75))]
    return result


def rel(a, b):
    """The relative L2 difference of ``a`` from ``b``, in float64."""
    a, b = backend.asnumpy(a).astype(np.float64), backend.asnumpy(b).astype(np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))
