#!/usr/bin/env python3
"""Time the three training operations of SpatialConvolutionFFT against SpatialConvolution and,
where installed, PyTorch's conv2d (the paper's comparison, per operation).

  python scripts/benchmark.py --suite convnet --batch 16
  python scripts/benchmark.py --suite paper --json paper.json --plot paper.png
  python scripts/benchmark.py --suite quick
  python scripts/benchmark.py --model imagenet_small     # a model file's convolutions
  python scripts/benchmark.py --model imagenet_small --whole-step   # its whole training step

Each repeat is a real training step: a new input and gradOutput (two sets alternate) and a
weight changed in place, so every spectrum the step needs is computed inside the timed region.
Times are medians of --repeat rounds after warm-up rounds; in each round every implementation
runs its step in turn (on a CPU after a pause and an untimed step of its own, see
``measure``), and the speedups are medians of the per-round ratios, so a machine whose speed
drifts (shared VMs do) slows them alike. A GPU is synchronised around each operation.
"""
import argparse
import itertools
import json
import math
import os
import sys
import time

os.environ.setdefault('OPENBLAS_THREAD_TIMEOUT', '20')  # as train.py runs (see there)

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from minifft import backend, cli, nn, parallel  # noqa: E402
from minifft.atomic import atomic_path, check_writable  # noqa: E402
from minifft.nn.fft_plans import own_threads  # noqa: E402

from rounds import IDLE_GAP, measure, rel, timed  # noqa: E402  (scripts/, this folder)
from whole_step import print_whole_step, whole_step  # noqa: E402

OPS = ('updateOutput', 'updateGradInput', 'accGradParameters')
SHORT = {'updateOutput': 'fwd', 'updateGradInput': 'gin', 'accGradParameters': 'acc'}


def suite(name):
    """[(label, S or None, f, f', n, k, stride, pad)]; S None means the --batch default."""
    if name == 'convnet':  # convnet-benchmarks' layers
        return [('L1', None, 3, 96, 128, 11, 1, 0), ('L2', None, 64, 128, 64, 9, 1, 0),
                ('L3', None, 128, 128, 32, 9, 1, 0), ('L4', None, 128, 128, 16, 7, 1, 0),
                ('L5', None, 384, 384, 13, 3, 1, 0)]
    if name == 'paper':  # sweep around a typical second layer, f=96, f'=256
        rows = [(f'k{k}', None, 96, 256, 32, k, 1, 0) for k in (3, 5, 7, 9, 11, 13)]
        rows += [(f'n{n}', None, 96, 256, n, 7, 1, 0) for n in (16, 24, 48, 64)]
        rows += [(f'S{s}', s, 96, 256, 32, 7, 1, 0) for s in (8, 32)]
        return rows
    if name == 'layers':  # mid-size layers at S=32 (the convolution issue's speed table)
        return [('c11', 32, 3, 64, 64, 11, 1, 0), ('c9', 32, 32, 32, 32, 9, 1, 0),
                ('c7', 32, 96, 128, 32, 7, 1, 0), ('c5', 32, 64, 64, 32, 5, 1, 0),
                ('c3', 32, 64, 64, 32, 3, 1, 0)]
    if name == 'quick':
        return [('q1', 4, 3, 8, 16, 5, 1, 0), ('q2', 4, 8, 8, 12, 3, 1, 1),
                ('q3', 4, 4, 8, 16, 7, 2, 0)]
    raise ValueError(f'unknown suite {name!r}: convnet, paper, layers or quick')


def model_suite(name, batch=None):
    """Rows for the convolutions of the model file ``name`` (train.py's ``--model``), in the
    model's order, each at the input size it sees in the model and at the model's batch size
    (``batch`` where given): a forward pass of one zero sample through a copy of the model
    made with direct convolutions records them. A row's last field says whether the layer's
    input gradient is made: not for the model's first module, as train.py runs it (the data
    needs none). Returns the rows and, for the layers that cannot be rows (the rows are
    square: kernel, stride, padding and input), why not."""
    from minifft import model_files
    module = model_files.load(name)
    net = model_files.create(module, 10, conv=nn.SpatialConvolution)
    kinds = (nn.SpatialConvolution, nn.SpatialConvolutionFFT)
    convs = [m for m in net.listModules() if isinstance(m, kinds)]
    seen = {}
    for m in convs:
        def record(x, m=m, run=m.updateOutput):
            seen[id(m)] = x.shape
            return run(x)
        m.updateOutput = record
    net.evaluate()
    with nn.autotune.disabled():  # FFT layers the model makes itself: no timing at S=1
        net.forward(np.zeros((1,) + tuple(module.INPUT_SHAPE), np.float32))
    rows, skipped, S = [], [], batch or module.BATCH_SIZE
    for i, m in enumerate(convs, 1):
        label = f'conv{i}'
        if id(m) not in seen:
            skipped.append(f'{label}: not reached by a forward pass')
            continue
        H, W = seen[id(m)][2:]
        pairs = {'kernel': (m.kH, m.kW), 'stride': (m.dH, m.dW), 'padding': (m.padH, m.padW),
                 'input': (H, W)}
        odd = [f'{what} {a}x{b}' for what, (a, b) in pairs.items() if a != b]
        if odd:
            skipped.append(f'{label}: {", ".join(odd)} (the rows are square)')
            continue
        rows.append((label, S, m.nInputPlane, m.nOutputPlane, H, m.kH, m.dH, m.padH,
                     m is not net.get(0)))
    return rows, skipped


def flops(S, f, fo, n, k, N):
    """The paper's operation counts for one operation, as floating-point operations: direct
    2 S f' f n'^2 k^2; FFT 2 C N^2 log2 N (f' S + f S + f' f) + 4 S f' f N^2 (C = 2.5 for a
    real-input transform, at the transform size N actually used)."""
    n_out = n - k + 1
    direct = 2 * S * fo * f * n_out ** 2 * k ** 2
    fft = 2 * 2.5 * N * N * math.log2(N) * (fo * S + f * S + fo * f) + 4 * S * fo * f * N * N
    return direct, fft


def paper_memory(S, f, fo, N):
    return 4 * N * (N + 1) * (S * f + S * fo + f * fo)


def layer_round(layer, xs, gs):
    """A function timing a minifft layer's training step, seconds: each op alone, then a whole
    step ('step': updateOutput and backward, what a training step runs, where the FFT layer
    makes both gradients together). The ops take the first of two sets of inputs and the
    step the second, and the weight changes in place before each, so that every transform is
    paid for. A layer whose input gradient is not made (``gradInputNeeded`` off) has no
    updateGradInput timed: its accGradParameters transforms gradOutput, as in its steps."""
    steps = itertools.count(1)

    def run():
        sign = (-1) ** next(steps)
        (x, y), (g, h) = xs, gs
        layer.weight *= layer.weight.dtype.type(1 + 1e-7 * sign)
        times = {op: timed(call, backend.synchronize) for op, call in (
            ('updateOutput', lambda: layer.updateOutput(x)),
            ('updateGradInput', lambda: layer.updateGradInput(x, g)),
            ('accGradParameters', lambda: layer.accGradParameters(x, g, 1)))
            if layer.gradInputNeeded or op != 'updateGradInput'}
        layer.weight *= layer.weight.dtype.type(1 - 1e-7 * sign)
        times['step'] = timed(lambda: (layer.updateOutput(y), layer.backward(y, h, 1)),
                              backend.synchronize)
        return times
    return run


def torch_round(x, w, g, stride, pad, device, grad_input=True):
    """A function timing PyTorch's conv2d once per op, and its autograd step (forward and
    backward, what a PyTorch user's training step runs; without the input gradient unless
    ``grad_input``, as for an input that needs none)."""
    import torch
    dev = 'cuda' if device == 'gpu' else 'cpu'
    tx = torch.tensor(backend.asnumpy(x), device=dev, requires_grad=grad_input)
    tw = torch.tensor(backend.asnumpy(w), device=dev, requires_grad=True)
    tb = torch.zeros(w.shape[0], device=dev, requires_grad=True)
    tg = torch.tensor(backend.asnumpy(g), device=dev)
    sync = torch.cuda.synchronize if dev == 'cuda' else (lambda: None)
    conv = torch.nn.functional.conv2d
    bwd = torch.ops.aten.convolution_backward
    args = ([0], [stride, stride], [pad, pad], [1, 1], False, [0, 0], 1)

    def autograd_step():
        tx.grad = tw.grad = tb.grad = None
        conv(tx, tw, tb, stride, pad).backward(tg)

    def run():
        with torch.no_grad():
            times = {'updateOutput': timed(lambda: conv(tx, tw, tb, stride, pad), sync),
                     'accGradParameters': timed(lambda: bwd(tg, tx, tw, *args,
                                                            [False, True, True]), sync)}
            if grad_input:
                times['updateGradInput'] = timed(lambda: bwd(tg, tx, tw, *args,
                                                             [True, False, False]), sync)
        times['step'] = timed(autograd_step, sync)
        return times
    return run


def loader_throughput(path, batch, workers, augment, batches=200):
    """Images per second the DataLoader alone delivers (two passes, the second timed)."""
    from minifft import data
    loader = data.DataLoader(data.HDF5Dataset(path, 'train'), batch, augment=augment,
                             workers=workers)
    n = min(batches, len(loader))
    for _pass in range(2):  # the first warms the loader and the file cache up
        t = time.perf_counter()
        for i, _ in enumerate(loader):
            if i + 1 == n:
                break
        seconds = time.perf_counter() - t
    return n * batch / seconds


def gemm_gflops(layer, x, g, repeat):
    """GFLOP/s of the layer's per-frequency products alone, on its own spectra, run by its
    plan as in a training step (``output_products`` and the like: blocks of frequencies on
    the cores, in the operand order, or as matrix-vector products, the plan picks), counted as
    complex GEMMs (8 flops per multiply-add) over the frequencies the plan multiplies (not
    the conjugate twins it copies: ``plan.kept``; the FFT plan's forward with few input
    planes takes its products elementwise in a step instead), and of a large single-precision
    matrix multiply with the BLAS on all cores (2048^2; 8192^2 on a GPU): the machine's practical
    limit. The two take turns, best of ``repeat`` each, as the machine's speed drifts."""
    xp = backend.get_array_module(x)
    plan = layer.plan(x)
    with own_threads(xp):
        X, K = plan.input_spectrum(x), plan.kernel_spectrum(layer.weight)
        D = plan.grad_output_spectrum(g)
    F, S, f, fo = X.shape[0], X.shape[1], X.shape[2], K.shape[1]
    products = 8 * len(plan.kept) * S * f * fo  # each of the three, as complex GEMMs
    n = 2048 if xp is np else 8192
    a = xp.ones((n, n), np.float32)

    def as_in_a_step(product, *operands):
        def run():
            with own_threads(xp):
                product(*operands)
        return run
    runs = {'sgemm': (lambda: a @ a, 2 * n ** 3),
            'updateOutput': (as_in_a_step(plan.output_products, X, K), products),
            'updateGradInput': (as_in_a_step(plan.grad_input_products, D, K), products),
            'accGradParameters': (as_in_a_step(plan.grad_weight_products, D, X), products)}
    best = {name: float('inf') for name in runs}
    for i in range(repeat + 1):
        for name, (run, _) in runs.items():
            t = timed(run, backend.synchronize)
            if i:  # the first round warms up
                best[name] = min(best[name], t)
    return F, {name: flop / best[name] / 1e9 for name, (_, flop) in runs.items()}


def run_config(label, S, f, fo, n, k, stride, pad, args, have_torch, grad_input=True):
    """A row: the layer checked against the direct one, then timed. Without ``grad_input``
    (a model's first layer) the steps make no input gradient, and the sums leave it out."""
    xp = backend.xp_for(args.device)
    rng = np.random.default_rng(0)
    fft = nn.SpatialConvolutionFFT(f, fo, k, k, stride, stride, pad, pad,
                                   strategy=args.strategy).type(args.device)
    direct = nn.SpatialConvolution(f, fo, k, k, stride, stride, pad, pad)
    direct.weight, direct.bias = fft.weight.copy(), fft.bias.copy()
    direct.type(args.device)
    fft.gradInputNeeded = direct.gradInputNeeded = grad_input  # before a plan is autotuned
    xs = [xp.asarray(rng.standard_normal((S, f, n, n), dtype=np.float32)) for _ in range(2)]
    o = (n + 2 * pad - k) // stride + 1
    gs = [xp.asarray(rng.standard_normal((S, fo, o, o), dtype=np.float32)) for _ in range(2)]
    # correctness first, on the same inputs: the FFT layer against the direct one
    errors = {}
    for name, a, b in (('output', fft.updateOutput(xs[0]), direct.updateOutput(xs[0])),
                       ('gradInput', fft.updateGradInput(xs[0], gs[0]),
                        direct.updateGradInput(xs[0], gs[0]))):
        errors[f'error_{name}'] = rel(a, b)
    for m in (fft, direct):
        m.zeroGradParameters()
        m.accGradParameters(xs[0], gs[0], 1)
    errors['error_gradWeight'] = rel(fft.gradWeight, direct.gradWeight)
    ops = [op for op in args.ops if grad_input or op != 'updateGradInput']
    row = {'label': label, 'S': S, 'f': f, 'f_out': fo, 'n': n, 'k': k, 'stride': stride,
           'pad': pad, 'grad_input': grad_input, **errors}
    rounds = {'fft': layer_round(fft, xs, gs)}
    if args.direct:
        rounds['direct'] = layer_round(direct, xs, gs)
    if have_torch:
        rounds['torch'] = torch_round(xs[0], fft.weight, gs[0], stride, pad, args.device,
                                      grad_input)
    row.update(measure(rounds, args.repeat, args.warmup, ops,
                       IDLE_GAP if args.device == 'cpu' else 0))
    plan = fft.plan(xs[0])
    N = plan.NH
    row['fft_size'] = N
    row['fft_plan'] = plan.kind
    # a tiled plan's window, and how many of them cover a map
    row['fft_window'], row['fft_tiles'] = [plan.NH, plan.NW], plan.ah.tiles * plan.aw.tiles
    row['fft_bytes'] = fft.fft_nbytes()
    row['paper_memory_bytes'] = paper_memory(S, f, fo, n + 2 * pad)
    direct_flops, fft_flops = flops(S, f, fo, n + 2 * pad, k, N)
    row['flops_direct'], row['flops_fft'] = direct_flops, fft_flops
    for impl in rounds:
        row[impl]['gflops_direct_equiv'] = direct_flops * len(ops) / row[impl]['total'] / 1e9
    if args.gemm_rates:
        row['gemm_frequencies'], row['gemm_gflops'] = gemm_gflops(fft, xs[0], gs[0],
                                                                  max(args.repeat, 3))
    return row


def print_table(rows, ops, impls):
    head = (f'{"layer":6s} {"S":>4s} {"f":>4s} {"fo":>4s} {"n":>4s} {"k":>3s} {"window":>7s} '
            f'{"tiles":>5s} {"plan":>5s}')
    for impl in impls:
        head += ''.join(f' {impl[:3] + ":" + SHORT[op]:>11s}' for op in ops)
        head += f' {impl[:3] + ":sum":>11s} {impl[:3] + ":step":>11s}'
    head += ''.join(f' {"fft/" + i[:3]:>9s}' for i in impls if i != 'fft')
    if 'torch' in impls:
        head += f' {"fft/step":>9s} {"quartiles":>11s}'
    head += f' {"err":>8s}'
    print(head)
    for r in rows:
        label = r['label'] + ('' if r.get('grad_input', True) else '*')
        line = (f'{label:6s} {r["S"]:4d} {r["f"]:4d} {r["f_out"]:4d} {r["n"]:4d} '
                f'{r["k"]:3d} {"x".join(map(str, r["fft_window"])):>7s} {r["fft_tiles"]:5d} '
                f'{r["fft_plan"]:>5s}')
        for impl in impls:
            line += ''.join(f' {r[impl][op] * 1e3:11.1f}' if op in r[impl] else f' {"-":>11s}'
                            for op in ops)
            line += f' {r[impl]["total"] * 1e3:11.1f} {r[impl]["step"] * 1e3:11.1f}'
        line += ''.join(f' {r[i]["vs"]:8.2f}x' for i in impls if i != 'fft')
        if 'torch' in impls:
            low, high = r['torch']['step_vs_quartiles']
            line += f' {r["torch"]["step_vs"]:8.2f}x {f"{low:.2f}-{high:.2f}":>11s}'
        line += f' {max(v for k, v in r.items() if k.startswith("error")):8.1e}'
        print(line, flush=True)
    print('times in ms per operation (median); X:step = a training step (minifft: updateOutput '
          '+ backward, which makes both gradients together; torch: conv2d forward + autograd '
          'backward); fft/X = how many times faster the FFT layer is than X over the '
          'operations timed (median of the per-round ratios: the implementations take turns, '
          'round by round); fft/step = the same for the steps, against PyTorch; quartiles = '
          "its per-round ratios' first and third quartile; err = largest relative L2 "
          'difference FFT vs direct')
    if not all(r.get('grad_input', True) for r in rows):
        print("*: the model's first layer, whose input gradient train.py does not make: not "
              "timed, and its steps make none (PyTorch's too, the input needing no gradient); "
              "its acc includes gradOutput's transform, which gin makes elsewhere")


def print_gemm_rates(rows):
    print("each layer's per-frequency products alone, GFLOP/s (share of a large sgemm's, "
          'timed in turn with them)')
    print(f'{"layer":6s} {"F":>6s} {"sgemm":>7s}' +
          ''.join(f' {SHORT[op] + " products":>16s}' for op in OPS))
    for r in rows:
        rates = r['gemm_gflops']
        print(f'{r["label"]:6s} {r["gemm_frequencies"]:6d} {rates["sgemm"]:7.0f}' + ''.join(
            f' {rates[op]:7.0f} ({rates[op] / rates["sgemm"]:4.0%})' for op in OPS))


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _plot_format(path):
    return os.path.splitext(path)[1][1:].lower() or 'png'


def check_plot_format(path):
    """Before the measurements: matplotlib is there and writes this file's format."""
    try:
        plt = _pyplot()
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install 'minifft[plot]'") from None
    formats = plt.figure().canvas.get_supported_filetypes()
    plt.close('all')
    if _plot_format(path) not in formats:
        raise ValueError(f'--plot {path}: matplotlib writes {", ".join(sorted(formats))}, not '
                         f'{_plot_format(path)!r}')


def plot(rows, path):
    """Speedup against kernel size, one line per (S, f, f', n) that has several kernel sizes
    (the paper's figure); PyTorch's reference is its autograd step."""
    plt = _pyplot()
    groups = {}
    for r in rows:
        groups.setdefault((r['S'], r['f'], r['f_out'], r['n']), []).append(r)
    fig, ax = plt.subplots(figsize=(6, 4))
    for (S, f, fo, n), group in groups.items():
        if len({r['k'] for r in group}) < 2:
            continue
        for impl, key, style in (('direct', 'vs', 'o-'), ('torch', 'step_vs', 's--')):
            pts = sorted((r['k'], r[impl][key]) for r in group if impl in r)
            if pts:
                ax.plot(*zip(*pts), style, label=f'over {impl}, S={S} {f}->{fo} n={n}')
    ax.axhline(1, color='gray', lw=0.5)
    ax.set_xlabel('kernel size k'), ax.set_ylabel('FFT layer speedup (training step)')
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    # the format named, as the temporary file's name ends in .partial
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=_plot_format(path))
    plt.close(fig)


def check_output(option, path):
    """Before the measurements, rather than after them: a file ``path`` can be written (its
    folder made where missing); None passes."""
    if path is not None:
        try:
            check_writable(path)
        except OSError as e:
            raise ValueError(f'{option}: {e.strerror or e}') from None


def _torch_peer(args):
    """Whether PyTorch is there to compare with, set up as its users run it (all cores;
    cuDNN's benchmark mode); says so, with the threads and plans, in a line."""
    have_torch = False
    if args.torch:
        try:
            import torch
            torch.set_num_threads(os.cpu_count())
            torch.backends.cudnn.benchmark = True  # cuDNN's best algorithm, as users run it
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = (
                args.tf32 == 'on')
            have_torch = True
        except ImportError:
            print('PyTorch is not installed: its columns are left out')
    threads = os.cpu_count()
    print(f'device {args.device}; threads: FFT workers {backend.fft_for(np).workers}, BLAS default '
          f'(all {threads} cores), torch {threads if have_torch else "-"}; FFT plans: '
          f'{args.strategy}' + (', autotuned' if args.autotune and args.strategy == 'auto' else ''))
    return have_torch


def run_whole_step(p, args):
    """``--whole-step``: the row of ``whole_step``, printed, and written where --json says."""
    if not args.model:
        p.error('--whole-step needs --model (the model file whose training step to time)')
    extra = [o for o, on in (('--plot', args.plot), ('--gemm-rates', args.gemm_rates),
                             ('--layers', args.layers)) if on]
    if extra:
        p.error(f'{" and ".join(extra)}: per layer, not for --whole-step')
    have_torch = _torch_peer(args)
    try:
        row = whole_step(args.model, args, have_torch)
    except (ValueError, TypeError) as e:   # the model file's own errors, and modules
        p.error(str(e))                   # without a PyTorch twin, named
    impls = ['fft'] + (['direct'] if args.direct else []) + (['torch'] if have_torch else [])
    print_whole_step(row, impls)
    if args.json:
        with atomic_path(args.json) as tmp, open(tmp, 'w') as fh:
            json.dump({'device': args.device, 'threads': os.cpu_count(),
                       'suite': f'model:{args.model}:whole-step', 'autotune': args.autotune,
                       'strategy': args.strategy, 'rows': [row]}, fh, indent=1)
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--suite', default='convnet', choices=('convnet', 'paper', 'layers', 'quick'))
    p.add_argument('--model', help="instead of a suite: the convolutions of a model file "
                   "(as train.py's --model), at the model's batch size unless --batch")
    p.add_argument('--whole-step', action='store_true',
                   help="with --model: time the model's whole training step instead of its "
                        'convolutions, against the same network in PyTorch')
    p.add_argument('--layers', help='comma-separated labels to run, e.g. L1,L3')
    p.add_argument('--batch', type=cli.whole(1), help='S (default 128 on a GPU, 16 on a CPU)')
    p.add_argument('--device', default='cpu', choices=('cpu', 'gpu'))
    p.add_argument('--ops', default=','.join(OPS), help='comma-separated subset of ' + ','.join(OPS))
    p.add_argument('--strategy', default='auto', choices=nn.plan_choice.STRATEGIES,
                   help='how the FFT layer transforms (see minifft/nn/plan_choice.py)')
    p.add_argument('--repeat', type=cli.whole(1), default=5)
    p.add_argument('--warmup', type=cli.whole(0), default=2)
    p.add_argument('--no-direct', dest='direct', action='store_false',
                   help='skip the direct layer (it is slow on large kernels)')
    p.add_argument('--no-torch', dest='torch', action='store_false')
    p.add_argument('--tf32', choices=('on', 'off'), default='off',
                   help="GPU: let PyTorch's cuDNN/cuBLAS use TF32 (CuPy follows the CUPY_TF32 "
                        'environment variable, read when CuPy loads)')
    p.add_argument('--no-autotune', dest='autotune', action='store_false',
                   help="with --strategy auto: the rule-based plan instead of timing the "
                        "candidates once per layer (the plan column says which ran)")
    p.add_argument('--gemm-rates', action='store_true',
                   help="also time each layer's per-frequency complex GEMMs alone, against a "
                        'large sgemm (the arithmetic part against the machine\'s limit)')
    p.add_argument('--json', help='also write the rows to this file')
    p.add_argument('--plot', help='also draw the speedups against k (PNG, or the format of '
                   'the extension: .svg, .pdf)')
    p.add_argument('--loader', metavar='DATASET',
                   help='instead: time the DataLoader alone on this HDF5 dataset')
    p.add_argument('--workers', type=cli.whole(0), default=2,
                   help='loader threads (with --loader)')
    args = p.parse_args(argv)
    try:
        device = backend.resolve_device(args.device)
        parallel.threads()  # a bad MINIFFT_THREADS, said before any work
        for option in ('json', 'plot'):
            check_output(f'--{option}', getattr(args, option))
        if args.plot:
            check_plot_format(args.plot)
    except (RuntimeError, ValueError) as e:
        p.error(str(e))
    if args.loader:
        for augment in (False, True):
            try:
                rate = loader_throughput(args.loader, args.batch or 64, args.workers, augment)
            except (OSError, ValueError) as e:
                p.error(str(e))
            print(f'DataLoader {args.loader}: batch {args.batch or 64}, {args.workers} workers, '
                  f'augment {augment}: {rate:.0f} images/s')
        return 0
    args.device = device
    nn.autotune.enable(args.autotune)
    args.ops = [o for o in args.ops.split(',') if o]
    bad = [o for o in args.ops if o not in OPS]
    if bad:
        p.error(f'unknown ops {bad}; choose from {OPS}')
    if len(set(args.ops)) < len(args.ops):  # each would count twice in the sums
        p.error(f'--ops names an operation twice: {",".join(args.ops)}')
    batch = args.batch or (128 if args.device == 'gpu' else 16)
    if args.whole_step:
        return run_whole_step(p, args)
    if args.model:
        try:
            configs, skipped = model_suite(args.model, args.batch)
        except (ValueError, TypeError) as e:   # the model file's own errors, named
            p.error(str(e))
        args.suite, source = f'model:{args.model}', f'model {args.model}'
        if args.ops == ['updateGradInput']:
            skipped += [f'{c[0]}: no input gradient in the model' for c in configs if not c[8]]
            configs = [c for c in configs if c[8]]
        for reason in skipped:
            print(f'left out {reason}')
    else:
        configs, source = suite(args.suite), f'suite {args.suite}'
    if args.layers:
        wanted = args.layers.split(',')
        unknown = set(wanted) - {c[0] for c in configs}
        if unknown:
            p.error(f'unknown layers {sorted(unknown)} in {source}')
        configs = [c for c in configs if c[0] in wanted]
    have_torch = _torch_peer(args)
    if args.device == 'gpu':
        print(f'TF32: torch {args.tf32}; CuPy CUPY_TF32={os.environ.get("CUPY_TF32", "0")}')
    rows = []
    for label, S, f, fo, n, k, stride, pad, *grad_input in configs:  # a model's rows say
        rows.append(run_config(label, S or batch, f, fo, n, k, stride, pad, args, have_torch,
                               *grad_input))
    impls = ['fft'] + (['direct'] if args.direct else []) + (['torch'] if have_torch else [])
    print_table(rows, args.ops, impls)
    if args.gemm_rates:
        print_gemm_rates(rows)
    if args.json:
        with atomic_path(args.json) as tmp, open(tmp, 'w') as fh:
            json.dump({'device': args.device, 'threads': os.cpu_count(), 'suite': args.suite,
                       'autotune': args.autotune, 'strategy': args.strategy,
                       'tf32_torch': args.tf32, 'tf32_cupy': os.environ.get('CUPY_TF32', '0'),
                       'ops': args.ops, 'rows': rows}, fh, indent=1)
    if args.plot:
        plot(rows, args.plot)
    return 0


if __name__ == '__main__':
    backend.keep_host_memory()  # as train.py does (PyTorch's tensors come from malloc too)
    sys.exit(main())
