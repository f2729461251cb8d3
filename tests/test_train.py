"""scripts/train.py end to end on a tiny dataset and a tiny model file: the loss falls, the files
appear, resume is exact, bad checkpoints and inputs give clear errors."""
import csv
import functools
import importlib.util
import os
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

from minifft import checkpoint, datasets, model_files, nn, trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, 'scripts', 'train.py')

TINY_MODEL = '''
from minifft import nn
INPUT_SHAPE = (3, 12, 12)
DATASET = 'synthetic'
EPOCHS = 3
BATCH_SIZE = 16
LR = 0.05
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
SCHEDULE = 'cosine'
AUGMENT = True
CROP_PAD = 1


def create_model(n_classes, conv=nn.SpatialConvolutionFFT):
    return nn.Sequential(conv(3, 8, 5, 5, 1, 1, 2, 2), nn.SpatialBatchNormalization(8),
                         nn.ReLU(), nn.SpatialMaxPooling(2, 2, 2, 2), conv(8, 8, 3, 3, 1, 1, 1, 1),
                         nn.ReLU(), nn.View(-1), nn.Dropout(0.1), nn.Linear(8 * 6 * 6, n_classes))
'''


def _load_train():
    spec = importlib.util.spec_from_file_location('train_script', TRAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train = _load_train()


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """A 4-class dataset (a bright bar in one of four bands: left-right flips keep the class)
    and the tiny model."""
    root = tmp_path_factory.mktemp('train')
    rng = np.random.default_rng(0)

    def split(n):
        labels = rng.integers(0, 4, n)
        images = rng.integers(0, 80, (n, 3, 12, 12)).astype(np.uint8)
        for i, c in enumerate(labels):
            images[i, :, 3 * c:3 * c + 2, 2:10] += 150
        return n, [(images, labels)]

    data = datasets.write_dataset(str(root / 'tiny.h5'), {'train': split(160), 'val': split(48)},
                                  ['a', 'b', 'c', 'd'], 'test', (3, 12, 12))
    model = root / 'tiny_model.py'
    model.write_text(TINY_MODEL)
    return str(data), str(model), root


def run(setup, *extra):
    data, model, _ = setup
    return train.main(['--model', model, '--data', data, '--workers', '1', '--no-progress',
                       *extra])


def test_no_progress_quiets_the_data_preparation_too(tmp_path, monkeypatch, capsys):
    """A built-in dataset prepared on first use draws its bars as training does: none with
    --no-progress."""
    from minifft import distributed
    monkeypatch.setattr(datasets, 'DATA_DIR', str(tmp_path))
    monkeypatch.setitem(train.BUILTIN_DATA, 'synthetic', functools.partial(
        datasets.prepare_synthetic, n_train=2000, n_val=1000))
    for progress in (False, True):
        path = train.dataset_path('synthetic', distributed.Single(), progress)
        assert path == str(tmp_path / 'synthetic.h5') and os.path.exists(path)
        assert ('synthetic train' in capsys.readouterr().err) == progress
        os.remove(path)


def read_log(out):
    with open(os.path.join(out, 'log.csv')) as f:
        return list(csv.DictReader(f))


def test_loss_falls_and_files_appear(setup):
    out = str(setup[2] / 'run')
    tuned_before = len(nn.autotune.tuned())
    assert run(setup, '--out', out) == 0
    assert len(nn.autotune.tuned()) > tuned_before  # autotuned the FFT layers' geometries
    assert not nn.autotune.enabled()  # and left the library's default as it was
    rows = read_log(out)
    assert [int(r['epoch']) for r in rows] == [1, 2, 3]
    assert list(rows[0]) == train.LOG_COLUMNS
    assert float(rows[-1]['train_loss']) < float(rows[0]['train_loss'])
    assert float(rows[-1]['val_top1']) > 0.5  # chance is 0.25
    assert os.path.exists(os.path.join(out, 'checkpoint.h5'))
    assert os.path.exists(os.path.join(out, 'curves.png'))
    assert not [f for f in os.listdir(out) if f.endswith('.partial')]


def _params(path):
    with h5py.File(path) as f:
        return {k: f['params'][k][...] for k in f['params']}


def test_resume_is_exact(setup):
    root = setup[2]
    straight, split = str(root / 'straight'), str(root / 'split')
    # with the rule-based plans (resuming an autotuned run: the next test)
    assert run(setup, '--epochs', '2', '--no-autotune', '--out', straight) == 0
    assert run(setup, '--epochs', '1', '--no-autotune', '--out', split) == 0
    assert run(setup, '--epochs', '2', '--no-autotune', '--resume',
               os.path.join(split, 'checkpoint.h5')) == 0
    a = _params(os.path.join(straight, 'checkpoint.h5'))
    b = _params(os.path.join(split, 'checkpoint.h5'))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert [r['epoch'] for r in read_log(split)] == ['1', '2']


def test_resume_keeps_the_runs_settings(setup, capsys):
    """`--resume X` continues the run X was: its data, batch size, learning rate and
    schedule, not the model file's defaults (which would have trained on the synthetic set at
    lr 0.05 here, or on other data of the same shape without a word)."""
    root = setup[2]
    straight, split = str(root / 'kept_straight'), str(root / 'kept_split')
    settings = ['--lr', '0.01', '--batch-size', '8', '--schedule', 'step:1:0.5', '--seed', '3',
                '--warmup-epochs', '3', '--no-autotune']
    assert run(setup, '--epochs', '2', *settings, '--out', straight) == 0
    assert run(setup, '--epochs', '1', *settings, '--out', split) == 0
    capsys.readouterr()
    assert train.main(['--resume', os.path.join(split, 'checkpoint.h5'), '--epochs', '2',
                       '--no-autotune', '--workers', '1', '--no-progress']) == 0
    said = capsys.readouterr().out
    assert (f'data {setup[0]}, batch 8, lr 0.01 (step:1:0.5, 3 epochs of warm-up), --epochs 2'
            in said)
    assert 'seed 3' in said
    a = _params(os.path.join(straight, 'checkpoint.h5'))
    b = _params(os.path.join(split, 'checkpoint.h5'))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_resume_from_another_folder_finds_the_model_and_data(setup, tmp_path, monkeypatch):
    """A run started with a relative --model and --data kept those relative paths in its
    checkpoint, so a resume from any other working folder failed ("unknown model", "no such
    file"): the checkpoint keeps them absolute."""
    data, model, _ = setup
    start, elsewhere = tmp_path / 'start', tmp_path / 'elsewhere'
    start.mkdir(), elsewhere.mkdir()
    monkeypatch.chdir(start)
    assert train.main(['--model', os.path.relpath(model), '--data', os.path.relpath(data),
                       '--epochs', '1', '--out', 'run', '--workers', '1', '--no-progress']) == 0
    ckpt = str(start / 'run' / 'checkpoint.h5')
    saved = checkpoint.read_meta(ckpt)['args']
    assert (saved['model'], saved['data']) == (model, data)
    monkeypatch.chdir(elsewhere)
    assert train.main(['--resume', ckpt, '--epochs', '2', '--workers', '1',
                       '--no-progress']) == 0
    assert checkpoint.read_meta(ckpt)['epoch'] == 2
    # built-in names stay names (found where the code is, wherever it runs)
    kept = train.saved_args(train.parse_args(['--model', 'fashion_small', '--data',
                                              'synthetic']))
    assert (kept['model'], kept['data']) == ('fashion_small', 'synthetic')


def test_warmup_ramps_the_rate_step_by_step(setup):
    """``--warmup-epochs``: the README advises a warm-up for a learning rate scaled with the
    global batch, and train.py had none. The rate rises linearly step by step to the
    schedule's, then follows it."""
    from minifft import data, optim, trainer

    class Recording(optim.SGD):
        def step(self):
            self.seen.append(self.lr)
            super().step()

    model = nn.Sequential(nn.View(-1), nn.Linear(3 * 12 * 12, 4))
    opt = Recording(*model.parameters(), lr=0.4)
    opt.seen = []
    loader = data.DataLoader(data.HDF5Dataset(setup[0]), 40, workers=0)  # 4 steps an epoch
    schedule = optim.make_schedule('step:2:0.5', 0.4, 4, warmup=2)
    for epoch in range(3):
        trainer.train_epoch(model, nn.CrossEntropyCriterion(), opt, loader, epoch,
                            progress=False, schedule=schedule)
    assert opt.seen == pytest.approx([0.4 * i / 8 for i in range(1, 9)] + [0.2] * 4)


def test_resume_with_autotuning_keeps_the_plans(setup, monkeypatch):
    """An autotuned run's checkpoint carries its plans: a resumed run in a fresh process
    (no timings yet) takes them instead of measuring anew, so it continues bit for bit even
    where new measurements would pick other plans."""
    from minifft.nn import autotune
    root = setup[2]
    straight, split = str(root / 'tuned_straight'), str(root / 'tuned_split')

    def favour(winner):
        monkeypatch.setattr(autotune, '_tuned', {})
        monkeypatch.setattr(autotune, '_time_step',
                            lambda plan, *a: 0.001 if plan.kind == winner else 1.0)

    favour('fft')
    assert run(setup, '--epochs', '2', '--out', straight) == 0
    favour('fft')
    assert run(setup, '--epochs', '1', '--out', split) == 0
    favour('dft')  # a fresh process would now measure the DFT plan fastest
    assert run(setup, '--epochs', '2', '--resume', os.path.join(split, 'checkpoint.h5')) == 0
    assert {row[3] for row in autotune.choices()} == {'fft'}
    a = _params(os.path.join(straight, 'checkpoint.h5'))
    b = _params(os.path.join(split, 'checkpoint.h5'))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match='not an autotuning choice'):
        autotune.adopt([['numpy', '<f4', [1, 2, 3], 'winograd']])


def test_eval_only_reproduces_saved_accuracy(setup, capsys):
    out = str(setup[2] / 'evalrun')
    assert run(setup, '--epochs', '1', '--out', out) == 0
    saved = float(read_log(out)[-1]['val_top1'])
    capsys.readouterr()
    assert run(setup, '--resume', os.path.join(out, 'checkpoint.h5'), '--eval-only') == 0
    printed = capsys.readouterr().out
    assert f'top1 {saved:.4f}' in printed


def test_direct_convolutions_train_too(setup):
    out = str(setup[2] / 'direct')
    assert run(setup, '--epochs', '1', '--conv', 'direct', '--out', out) == 0
    assert len(read_log(out)) == 1


@pytest.mark.filterwarnings('ignore::RuntimeWarning')
def test_non_finite_loss_stops_and_keeps_checkpoint(setup, capsys):
    out = str(setup[2] / 'nan')
    assert run(setup, '--epochs', '1', '--out', out) == 0
    before = _params(os.path.join(out, 'checkpoint.h5'))
    code = run(setup, '--epochs', '2', '--lr', '1e30', '--resume', os.path.join(out, 'checkpoint.h5'))
    assert code == 1
    err = capsys.readouterr().err
    assert 'loss became' in err and 'epoch 2, step' in err
    after = _params(os.path.join(out, 'checkpoint.h5'))
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_corrupt_checkpoint_is_a_clear_error(setup, tmp_path):
    bad = tmp_path / 'checkpoint.h5'
    bad.write_bytes(b'\x89HDF\r\n garbage')
    r = subprocess.run([sys.executable, TRAIN, '--model', setup[1], '--data', setup[0],
                        '--resume', str(bad)], capture_output=True, text=True)
    assert r.returncode == 2
    assert 'not a readable HDF5 checkpoint' in r.stderr and 'Traceback' not in r.stderr
    # a checkpoint of another model: names what does not match
    out = str(tmp_path / 'other')
    assert run(setup, '--epochs', '1', '--out', out) == 0
    from minifft import nn, optim
    other = nn.Sequential(nn.Linear(3, 4))
    with pytest.raises(checkpoint.CheckpointError, match='params do not match the model'):
        checkpoint.load(os.path.join(out, 'checkpoint.h5'), other,
                        optim.SGD(*other.parameters(), lr=0.1))


def test_another_runs_folder_is_never_overwritten(setup, tmp_path, capsys):
    """``--out`` naming the folder of an earlier run replaced its checkpoint, log and curves
    without a word; the run being resumed there may write to it, and a default folder taken
    in the same second gets a suffix."""
    out = tmp_path / 'first'
    assert run(setup, '--epochs', '1', '--out', str(out)) == 0
    before = {name: (out / name).read_bytes() for name in train.RUN_FILES}
    capsys.readouterr()
    assert run(setup, '--epochs', '1', '--out', str(out), '--seed', '5') == 2
    err = capsys.readouterr().err
    assert (f'output folder {out} already holds a run (checkpoint.h5, log.csv, curves.png)'
            in err and f'--resume {out / "checkpoint.h5"}' in err), err
    assert {name: (out / name).read_bytes() for name in train.RUN_FILES} == before
    ckpt = str(out / 'checkpoint.h5')
    assert run(setup, '--resume', ckpt, '--epochs', '2', '--out', str(out)) == 0
    assert checkpoint.read_meta(ckpt)['epoch'] == 2
    # a folder given as the checkpoint to resume
    assert run(setup, '--resume', str(out)) == 2
    assert f'{out}: is a folder; expected a checkpoint file, such as {ckpt}' in \
        capsys.readouterr().err


def test_default_run_folders_started_together_are_distinct(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = train.parse_args(['--model', 'fashion_small', '--conv', 'fft'])
    first, second = (train.output_folder(None, args) for _ in range(2))
    assert first != second and os.path.isdir(first) and os.path.isdir(second)
    assert os.path.basename(first).startswith('fashion_small-fft-')


def test_bad_arguments(setup, tmp_path):
    r = subprocess.run([sys.executable, TRAIN, '--model', 'no_such_model'], capture_output=True,
                       text=True)
    assert r.returncode == 2 and 'imagenet_small' in r.stderr and 'fashion_small' in r.stderr
    r = subprocess.run([sys.executable, TRAIN, '--model', 'imagenet_small', '--data', setup[0],
                        '--no-progress'], capture_output=True, text=True)
    assert r.returncode == 2
    assert 'train/images holds (3, 12, 12) images' in r.stderr and '(3, 64, 64)' in r.stderr
    r = subprocess.run([sys.executable, TRAIN, '--model', 'imagenet_small', '--data',
                        str(tmp_path / 'none.h5')], capture_output=True, text=True)
    assert r.returncode == 2 and 'no such file' in r.stderr
    for threads in ('two', '0', '-1'):
        r = subprocess.run([sys.executable, TRAIN, '--model', setup[1], '--data', setup[0],
                            '--epochs', '1', '--out', str(tmp_path / 'threads')],
                           capture_output=True, text=True,
                           env=dict(os.environ, MINIFFT_THREADS=threads))
        assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr
        assert f"MINIFFT_THREADS must be a whole number of threads, at least 1, got '{threads}'" \
            in r.stderr


@pytest.mark.parametrize('flag, value, minimum', [
    ('--epochs', '0', 1), ('--epochs', '-1', 1), ('--batch-size', '0', 1),
    ('--max-steps', '0', 1), ('--max-steps', '-2', 1), ('--workers', '-3', 0),
    ('--seed', '-1', 0), ('--epochs', 'two', 1)])
def test_bad_counts_are_named_before_any_work(setup, tmp_path, flag, value, minimum):
    """Counts out of range used to train zero steps and report zero losses (--max-steps -2),
    end "done" having done nothing (--epochs 0), take the default silently (--max-steps 0) or
    fail after the run folder was made with a message that named no flag (--workers -3)."""
    out = tmp_path / 'run'
    r = subprocess.run([sys.executable, TRAIN, '--model', setup[1], '--data', setup[0],
                        '--out', str(out), flag, value], capture_output=True, text=True)
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr
    assert f"argument {flag}: must be a whole number >= {minimum}, got '{value}'" in r.stderr
    assert not out.exists()


@pytest.mark.parametrize('empty', ['train', 'val'])
def test_an_empty_split_is_named(setup, tmp_path, capsys, empty):
    """An empty train split trained nothing and reported a loss of 0.0000, an empty val split
    a val top-1 of 0.0000; both ended 'done'."""
    path = tmp_path / 'empty.h5'
    with h5py.File(setup[0]) as src, h5py.File(path, 'w') as f:
        for split in ('train', 'val'):
            n = 0 if split == empty else len(src[split]['labels'])
            f[f'{split}/images'] = src[split]['images'][:n]
            f[f'{split}/labels'] = src[split]['labels'][:n]
        for key, value in src.attrs.items():
            f.attrs[key] = value
    out = tmp_path / 'run'
    assert train.main(['--model', setup[1], '--data', str(path), '--out', str(out),
                       '--no-progress']) == 2
    assert f'empty.h5: the {empty} split holds no images' in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize('flag, value, message', [
    ('--schedule', 'step:0', "schedule 'step:0': StepSchedule: step must be a whole number"),
    ('--lr', 'nan', 'SGD: lr must be a finite number >= 0, got nan'),
    ('--momentum', '-0.5', 'SGD: momentum must be a finite number >= 0, got -0.5')])
def test_bad_rates_and_schedules_are_named_before_training(setup, tmp_path, capsys, flag,
                                                           value, message):
    """``--schedule step:0`` was a ZeroDivisionError traceback when the first epoch began,
    ``--lr nan`` trained to NaN."""
    out = tmp_path / 'run'
    assert run(setup, '--out', str(out), flag, value) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_model_file_defaults_are_checked(setup, tmp_path):
    model = tmp_path / 'zero_epochs.py'
    model.write_text(TINY_MODEL.replace('EPOCHS = 3', 'EPOCHS = 0'))
    r = subprocess.run([sys.executable, TRAIN, '--model', str(model), '--data', setup[0],
                        '--out', str(tmp_path / 'run')], capture_output=True, text=True)
    assert r.returncode == 2 and 'EPOCHS must be a whole number >= 1, got 0' in r.stderr
    assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('change, expected', [
    (('EPOCHS = 3', 'EPOCHS = 3\nx = undefined_name'),
     r"bad\.py, line 6 \(x = undefined_name\): NameError while loading it: name "
     r"'undefined_name' is not defined$"),
    (('EPOCHS = 3', 'EPOCHS = (3'),
     r"bad\.py, line 5 \(EPOCHS = \(3\): SyntaxError while loading it: '\(' was never "
     r"closed$"),
    (('conv(8, 8, 3, 3, 1, 1, 1, 1)', 'conv(8, 8)'),
     r"bad\.py, line 17 \(.*conv\(8, 8\),\): TypeError while building the model: .*kW"),
    (('conv(3, 8, 5, 5, 1, 1, 2, 2)', 'conv(3, 0, 5, 5, 1, 1, 2, 2)'),
     r"bad\.py, line 16 \(.*\): ValueError while building the model: "
     r"nn\.SpatialConvolutionFFT: nOutputPlane must be a whole number >= 1, got 0$")],
    ids=['name', 'syntax', 'type', 'value'])
def test_a_model_file_error_names_its_line(setup, tmp_path, capsys, change, expected):
    """A model file whose code fails, loading or in create_model, is one line naming the
    file, the line and the error, exit status 2 (it was Python's traceback through train.py
    and importlib)."""
    model = tmp_path / 'bad.py'
    model.write_text(TINY_MODEL.replace(*change))
    assert train.main(['--model', str(model), '--data', setup[0], '--out',
                       str(tmp_path / 'run'), '--no-progress']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('train.py: error: ') and len(err.splitlines()) == 1, err
    assert re.search(expected, err), err
    assert not (tmp_path / 'run').exists()


def test_create_model_must_return_a_container(setup, tmp_path, capsys):
    """A create_model returning something else was an AttributeError traceback ('str' object
    has no attribute 'type')."""
    model = tmp_path / 'not_a_model.py'
    model.write_text(TINY_MODEL + "\n\ndef create_model(n_classes, conv=None):\n"
                                  "    return 'oops'\n")
    assert train.main(['--model', str(model), '--data', setup[0], '--out',
                       str(tmp_path / 'run'), '--no-progress']) == 2
    assert ("not_a_model.py: create_model must return an nn.Sequential (or another container)"
            " of modules, got 'oops'") in capsys.readouterr().err
    assert not (tmp_path / 'run').exists()


def test_a_model_that_does_not_fit_its_input_leaves_no_folder(setup, tmp_path, capsys,
                                                              monkeypatch):
    """A model whose layers do not fit fails at its first step, after the run folder was
    made: the folder, new and still empty, went on lying about a run that never was. (On a
    host whose memory can be read, the memory check's small batches find it first, before
    any folder is made.)"""
    model = tmp_path / 'misfit.py'
    model.write_text(TINY_MODEL.replace('nn.Linear(8 * 6 * 6,', 'nn.Linear(8 * 6 * 6 + 1,'))
    args = ['--model', str(model), '--data', setup[0], '--no-progress', '--workers', '1']
    message = 'module (8) nn.Linear.updateOutput: nn.Linear: input feature count must be 289'
    for memory_check in (True, False):
        if not memory_check:
            monkeypatch.setattr(train.backend, 'available_host_memory', lambda: None)
        assert train.main(args + ['--out', str(tmp_path / 'run')]) == 2
        err = capsys.readouterr().err
        assert message in err and '(16, 288)' in err, err
        assert not (tmp_path / 'run').exists()
    # a folder that was there before the run stays, and so does anything in it
    (tmp_path / 'mine').mkdir()
    (tmp_path / 'mine' / 'notes.txt').write_text('keep')
    assert train.main(args + ['--out', str(tmp_path / 'mine')]) == 2
    assert (tmp_path / 'mine' / 'notes.txt').read_text() == 'keep'
    (tmp_path / 'empty').mkdir()
    assert train.main(args + ['--out', str(tmp_path / 'empty')]) == 2
    assert (tmp_path / 'empty').is_dir()


def test_out_of_memory_and_a_file_for_a_folder_are_named(setup, tmp_path, capsys,
                                                          monkeypatch):
    """An array too large to allocate was a MemoryError traceback; ``--out`` naming a file
    said "cannot create it (File exists)"."""
    (tmp_path / 'afile').write_text('x')
    assert run(setup, '--out', str(tmp_path / 'afile')) == 2
    assert f'output folder {tmp_path / "afile"}: is a file; expected a folder' in \
        capsys.readouterr().err

    def too_large(*args, **kwargs):
        return np.empty((1 << 50,), np.float32)  # 4 PiB
    monkeypatch.setattr(train.trainer, 'train_epoch', too_large)
    assert run(setup, '--out', str(tmp_path / 'run')) == 2
    err = capsys.readouterr().err
    assert err.startswith('train.py: error: out of memory: Unable to allocate') and \
        err.rstrip().endswith('a smaller --batch-size needs less'), err
    assert not (tmp_path / 'run').exists()


def test_a_batch_too_large_for_the_memory_is_refused(setup, tmp_path, capsys, monkeypatch):
    """A batch whose step did not fit the memory ran until the kernel killed the process
    ('Killed', exit 137, nothing said: fashion_small at --batch-size 100000 grew to 24 GB):
    the step's memory, measured on small batches, is checked first."""
    spec = model_files.load(setup[1])
    fixed, per_sample = trainer.step_bytes(spec.create_model(4), nn.CrossEntropyCriterion(),
                                           spec.INPUT_SHAPE)
    assert per_sample > 0
    monkeypatch.setattr(train.backend, 'available_host_memory',
                        lambda: train._MEMORY_SLACK * (fixed + 100 * per_sample))
    assert run(setup, '--batch-size', '160', '--out', str(tmp_path / 'run')) == 2
    err = capsys.readouterr().err
    assert re.search(r'a training step at batch 160 needs about 0\.\d GiB \(\d\.\d MiB a '
                     r'sample, measured on small batches\), and 0\.0 GiB of memory are '
                     r'available: pass a --batch-size of at most \d+$', err.strip()), err
    assert not (tmp_path / 'run').exists()
    fits = int(err.strip().split()[-1])
    assert 80 <= fits < 100  # 100 fit, less a tenth
    assert run(setup, '--batch-size', str(fits), '--epochs', '1', '--out',
               str(tmp_path / 'fits')) == 0


def test_resume_with_nothing_left_to_train_says_so(setup, tmp_path, capsys):
    out = str(tmp_path / 'run')
    assert run(setup, '--epochs', '1', '--max-steps', '2', '--out', out) == 0
    ckpt = os.path.join(out, 'checkpoint.h5')
    before = open(ckpt, 'rb').read()
    capsys.readouterr()
    assert run(setup, '--epochs', '1', '--resume', ckpt) == 0
    said = capsys.readouterr().out
    assert 'nothing to train: the checkpoint holds epoch 1 and --epochs is 1' in said
    assert open(ckpt, 'rb').read() == before


def test_default_run_folder_is_named_after_the_model(setup, tmp_path, monkeypatch):
    """A model given as a path names its run folder by its file name, under runs/ (it used
    to be put beside the model file, named 'tiny_model.py-fft-...')."""
    monkeypatch.chdir(tmp_path)
    assert run(setup, '--epochs', '1', '--max-steps', '1') == 0
    folders = os.listdir(tmp_path / 'runs')
    assert len(folders) == 1 and folders[0].startswith('tiny_model-fft-'), folders


def test_model_files_build_with_both_convolutions():
    from minifft import nn
    for name in model_files.available():
        spec = model_files.load(name)
        for conv in (nn.SpatialConvolutionFFT, nn.SpatialConvolution):
            model = spec.create_model(10, conv=conv)
            convs = [m for m in model.listModules() if isinstance(m, (nn.SpatialConvolution,
                                                                     nn.SpatialConvolutionFFT))]
            assert convs and all(type(m) is conv for m in convs)
        if name != 'alexnet':  # alexnet's 224x224 forward is left to the benchmarks
            x = np.zeros((2,) + tuple(spec.INPUT_SHAPE), np.float32)
            assert model.evaluate().forward(x).shape == (2, 10)


@pytest.mark.parametrize('signum', ['SIGINT', 'SIGTERM'])
def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(setup, tmp_path, signum):
    """SIGTERM (a batch system's notice before the kill) too: it killed the run, the epoch in
    hand lost, without a word."""
    import signal
    import time
    signum = getattr(signal, signum)
    out = tmp_path / 'int'
    proc = subprocess.Popen([sys.executable, TRAIN, '--model', setup[1], '--data', setup[0],
                             '--epochs', '100000', '--no-progress', '--out', str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / 'log.csv').exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    assert 'interrupted during epoch' in err and 'Traceback' not in err
    meta = checkpoint.read_meta(str(out / 'checkpoint.h5'))
    assert meta['extra']['interrupted'] is True and meta['epoch'] >= 1
