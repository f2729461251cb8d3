"""scripts/benchmark.py's quick suite as a smoke test: the JSON has its fields and the
correctness column is small. No test asserts a speed."""
import importlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from .helpers import rel_err

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _script(name='benchmark'):
    """scripts/NAME.py (benchmark.py by default) as a module, for the tests that call its
    functions."""
    sys.path.insert(0, os.path.join(ROOT, 'scripts'))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def test_quick_suite_writes_json_and_plot(tmp_path):
    out, png = tmp_path / 'q.json', tmp_path / 'q.png'
    r = subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'benchmark.py'),
                        '--suite', 'quick', '--repeat', '1', '--warmup', '0', '--json', str(out),
                        '--plot', str(png), '--gemm-rates'], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert 'fft:fwd' in r.stdout and 'dir:sum' in r.stdout and 'acc products' in r.stdout
    assert ' window tiles  plan' in r.stdout
    result = json.loads(out.read_text())
    assert result['suite'] == 'quick' and len(result['rows']) == 3
    for row in result['rows']:
        errors = {k: v for k, v in row.items() if 'error' in k}
        assert set(errors) == {'error_output', 'error_gradInput', 'error_gradWeight'}
        assert max(errors.values()) < 1e-4, errors
        for impl in ('fft', 'direct'):
            assert set(row[impl]) >= {'updateOutput', 'updateGradInput', 'accGradParameters',
                                      'total', 'step'}
            assert all(v > 0 for k, v in row[impl].items() if not k.endswith('quartiles'))
        # autotuned: any plan may win where timings are close
        assert row['fft_plan'] in ('dft', 'fft', 'tiled') and row['fft_bytes'] > 0
        assert row['fft_window'][0] == row['fft_size'] and min(row['fft_window']) > 0
        assert row['fft_tiles'] >= 1 and (row['fft_tiles'] > 1) == (row['fft_plan'] == 'tiled')
        assert row['flops_direct'] > 0 and row['paper_memory_bytes'] > 0
        assert row['gemm_frequencies'] > 0
        assert set(row['gemm_gflops']) == {'sgemm', 'updateOutput', 'updateGradInput',
                                           'accGradParameters'}
        assert all(v > 0 for v in row['gemm_gflops'].values())
        for key in ('vs', 'step_vs'):
            low, high = row['direct'][key + '_quartiles']
            assert 0 < low <= row['direct'][key] <= high
    assert png.stat().st_size > 0


MODEL = """from minifft import nn
INPUT_SHAPE, DATASET, EPOCHS, BATCH_SIZE, LR = (3, 12, 12), 'synthetic', 1, 3, 0.1


def create_model(n_classes, conv=nn.SpatialConvolutionFFT):
    return nn.Sequential(conv(3, 4, 5, 5, 1, 1, 2, 2), nn.SpatialBatchNormalization(4),
                         nn.ReLU(), nn.SpatialMaxPooling(2, 2, 2, 2),
                         conv(4, 6, 3, 3, 1, 1, 1, 1), conv(6, 2, 3, 1, 1, 1, 1, 0),
                         nn.View(-1), nn.Linear(2 * 6 * 6, n_classes))
"""


def test_model_rows_are_its_convolutions_at_their_input_sizes(tmp_path):
    """--model: each convolution of a model file at the size it sees in the model and the
    model's batch size; a layer the square rows cannot describe is named, not measured. The
    model's first layer is timed as train.py runs it, without the input gradient: its sums
    leave it out."""
    (tmp_path / 'm.py').write_text(MODEL)
    out = tmp_path / 'm.json'
    r = subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'benchmark.py'),
                        '--model', str(tmp_path / 'm.py'), '--repeat', '1', '--warmup', '0',
                        '--no-torch', '--json', str(out)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert 'left out conv3: kernel 1x3, padding 0x1 (the rows are square)' in r.stdout
    result = json.loads(out.read_text())
    assert result['suite'] == f"model:{tmp_path / 'm.py'}"
    rows = [{k: row[k] for k in ('label', 'S', 'f', 'f_out', 'n', 'k', 'stride', 'pad')}
            for row in result['rows']]
    assert rows == [dict(label='conv1', S=3, f=3, f_out=4, n=12, k=5, stride=1, pad=2),
                    dict(label='conv2', S=3, f=4, f_out=6, n=6, k=3, stride=1, pad=1)]
    assert all(max(v for k, v in row.items() if 'error' in k) < 1e-4 for row in result['rows'])
    first, second = result['rows']
    assert (first['grad_input'], second['grad_input']) == (False, True)
    every = ('updateOutput', 'updateGradInput', 'accGradParameters')
    for row, ops in ((first, ('updateOutput', 'accGradParameters')), (second, every)):
        for impl in ('fft', 'direct'):
            assert row[impl]['total'] == pytest.approx(sum(row[impl][op] for op in ops))
    assert "*: the model's first layer" in r.stdout and '\nconv1* ' in r.stdout
    assert 'updateGradInput' not in first['fft'] and 'updateGradInput' in second['fft']


def test_model_shapes_are_found_without_autotuning(tmp_path):
    """A model file that makes its FFT layers itself (not through ``conv=``) had them autotuned
    at batch 1 by the pass that finds the input sizes."""
    from minifft.nn import autotune
    benchmark = _script()
    (tmp_path / 'own.py').write_text(MODEL.replace('conv(4, 6, 3, 3',
                                                   'nn.SpatialConvolutionFFT(4, 6, 3, 3'))
    before, was = autotune.tuned(), autotune.enable(True)
    try:
        rows, _ = benchmark.model_suite(str(tmp_path / 'own.py'), batch=2)
        assert autotune.enabled() and autotune.tuned() == before
    finally:
        autotune.enable(was)
    assert [r[0] for r in rows] == ['conv1', 'conv2'] and rows[1][1:5] == (2, 4, 6, 6)


def test_bad_arguments_are_named(tmp_path):
    script = os.path.join(ROOT, 'scripts', 'benchmark.py')
    r = subprocess.run([sys.executable, script, '--suite', 'quick', '--layers', 'L9'],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "unknown layers ['L9'] in suite quick" in r.stderr
    r = subprocess.run([sys.executable, script, '--model', 'nosuch'], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "unknown model 'nosuch'; available: " in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr
    (tmp_path / 'bad.py').write_text(MODEL.replace('conv(3, 4, 5, 5', 'conv(2, 4, 5, 5'))
    r = subprocess.run([sys.executable, script, '--model', str(tmp_path / 'bad.py')],
                       capture_output=True, text=True)
    assert r.returncode == 2 and 'input channel count must be 2' in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr


def test_bad_counts_and_files_are_named(tmp_path):
    script = os.path.join(ROOT, 'scripts', 'benchmark.py')
    for args, message in ((['--repeat', '0'], "argument --repeat: must be a whole number >= 1"),
                          (['--batch', '0'], "argument --batch: must be a whole number >= 1"),
                          (['--warmup', '-1'], "argument --warmup: must be a whole number >= 0"),
                          (['--loader', str(tmp_path / 'none.h5')], 'no such dataset file')):
        r = subprocess.run([sys.executable, script, '--suite', 'quick', *args],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and message in r.stderr and 'Traceback' not in r.stderr, \
            r.stderr


def test_outputs_and_ops_are_checked_before_measuring(tmp_path):
    """An unwritable --json was a FileNotFoundError traceback after the whole run, its
    measurements lost; --plot on a folder wrote a PNG beside it (matplotlib added '.png'); an
    unknown image format failed at the end too; an op named twice counted twice in the sums."""
    script = os.path.join(ROOT, 'scripts', 'benchmark.py')
    (tmp_path / 'afile').write_text('x')
    for args, message in (
            (['--json', str(tmp_path / 'afile' / 'r.json')], "--json "),
            (['--plot', str(tmp_path)], 'is a folder; expected a file name'),
            (['--plot', str(tmp_path / 'p.foo')], "not 'foo'"),
            (['--ops', 'updateOutput,updateOutput'], '--ops names an operation twice')):
        r = subprocess.run([sys.executable, script, '--suite', 'quick', *args],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and message in r.stderr and 'fft:fwd' not in r.stdout, \
            (args, r.stderr)
    assert sorted(os.listdir(tmp_path)) == ['afile']


def test_measure_times_each_round_after_an_untimed_step_of_its_own():
    """With a pause between rounds (a CPU's), every implementation runs once untimed before
    each timed round, so that no side is timed cold; without one (a GPU's), every round after
    the warm-up is timed."""
    benchmark = _script()
    for gap, timed_calls in ((1e-3, [3, 5, 7]), (0, [2, 3, 4])):
        log = []

        def round_of(name, unit):
            def run():   # reports which call of its implementation it was
                log.append(name)
                return {'op': unit * log.count(name)}
            return run
        result = benchmark.measure({'fft': round_of('fft', 1.0), 'other': round_of('other', 3.0)},
                                   repeat=3, warmup=1, ops=('op',), gap=gap)
        pairs = 2 if gap else 1
        assert log == ['fft', 'other'] + (['fft'] * pairs + ['other'] * pairs) * 3
        assert result['fft']['total'] == sorted(timed_calls)[1]
        assert result['other']['total'] == 3.0 * sorted(timed_calls)[1]
        assert result['other']['vs'] == 3.0
        assert result['other']['vs_quartiles'] == [3.0, 3.0]
    # the quartiles of the per-round ratios, beside their median
    times = iter([5.0, 1.0, 4.0, 2.0, 3.0])
    result = benchmark.measure({'fft': lambda: {'op': 1.0}, 'other': lambda: {'op': next(times)}},
                               repeat=5, warmup=0, ops=('op',), gap=0)
    assert result['other']['vs'] == 3.0 and result['other']['vs_quartiles'] == [2.0, 4.0]
    # steps against steps, where both sides time one
    steps = iter([6.0, 2.0, 8.0, 4.0, 10.0])
    result = benchmark.measure({'fft': lambda: {'op': 1.0, 'step': 2.0},
                                'other': lambda: {'op': 1.0, 'step': next(steps)}},
                               repeat=5, warmup=0, ops=('op',), gap=0)
    assert result['other']['step_vs'] == 3.0 and result['other']['step_vs_quartiles'] == [2.0, 4.0]
    assert result['other']['vs'] == 1.0


def test_whole_step_times_the_model_against_its_pytorch_twin(tmp_path):
    """--whole-step: a model file's whole training step, with FFT and with direct
    convolutions and as the same network in PyTorch, each checked first against the FFT
    one's outputs."""
    pytest.importorskip('torch')
    (tmp_path / 'm.py').write_text(MODEL)
    out = tmp_path / 'w.json'
    r = subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'benchmark.py'),
                        '--model', str(tmp_path / 'm.py'), '--whole-step', '--repeat', '2',
                        '--warmup', '0', '--json', str(out)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert 'm: a whole training step at batch 3' in r.stdout
    result = json.loads(out.read_text())
    (row,) = result['rows']
    assert result['suite'].endswith(':whole-step') and row['S'] == 3
    assert row['error_direct'] < 1e-5 and row['error_torch'] < 1e-5
    for impl in ('fft', 'direct', 'torch'):
        assert row[impl]['step'] > 0 and row[impl]['images_per_s'] == pytest.approx(
            3 / row[impl]['step'])
    for impl in ('direct', 'torch'):
        low, high = row[impl]['step_vs_quartiles']
        assert 0 < low <= row[impl]['step_vs'] <= high


def test_pytorch_twin_computes_what_the_network_does(rng):
    """torch_twin: every module it knows, in training mode (batch statistics, padded and
    ceil-mode pooling) and in evaluate mode (running statistics), gives the network's
    outputs; a module it does not know is named."""
    torch = pytest.importorskip('torch')
    from minifft import nn
    twin_module = _script('torch_twin')
    net = nn.Sequential(
        nn.SpatialConvolutionFFT(3, 4, 5, 3, 1, 2, 2, 1), nn.SpatialBatchNormalization(4),
        nn.Tanh(), nn.SpatialMaxPooling(3, 3, 2, 2, 1, 1).ceil(),
        nn.SpatialConvolution(4, 5, 3, 3, 1, 1, 0, 0), nn.Sigmoid(),
        nn.SpatialAveragePooling(2, 2, 2, 2, 1, 1, count_include_pad=False), nn.View(-1),
        nn.Linear(5 * 2 * 3, 7), nn.BatchNormalization(7, eps=1e-3, momentum=0.3), nn.ReLU(),
        nn.Dropout(0.4), nn.Linear(7, 2, bias=False))
    for m in net.modules:
        for p in m.parameters()[0]:
            p[...] = rng.standard_normal(p.shape)
    x = rng.standard_normal((6, 3, 11, 10)).astype(np.float32)
    net.get(-2).evaluate()  # dropout off in both, as training would not make them agree
    twin = twin_module.build(net)
    twin[-2].eval()
    out = twin(torch.from_numpy(x)).detach().numpy()
    assert rel_err(out, net.forward(x)) < 1e-5
    for i in (1, 9):  # the running statistics move alike (momentum 0.1 and 0.3)
        assert rel_err(twin[i].running_var.numpy(), net.get(i).running_var) < 1e-5
        assert rel_err(twin[i].running_mean.numpy(), net.get(i).running_mean) < 1e-5
    net.evaluate()
    twin = twin_module.build(net)  # the running statistics copied
    assert not twin.training
    assert rel_err(twin(torch.from_numpy(x)).detach().numpy(), net.forward(x)) < 1e-5
    with pytest.raises(ValueError, match='nn.SoftMax has no PyTorch twin here'):
        twin_module.build(nn.Sequential(nn.Linear(2, 2), nn.SoftMax()))


def test_whole_step_arguments_are_named(tmp_path):
    script = os.path.join(ROOT, 'scripts', 'benchmark.py')
    for args, message in ((['--whole-step'], '--whole-step needs --model'),
                          (['--whole-step', '--model', 'imagenet_small', '--plot', 'x.png'],
                           '--plot: per layer, not for --whole-step')):
        r = subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 2 and message in r.stderr and 'Traceback' not in r.stderr, \
            r.stderr
