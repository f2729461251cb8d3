"""SpatialConvolutionFFT's FFT buffer cache (fft_cache.py): each operand transformed once a
step and its spectrum reused across the three operations, changes (new arrays, in-place
changes, the weight's updates) seen under either policy, and the memory it holds."""
import numpy as np
import pytest

from minifft import nn

from .helpers import conv_grads_reference, conv_reference, rel_err
from .test_conv import CASES, FFTS, _ctor, make, run_step


def _counts(layer):
    s = layer.fft_cache.stats()
    return s['forward'], s['inverse']


@pytest.mark.parametrize('conv', FFTS)
def test_one_step_transforms_each_operand_once(conv, rng, device):
    layer, x = make(conv, CASES[1], np.float32, device, rng)
    run_step(layer, x, rng)
    forward, inverse = _counts(layer)
    assert forward == {'input': 1, 'weight': 1, 'gradOutput': 1}
    assert inverse == {'output': 1, 'gradInput': 1, 'gradWeight': 1}


def test_new_input_retransforms_input_not_weight(rng):
    layer, x = make(nn.SpatialConvolutionFFT, CASES[0], np.float32, rng=rng)
    layer.forward(x)
    layer.forward(x + 1)
    assert _counts(layer)[0] == {'input': 2, 'weight': 1, 'gradOutput': 0}
    layer.forward((x + 1).copy())  # a different array with the same contents: reused
    assert _counts(layer)[0]['input'] == 2


def test_weight_changes_are_seen(rng):
    layer, x = make(nn.SpatialConvolutionFFT, CASES[0], np.float32, rng=rng)
    direct = nn.SpatialConvolution(*_ctor(CASES[0]))
    run_step(layer, x, rng)
    layer.updateParameters(0.1)
    direct.weight, direct.bias = layer.weight.copy(), layer.bias.copy()
    assert rel_err(layer.forward(x), direct.forward(x)) < 1e-5
    assert _counts(layer)[0]['weight'] == 2
    layer.weight[0, 0, 0, 0] += 1.0  # the user's own in-place change
    direct.weight[0, 0, 0, 0] += 1.0
    assert rel_err(layer.forward(x), direct.forward(x)) < 1e-5
    layer.weight = layer.weight * 0.5  # the user's own assignment
    direct.weight = direct.weight * 0.5
    assert rel_err(layer.forward(x), direct.forward(x)) < 1e-5
    assert _counts(layer)[0]['weight'] == 4


def test_in_place_input_change_is_detected(rng):
    layer, x = make(nn.SpatialConvolutionFFT, CASES[0], np.float64, rng=rng)
    out = layer.forward(x)
    go = rng.standard_normal(out.shape)
    x[0, 0, 0, 0] += 1.0  # mutated between forward and accGradParameters
    x[1] = x[1][:, ::-1].copy()  # a permutation keeps the sum: still seen
    layer.zeroGradParameters()
    layer.accGradParameters(x, go)
    _, gw_ref, _ = conv_grads_reference(x, layer.weight, go)
    assert rel_err(layer.gradWeight, gw_ref) < 1e-10
    assert _counts(layer)[0]['input'] == 2


@pytest.mark.parametrize('changed', ['input', 'weight', 'gradOutput'])
def test_in_place_changes_before_backward_are_seen(changed, rng):
    """A kept spectrum that backward checks while its other transforms run (FFTCache.get_all)
    and finds stale is made anew from the array as it is now: the gradients are those of the
    changed array, whichever it was, and it alone is transformed twice."""
    layer, x = make(nn.SpatialConvolutionFFT, CASES[1], np.float64, rng=rng)
    go = rng.standard_normal(layer.forward(x).shape)
    if changed == 'gradOutput':   # kept by updateGradInput, checked by accGradParameters
        layer.updateGradInput(x, go)
    {'input': x, 'weight': layer.weight, 'gradOutput': go}[changed][0, 0, 0, 0] += 1.0
    layer.zeroGradParameters()
    if changed == 'gradOutput':
        layer.accGradParameters(x, go)
    else:
        layer.backward(x, go)
        gi_ref, _, _ = conv_grads_reference(x, layer.weight, go, (2, 2), (1, 1))
        assert rel_err(layer.gradInput, gi_ref) < 1e-10
    _, gw_ref, gb_ref = conv_grads_reference(x, layer.weight, go, (2, 2), (1, 1))
    assert rel_err(layer.gradWeight, gw_ref) < 1e-10 and rel_err(layer.gradBias, gb_ref) < 1e-10
    forward = _counts(layer)[0]
    assert forward == {kind: 1 + (kind == changed) for kind in ('input', 'weight', 'gradOutput')}


@pytest.mark.parametrize('conv', [nn.SpatialConvolutionFFT, nn.SpatialConvolution])
def test_identity_policy_used_on_the_gpu(conv, rng):
    """The cache policy used for CuPy arrays, run on NumPy: forward always transforms anew
    (in-place changes of input or weight between steps are seen), backward reuses forward's
    spectra for the same arrays only."""
    layer, x = make(conv, CASES[1], np.float64, rng=rng)
    cache = nn.FFTCache('identity')
    if conv is nn.SpatialConvolutionFFT:
        layer.fft_cache = cache
    else:
        layer.columns_cache = cache
    for step in range(3):
        out, go, gi = run_step(layer, x, rng)
        d, pad = (CASES[1][7], CASES[1][8]), (CASES[1][9], CASES[1][10])
        assert rel_err(out, conv_reference(x, layer.weight, layer.bias, d, pad)) < 1e-10
        gi_ref, gw_ref, _ = conv_grads_reference(x, layer.weight, go, d, pad)
        assert rel_err(gi, gi_ref) < 1e-10 and rel_err(layer.gradWeight, gw_ref) < 1e-10
        x *= -0.5  # in place, as a reused input buffer would be
        layer.weight[0, 0, 0, 0] += 1.0
    stats = cache.stats()
    if conv is nn.SpatialConvolutionFFT:
        assert stats['forward'] == {'input': 3, 'weight': 3, 'gradOutput': 3}
        # backward makes both gradients from one lookup of gradOutput's spectrum
        assert stats['reused'] == {'input': 3, 'weight': 3, 'gradOutput': 0}
    else:
        assert stats['forward']['columns'] == 3 and stats['reused']['columns'] == 3
    layer.zeroGradParameters()
    other = x.copy()  # backward with another array than forward's: transformed, not reused
    other[0] += 1.0
    layer.accGradParameters(other, go)
    _, gw_ref, _ = conv_grads_reference(other, layer.weight, go, d, pad)
    assert rel_err(layer.gradWeight, gw_ref) < 1e-10
    with pytest.raises(ValueError, match='policy must be one of'):
        nn.FFTCache('sometimes')


def test_acc_grad_parameters_alone(rng):
    layer, x = make(nn.SpatialConvolutionFFT, CASES[3], np.float64, rng=rng)
    out = layer.forward(x)
    go = rng.standard_normal(out.shape)
    layer.zeroGradParameters()
    layer.accGradParameters(x, go)  # no updateGradInput first
    _, gw_ref, gb_ref = conv_grads_reference(x, layer.weight, go, (3, 2), (2, 1))
    assert rel_err(layer.gradWeight, gw_ref) < 1e-10 and rel_err(layer.gradBias, gb_ref) < 1e-10
    layer.updateGradInput(x, go)  # and the gradOutput spectrum is then reused
    assert layer.fft_cache.stats()['reused']['gradOutput'] == 1


@pytest.mark.parametrize('strategy', ['dft', 'fft', 'tiled'])
def test_memory_against_paper_formula(strategy, rng):
    """After a step the layer holds its three spectra whole, the paper's figure (for tiles:
    once per tile of the maps, which the paper's figure at the maps' size n bounds), and a
    workspace that holds no output spectrum: that one is written into the stale gradOutput
    spectrum's memory (FFTCache.take). The whole within 2x of the paper's figure."""
    S, f, fo, n, k = 4, 3, 5, 17, 5
    layer = nn.SpatialConvolutionFFT(f, fo, k, strategy=strategy)
    x = rng.standard_normal((S, f, n, n)).astype(np.float32)
    run_step(layer, x, rng)
    plan = layer.plan(x)
    N, T = layer.fft_sizes(x)[0], plan.ah.tiles * plan.aw.tiles
    assert (N, T) == {'dft': (17, 1), 'fft': (18, 1), 'tiled': (11, 2)}[strategy]
    F = plan.NH * plan.aw.Q
    held = layer.fft_cache.nbytes()
    assert held == 8 * F * (T * S * f + T * S * fo + f * fo)   # all three spectra, whole
    paper = 4 * N * (N + 1) * (S * f + S * fo + f * fo)
    if T == 1:
        assert paper / 2 <= held <= paper * (N + 2) / (N + 1)
    else:
        paper = 4 * n * (n + 1) * (S * f + S * fo + f * fo)
    # the workspace: the input gradient's products and the weight gradient's kH rows of taps
    assert plan.scratch_nbytes() == 8 * (F * T * S * f + k * plan.aw.Q * f * fo)
    assert layer.fft_nbytes() == held + plan.scratch_nbytes() <= 2 * paper
    layer.clearState()
    assert layer.fft_cache.nbytes() == 0 and layer.fft_nbytes() == 0


@pytest.mark.parametrize('policy', ['fingerprint', 'identity'])
def test_forward_between_the_backward_operations(policy, rng):
    """A forward writes its output's spectrum into the memory of the kept gradOutput
    spectrum, which it drops: accGradParameters of an earlier step's gradOutput after it
    transforms that gradOutput anew, under either policy."""
    layer, x = make(nn.SpatialConvolutionFFT, CASES[1], np.float64, rng=rng)
    layer.fft_cache = nn.FFTCache(policy)
    go = rng.standard_normal(layer.forward(x).shape)
    layer.updateGradInput(x, go)
    layer.forward(rng.standard_normal(x.shape))
    layer.zeroGradParameters()
    layer.accGradParameters(x, go)
    _, gw_ref, gb_ref = conv_grads_reference(x, layer.weight, go, (2, 2), (1, 1))
    assert rel_err(layer.gradWeight, gw_ref) < 1e-10 and rel_err(layer.gradBias, gb_ref) < 1e-10
    assert layer.fft_cache.stats()['forward']['gradOutput'] == 2


def test_device_move_drops_cache(rng):
    layer, x = make(nn.SpatialConvolutionFFT, CASES[0], np.float32, rng=rng)
    layer.forward(x)
    assert layer.fft_cache.nbytes() > 0
    layer.double()
    assert layer.fft_cache.nbytes() == 0
