"""SpatialConvolution and SpatialConvolutionFFT: against a naive float64 loop, against each
other, by finite differences, against PyTorch where installed; the FFT plans' parts (the FFT
cache's behaviour: test_fft_cache.py)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minifft import backend, jacobian, nn

from .helpers import conv_grads_reference, conv_reference, rel_err

CASES = [  # S, f, f', H, W, kH, kW, dH, dW, padH, padW
    (2, 3, 4, 9, 8, 3, 2, 1, 1, 0, 0),
    (2, 2, 3, 10, 11, 4, 3, 2, 2, 1, 1),
    (1, 3, 2, 7, 7, 7, 7, 1, 1, 0, 0),
    (3, 2, 2, 13, 9, 3, 5, 3, 2, 2, 1),
    (2, 4, 5, 12, 12, 5, 5, 1, 1, 2, 2),
    (1, 1, 1, 6, 5, 1, 1, 2, 1, 0, 3),
    (2, 10, 3, 6, 6, 3, 3, 1, 1, 1, 1),  # more input planes than fft_plans._FEW_PLANES
]


def fft_with(strategy):
    def make_layer(*args):
        return nn.SpatialConvolutionFFT(*args, strategy=strategy)
    make_layer.__name__ = f'FFT_{strategy}'
    return make_layer


CONVS = [nn.SpatialConvolution, fft_with('dft'), fft_with('fft')]
FFTS = [fft_with('dft'), fft_with('fft')]


def make(conv, case, dtype, device='cpu', rng=None):
    S, f, fo, H, W, kH, kW, dH, dW, pH, pW = case
    layer = conv(f, fo, kW, kH, dW, dH, pW, pH).type(dtype).type(device)
    x = rng.standard_normal((S, f, H, W)).astype(dtype)
    return layer, backend.xp_for(device).asarray(x)


def run_step(layer, x, rng):
    out = layer.forward(x)
    go = backend.get_array_module(x).asarray(rng.standard_normal(out.shape).astype(x.dtype))
    layer.zeroGradParameters()
    gi = layer.backward(x, go)
    return out, go, gi


@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('conv', CONVS)
@pytest.mark.parametrize('dtype, tol', [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_against_naive_loop(conv, case, dtype, tol, rng, device):
    layer, x = make(conv, case, dtype, device, rng)
    d, pad = (case[7], case[8]), (case[9], case[10])
    out, go, gi = run_step(layer, x, rng)
    w, b = backend.asnumpy(layer.weight), backend.asnumpy(layer.bias)
    x_, go_ = backend.asnumpy(x), backend.asnumpy(go)
    assert out.dtype == dtype and gi.dtype == dtype and layer.gradWeight.dtype == dtype
    assert rel_err(out, conv_reference(x_, w, b, d, pad)) < tol
    gi_ref, gw_ref, gb_ref = conv_grads_reference(x_, w, go_, d, pad)
    assert rel_err(gi, gi_ref) < tol
    assert rel_err(layer.gradWeight, gw_ref) < tol
    assert rel_err(layer.gradBias, gb_ref) < tol


@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('strategy', ['dft', 'fft'])
def test_fft_equals_direct(case, strategy, rng):
    direct, x = make(nn.SpatialConvolution, case, np.float64, rng=rng)
    fft = nn.SpatialConvolutionFFT(*_ctor(case), strategy=strategy).double()
    fft.weight[...], fft.bias[...] = direct.weight, direct.bias
    a = run_step(direct, x, rng)
    go = a[1]
    out = fft.forward(x)
    fft.zeroGradParameters()
    gi = fft.backward(x, go)
    assert rel_err(out, a[0]) < 1e-10 and rel_err(gi, a[2]) < 1e-10
    assert rel_err(fft.gradWeight, direct.gradWeight) < 1e-10
    assert rel_err(fft.gradBias, direct.gradBias) < 1e-10


def _ctor(case):
    S, f, fo, H, W, kH, kW, dH, dW, pH, pW = case
    return f, fo, kW, kH, dW, dH, pW, pH


@pytest.mark.parametrize('case', CASES[:4])
@pytest.mark.parametrize('conv', CONVS)
def test_finite_differences(conv, case, rng):
    layer, x = make(conv, case, np.float64, rng=rng)
    errors = jacobian.check(layer, x[:1])
    assert max(errors.values()) < 1e-6, errors


def test_single_sample_and_no_bias(rng):
    for conv in CONVS:
        layer = conv(3, 2, 3, 3, 1, 1, 1, 1).noBias().double()
        x = rng.standard_normal((3, 6, 5))
        y = layer.forward(x)
        assert y.shape == (2, 6, 5) and layer.parameters()[0] == [layer.weight]
        assert rel_err(y, conv_reference(x[None], layer.weight, None, pad=(1, 1))[0]) < 1e-10
        gi = layer.backward(x, np.ones_like(y))
        assert gi.shape == x.shape
        assert 'without bias' in repr(layer)


@settings(max_examples=25, deadline=None)
@given(S=st.integers(1, 3), f=st.integers(1, 3), fo=st.integers(1, 3), kH=st.integers(1, 5),
       kW=st.integers(1, 5), dH=st.integers(1, 3), dW=st.integers(1, 3), pH=st.integers(0, 2),
       pW=st.integers(0, 2), extraH=st.integers(0, 6), extraW=st.integers(0, 6),
       seed=st.integers(0, 2**31))
def test_property_fft_matches_reference(S, f, fo, kH, kW, dH, dW, pH, pW, extraH, extraW, seed):
    rng = np.random.default_rng(seed)
    H, W = max(1, kH - 2 * pH + extraH), max(1, kW - 2 * pW + extraW)
    case = (S, f, fo, H, W, kH, kW, dH, dW, pH, pW)
    layer, x = make(FFTS[seed % len(FFTS)], case, np.float64, rng=rng)
    out, go, gi = run_step(layer, x, rng)
    assert rel_err(out, conv_reference(x, layer.weight, layer.bias, (dH, dW), (pH, pW))) < 1e-10
    gi_ref, gw_ref, gb_ref = conv_grads_reference(x, layer.weight, go, (dH, dW), (pH, pW))
    assert rel_err(gi, gi_ref) < 1e-10
    assert rel_err(layer.gradWeight, gw_ref) < 1e-10
    assert rel_err(layer.gradBias, gb_ref) < 1e-10


@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('conv', FFTS)
def test_against_pytorch(conv, case, rng):
    torch = pytest.importorskip('torch')
    layer, x = make(conv, case, np.float64, rng=rng)
    out, go, gi = run_step(layer, x, rng)
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(layer.weight, requires_grad=True)
    tb = torch.tensor(layer.bias, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, tb, stride=(case[7], case[8]),
                                    padding=(case[9], case[10]))
    ty.backward(torch.tensor(go))
    assert rel_err(out, ty.detach().numpy()) < 1e-10
    assert rel_err(gi, tx.grad.numpy()) < 1e-10
    assert rel_err(layer.gradWeight, tw.grad.numpy()) < 1e-10
    assert rel_err(layer.gradBias, tb.grad.numpy()) < 1e-10


# -- the cache ----------------------------------------------------------------------------------
@pytest.mark.parametrize('strategy', ['dft', 'fft', 'tiled'])
@pytest.mark.parametrize('shape', [(0, 3, 9, 9), (0, 3, 40, 40)])
def test_empty_batch(strategy, shape):
    """An empty batch gives empty results and leaves the gradients alone, as the direct layer
    does (the FFT layer divided by zero cutting no maps into chunks)."""
    fft = nn.SpatialConvolutionFFT(3, 4, 3, 3, 1, 1, 1, 1, strategy=strategy)
    direct = nn.SpatialConvolution(3, 4, 3, 3, 1, 1, 1, 1)
    x = np.zeros(shape, np.float32)
    for layer in (fft, direct):
        out = layer.forward(x)
        assert out.shape == (0, 4) + shape[2:] and out.dtype == np.float32
        layer.gradWeight[...] = 1
        layer.gradBias[...] = 2
        assert layer.backward(x, np.zeros(out.shape, np.float32)).shape == shape
        assert (layer.gradWeight == 1).all() and (layer.gradBias == 2).all()


@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('strategy', ['dft', 'fft', 'tiled'])
def test_backward_is_update_grad_input_then_acc_grad_parameters(strategy, case, rng):
    """The FFT layer's backward makes both gradients in one pass of the plan; it gives what
    the two operations give apart, accumulating ``scale`` times the gradients onto what the
    parameters' gradients held, and with ``gradInputNeeded`` off only the parameters'."""
    together, x = make(fft_with(strategy), case, np.float64, rng=rng)
    apart = nn.SpatialConvolutionFFT(*_ctor(case), strategy=strategy).type(np.float64)
    apart.weight, apart.bias = together.weight.copy(), together.bias.copy()
    go = rng.standard_normal(together.forward(x).shape)
    apart.forward(x)
    for layer in (together, apart):
        layer.gradWeight[...] = 1.0
        layer.gradBias[...] = 2.0
    gi = together.backward(x, go, 0.5)
    assert rel_err(gi, apart.updateGradInput(x, go)) < 1e-12
    apart.accGradParameters(x, go, 0.5)
    assert rel_err(together.gradWeight, apart.gradWeight) < 1e-12
    assert rel_err(together.gradBias, apart.gradBias) < 1e-12
    _, gw_ref, gb_ref = conv_grads_reference(x, together.weight, go, case[7:9], case[9:11])
    assert rel_err(together.gradWeight, 1.0 + 0.5 * gw_ref) < 1e-10
    together.gradInputNeeded = False
    together.zeroGradParameters()
    assert together.backward(x, go) is None and together.gradInput is None
    assert rel_err(together.gradWeight, gw_ref) < 1e-10
    assert rel_err(together.gradBias, gb_ref) < 1e-10


@pytest.mark.parametrize('strategy, case, forward', [('dft', 4, 3), ('tiled', 4, 3),
                                                     ('fft', 4, 2), ('fft', 6, 3)])
def test_a_training_step_hands_work_to_the_threads_six_times(strategy, case, forward, rng,
                                                              monkeypatch):
    """The forward's spectra (input and kernel together), products and read-back; backward's
    gradOutput spectrum (with the kept spectra checked meanwhile), both gradients' products
    and their read-backs: six parallel calls a step (each wakes the helper threads, tens of
    microseconds apiece on the development VM), eight with the two gradients made apart.
    The FFT plan with few input planes takes the forward's products with the read-back
    (FFTPlan.output): five and seven."""
    from minifft import parallel
    layer, x = make(fft_with(strategy), CASES[case], np.float32, rng=rng)
    gos = [rng.standard_normal(layer.forward(x).shape).astype(np.float32) for _ in range(2)]
    calls = []
    each = parallel.each
    monkeypatch.setattr(parallel, 'each', lambda fn, items, blas=False: (
        calls.append(len(items)), each(fn, items, blas))[1])
    for together, go in ((True, gos[0]), (False, gos[1])):
        layer.weight *= 1.01
        calls.clear()
        layer.forward(x)
        if together:
            layer.backward(x, go)
        else:
            layer.updateGradInput(x, go)
            layer.accGradParameters(x, go)
        assert len(calls) == forward + (3 if together else 5), (together, calls)


@pytest.mark.gpu
@pytest.mark.parametrize('strategy', ['dft', 'fft'])
def test_gpu_matches_cpu(strategy, rng):
    if not backend.gpu_available():
        pytest.skip(backend.gpu_unavailable_reason())
    cpu, x = make(nn.SpatialConvolutionFFT, CASES[1], np.float32, rng=rng)
    gpu = nn.SpatialConvolutionFFT(*_ctor(CASES[1]), strategy=strategy)
    gpu.weight, gpu.bias = cpu.weight.copy(), cpu.bias.copy()
    gpu.cuda()
    a = cpu.forward(x)
    b = gpu.forward(backend.to_device(x, 'gpu'))
    assert rel_err(b, a) < 1e-5


@pytest.mark.parametrize('T', [(1, 1), (2, 2), (3, 3), (5, 5), (2, 5), (3, None), (None, 2)])
@pytest.mark.parametrize('case', [c for c in CASES if c[7] == c[8] == 1])
def test_tiled_plan_matches_reference(case, T, rng, monkeypatch):
    """Overlap-save tiles of every size, including ones that do not divide the output, others
    along each axis, and one axis left whole (None)."""
    from minifft.nn import plan_choice
    monkeypatch.setattr(plan_choice, 'choose_tile', lambda *args, **kwargs: T)
    layer, x = make(fft_with('tiled'), case, np.float64, rng=rng)
    out, go, gi = run_step(layer, x, rng)
    assert layer.plan(x).kind == 'tiled'
    pad = (case[9], case[10])
    assert rel_err(out, conv_reference(x, layer.weight, layer.bias, pad=pad)) < 1e-10
    gi_ref, gw_ref, gb_ref = conv_grads_reference(x, layer.weight, go, pad=pad)
    assert rel_err(gi, gi_ref) < 1e-10
    assert rel_err(layer.gradWeight, gw_ref) < 1e-10
    assert rel_err(layer.gradBias, gb_ref) < 1e-10


def test_auto_strategy_choices():
    from minifft.nn import plan_choice
    def kind(S, f, g, n, k, d=1):
        return plan_choice.make_plan('auto', np, np.float32, S, f, g, n, n, k, k, d, d, 0, 0).kind
    # tiles' spectra are (N/T)^2 larger: on a memory-bound CPU the model keeps L1 whole
    assert kind(16, 3, 96, 128, 11) == 'dft'
    assert kind(16, 128, 128, 32, 9) == 'dft'
    # L5: tiles along H shrink the kernels' spectrum (107 MB whole) and widen the products
    assert kind(16, 384, 384, 13, 3) == 'tiled' and kind(64, 384, 384, 13, 3) == 'dft'
    assert kind(2, 3, 8, 200, 11, d=4) == 'fft'    # too large for DFT matrices, stride: no tiles
    with pytest.raises(ValueError, match='strategy must be one of'):
        nn.SpatialConvolutionFFT(3, 4, 3, strategy='winograd')


@pytest.mark.gpu
@pytest.mark.parametrize('tf32, tol', [('0', 1e-4), ('1', 5e-3)])
def test_gpu_tf32_modes(tf32, tol, tmp_path):
    """With CUPY_TF32=1 cuBLAS may round GEMM inputs to TF32 (10-bit mantissa): the FFT layer
    then agrees with float64 to ~1e-3 instead of ~1e-6. CuPy reads the variable when it loads,
    hence a fresh process for each mode."""
    if not backend.gpu_available():
        pytest.skip(backend.gpu_unavailable_reason())
    import os
    import subprocess
    import sys
    code = '''if True:
        import numpy as np, cupy
        from minifft import nn
        rng = np.random.default_rng(0)
        x = rng.standard_normal((8, 64, 32, 32)).astype(np.float32)
        ref = nn.SpatialConvolution(64, 64, 5, 5).double()
        gpu = nn.SpatialConvolutionFFT(64, 64, 5, 5)
        gpu.weight, gpu.bias = ref.weight.astype(np.float32), ref.bias.astype(np.float32)
        y = cupy.asnumpy(gpu.cuda().forward(cupy.asarray(x)))
        r = ref.forward(x.astype(np.float64))
        print(np.linalg.norm(y - r) / np.linalg.norm(r))
    '''
    env = dict(os.environ, CUPY_TF32=tf32, PYTHONPATH=os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.split()[-1]) < tol


def _step_matches_naive_loop(layer, x, case, rng):
    """One training step of ``layer`` on ``x`` (float64, either device) against the loop."""
    out, go, gi = run_step(layer, x, rng)
    d, pad = (case[7], case[8]), (case[9], case[10])
    x, go, w, b = (backend.asnumpy(a) for a in (x, go, layer.weight, layer.bias))
    assert rel_err(out, conv_reference(x, w, b, d, pad)) < 1e-10
    gi_ref, gw_ref, gb_ref = conv_grads_reference(x, w, go, d, pad)
    assert rel_err(gi, gi_ref) < 1e-10 and rel_err(layer.gradWeight, gw_ref) < 1e-10
    assert rel_err(layer.gradBias, gb_ref) < 1e-10


@pytest.mark.parametrize('N', [96, 100, 121, 128, 144])
@pytest.mark.parametrize('inverse', [False, True])
def test_four_step_line_dft_equals_dense(N, inverse, rng):
    """Long lines are transformed in two GEMM stages; every placement the plans use (shifted,
    flipped, strided, wrapped) must give the dense DFT's result."""
    from minifft.nn import dft
    for positions in (np.arange(N - 7), N - 3 - 2 * np.arange(N // 2 - 1), (5 + np.arange(30)) % N,
                      np.array([4])):
        line = dft.LineDFT(np, np.complex128, (len(positions), [(np.arange(len(positions)),
                                                                positions)]), N, inverse)
        assert line.dense is None
        dense = (dft.inverse_matrix if inverse else dft.forward_matrix)(positions, N)
        a = rng.standard_normal((dense.shape[1], 5)) + 1j * rng.standard_normal((dense.shape[1], 5))
        want = dense @ a
        assert np.linalg.norm(line(a) - want) < 1e-12 * np.linalg.norm(want)


@pytest.mark.parametrize('case', [(2, 2, 3, 100, 97, 5, 4, 1, 1, 0, 2),
                                  (1, 3, 2, 120, 99, 7, 3, 3, 2, 2, 1)])
@pytest.mark.parametrize('chunk_bytes', [None, 1])
def test_large_maps_against_naive_loop(case, chunk_bytes, rng, monkeypatch, device):
    """Maps of 96 points and more take the DFT plan's two-stage line transforms; with tiny
    chunks every map goes through the transforms on its own."""
    from minifft.nn import fft_plans
    if chunk_bytes:
        monkeypatch.setattr(fft_plans, '_CHUNK_BYTES', chunk_bytes)
    layer, x = make(fft_with('dft'), case, np.float64, device, rng=rng)
    assert layer.plan(x).fwd_h['input'].dense is None  # two stages along H
    _step_matches_naive_loop(layer, x, case, rng)


def test_tilings_are_the_cheapest_modelled_with_distinct_tile_counts():
    """Autotuning's tiled candidates: cheapest first, within the spread of the cheapest, one
    per count of tiles along each axis (not three windows of 40, 41, 42 on convnet L1), and
    'tiled:N' builds the N-th of them."""
    from minifft.nn import plan_choice
    from minifft.nn.fft_plans import Axis

    def counts(a, T):
        return 1 if T is None else -(-a.o1 // T)
    for S, f, g, n, k in [(16, 384, 384, 13, 3), (16, 3, 96, 128, 11), (16, 128, 128, 32, 9)]:
        a = Axis(n, k, 1, 0, n)
        ranked = plan_choice.tilings(S, f, g, a, a)
        costs = [cost for _, cost in ranked]
        assert 1 <= len(ranked) <= 3 and costs == sorted(costs)
        assert costs[-1] <= plan_choice._TILE_SPREAD * costs[0]
        assert len({(counts(a, Th), counts(a, Tw)) for (Th, Tw), _ in ranked}) == len(ranked)
        for i, ((Th, Tw), _) in enumerate(ranked):
            plan = plan_choice.make_plan('tiled' if i == 0 else f'tiled:{i}', np, np.float32,
                                         S, f, g, n, n, k, k, 1, 1, 0, 0)
            assert (plan.ah.tile, plan.aw.tile) == (Th, Tw)
    a = Axis(13, 3, 1, 0, 13)
    assert [T for T, _ in plan_choice.tilings(16, 384, 384, a, a)] == [(6, None), (4, None),
                                                                       (3, None)]
    # L1 has two tilings: 'tiled:2' is the DFT plan
    assert plan_choice.make_plan('tiled:2', np, np.float32, 16, 3, 96, 128, 128, 11, 11, 1, 1,
                                 0, 0).kind == 'dft'


@pytest.mark.parametrize('threads', [1, 3])
@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('strategy', ['dft', 'fft'])
def test_plans_in_blocks_and_chunks_of_one(strategy, case, threads, rng, monkeypatch, device):
    """Large layers go through the DFT and FFT plans in chunks of maps and blocks of
    frequency columns, shared among threads on the CPU; at one map and one column each
    (columns cut in slices of rows too where they cannot be shared evenly, and twin columns
    multiplied in half their rows), every slicing of the plan is used, and the results are
    still the naive loop's, on one thread or several."""
    from minifft import parallel
    from minifft.nn import fft_plans, fftn_plan
    monkeypatch.setattr(fft_plans, '_BLOCK_BYTES', 1)
    monkeypatch.setattr(fft_plans, '_KERNEL_BLOCK_BYTES', 1)
    monkeypatch.setattr(fft_plans, '_CHUNK_BYTES', 1)
    monkeypatch.setattr(fft_plans, '_SPLIT_ROWS', 1)
    monkeypatch.setattr(fftn_plan, '_ELEMENTWISE_CHUNK_BYTES', 1)  # chunks within a sample
    previous = parallel.set_threads(threads)
    try:
        layer, x = make(fft_with(strategy), case, np.float64, device, rng=rng)
        _step_matches_naive_loop(layer, x, case, rng)
    finally:
        parallel.set_threads(previous)


@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('strategy', ['dft', 'fft', 'tiled'])
def test_products_are_the_spectra_products(strategy, case, rng, monkeypatch):
    """The plans' products on their own (what the benchmark times with --gemm-rates), in the
    operand order each one picks, equal the per-frequency products of the spectra, in every
    block of frequencies (one frequency column a block here)."""
    from minifft.nn import fft_plans
    monkeypatch.setattr(fft_plans, '_BLOCK_BYTES', 1)
    if strategy == 'tiled' and case[7:9] != (1, 1):
        pytest.skip('tiles need stride 1')
    layer, x = make(fft_with(strategy), case, np.float64, rng=rng)
    out, go, _ = run_step(layer, x, rng)
    plan = layer.plan(x)
    assert plan.kind == strategy or (strategy == 'tiled' and plan.kind == 'dft')
    X, K, D = plan.input_spectrum(x), plan.kernel_spectrum(layer.weight), \
        plan.grad_output_spectrum(go)
    S, f = X.shape[1], X.shape[2]
    matvec = f <= fft_plans._MATVEC_PLANES and fft_plans._matvec is not None
    products = (  # (the plan's product, the spectra's einsum, output order, transposed order)
        (lambda: plan.output_products(X, K), 'fsc,foc->', (X, K), 'fso', 'fos', f >= S),
        (lambda: plan.grad_input_products(D, K), 'fso,foc->', (D, K), 'fsc', 'fcs', matvec),
        (lambda: plan.grad_weight_products(D, X), 'fso,fsc->', (D, X), 'foc', 'fco',
         f <= fft_plans._FEW_PLANES))
    for product, inputs, operands, order, flipped, expect in products:
        result, transposed = product()  # in the plan's workspace: checked before the next
        assert transposed == expect
        want = np.einsum(inputs + (flipped if transposed else order), *operands)
        assert rel_err(result, want) < 1e-12
