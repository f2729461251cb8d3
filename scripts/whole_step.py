"""``benchmark.py --model NAME --whole-step``: a model file's whole training step, with FFT
and with direct convolutions, and as the same network in PyTorch (torch_twin.py)."""
import functools
import itertools

import numpy as np

from minifft import backend, nn, optim
from rounds import IDLE_GAP, measure, rel, timed
import torch_twin


def whole_step(name, args, have_torch):
    """A whole training step of the model file ``name`` (forward, cross-entropy loss,
    backward, the model's SGD update; the first layer without an input gradient, as
    train.py runs it) on random data at the model's batch size (``--batch`` where given):
    with FFT convolutions, with direct ones (unless ``--no-direct``) and, where installed,
    the same network in PyTorch (``torch_twin``), in rounds as the layers are timed
    (``measure``). First each network's outputs in evaluate mode are compared with the
    FFT one's. Returns a row: per implementation its median step and images/s."""
    from minifft import model_files
    module = model_files.load(name)
    S, shape, n_classes = args.batch or module.BATCH_SIZE, tuple(module.INPUT_SHAPE), 10
    rng = np.random.default_rng(0)
    xp = backend.xp_for(args.device)
    data = [(xp.asarray(rng.standard_normal((S,) + shape, dtype=np.float32)),
             xp.asarray(rng.integers(0, n_classes, S))) for _ in range(2)]
    hyper = dict(lr=module.LR, momentum=getattr(module, 'MOMENTUM', 0.0),
                 weight_decay=getattr(module, 'WEIGHT_DECAY', 0.0))
    nets = {'fft': model_files.create(module, n_classes, conv=functools.partial(
        nn.SpatialConvolutionFFT, strategy=args.strategy))}
    if args.direct:
        nets['direct'] = model_files.create(module, n_classes, conv=nn.SpatialConvolution)
        for (_, p, _), (_, q, _) in zip(nets['direct'].named_parameters(),
                                        nets['fft'].named_parameters()):
            p[...] = q  # the FFT network's parameters, copied while both are on the host
    rounds, outputs = {}, {}
    for impl, net in nets.items():
        net.type(args.device)
        net.get(0).gradInputNeeded = False
        outputs[impl] = net.evaluate().forward(data[0][0]).copy()
        net.training()
        rounds[impl] = _minifft_step(net, optim.SGD(*net.parameters(), **hyper), data)
    if have_torch:
        import torch
        twin = torch_twin.build(nets['fft'], args.device)
        dev = 'cuda' if args.device == 'gpu' else 'cpu'
        tdata = [(torch.as_tensor(backend.asnumpy(x), device=dev),
                  torch.as_tensor(backend.asnumpy(y), device=dev)) for x, y in data]
        with torch.no_grad():
            outputs['torch'] = twin.eval()(tdata[0][0]).cpu().numpy()
        twin.train()
        rounds['torch'] = _torch_step(twin, torch.optim.SGD(twin.parameters(), **hyper), tdata,
                                      dev)
    row = {'label': model_files.label(name), 'S': S, 'input_shape': list(shape),
           **{f'error_{impl}': rel(outputs[impl], outputs['fft']) for impl in outputs
              if impl != 'fft'},
           **measure(rounds, args.repeat, args.warmup, ['step'],
                     IDLE_GAP if args.device == 'cpu' else 0)}
    for impl in rounds:
        row[impl]['images_per_s'] = S / row[impl]['step']
    return row


def _minifft_step(net, opt, data):
    criterion, steps = nn.CrossEntropyCriterion(), itertools.count()

    def step(x, y):
        scores = net.forward(x)
        criterion.updateOutput(scores, y)
        net.zeroGradParameters()
        net.backward(x, criterion.updateGradInput(scores, y))
        opt.step()

    return lambda: {'step': timed(lambda: step(*data[next(steps) % 2]), backend.synchronize)}


def _torch_step(net, opt, data, dev):
    import torch
    sync, steps = torch.cuda.synchronize if dev == 'cuda' else (lambda: None), itertools.count()

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()

    return lambda: {'step': timed(lambda: step(*data[next(steps) % 2]), sync)}


def print_whole_step(row, impls):
    print(f'{row["label"]}: a whole training step at batch {row["S"]} (forward, loss, '
          'backward, SGD update; medians of the rounds)')
    print(f'{"impl":8s} {"step ms":>9s} {"images/s":>9s} {"fft/impl":>9s} {"quartiles":>11s} '
          f'{"err":>8s}')
    for impl in impls:
        r = row[impl]
        line = f'{impl:8s} {r["step"] * 1e3:9.1f} {r["images_per_s"]:9.1f}'
        if impl != 'fft':
            low, high = r['step_vs_quartiles']
            line += (f' {r["step_vs"]:8.2f}x {f"{low:.2f}-{high:.2f}":>11s} '
                     f'{row["error_" + impl]:8.1e}')
        print(line)
    print('fft/impl = how many times faster the network with FFT convolutions steps than impl '
          '(median of the per-round ratios); err = relative L2 difference of the outputs from '
          "the FFT network's, in evaluate mode")
