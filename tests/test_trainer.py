"""minifft.trainer on its own, without the script: an interrupt that Python drops still stops
the loops, and the memory a training step takes (``step_bytes``, with
``backend.available_host_memory``, what train.py's memory check compares it with)."""
import os
import sys
import tracemalloc
import weakref

import numpy as np
import pytest

from minifft import backend, nn, random, trainer
from minifft.nn import autotune
from minifft.nn.plan_choice import PLANS


@pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')  # the drop itself
def test_ctrl_c_dropped_by_a_weakref_callback_still_stops_the_loops():
    """Python prints and drops a KeyboardInterrupt raised while a weakref callback runs; the
    trainer's SIGINT handler remembers it, and the loops raise it again after the batch."""

    class Thing:
        pass
    model = nn.Sequential(nn.Linear(4, 2))
    batches = [(np.zeros((2, 4), np.float32), np.array([0, 1]))] * 3
    trainer.clear_interrupt()
    assert trainer.evaluate(model, nn.CrossEntropyCriterion(), batches, progress=False)
    thing = Thing()
    ref = weakref.ref(thing, lambda r: trainer.on_interrupt())
    del thing  # the callback's KeyboardInterrupt is printed and dropped here
    assert ref() is None
    try:
        with pytest.raises(KeyboardInterrupt):
            trainer.evaluate(model, nn.CrossEntropyCriterion(), batches, progress=False)
    finally:
        trainer.clear_interrupt()


def test_a_dropped_ctrl_c_prints_no_traceback_and_other_errors_still_do():
    """train.py's unraisable hook: the interrupt Python drops in a weakref callback (the
    stop is recorded and raised again by the loops) prints nothing, while an error of another
    kind, or a KeyboardInterrupt that is not a recorded stop, reaches the hook before it."""

    class Thing:
        pass

    def fail(error):
        raise error
    seen = []
    previous = sys.unraisablehook
    sys.unraisablehook = trainer.quiet_interrupts(lambda u: seen.append(u.exc_type))
    trainer.clear_interrupt()
    try:
        for callback in (lambda r: trainer.on_interrupt(),
                         lambda r: fail(ValueError('a real error'))):
            thing = Thing()
            ref = weakref.ref(thing, callback)
            del thing
            assert ref() is None
        trainer.clear_interrupt()
        thing = Thing()
        ref = weakref.ref(thing, lambda r: fail(KeyboardInterrupt()))
        del thing
    finally:
        sys.unraisablehook = previous
        trainer.clear_interrupt()
    assert seen == [ValueError, KeyboardInterrupt]


@pytest.mark.skipif(not os.path.exists('/proc/meminfo'), reason='not Linux')
def test_available_host_memory_is_within_the_machines():
    with open('/proc/meminfo') as f:
        total = next(int(line.split()[1]) * 1024 for line in f if line.startswith('MemTotal:'))
    available = backend.available_host_memory()
    assert isinstance(available, int) and 0 < available <= total


def test_step_bytes_measures_a_copy_and_is_linear_in_the_batch():
    """``trainer.step_bytes`` leaves the model, the random state and autotuning as they were,
    and its line predicts a larger batch's peak allocations."""
    model = nn.Sequential(nn.SpatialConvolutionFFT(3, 8, 5, 5), nn.SpatialBatchNormalization(8),
                          nn.ReLU(), nn.Dropout(0.5), nn.View(-1), nn.Linear(8 * 12 * 12, 4))
    criterion = nn.CrossEntropyCriterion()
    bn = model.get(1)
    before = (bn.running_mean.copy(), bn.running_var.copy(), random.get_state())
    tuning, tuned = autotune.enable(True), autotune.tuned()
    try:
        fixed, per_sample = trainer.step_bytes(model, criterion, (3, 16, 16))
        assert autotune.enabled() and autotune.tuned() == tuned
    finally:
        autotune.enable(tuning)
    assert np.array_equal(bn.running_mean, before[0]) and np.array_equal(bn.running_var, before[1])
    assert random.get_state() == before[2] and model.get(0)._plans == {}
    # two steps at batch 64 with each plan autotuning may choose: the largest peak is the
    # line's prediction
    x, target = np.zeros((64, 3, 16, 16), np.float32), np.zeros(64, np.int64)
    peaks = []
    for strategy in PLANS:
        model.get(0).strategy = strategy
        tracemalloc.start()
        for _ in range(2):
            out = model.forward(x)
            criterion.forward(out, target)
            model.backward(x, criterion.backward(out, target))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        del out
        model.clearState()
    predicted = fixed + 64 * per_sample
    assert abs(predicted - max(peaks)) < 0.1 * max(peaks), (fixed, per_sample, peaks)
