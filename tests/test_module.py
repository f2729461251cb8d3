"""The Module contract, containers, criterions and the errors for bad input (SGD and the
schedules: test_optim.py)."""
import os
import pickle
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from minifft import backend, jacobian, nn

from .helpers import rel_err


def small_net(conv=nn.SpatialConvolutionFFT):
    return nn.Sequential(
        conv(2, 3, 3, 3, 1, 1, 1, 1), nn.SpatialBatchNormalization(3), nn.ReLU(),
        nn.SpatialMaxPooling(2, 2, 2, 2), nn.View(-1), nn.Linear(3 * 3 * 3, 4), nn.Dropout(0.2),
        nn.LogSoftMax())


@pytest.mark.parametrize('layer', [lambda: nn.Linear(4, 3), lambda: nn.SpatialConvolution(2, 3, 3),
                                   lambda: nn.SpatialConvolutionFFT(2, 3, 3),
                                   lambda: nn.BatchNormalization(4)])
def test_acc_grad_parameters_accumulates_and_honours_scale(layer, rng):
    m = layer().double()
    x = rng.standard_normal((3, 4) if isinstance(m, (nn.Linear, nn.BatchNormalization))
                            else (3, 2, 6, 6))
    out = m.forward(x)
    go = rng.standard_normal(out.shape)
    m.zeroGradParameters()
    m.backward(x, go)
    once = [g.copy() for g in m.parameters()[1]]
    m.accGradParameters(x, go, 0.5)
    for g, g1 in zip(m.parameters()[1], once):
        assert rel_err(g, 1.5 * g1) < 1e-12
    m.zeroGradParameters()
    assert all((g == 0).all() for g in m.parameters()[1])


def test_update_parameters(rng):
    m = nn.Linear(3, 2).double()
    w0 = m.weight.copy()
    m.gradWeight[...] = rng.standard_normal(m.gradWeight.shape)
    m.updateParameters(0.1)
    assert rel_err(m.weight, w0 - 0.1 * m.gradWeight) < 1e-15


def test_sequential_backward_equals_chain_of_children(rng):
    net = small_net().double().evaluate()
    x = rng.standard_normal((2, 2, 6, 6))
    out = net.forward(x)
    go = rng.standard_normal(out.shape)
    net.zeroGradParameters()
    gi = net.backward(x, go).copy()
    grads = [g.copy() for g in net.parameters()[1]]
    net.zeroGradParameters()
    inputs = [x] + [m.output for m in net.modules[:-1]]
    g = go
    for m, inp in zip(reversed(net.modules), reversed(inputs)):
        new_g = m.updateGradInput(inp, g)
        m.accGradParameters(inp, g, 1)
        g = new_g
    assert rel_err(g, gi) < 1e-14
    for a, b in zip(net.parameters()[1], grads):
        assert rel_err(a, b) < 1e-14
    # updateGradInput + accGradParameters on the container give the same as backward
    net.zeroGradParameters()
    assert rel_err(net.updateGradInput(x, go), gi) < 1e-14
    net.accGradParameters(x, go)
    for a, b in zip(net.parameters()[1], grads):
        assert rel_err(a, b) < 1e-14


def test_sequential_gradients_by_finite_differences(rng):
    net = small_net(nn.SpatialConvolution).evaluate()
    x = rng.standard_normal((2, 2, 6, 6))
    errors = jacobian.check(net, x)
    assert max(errors.values()) < 1e-6, errors
    assert set(errors) == {'input', '0.weight', '0.bias', '1.weight', '1.bias', '5.weight',
                           '5.bias'}


def test_sequential_names_the_failing_child():
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(5, 2))
    with pytest.raises(ValueError, match=r'module \(2\) nn.Linear.*feature count must be 5'):
        net.forward(np.ones((2, 4), np.float32))


def test_concat(rng):
    c = nn.Concat(nn.SpatialConvolution(2, 3, 3, 3, 1, 1, 1, 1),
                  nn.SpatialConvolutionFFT(2, 1, 1)).double()
    x = rng.standard_normal((2, 2, 5, 5))
    y = c.forward(x)
    assert y.shape == (2, 4, 5, 5)
    assert rel_err(y[:, :3], c.get(0).forward(x)) < 1e-14
    errors = jacobian.check(c, x)
    assert max(errors.values()) < 1e-6, errors


def test_concat_names_outputs_that_cannot_be_joined():
    """NumPy's 'all the input array dimensions except for the concatenation axis must match
    exactly' and 'axis 5 is out of bounds' named neither the container nor the shapes."""
    x = np.zeros((2, 3, 8, 8), np.float32)
    c = nn.Concat(nn.SpatialConvolution(3, 4, 3, 3, 1, 1, 1, 1), nn.SpatialConvolution(3, 2, 5))
    with pytest.raises(ValueError, match=re.escape(
            "nn.Concat: the children's outputs [(2, 4, 8, 8), (2, 2, 4, 4)] differ outside "
            'dimension 1')):
        c.forward(x)
    with pytest.raises(ValueError, match=re.escape(
            "nn.Concat: dimension 4 is out of range for the children's 4-D outputs")):
        nn.Concat(nn.ReLU(), nn.ReLU(), dimension=4).forward(x)
    assert nn.Concat(nn.ReLU(), nn.ReLU(), dimension=-1).forward(x).shape == (2, 3, 8, 16)


def test_training_and_evaluate_switch_dropout_and_batchnorm(rng):
    net = small_net()
    x = rng.standard_normal((4, 2, 6, 6)).astype(np.float32)
    net.training()
    assert all(m.train for m in net.listModules())
    a, b = net.forward(x).copy(), net.forward(x).copy()
    assert not np.allclose(a, b)  # dropout draws new masks
    net.evaluate()
    assert not any(m.train for m in net.listModules())
    rm = net.get(1).running_mean.copy()
    a, b = net.forward(x).copy(), net.forward(x).copy()
    assert np.array_equal(a, b)
    assert np.array_equal(rm, net.get(1).running_mean)  # running stats frozen


def test_clear_state_and_pickle_round_trip(rng):
    net = small_net().evaluate()
    x = rng.standard_normal((2, 2, 6, 6)).astype(np.float32)
    y = net.forward(x).copy()
    net.backward(x, np.ones_like(y))
    assert net.get(0).fft_cache.nbytes() > 0
    net.clearState()
    assert net.get(0).fft_cache.nbytes() == 0
    assert all(m.output is None and m.gradInput is None for m in net.listModules())
    clone = pickle.loads(pickle.dumps(net))
    assert np.array_equal(clone.forward(x), y)
    # pickling never carries outputs or spectra, even without clearState
    net.forward(x)
    state = pickle.loads(pickle.dumps(net.get(0)))
    assert state.output is None and state.fft_cache.nbytes() == 0


def test_type_converts_and_preserves_shared_arrays():
    a, b = nn.Linear(3, 3), nn.Linear(3, 3)
    b.weight = a.weight  # tied weights
    flat = np.zeros(12, np.float32)
    c = nn.Linear(3, 3)
    c.weight, c.bias = flat[:9].reshape(3, 3), flat[9:]  # views of one buffer
    net = nn.Sequential(a, b, c).double()
    assert a.weight.dtype == np.float64 and b.weight is a.weight
    assert np.shares_memory(c.weight, c.bias) or c.weight.base is c.bias.base
    c.weight[...] = 1
    assert c.weight.base is not None and np.all(c.weight.base[:9] == 1)
    with pytest.raises(ValueError, match='type'):
        net.type('int32')


def test_repr_reads_like_torch():
    text = repr(small_net())
    assert text.startswith('nn.Sequential {')
    assert '[input -> (0) -> (1)' in text
    assert '(0): nn.SpatialConvolutionFFT(2 -> 3, 3x3, 1,1, 1,1)' in text
    assert '(5): nn.Linear(27 -> 4)' in text


# -- criterions -------------------------------------------------------------------------------
def _criterion_grad_check(crit, x, t):
    crit.forward(x, t)
    g = crit.backward(x, t)
    num = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + 1e-6
        p = float(crit.forward(x, t))
        x[i] = old - 1e-6
        m = float(crit.forward(x, t))
        x[i] = old
        num[i] = (p - m) / 2e-6
    assert np.abs(num - g).max() < 1e-7


@pytest.mark.parametrize('size_average', [True, False])
def test_class_nll(size_average, rng):
    x = rng.standard_normal((5, 4))
    t = rng.integers(0, 4, 5)
    w = rng.random(4) + 0.5
    crit = nn.ClassNLLCriterion(w, sizeAverage=size_average)
    ref = -sum(w[t[i]] * x[i, t[i]] for i in range(5))
    if size_average:
        ref /= w[t].sum()
    assert abs(float(crit.forward(x, t)) - ref) < 1e-12
    _criterion_grad_check(crit, x, t)
    assert abs(float(nn.ClassNLLCriterion().forward(x, t)) + x[np.arange(5), t].mean()) < 1e-12


def test_cross_entropy(rng, xp):
    x = rng.standard_normal((6, 5)) * 4
    t = rng.integers(0, 5, 6)
    lse = np.log(np.exp(x).sum(axis=1))
    ref = (lse - x[np.arange(6), t]).mean()
    assert abs(float(nn.CrossEntropyCriterion().forward(xp.asarray(x), xp.asarray(t))) - ref) < 1e-12
    _criterion_grad_check(nn.CrossEntropyCriterion(), x, t)


def test_mse(rng):
    x, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    assert abs(float(nn.MSECriterion().forward(x, t)) - ((x - t) ** 2).mean()) < 1e-12
    assert abs(float(nn.MSECriterion(False).forward(x, t)) - ((x - t) ** 2).sum()) < 1e-12
    _criterion_grad_check(nn.MSECriterion(), x, t)


def test_criterion_bad_targets():
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r'targets must be in \[0, 4\)'):
        nn.ClassNLLCriterion().forward(x, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match='CrossEntropyCriterion: 2 targets for a batch of 3'):
        nn.CrossEntropyCriterion().forward(x, np.array([0, 1]))
    with pytest.raises(TypeError, match='CrossEntropyCriterion: target must hold integer'):
        nn.CrossEntropyCriterion().forward(x, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r'CrossEntropyCriterion: input must be \(B, C\)'):
        nn.CrossEntropyCriterion().forward(np.zeros((2, 3, 4), np.float32), np.array([0, 1]))
    with pytest.raises(TypeError, match='integer class indices'):
        nn.ClassNLLCriterion().forward(x, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match='NaN or Inf'):
        nn.MSECriterion().forward(np.array([np.nan]), np.array([0.0]))
    with pytest.raises(ValueError, match='3 class weights for 4 classes'):
        nn.ClassNLLCriterion(weights=[1, 2, 3]).forward(x, np.array([0, 1, 2]))


@pytest.mark.parametrize('make, target', [
    (nn.CrossEntropyCriterion, np.zeros(0, np.int64)),
    (nn.ClassNLLCriterion, np.zeros(0, np.int64)),
    (nn.MSECriterion, np.zeros((0, 4), np.float32))])
def test_criterion_on_an_empty_batch(make, target):
    """An average over no samples is named as such (it was NumPy's 'zero-size array to
    reduction operation minimum' or a ZeroDivisionError); a sum over none is 0."""
    x = np.zeros((0, 4), np.float32)
    for op in ('forward', 'backward'):
        with pytest.raises(ValueError, match=re.escape(
                f'nn.{make.__name__}: the input is empty (shape (0, 4)); an average loss')):
            getattr(make(), op)(x, target)
    summed = make(sizeAverage=False)
    assert float(summed.forward(x, target)) == 0
    assert summed.backward(x, target).shape == (0, 4)


@pytest.mark.gpu
def test_criterion_bad_targets_on_gpu_poison_without_reading_back():
    """On the GPU the range check would stop the host every step: a bad target makes the loss
    and every gradient NaN instead, and good targets give the CPU's answers."""
    if not backend.gpu_available():
        pytest.skip(backend.gpu_unavailable_reason())
    cp = backend.xp_for('gpu')
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    for crit in (nn.ClassNLLCriterion(), nn.CrossEntropyCriterion()):
        bad = cp.asarray([0, 4, 1])
        assert np.isnan(float(crit.forward(cp.asarray(x), bad)))
        assert bool(cp.isnan(crit.backward(cp.asarray(x), bad)).all())
        good = np.array([0, 3, 1])
        assert abs(float(crit.forward(cp.asarray(x), cp.asarray(good))) -
                   float(crit.forward(x, good))) < 1e-6


# -- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize('conv', [nn.SpatialConvolution, nn.SpatialConvolutionFFT])
def test_conv_bad_input(conv):
    layer = conv(3, 4, 5)
    with pytest.raises(ValueError, match=r'channel count must be 3.*\(2, 2, 9, 9\)'):
        layer.forward(np.zeros((2, 2, 9, 9), np.float32))
    with pytest.raises(ValueError, match=r'must be \(S, 3, H, W\) or \(3, H, W\)'):
        layer.forward(np.zeros((9, 9), np.float32))
    with pytest.raises(ValueError, match='smaller than the 5x5 kernel'):
        layer.forward(np.zeros((1, 3, 4, 9), np.float32))
    with pytest.raises(TypeError, match='float32 or float64'):
        layer.forward(np.zeros((1, 3, 9, 9), np.int64))
    with pytest.raises(TypeError, match='parameters are float32'):
        layer.forward(np.zeros((1, 3, 9, 9), np.float64))
    with pytest.raises(ValueError, match='NaN or Inf'):
        layer.forward(np.full((1, 3, 9, 9), np.inf, np.float32))
    with pytest.raises(TypeError, match='input must be a NumPy or CuPy array, got list'):
        layer.forward([[[0.0] * 9] * 9] * 3)
    x = np.zeros((2, 3, 9, 9), np.float32)
    with pytest.raises(TypeError, match='gradOutput must be a NumPy or CuPy array, got NoneType'):
        layer.updateGradInput(x, None)
    with pytest.raises(TypeError, match='gradOutput is float64 but the parameters are float32'):
        layer.updateGradInput(x, np.zeros((2, 4, 5, 5)))  # no forward yet
    layer.forward(x)
    with pytest.raises(ValueError, match=r'gradOutput must have shape \(2, 4, 5, 5\)'):
        layer.backward(x, np.zeros((3, 4, 5, 5), np.float32))


@pytest.mark.parametrize('layer, shape', [
    (nn.SpatialConvolution(3, 4, 3), (2, 3, 6, 6)),
    (nn.SpatialConvolutionFFT(3, 4, 3), (2, 3, 6, 6)),
    (nn.Linear(5, 2), (2, 5)),
    (nn.SpatialMaxPooling(2, 2), (2, 3, 6, 6)),
    (nn.ReLU(), (2, 3)),
    (nn.SpatialBatchNormalization(3), (2, 3, 6, 6)),
    (nn.View(-1), (2, 3, 2)),
    (nn.Dropout(0.5), (2, 3))])
def test_grad_output_of_another_dtype_is_named(layer, shape):
    """A float64 gradOutput for a float32 output: the FFT layer failed deep in its transforms
    ('could not broadcast input array from shape (8,5,8) into shape (8,5,4)'), the others
    quietly made float64 gradients."""
    x = np.ones(shape, np.float32)
    out = layer.forward(x)
    message = 'gradOutput is float64 but the output is float32; convert the gradOutput'
    for op in ('backward', 'updateGradInput'):
        with pytest.raises(TypeError, match=re.escape(f'{layer.name()}: {message}')):
            getattr(layer, op)(x, np.ones(out.shape))


@pytest.mark.parametrize('make, message', [
    (lambda: nn.SpatialConvolution(3, 4, 2.5), 'Convolution: kW must be a whole number >= 1'),
    (lambda: nn.SpatialConvolutionFFT(3, 4, 3, 3, 1, 1, -1), 'padW must be a whole number >= 0'),
    (lambda: nn.SpatialConvolutionFFT(0, 4, 3), 'nInputPlane must be a whole number >= 1, got 0'),
    (lambda: nn.SpatialMaxPooling(0, 0), 'MaxPooling: kW must be a whole number >= 1, got 0'),
    (lambda: nn.SpatialAveragePooling(2, 2, 0, 0), 'dW must be a whole number >= 1, got 0'),
    (lambda: nn.Linear(0, 3), 'Linear: inputSize must be a whole number >= 1, got 0'),
    (lambda: nn.Linear(4, '3'), "outputSize must be a whole number >= 1, got '3'"),
    (lambda: nn.SpatialBatchNormalization(0), 'nOutput must be a whole number >= 1, got 0')])
def test_bad_sizes_in_constructors(make, message):
    """Sizes are whole numbers in range, said at construction: a 2.5 kernel was truncated to
    2 silently, Linear(0, 3) divided by zero, and pooling or batch normalisation of size 0
    were accepted until an obscure failure later."""
    with pytest.raises(ValueError, match=re.escape(message)):
        make()
    assert nn.SpatialConvolutionFFT(3, 4, 3.0).kW == 3  # a whole float is a whole number


@pytest.mark.parametrize('call, error, message', [
    (lambda: nn.Sequential(nn.ReLU()).get(3), IndexError,
     'nn.Sequential.get: no module 3; it holds 1, numbered from 0'),
    (lambda: nn.Linear(2, 2).updateParameters(float('nan')), ValueError,
     'nn.Linear.updateParameters: learningRate must be a finite number, got nan'),
    (lambda: nn.SpatialConvolutionFFT(2, 2, 3).reset(-1), ValueError,
     'nn.SpatialConvolutionFFT.reset: stdv must be a finite number >= 0, got -1'),
    (lambda: nn.Linear(2, 2).reset(float('inf')), ValueError,
     'nn.Linear.reset: stdv must be a finite number >= 0, got inf'),
    (lambda: nn.SpatialBatchNormalization(3, momentum=2), ValueError,
     'momentum one in [0, 1], got eps=1e-05, momentum=2'),
    (lambda: nn.View('a', -1), ValueError,
     "nn.View: sizes ('a', -1) may hold one -1 and otherwise positive whole numbers")])
def test_bad_arguments_to_module_methods(call, error, message):
    """Each was an error from NumPy or Python's list naming nothing of ours (or, for the NaN
    learning rate, no error and NaN weights)."""
    with pytest.raises(error, match=re.escape(message)):
        call()


@pytest.mark.parametrize('conv', [nn.SpatialConvolution, nn.SpatialConvolutionFFT])
def test_conv_weight_assigned_with_another_shape(conv):
    """A weight of another shape assigned by hand failed deep in the products (FFT layer: a
    matmul's core dimension mismatch)."""
    layer = conv(3, 4, 3)
    layer.weight = np.zeros((4, 3, 5, 5), np.float32)
    with pytest.raises(ValueError, match=re.escape(
            f'{layer.name()}: weight has shape (4, 3, 5, 5), the layer (3 -> 4, 3x3) needs '
            '(4, 3, 3, 3)')):
        layer.forward(np.zeros((1, 3, 8, 8), np.float32))


def test_reset_draws_weight_then_bias_as_before():
    """The one initialisation helper draws in the order the layers did, so that seeded
    models start where they used to."""
    from minifft import random
    random.manualSeed(3)
    layer = nn.Linear(5, 4)
    random.manualSeed(3)
    stdv = 1 / np.sqrt(5)
    w = random.uniform(-stdv, stdv, (4, 5), np.float32)
    b = random.uniform(-stdv, stdv, (4,), np.float32)
    random.manualSeed(3)
    layer.reset()
    assert np.array_equal(layer.weight, w) and np.array_equal(layer.bias, b)


@pytest.mark.parametrize('make', [nn.ReLU, nn.Tanh, nn.Sigmoid, lambda: nn.Dropout(0.5),
                                  lambda: nn.View(-1), lambda: nn.Reshape(4),
                                  lambda: nn.SpatialMaxPooling(2, 2),
                                  lambda: nn.Sequential().add(nn.ReLU())])
def test_raw_operations_name_a_list_given_as_input_or_gradOutput(make):
    """Torch7's own calls, without forward's and backward's checks."""
    layer = make()
    name = layer.name() if not isinstance(layer, nn.Sequential) else 'nn.ReLU'
    x = np.ones((2, 4, 2, 2), np.float32) if isinstance(layer, nn.SpatialMaxPooling) else \
        np.ones((2, 4), np.float32)
    with pytest.raises(TypeError, match=f'{name}: input must be a NumPy or CuPy array, got list'):
        layer.updateOutput(x.tolist())
    y = layer.updateOutput(x)
    with pytest.raises(TypeError, match=f'{name}: gradOutput must be a NumPy or CuPy array, '
                                        'got list'):
        layer.updateGradInput(x, y.tolist())


def test_linear_and_pooling_bad_input():
    with pytest.raises(ValueError, match=r'nn.Linear: input feature count must be 4'):
        nn.Linear(4, 2).forward(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match='smaller than the 3x3 window'):
        nn.SpatialMaxPooling(3, 3).forward(np.zeros((1, 1, 2, 2), np.float32))
    with pytest.raises(TypeError, match='NumPy or CuPy array'):
        nn.ReLU().forward([1.0, 2.0])
    with pytest.raises(ValueError, match='padding'):
        nn.SpatialMaxPooling(2, 2, 1, 1, 2, 2)


def test_device_choice():
    assert backend.resolve_device('cpu') == 'cpu'
    assert backend.resolve_device('auto') in ('cpu', 'gpu')
    with pytest.raises(ValueError, match='device must be one of'):
        backend.resolve_device('tpu')
    if not backend.gpu_available():
        with pytest.raises(RuntimeError, match='--device gpu was asked for'):
            backend.resolve_device('gpu')


def test_first_layer_can_skip_its_input_gradient(rng):
    net = small_net().double().evaluate()
    x = rng.standard_normal((2, 2, 6, 6))
    go = np.ones((2, 4))
    net.forward(x)
    net.zeroGradParameters()
    net.backward(x, go)
    grads = [g.copy() for g in net.parameters()[1]]
    net.get(0).gradInputNeeded = False
    net.zeroGradParameters()
    assert net.backward(x, go) is None and net.get(0).gradInput is None
    assert all(np.array_equal(a, b) for a, b in zip(net.parameters()[1], grads))


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc malloc tuning')
def test_keep_host_memory_stops_page_faults_for_repeated_large_arrays():
    """In a fresh process (the setting is process-wide): after keep_host_memory, an array of
    64 MiB allocated again after being freed reuses the same pages instead of faulting in new
    ones. (How many faults a fresh array costs depends on whether the kernel gives NumPy huge
    pages: 1,600 for three here, or a few dozen.)"""
    code = textwrap.dedent('''
        import resource, sys
        import numpy as np
        from minifft import backend
        def faults(n=3):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(n):
                np.ones(16 << 20, np.float32)  # 64 MiB, written, then freed
            return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        default = faults()
        assert backend.keep_host_memory() is True
        faults(1)  # the heap grows once
        kept = faults()
        print(default, kept)
        sys.exit(0 if default >= 3 and kept <= default // 10 else 1)  # huge pages: fewer faults
    ''')
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=root,
                       env={**os.environ, 'PYTHONPATH': root})
    assert r.returncode == 0, r.stdout + r.stderr
