"""One training epoch and one evaluation pass, with metrics kept on the device.

Loss sums and correct counts are accumulated as device arrays; the trainer reads them back
only every ``sync_every`` steps (every step on the CPU, where reading costs nothing), so it adds
no per-step wait for the GPU of its own.
"""
import copy
import math
import time
import tracemalloc

import numpy as np
from tqdm import tqdm

from . import backend, parallel, random
from .distributed import Single
from .nn import SpatialConvolutionFFT, autotune
from .nn.plan_choice import PLANS


class NonFiniteLoss(RuntimeError):
    def __init__(self, epoch, step, value):
        super().__init__(f'loss became {value} at epoch {epoch + 1}, step {step + 1}; '
                         'training stopped (the last checkpoint is kept)')
        self.epoch, self.step = epoch, step


_stop = {'requested': False, 'signal': None}


def on_interrupt(signum=None, frame=None):
    """A SIGINT (and SIGTERM) handler for training scripts: Ctrl-C raises KeyboardInterrupt, as
    Python's own does, and is also remembered, so that the loops below raise it again after
    the batch in hand. Python prints and drops an exception raised while the main thread runs
    a weakref callback (the data loader's thread pools end every epoch, and their threads'
    cleanup runs one): with the default handler a Ctrl-C that came at that moment was lost
    and training went on. ``interrupt_signal()`` says which signal it was."""
    _stop['requested'], _stop['signal'] = True, signum
    raise KeyboardInterrupt


def quiet_interrupts(hook):
    """A ``sys.unraisablehook`` for training scripts: the KeyboardInterrupt of a stop that
    ``on_interrupt`` recorded, raised where Python can only print and drop it (a weakref
    callback, a ``__del__``), is dropped without the traceback Python would print (the loops
    raise it again after the batch in hand); anything else goes to ``hook``."""
    def handle(unraisable):
        if not (issubclass(unraisable.exc_type, KeyboardInterrupt) and _stop['requested']):
            hook(unraisable)
    return handle


def interrupt_signal():
    """The signal number ``on_interrupt`` last handled (None: none, or a KeyboardInterrupt of
    another origin)."""
    return _stop['signal']


def clear_interrupt():
    _stop['requested'], _stop['signal'] = False, None


def _raise_if_interrupted():
    if _stop['requested']:
        raise KeyboardInterrupt


def topk_correct(scores, labels, ks=(1, 5)):
    """Number of samples whose label is among the k highest scores, for each k (device arrays)."""
    xp = backend.get_array_module(scores)
    k_max = min(max(ks), scores.shape[1])
    top = xp.argsort(-scores, axis=1)[:, :k_max]
    hit = top == labels.reshape(-1, 1)
    return [hit[:, :min(k, k_max)].any(axis=1).sum() for k in ks]


class _Meter:
    """Running sums on the device; ``read()`` brings them to the host."""

    def __init__(self):
        self.loss = self.top1 = self.top5 = 0
        self.count = 0

    def add(self, loss, scores, labels):
        n = labels.shape[0]
        c1, c5 = topk_correct(scores, labels)
        self.loss = self.loss + loss * n
        self.top1, self.top5 = self.top1 + c1, self.top5 + c5
        self.count += n

    def read(self, comm=None):
        """Means so far; with a communicator, over every rank's samples."""
        loss, top1, top5, count = (float(self.loss), float(self.top1), float(self.top5),
                                   self.count)
        if comm is not None:
            loss, top1, top5, count = comm.sum([loss, top1, top5, count])
        n = max(count, 1)
        return {'loss': loss / n, 'top1': top1 / n, 'top5': top5 / n, 'count': count}


def train_epoch(model, criterion, optimizer, loader, epoch, max_steps=None, progress=True,
                sync_every=None, comm=Single(), schedule=None):
    """One epoch; with a distributed ``comm``, gradients are averaged over the ranks before each
    step and the returned metrics cover every rank's samples. With a ``schedule``
    (optim.Schedule), the optimizer's rate is ``schedule.at(epoch, step, len(loader))`` at each
    step (a warm-up changes it within the epoch)."""
    model.training()
    grads = model.parameters()[1]
    meter = _Meter()
    sync_every = sync_every or (1 if loader.device == 'cpu' else 20)
    total = min(len(loader), max_steps) if max_steps else len(loader)
    bar = tqdm(total=total, desc=f'epoch {epoch + 1}', unit='batch', disable=not progress,
               mininterval=1.0, dynamic_ncols=True, leave=False)
    start = time.perf_counter()
    interval = []  # this interval's per-step losses, to name the step that went bad
    for step, (x, y) in enumerate(loader):
        if step >= total:
            break
        scores = model.forward(x)
        # updateOutput, not forward: a non-finite score must reach the check below as a
        # non-finite loss, which names the step
        loss = criterion.updateOutput(scores, y)
        interval.append(loss)
        if (step + 1) % sync_every == 0 or step + 1 == total:
            # before the update when syncing every step (the CPU): no bad step is applied.
            # Every rank learns whether any rank went bad, so all stop at the same step.
            values = [float(v) for v in interval]
            bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
            first_bad = comm.min(bad[0] if bad else len(values))
            if first_bad < len(values):
                value = values[first_bad] if not math.isfinite(values[first_bad]) else math.nan
                raise NonFiniteLoss(epoch, step + 1 - len(values) + first_bad, value)
            interval = []
        model.zeroGradParameters()
        model.backward(x, criterion.updateGradInput(scores, y))
        comm.average_gradients(grads)
        if schedule is not None:
            optimizer.lr = schedule.at(epoch, step, len(loader))
        optimizer.step()
        meter.add(loss, scores, y)
        if not interval:
            stats = meter.read()
            elapsed = time.perf_counter() - start
            bar.set_postfix(loss=f'{stats["loss"]:.3f}', top1=f'{stats["top1"]:.3f}',
                            img_s=f'{meter.count / elapsed:.0f}', refresh=False)
        bar.update(1)
        _raise_if_interrupted()
    bar.close()
    backend.synchronize()
    seconds = time.perf_counter() - start
    stats = meter.read(comm)
    stats.update(images_per_s=stats['count'] / max(seconds, 1e-9), seconds=seconds)
    return stats


def evaluate(model, criterion, loader, progress=True, comm=Single()):
    model.evaluate()
    meter = _Meter()
    for x, y in tqdm(loader, desc='val', unit='batch', disable=not progress, leave=False,
                     mininterval=1.0):
        scores = model.forward(x)
        meter.add(criterion.updateOutput(scores, y), scores, y)
        _raise_if_interrupted()
    return meter.read(comm)


def _traced_peak(probe, criterion, sample_shape, batch):
    """Bytes two training steps of ``probe`` on a batch of zeros allocate at most beyond what
    was held before (the second step runs beside what the first one kept), by tracemalloc."""
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    x = np.zeros((batch,) + tuple(sample_shape), probe.dtype())
    target = np.zeros(batch, np.int64)
    for _ in range(2):
        out = probe.forward(x)
        criterion.forward(out, target)
        probe.backward(x, criterion.backward(out, target))
    del x, target, out
    probe.clearState()
    return tracemalloc.get_traced_memory()[1] - base


def step_bytes(model, criterion, sample_shape, batches=(16, 32)):
    """The host memory a training step of ``model`` takes, measured: ``(fixed, per_sample)``
    bytes, from the peak of NumPy's allocations (tracemalloc) in a forward and backward pass
    on batches of zeros of the two sizes in ``batches``, run on a copy of the model with
    autotuning off, so that the model, its plans, the autotuner and the random state are left
    as they were (a host model: NumPy arrays). The FFT layers' plans take different memory per
    sample, and which one runs depends on the batch (the rule's cost model) and on timings
    (the autotuner): each is measured, every FFT layer of the copy running it, and the largest
    counts (fashion_small: 1.0 MB a sample tiled, as the rule has it at batch 2, 1.8 MB with
    the DFT plan, as at 64 and up, where a batch of 10,000 peaked at 18.6 GB). Each batch
    takes two steps, the second beside what the first one kept, as in training. A step's
    memory is linear in the batch: imagenet_small measured 11.0 MB a sample, predicting
    2.86 GB at batch 256, the traced peak of its third step there. The probe runs on one
    thread: with two, the peak is that of whichever chunks of maps happened to be alive at
    once, and imagenet_small's slope measured 9.1-10.5 MB a sample from run to run (one
    thread: 10.63 every time); what more threads hold at once is a chunk of a few megabytes
    each, inside the caller's slack."""
    probe, criterion, state = copy.deepcopy(model), copy.deepcopy(criterion), random.get_state()
    probe.training()
    ffts = [m for m in probe.listModules() if isinstance(m, SpatialConvolutionFFT)]
    tracing = tracemalloc.is_tracing()
    threads = parallel.set_threads(1)
    peaks = [0, 0]
    try:
        if not tracing:
            tracemalloc.start()
        with autotune.disabled():
            for strategy in PLANS if ffts else [None]:
                for layer in ffts:
                    layer.strategy = strategy
                for i, batch in enumerate(batches):
                    peaks[i] = max(peaks[i], _traced_peak(probe, criterion, sample_shape, batch))
    finally:
        if not tracing:
            tracemalloc.stop()
        parallel.set_threads(threads)
        random.set_state(state)
    per_sample = max(0.0, (peaks[1] - peaks[0]) / (batches[1] - batches[0]))
    return max(0.0, peaks[0] - per_sample * batches[0]), per_sample
