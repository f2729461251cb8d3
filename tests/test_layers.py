"""Every layer's forward against a float64 reference written here, and its gradients by
minifft.jacobian (input and parameters), on random shapes with a printed seed."""
import numpy as np
import pytest

from minifft import backend, jacobian, nn

from .helpers import pool_reference, rel_err

TOL = 1e-6  # finite differences in float64 with eps = 1e-6


def _to(xp, a):
    return xp.asarray(a)


def _check_grads(module, x, tol=TOL):
    errors = jacobian.check(module, x)
    assert max(errors.values()) < tol, errors


def test_linear(rng, xp, device):
    B, n, m = rng.integers(1, 5), rng.integers(1, 7), rng.integers(1, 6)
    layer = nn.Linear(n, m).double().type(device)
    x = rng.standard_normal((B, n))
    w, b = backend.asnumpy(layer.weight), backend.asnumpy(layer.bias)
    assert rel_err(layer.forward(_to(xp, x)), x @ w.T + b) < 1e-12
    assert layer.forward(_to(xp, x[0])).shape == (m,)
    _check_grads(layer, _to(xp, x))


def test_linear_default_init_range(rng):
    layer = nn.Linear(100, 50)
    bound = 1 / np.sqrt(100)
    assert np.abs(layer.weight).max() <= bound and np.abs(layer.weight).max() > 0.8 * bound
    assert layer.weight.dtype == np.float32


@pytest.mark.parametrize('cls, ref', [
    (nn.ReLU, lambda x: np.maximum(x, 0)),
    (nn.Tanh, np.tanh),
    (nn.Sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    (nn.Identity, lambda x: x),
])
def test_pointwise(cls, ref, rng, xp):
    x = rng.standard_normal((rng.integers(1, 4), rng.integers(1, 5), 3, 2))
    layer = cls()
    assert rel_err(layer.forward(_to(xp, x)), ref(x)) < 1e-12
    x[np.abs(x) < 1e-3] = 0.5  # keep ReLU's kink out of the finite differences
    _check_grads(layer, _to(xp, x))


def test_sigmoid_saturates_without_overflow():
    with np.errstate(over='raise', invalid='raise', divide='raise'):
        y = nn.Sigmoid().forward(np.array([-1000.0, 0.0, 1000.0]))
    assert np.allclose(y, [0, 0.5, 1])


@pytest.mark.parametrize('cls', [nn.SoftMax, nn.LogSoftMax])
def test_softmax_family(cls, rng, xp):
    x = rng.standard_normal((rng.integers(1, 5), rng.integers(2, 7))) * 3
    e = np.exp(x - x.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    ref = p if cls is nn.SoftMax else np.log(p)
    assert rel_err(cls().forward(_to(xp, x)), ref) < 1e-12
    assert rel_err(cls().forward(_to(xp, x[0])), ref[0]) < 1e-12
    _check_grads(cls(), _to(xp, x))


def test_softmax_is_stable_for_huge_scores():
    x = np.array([[1000.0, 0.0, -1000.0], [1e4, 1e4, 1e4]], np.float32)
    with np.errstate(over='raise', invalid='raise', divide='raise'):
        p = nn.SoftMax().forward(x)
        lp = nn.LogSoftMax().forward(x)
    assert np.allclose(p[0], [1, 0, 0]) and np.allclose(p[1], 1 / 3)
    assert np.isfinite(lp).all() and np.allclose(lp[0, 1], -1000)


POOL_CASES = [  # (k, d, pad, ceil)
    ((2, 2), (2, 2), (0, 0), False),
    ((3, 3), (2, 2), (1, 1), False),
    ((3, 2), (2, 1), (1, 0), True),
    ((3, 3), (2, 2), (0, 0), True),
    ((2, 3), (3, 2), (1, 1), True),
]


@pytest.mark.parametrize('k, d, pad, ceil_mode', POOL_CASES)
def test_max_pooling(k, d, pad, ceil_mode, rng, xp):
    x = rng.standard_normal((2, 3, rng.integers(5, 9), rng.integers(5, 9)))
    layer = nn.SpatialMaxPooling(k[1], k[0], d[1], d[0], pad[1], pad[0])
    if ceil_mode:
        layer.ceil()
    ref = pool_reference(x, k, d, pad, ceil_mode, 'max')
    assert rel_err(layer.forward(_to(xp, x)), ref) == 0
    assert layer.forward(_to(xp, x[0])).shape == ref.shape[1:]
    _check_grads(layer, _to(xp, x))


@pytest.mark.parametrize('count_include_pad', [True, False])
@pytest.mark.parametrize('k, d, pad, ceil_mode', POOL_CASES)
def test_average_pooling(k, d, pad, ceil_mode, count_include_pad, rng, xp):
    x = rng.standard_normal((2, 2, rng.integers(5, 9), rng.integers(5, 9)))
    layer = nn.SpatialAveragePooling(k[1], k[0], d[1], d[0], pad[1], pad[0],
                                     count_include_pad=count_include_pad)
    if ceil_mode:
        layer.ceil()
    ref = pool_reference(x, k, d, pad, ceil_mode, 'avg', count_include_pad)
    assert rel_err(layer.forward(_to(xp, x)), ref) < 1e-12
    _check_grads(layer, _to(xp, x))


def test_max_pooling_ties_route_gradient_to_one_input():
    x = np.ones((1, 1, 2, 2))
    layer = nn.SpatialMaxPooling(2, 2)
    layer.forward(x)
    g = layer.backward(x, np.ones((1, 1, 1, 1)))
    assert g.sum() == 1 and g[0, 0, 0, 0] == 1


def test_view_and_reshape(rng, xp):
    x = _to(xp, rng.standard_normal((3, 2, 4, 5)))
    v = nn.View(-1)
    assert v.forward(x).shape == (3, 40)
    assert nn.View(2, 20).forward(x).shape == (3, 2, 20)
    assert nn.View(2, 4, 5).forward(x[0]).shape == (2, 4, 5)
    r = nn.Reshape(40)
    out = r.forward(x)
    assert out.shape == (3, 40) and not np.shares_memory(backend.asnumpy(out), backend.asnumpy(x))
    assert v.backward(x, v.output).shape == x.shape
    _check_grads(nn.View(-1), x[:1])
    with pytest.raises(ValueError, match='View'):
        nn.View(7).forward(x)


def test_dropout(rng, xp):
    x = _to(xp, rng.standard_normal((200, 50)) + 3)
    layer = nn.Dropout(0.3)
    y = backend.asnumpy(layer.forward(x))
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    assert np.allclose(y[kept], backend.asnumpy(x)[kept] / 0.7)
    g = backend.asnumpy(layer.backward(x, xp.ones_like(x)))
    assert np.allclose(g, kept / 0.7)
    layer.evaluate()
    assert layer.forward(x) is x
    with pytest.raises(ValueError, match='Dropout'):
        nn.Dropout(1.0)


@pytest.mark.parametrize('spatial', [False, True])
def test_batch_normalization(spatial, rng, xp, device):
    C = int(rng.integers(1, 4))
    shape = (4, C, 3, 2) if spatial else (5, C)
    layer = (nn.SpatialBatchNormalization(C) if spatial else nn.BatchNormalization(C)).double()
    layer.weight[...] = rng.standard_normal(C)
    layer.bias[...] = rng.standard_normal(C)
    layer.type(device)
    x = rng.standard_normal(shape) * 2 + 1
    axes = (0, 2, 3) if spatial else (0,)
    bshape = (1, C, 1, 1) if spatial else (1, C)
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    w, b = backend.asnumpy(layer.weight), backend.asnumpy(layer.bias)
    ref = (x - mean.reshape(bshape)) / np.sqrt(var.reshape(bshape) + 1e-5)
    ref = ref * w.reshape(bshape) + b.reshape(bshape)
    assert rel_err(layer.forward(_to(xp, x)), ref) < 1e-12
    n = x.size // C
    assert rel_err(layer.running_mean, 0.1 * mean) < 1e-12
    assert rel_err(layer.running_var, 0.9 + 0.1 * var * n / (n - 1)) < 1e-12
    _check_grads(layer, _to(xp, x), tol=1e-5)
    layer.evaluate()
    rm, rv = backend.asnumpy(layer.running_mean), backend.asnumpy(layer.running_var)
    ref_eval = (x - rm.reshape(bshape)) / np.sqrt(rv.reshape(bshape) + 1e-5)
    ref_eval = ref_eval * w.reshape(bshape) + b.reshape(bshape)
    assert rel_err(layer.forward(_to(xp, x)), ref_eval) < 1e-12
    _check_grads(layer, _to(xp, x))


@pytest.mark.parametrize('affine', [True, False])
@pytest.mark.parametrize('train', [True, False])
def test_batch_normalization_backward_equals_its_two_operations(affine, train, rng):
    """backward shares its sums over gradOutput between the two gradients (as Torch7's does);
    the results must be those of updateGradInput and accGradParameters called alone."""
    layer = nn.SpatialBatchNormalization(3, affine=affine).double()
    if affine:
        layer.weight[...] = rng.standard_normal(3)
    x = rng.standard_normal((4, 3, 5, 2)) * 2 + 1
    layer.forward(x)
    if not train:
        layer.evaluate()
        layer.forward(x)
    go = rng.standard_normal(x.shape)
    layer.zeroGradParameters()
    gi = layer.backward(x, go, 0.5).copy()
    grads = [g.copy() for g in layer.parameters()[1]]
    layer.zeroGradParameters()
    assert rel_err(layer.updateGradInput(x, go), gi) < 1e-14
    layer.accGradParameters(x, go, 0.5)
    for a, b in zip(layer.parameters()[1], grads):
        assert rel_err(a, b) < 1e-14
    layer.gradInputNeeded = False
    layer.zeroGradParameters()
    assert layer.backward(x, go, 0.5) is None
    for a, b in zip(layer.parameters()[1], grads):
        assert rel_err(a, b) < 1e-14


def test_batch_normalization_without_affine(rng):
    layer = nn.BatchNormalization(3, affine=False).double()
    assert layer.parameters() == ([], [])
    x = rng.standard_normal((6, 3))
    y = layer.forward(x)
    var = x.var(axis=0)
    assert np.allclose(y.mean(axis=0), 0)
    assert np.allclose(y.var(axis=0), var / (var + 1e-5), rtol=1e-12)  # eps keeps it below 1
    _check_grads(layer, x)


def test_batch_normalization_needs_more_than_one_value():
    with pytest.raises(ValueError, match='more than one value'):
        nn.BatchNormalization(3).forward(np.ones((1, 3), np.float32))


@pytest.mark.parametrize('make', [
    nn.ReLU,
    lambda: nn.SpatialBatchNormalization(3),
    lambda: nn.SpatialBatchNormalization(3).evaluate(),
    lambda: nn.SpatialBatchNormalization(3, affine=False),
    lambda: nn.BatchNormalization(30),
    lambda: nn.SpatialMaxPooling(2, 2, 2, 2),
    lambda: nn.SpatialMaxPooling(3, 3, 2, 2, 1, 1).ceil(),
], ids=['relu', 'bn', 'bn-eval', 'bn-no-affine', 'bn-1d', 'maxpool', 'maxpool-overlap'])
def test_layers_in_parts_equal_whole(make, rng, monkeypatch):
    """Elementwise layers run part of the batch by part on the CPU's threads (parallel.py);
    cut into parts of one sample, they must give what they give in one piece."""
    from minifft import parallel
    x = rng.standard_normal((7, 30) if type(make()) is nn.BatchNormalization else (7, 3, 6, 5))
    go = None
    results = []
    for part_bytes, threads in ((1 << 30, 1), (64, 3)):
        monkeypatch.setattr(parallel, '_PART_BYTES', part_bytes)
        previous = parallel.set_threads(threads)
        try:
            layer = make().double()
            if isinstance(layer, nn.BatchNormalization) and not layer.train:
                layer.running_mean[...] = 0.3
                layer.running_var[...] = 2.0
            y = layer.forward(x).copy()
            go = rng.standard_normal(y.shape) if go is None else go
            layer.zeroGradParameters()
            gi = layer.backward(x, go).copy()
            results.append([y, gi] + [g.copy() for g in layer.parameters()[1]])
        finally:
            parallel.set_threads(previous)
    for a, b in zip(*results):
        assert rel_err(a, b) < 1e-13


def test_each_part():
    from minifft import parallel
    a = np.arange(40 * 1024 * 16, dtype=np.float64).reshape(40, -1)     # 5 MiB: in parts
    parts = parallel.each_part(lambda p, q: (p[:, 0].copy(), q.shape[0]), a, a[:, :3])
    assert len(parts) > 1
    assert np.array_equal(np.concatenate([p[0] for p in parts]), a[:, 0])
    assert sum(p[1] for p in parts) == 40
    small = np.ones((3, 4))
    assert parallel.each_part(lambda p: p is small, small) == [True]   # whole, no copy
    with pytest.raises(ValueError, match='threads must be at least 1'):
        parallel.set_threads(0)


def test_share_host_cores_sets_blas_and_fft_threads():
    from minifft import backend
    if not backend.can_limit_blas_threads():
        pytest.skip('no OpenBLAS found in this process (NumPy built with another BLAS)')
    before = [get() for get, _ in backend._openblas()], backend.fft_for(np).workers
    try:
        backend.share_host_cores(1)
        assert all(get() == 1 for get, _ in backend._openblas())
        assert backend.fft_for(np).workers == 1
        with pytest.raises(ValueError, match='at least 1'):
            backend.share_host_cores(0)
    finally:
        for (_, put), n in zip(backend._openblas(), before[0]):
            put(n)
        backend.fft_for(np).workers = before[1]


@pytest.mark.parametrize('n,parts,whole', [(1536, 26, 1), (6144, 4, 1), (10, 4, 3), (3, 4, 1),
                                           (0, 2, 1), (7, 1, 1), (96, 8, 16), (52, 8, 1),
                                           (11, 3, 3)])
def test_split_covers_the_range_in_nearly_equal_slices(n, parts, whole):
    """``split`` cuts [0, n) into at most ``parts`` slices, in order and without gaps, whose
    lengths are multiples of ``whole`` (but for the last) and differ by at most ``whole``,
    the longer ones first where n is a multiple of ``whole`` (threads take them in turn)."""
    from minifft import parallel
    s = parallel.split(n, parts, whole)
    assert len(s) <= parts
    assert [i for sl in s for i in range(n)[sl]] == list(range(n))
    lengths = [sl.stop - sl.start for sl in s]
    assert all(length > 0 and length % whole == 0 for length in lengths[:-1])
    assert not lengths or max(lengths) - min(lengths) <= whole
    if n % whole == 0:
        assert lengths == sorted(lengths, reverse=True)
    assert len(s) == min(parts, -(-n // whole))


def test_minifft_threads_is_read_once_and_checked(monkeypatch):
    """``MINIFFT_THREADS`` sets the team's size where given; a value that is not a positive
    whole number is a clear error, raised on first use rather than at import."""
    from minifft import parallel
    monkeypatch.setattr(parallel, '_state', {'team': None, 'threads': None})
    monkeypatch.setenv('MINIFFT_THREADS', ' 3 ')
    assert parallel.requested_threads() == 3 and parallel.threads() == 3
    monkeypatch.setenv('MINIFFT_THREADS', '')
    assert parallel.requested_threads() is None
    for bad in ('abc', '0', '-2', '1.5'):
        monkeypatch.setenv('MINIFFT_THREADS', bad)
        monkeypatch.setattr(parallel, '_state', {'team': None, 'threads': None})
        with pytest.raises(ValueError, match=f"at least 1, got '{bad}'"):
            parallel.threads()


def test_set_threads_overrides_a_bad_environment_and_restores(monkeypatch):
    """A program's own thread count works while MINIFFT_THREADS is bad (set_threads used to
    parse it first and raise), and set_threads(previous) gives back exactly what was there,
    the unresolved default included."""
    from minifft import parallel
    monkeypatch.setattr(parallel, '_state', {'team': None, 'threads': None})
    monkeypatch.setenv('MINIFFT_THREADS', 'abc')
    previous = parallel.set_threads(2)
    assert previous is None and parallel.threads() == 2
    assert parallel.each(lambda i: i + 1, range(5)) == [1, 2, 3, 4, 5]
    assert parallel.set_threads(previous) == 2
    with pytest.raises(ValueError, match="at least 1, got 'abc'"):
        parallel.threads()
    monkeypatch.setenv('MINIFFT_THREADS', '3')
    assert parallel.threads() == 3 and parallel.set_threads(None) == 3
    monkeypatch.setenv('MINIFFT_THREADS', '1')
    assert parallel.threads() == 1


def test_each_keeps_order_and_runs_in_turn_where_blas_cannot_be_limited(monkeypatch):
    """``each`` returns its results in the items' order; with ``blas``, where the BLAS cannot
    be made single-threaded, the items run in turn on the calling thread."""
    import threading
    from minifft import backend, parallel
    previous = parallel.set_threads(3)
    try:
        assert parallel.each(lambda i: i * i, range(20)) == [i * i for i in range(20)]
        monkeypatch.setattr(backend, 'can_limit_blas_threads', lambda: False)
        caller = threading.get_ident()
        assert parallel.each(lambda i: threading.get_ident(), range(4), blas=True) == [caller] * 4
    finally:
        parallel.set_threads(previous)


def test_each_nested_calls_errors_and_forked_children():
    """``each`` called from one of its own items runs that call's items in turn (it used to
    wait for ever on a pool busy with its caller); after an item's error the team still
    works; a forked child, which has none of the parent's threads, gets a team of its own
    rather than waiting for helpers that do not exist."""
    import os
    import time
    from minifft import parallel
    previous = parallel.set_threads(2)
    try:
        inner = parallel.each(lambda i: parallel.each(lambda j: 10 * i + j, range(3)), range(4))
        assert inner == [[10 * i + j for j in range(3)] for i in range(4)]
        with pytest.raises(ZeroDivisionError):
            parallel.each(lambda i: 1 // (i - 2), range(5))
        assert parallel.each(lambda i: -i, range(5)) == [0, -1, -2, -3, -4]
        pid = os.fork()
        if pid == 0:   # the child: exit status 0 only if each() worked there
            ok = parallel.each(lambda i: i + 1, range(6)) == [1, 2, 3, 4, 5, 6]
            os._exit(0 if ok else 1)
        for _ in range(200):   # 10 s: a child waiting for absent helpers never exits
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail('each() in a forked child did not return')
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    finally:
        parallel.set_threads(previous)


def test_each_many_calls_in_a_row():
    """Thousands of calls of every size, back to back, as a training step makes them: each
    wakes as many helpers as it has items beyond its first and waits for exactly those (a
    lost or doubled wake would hang, or raise on a lock released twice)."""
    import threading
    from minifft import parallel
    previous = parallel.set_threads(3)
    failures = []

    def calls():
        try:
            for n in range(3000):
                items = range(n % 6)
                assert parallel.each(lambda i: i * n, items, blas=n % 2 == 0) == \
                    [i * n for i in items]
        except BaseException as e:  # reported by the test's own thread
            failures.append(e)
    try:
        worker = threading.Thread(target=calls, daemon=True)
        worker.start()
        worker.join(60)
        assert not worker.is_alive(), 'each() hung'
        assert not failures, failures
    finally:
        parallel.set_threads(previous)


def test_team_helpers_keep_off_the_callers_cpu():
    """The helpers may run on every CPU they could when made but the one their caller runs
    on, and follow the caller when it moves."""
    import os
    from minifft import parallel
    cpus = os.sched_getaffinity(0) if hasattr(os, 'sched_setaffinity') else set()
    if len(cpus) < 2 or parallel.current_cpu() is None:
        pytest.skip('needs two CPUs and sched_getcpu (Linux)')
    previous = parallel.set_threads(3)
    try:
        parallel.each(lambda i: i, range(3))
        team = parallel._state['team']
        for cpu in sorted(cpus)[:2]:
            os.sched_setaffinity(0, {cpu})   # the calling thread alone, on Linux
            assert parallel.each(lambda i: i, range(3)) == [0, 1, 2]
            for t in team._threads:
                assert os.sched_getaffinity(t.native_id) == cpus - {cpu}
    finally:
        os.sched_setaffinity(0, cpus)
        parallel.set_threads(previous)


def test_each_limits_blas_threads_meanwhile():
    """With ``blas`` the BLAS runs one thread per call while the items run, and has its own
    thread count back afterwards, an error included, and with two threads inside at once."""
    import threading
    from minifft import backend, parallel
    if not backend.can_limit_blas_threads():
        pytest.skip('no OpenBLAS found in this process (NumPy built with another BLAS)')
    previous = parallel.set_threads(3)
    try:
        before = [get() for get, _ in backend._openblas()]
        seen = parallel.each(lambda i: [get() for get, _ in backend._openblas()],
                             range(6), blas=True)
        assert all(n == 1 for counts in seen for n in counts)
        with pytest.raises(ZeroDivisionError):
            parallel.each(lambda i: 1 // (i - 3), range(6), blas=True)
        assert [get() for get, _ in backend._openblas()] == before
        # two threads inside at once, leaving in the order they entered: the BLAS gets its
        # count back when the last one leaves, and not the 1 the second one found
        entered, leave = threading.Barrier(2), threading.Event()

        def hold():
            with backend.single_threaded_blas():
                entered.wait()
                leave.wait()
        second = threading.Thread(target=hold)
        with backend.single_threaded_blas():
            second.start()
            entered.wait()
        assert [get() for get, _ in backend._openblas()] == [1] * len(before)
        leave.set()
        second.join()
        assert [get() for get, _ in backend._openblas()] == before
    finally:
        parallel.set_threads(previous)


@pytest.mark.parametrize('layer, out_shape', [
    (nn.View(-1), (0, 48)), (nn.View(3, -1), (0, 3, 16)), (nn.Reshape(-1, 4), (0, 12, 4)),
    (nn.SpatialBatchNormalization(3).evaluate(), (0, 3, 4, 4)),
    (nn.SpatialBatchNormalization(3), (0, 3, 4, 4))])
def test_empty_batch_passes_through(layer, out_shape):
    """``View(-1)`` of an empty batch: NumPy cannot infer the -1 of a reshape of nothing
    (it raised 'cannot reshape array of size 0'); batch normalisation too, in training mode
    (it raised 'needs more than one value') leaving its running statistics and gradients
    alone, as PyTorch's does."""
    x = np.zeros((0, 3, 4, 4), np.float32)
    before = [a.copy() for a in layer.parameters()[1]] + [
        getattr(layer, name).copy() for name in getattr(layer, '_buffer_names', ())]
    assert layer.forward(x).shape == out_shape
    assert layer.backward(x, np.zeros(out_shape, np.float32)).shape == x.shape
    after = [a for a in layer.parameters()[1]] + [
        getattr(layer, name) for name in getattr(layer, '_buffer_names', ())]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
