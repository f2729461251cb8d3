#!/usr/bin/env python3
"""Train a model file from models/ on an HDF5 dataset.

  python scripts/train.py --model imagenet_small            # the defaults of models/imagenet_small.py
  python scripts/train.py --model fashion_small --conv direct
  python scripts/train.py --resume runs/X/checkpoint.h5      # continue exactly where it stopped
  python scripts/train.py --resume runs/X/checkpoint.h5 --eval-only
"""
import argparse
import contextlib
import csv
import datetime
import io
import itertools
import os
import signal
import sys
import threading

# OpenBLAS's workers spin for ~0.1 s after each GEMM (2^28 cycles), holding a core that the
# elementwise layers between the GEMMs want (they run on every core, minifft/parallel.py): a
# training step of imagenet_small at batch 64 took 608/609 ms so, 513/575 ms with 2^20 cycles.
# OpenBLAS reads this when NumPy loads it, hence before the first import of NumPy.
os.environ.setdefault('OPENBLAS_THREAD_TIMEOUT', '20')

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from minifft import backend, checkpoint, data, datasets, distributed, model_files, nn  # noqa: E402
from minifft import cli, optim, random, trainer  # noqa: E402
from minifft.atomic import atomic_path  # noqa: E402

BUILTIN_DATA = {'synthetic': datasets.prepare_synthetic,
                'fashion_mnist': datasets.prepare_fashion_mnist}
CONVS = {'fft': nn.SpatialConvolutionFFT, 'direct': nn.SpatialConvolution}
LOG_COLUMNS = ['epoch', 'train_loss', 'train_top1', 'val_loss', 'val_top1', 'val_top5',
               'images_per_s', 'seconds']
# on --resume, what the command line leaves out is taken from the run being continued (then
# from the model file); --max-steps (a smoke run's cap), --workers, --device and the like
# belong to the process, not to the run
RESUMED = ('model', 'data', 'epochs', 'batch_size', 'lr', 'momentum', 'weight_decay', 'schedule',
           'warmup_epochs', 'conv', 'seed')


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', help=f'a model file: {", ".join(model_files.available())}')
    p.add_argument('--data', help='an HDF5 dataset file, or a built-in name: '
                   f'{", ".join(BUILTIN_DATA)} (default: the model\'s)')
    p.add_argument('--epochs', type=cli.whole(1))
    p.add_argument('--batch-size', type=cli.whole(1))
    p.add_argument('--lr', type=float)
    p.add_argument('--momentum', type=float)
    p.add_argument('--weight-decay', type=float)
    p.add_argument('--schedule', help='constant | step:STEP[:GAMMA] | multistep:M1,M2[:GAMMA] | '
                   'cosine')
    p.add_argument('--warmup-epochs', type=cli.whole(0),
                   help='ramp the learning rate up linearly over these first epochs, step by '
                        'step (for a large global batch; default: the model\'s, else 0)')
    p.add_argument('--conv', choices=sorted(CONVS), help='default: fft')
    p.add_argument('--device', choices=backend.DEVICES, default='auto')
    p.add_argument('--seed', type=cli.whole(0), help='default: 0')
    p.add_argument('--out', help='output folder (default: a new one under runs/)')
    p.add_argument('--resume', metavar='CHECKPOINT')
    p.add_argument('--workers', type=cli.whole(0), default=2,
                   help='loader threads (0: synchronous)')
    p.add_argument('--eval-only', action='store_true', help='evaluate --resume on val and stop')
    p.add_argument('--max-steps', type=cli.whole(1), help='cap on steps per epoch (smoke runs)')
    p.add_argument('--no-progress', action='store_true', help='no progress bars')
    p.add_argument('--distributed', action='store_true',
                   help='data-parallel over MPI (implied when launched by mpirun)')
    p.add_argument('--no-autotune', dest='autotune', action='store_false',
                   help='FFT layers use the rule-based plan instead of timing the candidates '
                        'once per layer shape: results then never depend on timings, so separate '
                        'runs agree bit for bit (a resume takes the plans its checkpoint '
                        'recorded either way). Always off under MPI, so that every rank runs '
                        'the same plans')
    args = p.parse_args(argv)
    if args.eval_only and not args.resume:
        p.error('--eval-only needs --resume CHECKPOINT')
    if not args.model and not args.resume:
        p.error('--model is required (or --resume a checkpoint)')
    return args


def fill_defaults(args, spec):
    """The model file's defaults (then the library's) for what is still unset; the convolution
    and the seed are the library's alone."""
    for arg, attr, fallback in (('data', 'DATASET', None), ('epochs', 'EPOCHS', None),
                                ('batch_size', 'BATCH_SIZE', None), ('lr', 'LR', None),
                                ('momentum', 'MOMENTUM', 0.9),
                                ('weight_decay', 'WEIGHT_DECAY', 0.0),
                                ('schedule', 'SCHEDULE', 'constant'),
                                ('warmup_epochs', 'WARMUP_EPOCHS', 0),
                                ('conv', None, 'fft'), ('seed', None, 0)):
        if getattr(args, arg) is None:
            setattr(args, arg, getattr(spec, attr, fallback) if attr else fallback)


def dataset_path(name, comm, progress):
    if name in BUILTIN_DATA:
        path = datasets.default_path(name)
        if comm.is_main and not os.path.exists(path):
            print(f'dataset {name!r} is not prepared yet: preparing {path} now')
            BUILTIN_DATA[name](path, progress=progress)
        comm.barrier()  # the other ranks wait for rank 0 to write it
        return path
    if not os.path.exists(name):
        raise FileNotFoundError(f'--data {name}: no such file, and not a built-in dataset '
                                f'({", ".join(BUILTIN_DATA)}); see scripts/prepare_data.py')
    return name


def saved_args(args):
    """The run's settings as its checkpoint keeps them: a model file or dataset given as a
    path becomes an absolute one, so that a resume from another folder finds them (built-in
    names stay names)."""
    settings = dict(vars(args))
    if settings['model'].endswith('.py'):
        settings['model'] = os.path.abspath(settings['model'])
    if settings['data'] not in BUILTIN_DATA:
        settings['data'] = os.path.abspath(settings['data'])
    return settings


_MEMORY_SLACK = 1.25


def check_memory(model, criterion, sample_shape, batch):
    """Refuses a batch whose training step would not fit the host's available memory (the
    kernel would kill the process partway, without a word), from the step's memory measured
    on two small batches (``trainer.step_bytes``), plus a quarter (``_MEMORY_SLACK``) for
    what that leaves out: the allocator's own waste, the loader's batches, the interpreter
    (imagenet_small at batch 256: a traced peak of 2.86 GB, the whole train.py process
    3.48 GB)."""
    available = backend.available_host_memory()
    if available is None:
        return
    fixed, per_sample = trainer.step_bytes(model, criterion, sample_shape)
    need = _MEMORY_SLACK * (fixed + per_sample * batch)
    if need > available:
        # a tenth less again, so that the batch suggested passes when measured anew
        fits = (max(0, int((0.9 * available / _MEMORY_SLACK - fixed) // per_sample))
                if per_sample else 0)
        raise ValueError(f'a training step at batch {batch} needs about {need / 2**30:.1f} '
                         f'GiB ({per_sample / 2**20:.1f} MiB a sample, measured on small '
                         f'batches), and {available / 2**30:.1f} GiB of memory are available: '
                         f'pass a --batch-size of at most {fits}')


def write_log(out, history):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, LOG_COLUMNS, lineterminator='\n')
    writer.writeheader()
    writer.writerows({k: row[k] for k in LOG_COLUMNS} for row in history)
    with atomic_path(os.path.join(out, 'log.csv')) as tmp, open(tmp, 'w') as f:
        f.write(buf.getvalue())


def load_pyplot():
    """matplotlib's pyplot (headless), or None without the plot extra. Loaded before training
    starts: a Ctrl-C during this import at the end of an epoch would leave matplotlib half
    initialised and print tracebacks at exit."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_curves(out, history, plt):
    if plt is None:
        return
    epochs = [r['epoch'] for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(epochs, [r['train_loss'] for r in history], 'o-', label='train')
    a.plot(epochs, [r['val_loss'] for r in history], 'o-', label='val')
    a.set_xlabel('epoch'), a.set_ylabel('loss'), a.legend()
    b.plot(epochs, [r['train_top1'] for r in history], 'o-', label='train top-1')
    b.plot(epochs, [r['val_top1'] for r in history], 'o-', label='val top-1')
    b.plot(epochs, [r['val_top5'] for r in history], 'o-', label='val top-5')
    b.set_xlabel('epoch'), b.set_ylabel('accuracy'), b.legend()
    fig.tight_layout()
    with atomic_path(os.path.join(out, 'curves.png')) as tmp:
        fig.savefig(tmp, format='png')
    plt.close(fig)


RUN_FILES = ('checkpoint.h5', 'log.csv', 'curves.png')
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def output_folder(out, args):
    """The run's folder, made: ``out``, which must not hold another run's files (they would be
    overwritten) unless this run continues the checkpoint there; or, with None, a new folder
    under runs/ named after the model, the convolution and the time (a second run started in
    the same second gets a suffix, not the first one's folder)."""
    if out is None:
        base = os.path.join('runs', f'{model_files.label(args.model)}-{args.conv}-'
                                    f'{datetime.datetime.now():%Y%m%d-%H%M%S}')
        return next(folder for folder in itertools.chain(
            [base], (f'{base}-{n}' for n in itertools.count(2))) if _made(folder, False))
    _made(out, True)
    ckpt = os.path.join(out, 'checkpoint.h5')
    continuing = args.resume and os.path.exists(ckpt) and os.path.samefile(args.resume, ckpt)
    held = [name for name in RUN_FILES if os.path.exists(os.path.join(out, name))]
    if held and not continuing:
        raise ValueError(f'output folder {out} already holds a run ({", ".join(held)}), which '
                         f'this one would overwrite; continue it with --resume {ckpt}, or '
                         'pass another --out')
    return out


def _made(folder, exist_ok):
    """Makes ``folder``: False where it exists already and may not (``exist_ok`` False)."""
    try:
        os.makedirs(folder, exist_ok=exist_ok)
    except FileExistsError as e:  # a folder where it may not be, or a file
        if not exist_ok:
            return False
        raise ValueError(f'output folder {folder}: is a file; expected a folder') from e
    except OSError as e:
        raise ValueError(f'output folder {folder}: cannot create it ({e.strerror or e})') from e
    return True


@contextlib.contextmanager
def _taken_back_if_empty(folder):
    """Removes ``folder`` (one this run made; None for none) if it is still empty when the
    block ends, however it ends: a run that fails before it saves anything (a model whose
    layers do not fit its input fails at the first step) leaves no empty run folder behind."""
    try:
        yield
    finally:
        if folder and os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)


def main(argv=None):
    args = parse_args(argv)
    comm = distributed.communicator(args.distributed)
    previous = nn.autotune.enable(args.autotune and comm.world == 1)
    trainer.clear_interrupt()
    # SIGTERM too (a batch system's notice before it kills the job): the run stops the same way,
    # saving a checkpoint, instead of dying with the epoch in hand lost
    handlers = ({s: signal.signal(s, trainer.on_interrupt) for s in STOP_SIGNALS}
                if threading.current_thread() is threading.main_thread() else {})
    unraisable_hook = sys.unraisablehook
    sys.unraisablehook = trainer.quiet_interrupts(unraisable_hook)
    try:
        return run(args, comm)
    except (ValueError, FileNotFoundError, RuntimeError, OSError, MemoryError) as e:
        # NumPy names the array it could not allocate; a smaller batch is the usual way out
        message = (f'out of memory: {e}; a smaller --batch-size needs less'
                   if isinstance(e, MemoryError) else e)
        if comm.world > 1:
            comm.abort(f'train.py: error: {message}', 2)
        print(f'train.py: error: {message}', file=sys.stderr)
        return 2
    except Exception as e:
        if comm.world > 1:  # any failure on one rank ends every rank, never a hang
            comm.abort(f'train.py: {type(e).__name__}: {e}')
        raise
    finally:
        nn.autotune.enable(previous)
        trainer.clear_interrupt()  # handled: a later loop in this process must not see it
        for s, handler in handlers.items():
            signal.signal(s, handler)
        sys.unraisablehook = unraisable_hook


def run(args, comm):
    say = print if comm.is_main else (lambda *a, **k: None)
    meta = checkpoint.read_meta(args.resume) if args.resume else None
    if meta:  # what the command line leaves out, the run being continued had
        for key in RESUMED:
            if getattr(args, key) is None:
                setattr(args, key, meta['args'].get(key))
    spec = model_files.load(args.model)
    fill_defaults(args, spec)
    device = backend.resolve_device(args.device)
    if device == 'gpu':
        comm.pin_gpu()
    threads = comm.share_cores() if device == 'cpu' else None
    random.manualSeed(args.seed)
    tuning = ', FFT plans autotuned' if (nn.autotune.enabled()
                                          and args.conv == 'fft') else ''
    say(f'model {args.model} ({args.conv} convolutions{tuning}) on {device}, seed {args.seed}' +
        (f', {comm.world} ranks, global batch {comm.world * args.batch_size}'
         if comm.world > 1 else '') +
        (f", {threads} thread{'s' if threads > 1 else ''} per rank"
         if comm.world > 1 and threads else ''))

    path = dataset_path(args.data, comm, not args.no_progress)
    train_set, val_set = data.HDF5Dataset(path, 'train'), data.HDF5Dataset(path, 'val')
    for ds in (train_set, val_set):  # else an epoch of nothing, reported as a loss of 0
        if len(ds) == 0:
            raise ValueError(f'{path}: the {ds.split} split holds no images')
    if tuple(train_set.image_shape) != tuple(spec.INPUT_SHAPE):
        raise ValueError(f'{path}: train/images holds {train_set.image_shape} images, model '
                         f'{args.model} expects {tuple(spec.INPUT_SHAPE)}')
    model = model_files.create(spec, train_set.n_classes, conv=CONVS[args.conv])
    if not isinstance(model, nn.Container) or not len(model):
        raise ValueError(f'{args.model}: create_model must return an nn.Sequential (or another '
                         f'container) of modules, got {model!r:.80}')
    model.type(device)
    model.get(0).gradInputNeeded = False  # the data needs no gradient
    criterion = nn.CrossEntropyCriterion()
    opt = optim.SGD(*model.parameters(), lr=args.lr, momentum=args.momentum,
                    weight_decay=args.weight_decay)
    schedule = optim.make_schedule(args.schedule, args.lr, args.epochs, args.warmup_epochs)
    loaders = [data.DataLoader(ds, args.batch_size, shuffle=shuffle, seed=args.seed,
                               augment=augment, workers=args.workers, device=device,
                               crop_pad=getattr(spec, 'CROP_PAD', 4), rank=comm.rank,
                               world=comm.world)
               for ds, shuffle, augment in ((train_set, True, getattr(spec, 'AUGMENT', False)),
                                            (val_set, False, False))]
    if device == 'cpu' and comm.world == 1 and not args.eval_only:
        check_memory(model, criterion, spec.INPUT_SHAPE, min(args.batch_size, len(train_set)))
    start_epoch, history = 0, []
    if args.resume:
        meta = checkpoint.load(args.resume, model, opt)
        start_epoch, history = meta['epoch'], meta['history']
        if nn.autotune.enabled():  # the plans of the run it continues
            nn.autotune.adopt(meta['extra'].get('fft_plans', []))
        say(f'resumed {args.resume} after epoch {start_epoch}: data {args.data}, batch '
            f'{args.batch_size}, lr {args.lr} ({args.schedule}'
            f'{f", {args.warmup_epochs} epochs of warm-up" if args.warmup_epochs else ""}), '
            f'--epochs {args.epochs}')
        if start_epoch >= args.epochs and not args.eval_only:
            say(f'nothing to train: the checkpoint holds epoch {start_epoch} and --epochs is '
                f'{args.epochs} (the total to reach); pass a larger --epochs to continue')
            return 0
    comm.broadcast_state(model, opt)
    progress = comm.is_main and not args.no_progress
    if args.eval_only:
        stats = trainer.evaluate(model, criterion, loaders[1], progress, comm)
        say(f'val loss {stats["loss"]:.4f} top1 {stats["top1"]:.4f} top5 {stats["top5"]:.4f}')
        return 0

    out = args.out or (os.path.dirname(os.path.abspath(args.resume)) if args.resume else None)
    made = comm.is_main and not (out and os.path.isdir(out))
    if comm.is_main:
        out = output_folder(out, args)
    with _taken_back_if_empty(out if made else None):
        ckpt = os.path.join(out or '', 'checkpoint.h5')  # out: None on ranks that write nothing
        say(f'writing to {out}')
        settings = saved_args(args)
        done = start_epoch  # epochs whose results are in the checkpoint
        plt = load_pyplot() if comm.is_main else None
        try:
            for epoch in range(start_epoch, args.epochs):
                loaders[0].set_epoch(epoch)
                tr = trainer.train_epoch(model, criterion, opt, loaders[0], epoch, args.max_steps,
                                         progress, comm=comm, schedule=schedule)
                va = trainer.evaluate(model, criterion, loaders[1], progress, comm)
                row = {'epoch': epoch + 1, 'train_loss': tr['loss'], 'train_top1': tr['top1'],
                       'val_loss': va['loss'], 'val_top1': va['top1'], 'val_top5': va['top5'],
                       'images_per_s': tr['images_per_s'], 'seconds': tr['seconds']}
                history.append(row)
                if comm.is_main:
                    checkpoint.save(ckpt, model, opt, epoch + 1, settings, history,
                                    {'fft_plans': nn.autotune.choices()})
                done = epoch + 1
                if comm.is_main:
                    write_log(out, history)
                    plot_curves(out, history, plt)
                say(f'epoch {epoch + 1}/{args.epochs}  lr {opt.lr:.4g}  train loss '
                    f'{tr["loss"]:.4f} top1 {tr["top1"]:.4f}  val top1 {va["top1"]:.4f} top5 '
                    f'{va["top5"]:.4f}  {tr["images_per_s"]:.0f} img/s  {tr["seconds"]:.0f} s' +
                    ''.join(f'  {k} {v / 2**20:.0f} MiB'
                            for k, v in backend.memory_stats().items()), flush=True)
        except trainer.NonFiniteLoss as e:  # every rank raises it at the same step
            say(f'error: {e}; last good checkpoint: '
                f'{ckpt if os.path.exists(ckpt) else "none yet"}', file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            # an unfinished epoch is not counted: resuming repeats it from these weights
            if comm.is_main:
                checkpoint.save(ckpt, model, opt, done, settings, history,
                                {'interrupted': True, 'fft_plans': nn.autotune.choices()})
            say(f'\ninterrupted during epoch {done + 1}: saved {ckpt}; continue with '
                f'--resume {ckpt}', file=sys.stderr)
            return 128 + (trainer.interrupt_signal() or signal.SIGINT)  # the shell's convention
        say(f'done: {out}')
        return 0


if __name__ == '__main__':
    backend.keep_host_memory()  # arrays of the same sizes every step: no page faults for them
    sys.exit(main())
