"""Autotuning of SpatialConvolutionFFT's plans (minifft/nn/autotune.py): what it times, what it
keeps, and what it skips. No test asserts a speed: the timings are scripted where a winner
matters."""
import numpy as np
import pytest

from minifft import nn
from minifft.nn import autotune, conv_fft, plan_choice

from .helpers import rel_err
from .test_conv import _ctor, make


def test_autotune_keeps_the_fastest_plan_per_geometry(rng, monkeypatch):
    """With autotuning on, 'auto' times every candidate once per geometry and process and
    builds the fastest; the layer's results are those of the direct convolution whatever
    plan wins."""
    monkeypatch.setattr(autotune, '_tuned', {})
    previous = autotune.enable(True)
    try:
        case = (2, 2, 3, 20, 19, 3, 3, 1, 1, 1, 1)  # large enough for a 16-point tile
        layer, x = make(nn.SpatialConvolutionFFT, case, np.float64, rng=rng)
        direct = nn.SpatialConvolution(*_ctor(case)).double()
        direct.weight[...], direct.bias[...] = layer.weight, layer.bias
        out = layer.forward(x)
        (key, times), = autotune.tuned().items()
        assert key == ('numpy', '<f8', (2, 2, 3, 20, 19, 3, 3, 1, 1, 1, 1), True)
        # every tiling modelled close to the cheapest is timed, each once
        a = plan_choice.Axis(20, 3, 1, 1, 22), plan_choice.Axis(19, 3, 1, 1, 21)
        tiled = ['tiled'] + [f'tiled:{i}' for i in range(1, len(plan_choice.tilings(
            2, 2, 3, *a)))]
        assert len(tiled) > 1 and set(times) == {'dft', 'fft', *tiled}
        assert all(t > 0 for t in times.values())
        assert list(times.values()) == sorted(times.values())
        best = plan_choice.make_plan(next(iter(times)), np, np.float64, *key[2])
        assert layer.plan(x).meta == best.meta
        assert rel_err(out, direct.forward(x)) < 1e-10
        layer.clearState()
        layer.forward(x)  # a new plan for a known geometry: measured once, not again
        assert autotune.tuned() == {key: times}
    finally:
        autotune.enable(previous)
    assert not autotune.enabled()


@pytest.mark.parametrize('strategy', ['dft', 'fft', 'tiled'])
def test_timed_steps_run_as_the_layer_runs(strategy, rng):
    """A timed step is the layer's forward and backward passes, its spectra through a cache
    of its own: with two sets of operands taken in turn, every step transforms all three
    anew, into the memory of the step before's, and the layer's gradients come out."""
    geometry = (2, 2, 3, 20, 19, 3, 3, 1, 1, 1, 1)
    plan = plan_choice.make_plan(strategy, np, np.float64, *geometry)
    sets = [(rng.standard_normal((2, 2, 20, 19)), rng.standard_normal((3, 2, 3, 3)),
             rng.standard_normal((2, 3, 20, 19))) for _ in range(2)]
    cache = nn.FFTCache()
    autotune._time_step(plan, cache, *sets[0])
    first = {k: e.value for k, e in cache._entries.items()}
    assert autotune._time_step(plan, cache, *sets[1]) > 0
    assert cache.stats()['forward'] == {'input': 2, 'weight': 2, 'gradOutput': 2}
    assert all(np.shares_memory(first[k], e.value) for k, e in cache._entries.items())
    x, w, go = sets[1]
    layer = nn.SpatialConvolutionFFT(*_ctor(geometry), strategy='dft').double()
    layer.weight[...], layer.bias[...] = w, 0
    layer.forward(x)
    gi = layer.backward(x, go)
    out = conv_fft.forward_pass(plan, cache, x, w)
    gi2, gw, _ = conv_fft.backward_pass(plan, cache, x, w, go)
    assert rel_err(out, layer.output) < 1e-10 and rel_err(gi2, gi) < 1e-10
    assert rel_err(gw, layer.gradWeight) < 1e-10


def test_a_layer_without_input_gradient_is_timed_without_it(rng, monkeypatch):
    """A layer whose input gradient nobody reads (``gradInputNeeded`` off: train.py's first
    layer) is autotuned on steps that make none, as its backward makes none, apart from the
    same geometry's steps with it; the weight gradient comes out as the layer's."""
    monkeypatch.setattr(autotune, '_tuned', {})
    geometry = (2, 2, 3, 20, 19, 3, 3, 1, 1, 1, 1)
    timed = []
    real = autotune._time_step

    def recording(plan, cache, x, w, go, grad_input=True):
        timed.append(grad_input)
        return real(plan, cache, x, w, go, grad_input)

    monkeypatch.setattr(autotune, '_time_step', recording)
    previous = autotune.enable(True)
    try:
        first, later = (make(nn.SpatialConvolutionFFT, geometry, np.float64, rng=rng)
                        for _ in range(2))
        first[0].gradInputNeeded = False
        for layer, x in (first, later):
            layer.forward(x)
    finally:
        autotune.enable(previous)
    key = ('numpy', '<f8', geometry)
    assert set(autotune.tuned()) == {key + (False,), key + (True,)}
    n = timed.count(False)  # how many rounds each geometry took depends on its timings
    assert n and timed == [False] * n + [True] * (len(timed) - n) and timed[-1]
    plan = plan_choice.make_plan('dft', np, np.float64, *geometry)
    x, w, go = (rng.standard_normal(s) for s in ((2, 2, 20, 19), (3, 2, 3, 3), (2, 3, 20, 19)))

    def no_input_gradient(*args, **kwargs):
        raise AssertionError('a step without the input gradient made it')

    monkeypatch.setattr(conv_fft, 'backward_pass', no_input_gradient)
    monkeypatch.setattr(plan, 'grad_input', no_input_gradient)
    cache = nn.FFTCache()
    assert real(plan, cache, x, w, go, False) > 0
    assert cache.stats()['forward'] == {'input': 1, 'weight': 1, 'gradOutput': 1}
    layer = nn.SpatialConvolutionFFT(*_ctor(geometry), strategy='dft').double()
    layer.weight[...] = w
    layer.gradInputNeeded = False
    layer.forward(x)
    assert layer.backward(x, go) is None
    gw, _ = conv_fft.weight_pass(plan, cache, x, go)
    assert rel_err(gw, layer.gradWeight) < 1e-10  # from the timed step's spectra
    assert cache.stats()['forward'] == {'input': 1, 'weight': 1, 'gradOutput': 1}


def test_choices_say_which_steps_were_timed(monkeypatch):
    """A checkpoint's rows name whether the steps timed made the input gradient; rows of
    checkpoints written before (no such field) serve both kinds of layer of their geometry,
    so that a run resumed from one keeps its plans."""
    monkeypatch.setattr(autotune, '_tuned', {})
    geometry = [2, 2, 3, 20, 19, 3, 3, 1, 1, 1, 1]
    autotune.adopt([['numpy', '<f4', geometry, 'fft', False],
                    ['numpy', '<f8', geometry, 'tiled']])
    assert autotune.choices() == [['numpy', '<f4', geometry, 'fft', False],
                                  ['numpy', '<f8', geometry, 'tiled', True],
                                  ['numpy', '<f8', geometry, 'tiled', False]]
    previous = autotune.enable(True)
    try:
        for grad_input in (True, False):
            assert autotune.fastest(np, np.float64, tuple(geometry),
                                    grad_input=grad_input) == 'tiled'
        assert autotune.fastest(np, np.float32, tuple(geometry), grad_input=False) == 'fft'
    finally:
        autotune.enable(previous)
    for bad in (['numpy', '<f4', geometry, 'fft', 'yes'], ['numpy', '<f4', geometry],
                'numpy'):
        with pytest.raises(ValueError, match='not an autotuning choice'):
            autotune.adopt([bad])


def test_autotune_times_the_close_candidates_again(monkeypatch):
    """After the first rounds, the candidates within 20% of the best take more turns, the
    others none, until one leads by more than that or the extra rounds run out: a plan
    slower by chance in three rounds can still win."""
    monkeypatch.setattr(plan_choice, 'PLANS', ('dft', 'fft', 'tiled'))
    geometry = (2, 2, 3, 20, 19, 3, 3, 1, 1, 1, 1)
    for fft_times, winner, calls in (
            ([1.15] * 5 + [0.8], 'fft', {'dft': 6, 'fft': 6, 'tiled': 4}),  # wins in round 5
            ([1.15] * 20, 'dft', {'dft': 10, 'fft': 10, 'tiled': 4})):      # close to the end
        monkeypatch.setattr(autotune, '_tuned', {})
        script = {'dft': iter([1.0] * 20), 'fft': iter(fft_times), 'tiled': iter([2.0] * 20)}
        made = {}

        def scripted(plan, *args):
            made[plan.kind] = made.get(plan.kind, 0) + 1
            return next(script[plan.kind])

        monkeypatch.setattr(autotune, '_time_step', scripted)
        assert autotune.fastest(np, np.float32, geometry, rounds=3, extra=6) == winner
        assert made == calls
        (times,) = autotune.tuned().values()
        assert times == {'dft': 1.0, 'fft': min(fft_times), 'tiled': 2.0}


def test_autotune_skips_plans_that_do_not_fit(monkeypatch):
    """A candidate that runs out of memory is skipped (as cuDNN's benchmark mode skips
    algorithms whose workspace does not fit); if none fits, the error says so."""
    monkeypatch.setattr(autotune, '_tuned', {})
    real = autotune._time_step

    def only_dft_fits(plan, *args):
        if plan.kind != 'dft':
            raise MemoryError('Out of memory')
        return real(plan, *args)

    monkeypatch.setattr(autotune, '_time_step', only_dft_fits)
    geometry = (2, 2, 3, 20, 19, 3, 3, 1, 1, 1, 1)
    assert autotune.fastest(np, np.float32, geometry) == 'dft'
    (times,) = autotune.tuned().values()
    assert times.pop('dft') < float('inf') and set(times.values()) == {float('inf')}
    monkeypatch.setattr(autotune, '_time_step', lambda *a: (_ for _ in ()).throw(MemoryError('x')))
    with pytest.raises(MemoryError, match='no FFT plan fits geometry'):
        autotune.fastest(np, np.float64, geometry)


@pytest.mark.parametrize('before', [True, False])
def test_disabled_turns_autotuning_off_inside_only(before):
    """``autotune.disabled()`` (the shape pass of benchmark.py --model, train.py's memory
    probe): off inside, the previous setting back after, an error inside too."""
    previous = autotune.enable(before)
    try:
        with autotune.disabled():
            assert not autotune.enabled()
        assert autotune.enabled() is before
        with pytest.raises(RuntimeError), autotune.disabled():
            raise RuntimeError('inside')
        assert autotune.enabled() is before
    finally:
        autotune.enable(previous)
