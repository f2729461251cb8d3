"""Datasets and the DataLoader: every prepare_data subcommand on small inputs made here, loader
determinism, sharding, augmentation, and the bad inputs."""
import errno
import gzip
import os
import pickle
import re
import struct
import subprocess
import sys

import h5py
import numpy as np
import pytest

from minifft import atomic, backend, data, datasets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREPARE = [sys.executable, os.path.join(ROOT, 'scripts', 'prepare_data.py')]


def write_idx(path, array):
    header = b'\0\0\x08' + bytes([array.ndim]) + struct.pack(f'>{array.ndim}I', *array.shape)
    with gzip.open(path, 'wb') as f:
        f.write(header + array.astype(np.uint8).tobytes())


def tiny_dataset(path, n=40, n_val=10, shape=(3, 8, 8), n_classes=5, seed=0):
    rng = np.random.default_rng(seed)

    def split(k):
        return k, [(rng.integers(0, 256, (k,) + shape).astype(np.uint8),
                    rng.integers(0, n_classes, k))]

    return datasets.write_dataset(str(path), {'train': split(n), 'val': split(n_val)},
                                  [f'c{i}' for i in range(n_classes)], 'test', shape)


def test_fashion_mnist_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    imgs = {s: rng.integers(0, 256, (n, 28, 28)) for s, n in (('train', 12), ('t10k', 5))}
    labs = {s: rng.integers(0, 10, len(imgs[s])) for s in imgs}
    for s in imgs:
        write_idx(tmp_path / f'{s}-images-idx3-ubyte.gz', imgs[s])
        write_idx(tmp_path / f'{s}-labels-idx1-ubyte.gz', labs[s])
    out = tmp_path / 'fm.h5'
    r = subprocess.run(PREPARE + ['fashion-mnist', str(tmp_path), '--out', str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ds = data.HDF5Dataset(out, 'train')
    x, y = ds.read(np.arange(12))
    assert x.shape == (12, 1, 28, 28) and np.array_equal(x[:, 0], imgs['train'])
    assert np.array_equal(y, labs['train']) and ds.n_classes == 10
    assert np.allclose(ds.mean, imgs['train'].mean()) and np.allclose(ds.std, imgs['train'].std())
    val = data.HDF5Dataset(out, 'val')
    assert np.array_equal(val.read(np.arange(5))[0][:, 0], imgs['t10k'])


def test_fashion_mnist_missing_files_say_how_to_get_them(tmp_path):
    r = subprocess.run(PREPARE + ['fashion-mnist', str(tmp_path), '--out', str(tmp_path / 'x.h5')],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert 'apt-get install dataset-fashion-mnist' in r.stderr
    assert not os.path.exists(tmp_path / 'x.h5')


def test_truncated_idx_file_is_named(tmp_path):
    """A truncated .gz (an interrupted download) was gzip's EOFError traceback."""
    for s, n in (('train', 12), ('t10k', 5)):
        write_idx(tmp_path / f'{s}-images-idx3-ubyte.gz', np.zeros((n, 28, 28)))
        write_idx(tmp_path / f'{s}-labels-idx1-ubyte.gz', np.zeros(n))
    whole = (tmp_path / 'train-images-idx3-ubyte.gz').read_bytes()
    (tmp_path / 'train-images-idx3-ubyte.gz').write_bytes(whole[:len(whole) // 2])
    r = subprocess.run(PREPARE + ['fashion-mnist', str(tmp_path), '--out', str(tmp_path / 'x.h5')],
                       capture_output=True, text=True)
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr
    assert 'train-images-idx3-ubyte.gz: cannot be decompressed' in r.stderr
    assert not os.path.exists(tmp_path / 'x.h5')


@pytest.mark.parametrize('args, message', [
    (['synthetic', '--train', '0'], "argument --train: must be a whole number >= 1, got '0'"),
    (['synthetic', '--val', '-1'], "argument --val: must be a whole number >= 1, got '-1'"),
    (['synthetic', '--seed', '-1'], "argument --seed: must be a whole number >= 0, got '-1'"),
    (['imagefolder', '.', '--size', '0'], "argument --size: must be a whole number >= 1")])
def test_bad_counts_are_named_before_any_work(tmp_path, args, message):
    """--val 0 used to end in h5py's chunk-shape error after all the training images were
    made, and --seed -1 in 'expected non-negative integer', naming no flag."""
    r = subprocess.run(PREPARE + args + ['--out', str(tmp_path / 'x.h5')], capture_output=True,
                       text=True)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not os.path.exists(tmp_path / 'x.h5')


def test_imagefolder_round_trip_skips_unreadable(tmp_path):
    Image = pytest.importorskip('PIL.Image')
    rng = np.random.default_rng(1)
    for split, n in (('train', 3), ('val', 1)):
        for c in ('cat', 'dog'):
            folder = tmp_path / 'tree' / split / c
            folder.mkdir(parents=True)
            for i in range(n):
                arr = rng.integers(0, 256, (20, 30, 3)).astype(np.uint8)
                Image.fromarray(arr).save(folder / f'{i}.png')
    (tmp_path / 'tree' / 'train' / 'cat' / 'broken.jpeg').write_bytes(b'not an image')
    out = tmp_path / 'f.h5'
    r = subprocess.run(PREPARE + ['imagefolder', str(tmp_path / 'tree'), '--size', '16',
                                  '--workers', '2', '--out', str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert 'broken.jpeg' in r.stdout and '1 unreadable images skipped' in r.stdout
    ds = data.HDF5Dataset(out, 'train')
    assert len(ds) == 6 and ds.image_shape == (3, 16, 16) and ds.class_names == ['cat', 'dog']
    assert sorted(ds.labels.tolist()) == [0, 0, 0, 1, 1, 1]
    assert len(data.HDF5Dataset(out, 'val')) == 2


def test_imagefolder_without_images_says_which_layout(tmp_path):
    """A tree without val/ was reported as 'val: no readable images', as if images were
    there but broken; a root without train/ as Python's '[Errno 2] No such file'."""
    Image = pytest.importorskip('PIL.Image')
    (tmp_path / 'tree' / 'train' / 'a').mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / 'tree' / 'train' / 'a' / '0.png')
    for root, message in ((tmp_path / 'tree', 'val: no image files with the extensions'),
                          (tmp_path / 'none', 'none/train: no class folders (expected')):
        r = subprocess.run(PREPARE + ['imagefolder', str(root), '--size', '4', '--out',
                                      str(tmp_path / 'o.h5')], capture_output=True, text=True)
        assert r.returncode == 2 and message in r.stderr and 'Traceback' not in r.stderr, \
            r.stderr
        assert '/train/<class>/*.JPEG and ' in r.stderr
    (tmp_path / 'tree' / 'val' / 'a').mkdir(parents=True)
    (tmp_path / 'tree' / 'val' / 'a' / 'x.jpg').write_bytes(b'junk')
    r = subprocess.run(PREPARE + ['imagefolder', str(tmp_path / 'tree'), '--size', '4', '--out',
                                  str(tmp_path / 'o.h5')], capture_output=True, text=True)
    assert 'val: none of its 1 images could be read' in r.stderr
    assert not (tmp_path / 'o.h5').exists()


def test_imagefolder_names_val_classes_that_train_lacks(tmp_path):
    """val/bird/ beside train's cat/ and dog/ was left out of the dataset without a word (its
    images never scored)."""
    Image = pytest.importorskip('PIL.Image')
    for folder in ('train/cat', 'train/dog', 'val/cat', 'val/bird'):
        (tmp_path / 'tree' / folder).mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / 'tree' / folder / '0.png')
    r = subprocess.run(PREPARE + ['imagefolder', str(tmp_path / 'tree'), '--size', '4', '--out',
                                  str(tmp_path / 'o.h5')], capture_output=True, text=True)
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr
    assert ("val: class folders that train/ does not have: bird (the classes are the folders "
            f"of {tmp_path / 'tree' / 'train'})") in r.stderr
    assert not (tmp_path / 'o.h5').exists()


def test_imagenet_downsampled_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    side = 8
    made = {}
    for name, n in (('train_data_batch_1', 5), ('train_data_batch_2', 4), ('val_data', 3)):
        d = {'data': rng.integers(0, 256, (n, 3 * side * side)).astype(np.uint8),
             'labels': list(rng.integers(1, 1001, n))}
        made[name] = d
        with open(tmp_path / name, 'wb') as f:
            pickle.dump(d, f)
    out = tmp_path / 'd.h5'
    r = subprocess.run(PREPARE + ['imagenet-downsampled', str(tmp_path), '--out', str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ds = data.HDF5Dataset(out, 'train')
    x, y = ds.read(np.arange(9))
    expected = np.concatenate([made['train_data_batch_1']['data'],
                               made['train_data_batch_2']['data']]).reshape(9, 3, side, side)
    assert np.array_equal(x, expected) and ds.n_classes == 1000
    labels = made['train_data_batch_1']['labels'] + made['train_data_batch_2']['labels']
    assert np.array_equal(y, np.array(labels) - 1)


def test_no_progress_quiets_every_bar(tmp_path):
    """prepare_data.py drew its bars into logs with no way to turn them off."""
    d = {'data': np.zeros((2, 3 * 8 * 8), np.uint8), 'labels': [1, 2]}
    for name in ('train_data_batch_1', 'val_data'):
        (tmp_path / name).write_bytes(pickle.dumps(d))
    runs = {'imagenet-downsampled': [str(tmp_path)], 'synthetic': ['--train', '8', '--val', '2']}
    for command, args in runs.items():
        for quiet in (False, True):
            out = tmp_path / f'{command}{quiet}.h5'
            r = subprocess.run(PREPARE + [command, *args, '--out', str(out)]
                               + ['--no-progress'] * quiet, capture_output=True, text=True)
            assert r.returncode == 0 and out.exists(), r.stderr
            assert ('100%|' in r.stderr) != quiet, (command, quiet, r.stderr)


@pytest.mark.parametrize('damage, message', [
    (lambda b: b[:len(b) // 2], 'train_data_batch_2: not a readable pickle'),
    (lambda b: pickle.dumps(3), 'train_data_batch_2: expected a dict with "data"')])
def test_imagenet_downsampled_damaged_pickle_is_named(tmp_path, damage, message):
    """A truncated pickle was pickle's UnpicklingError traceback, a number a TypeError."""
    for name in ('train_data_batch_1', 'train_data_batch_2', 'val_data'):
        d = {'data': np.zeros((2, 3 * 8 * 8), np.uint8), 'labels': [1, 2]}
        (tmp_path / name).write_bytes(pickle.dumps(d))
    path = tmp_path / 'train_data_batch_2'
    path.write_bytes(damage(path.read_bytes()))
    r = subprocess.run(PREPARE + ['imagenet-downsampled', str(tmp_path), '--out',
                                  str(tmp_path / 'd.h5')], capture_output=True, text=True)
    assert r.returncode == 2 and message in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert not (tmp_path / 'd.h5').exists()


def test_synthetic_is_deterministic_and_well_formed(tmp_path):
    a = datasets.prepare_synthetic(str(tmp_path / 'a.h5'), seed=3, n_train=64, n_val=16)
    b = datasets.prepare_synthetic(str(tmp_path / 'b.h5'), seed=3, n_train=64, n_val=16)
    da, db = data.HDF5Dataset(a), data.HDF5Dataset(b)
    assert np.array_equal(da.read(np.arange(64))[0], db.read(np.arange(64))[0])
    assert da.image_shape == (3, 64, 64) and da.n_classes == 32
    with h5py.File(a) as f:
        assert f['train/images'].chunks[1:] == (3, 64, 64)
        chunk_bytes = np.prod(f['train/images'].chunks)
        assert 10 * 1024 <= chunk_bytes <= 1024 * 1024


def test_read_returns_requested_order_with_repeats(tmp_path):
    ds = data.HDF5Dataset(tiny_dataset(tmp_path / 't.h5'))
    idx = np.array([7, 3, 7, 0, 39])
    x, y = ds.read(idx)
    with h5py.File(ds.path) as f:
        full = f['train/images'][...]
    assert np.array_equal(x, full[idx]) and np.array_equal(y, ds.labels[idx])


def test_read_out_of_range_is_named(tmp_path):
    """An index past the end (or negative) was a broadcast error out of the read loop."""
    ds = data.HDF5Dataset(tiny_dataset(tmp_path / 't.h5'))
    for idx in ([3, 40], [-1, 2]):
        with pytest.raises(IndexError, match=r't.h5: train holds samples 0..39, asked for'):
            ds.read(np.array(idx))


@pytest.mark.parametrize('kwargs, message', [
    ({'batch_size': 4.5}, 'batch_size must be a whole number >= 1, got 4.5'),
    ({'batch_size': 0}, 'batch_size must be a whole number >= 1, got 0'),
    ({'workers': -1}, 'workers must be a whole number >= 0, got -1'),
    ({'crop_pad': -2}, 'crop_pad must be a whole number >= 0, got -2'),
    ({'rank': 2, 'world': 2}, r'rank must be in [0, world=2), got 2')])
def test_loader_bad_arguments(tmp_path, kwargs, message):
    """A batch size of 4.5 was taken as 4 and workers=-1 as a pool of no threads."""
    ds = data.HDF5Dataset(tiny_dataset(tmp_path / 't.h5'))
    with pytest.raises(ValueError, match=re.escape(f'DataLoader: {message}')):
        data.DataLoader(ds, **{'batch_size': 4, **kwargs})


def test_loader_device_is_checked(tmp_path):
    """device='tpu' was accepted, and device='gpu' without a GPU failed at the first batch
    with "'NoneType' object has no attribute 'cuda'"."""
    ds = data.HDF5Dataset(tiny_dataset(tmp_path / 't.h5'))
    with pytest.raises(ValueError, match="device must be one of"):
        data.DataLoader(ds, 4, device='tpu')
    assert data.DataLoader(ds, 4, device='auto').device == backend.resolve_device('auto')
    if not backend.gpu_available():
        with pytest.raises(RuntimeError, match='gpu was asked for, but'):
            data.DataLoader(ds, 4, device='gpu')


def test_loader_batches_are_normalised_and_typed(tmp_path):
    ds = data.HDF5Dataset(tiny_dataset(tmp_path / 't.h5', n=400))
    batches = list(data.DataLoader(ds, 64, shuffle=False, workers=0))
    assert len(batches) == 7 and batches[-1][0].shape == (16, 3, 8, 8)
    x, y = batches[0]
    assert x.dtype == np.float32 and y.dtype == np.int64
    allx = np.concatenate([b[0] for b in batches])
    assert np.allclose(allx.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    assert np.allclose(allx.std(axis=(0, 2, 3)), 1, atol=1e-3)
    assert len(data.DataLoader(ds, 64, drop_last=True)) == 6


def test_loader_is_reproducible_and_independent_of_workers(tmp_path):
    ds = data.HDF5Dataset(tiny_dataset(tmp_path / 't.h5', n=100))

    def run(workers, epoch):
        loader = data.DataLoader(ds, 16, seed=5, augment=True, workers=workers)
        loader.set_epoch(epoch)
        return [(x.copy(), y.copy()) for x, y in loader]

    a, b, c = run(0, 1), run(3, 1), run(2, 2)
    assert all(np.array_equal(p[0], q[0]) and np.array_equal(p[1], q[1]) for p, q in zip(a, b))
    assert not np.array_equal(a[0][1], c[0][1])  # a new epoch reshuffles


@pytest.mark.gpu
@pytest.mark.parametrize('workers', [0, 2])
def test_gpu_loader_uploads_through_pinned_buffers(tmp_path, workers):
    """On the GPU, batches come through pinned staging buffers on a copy stream of their own:
    every batch, kept while later ones arrive (the buffers are reused), equals the CPU's."""
    if not backend.gpu_available():
        pytest.skip(backend.gpu_unavailable_reason())
    ds = data.HDF5Dataset(tiny_dataset(tmp_path / 't.h5', n=100))
    cpu = list(data.DataLoader(ds, 16, seed=3, augment=True, workers=workers))
    gpu = list(data.DataLoader(ds, 16, seed=3, augment=True, workers=workers, device='gpu'))
    assert len(gpu) == len(cpu)
    for (x, y), (gx, gy) in zip(cpu, gpu):
        assert backend.is_gpu_array(gx) and backend.is_gpu_array(gy)
        assert np.array_equal(backend.asnumpy(gx), x) and np.array_equal(backend.asnumpy(gy), y)


def test_early_break_leaves_no_thread_running(tmp_path):
    import threading
    ds = data.HDF5Dataset(tiny_dataset(tmp_path / 't.h5', n=200))
    for x, y in data.DataLoader(ds, 8, workers=2):
        break
    del x, y
    import gc
    gc.collect()
    assert not [t for t in threading.enumerate() if t.name.startswith('minifft-loader')]


def test_shards_are_disjoint_and_cover(tmp_path):
    ds = data.HDF5Dataset(tiny_dataset(tmp_path / 't.h5', n=103))
    world = 3
    shards = [data.DataLoader(ds, 10, seed=1, rank=r, world=world).indices(4)
              for r in range(world)]
    assert all(len(s) == 34 for s in shards)
    together = np.concatenate(shards)
    assert len(np.unique(together)) == len(together) == 102
    loaders = [data.DataLoader(ds, 10, rank=r, world=world) for r in range(world)]
    assert len({len(loader) for loader in loaders}) == 1
    with pytest.raises(ValueError, match='rank'):
        data.DataLoader(ds, 10, rank=3, world=3)


def test_augmentation_crops_and_flips(tmp_path):
    ds = data.HDF5Dataset(tiny_dataset(tmp_path / 't.h5', n=64))
    plain = data.DataLoader(ds, 64, shuffle=False, workers=0)
    aug = data.DataLoader(ds, 64, shuffle=False, workers=0, augment=True, crop_pad=2)
    (x, _), = list(plain)
    (xa, _), = list(aug)
    assert xa.shape == x.shape and not np.allclose(xa, x)
    # every augmented image is a shifted (and maybe mirrored) copy of its source
    pad_value = -ds.mean / ds.std
    for i in range(8):
        src = np.pad(x[i], ((0, 0), (2, 2), (2, 2)))
        src += (pad_value.reshape(3, 1, 1) * (np.pad(np.ones_like(x[i]), ((0, 0), (2, 2), (2, 2)))
                                              == 0))
        found = any(np.allclose(c, xa[i], atol=1e-5)
                    for dy in range(5) for dx in range(5)
                    for c in (src[:, dy:dy + 8, dx:dx + 8], src[:, dy:dy + 8, dx:dx + 8][:, :, ::-1]))
        assert found, i


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='no such dataset file.*prepare_data'):
        data.HDF5Dataset(tmp_path / 'missing.h5')
    (tmp_path / 'junk.h5').write_bytes(b'hello')
    with pytest.raises(data.DatasetError, match='junk.h5: not a readable HDF5 file'):
        data.HDF5Dataset(tmp_path / 'junk.h5')
    path = tiny_dataset(tmp_path / 'ok.h5')
    with h5py.File(path, 'a') as f:
        del f['val/labels']
    with pytest.raises(data.DatasetError, match='ok.h5: val/labels: missing'):
        data.HDF5Dataset(path, 'val')
    path = tiny_dataset(tmp_path / 'len.h5')
    with h5py.File(path, 'a') as f:
        del f['train/labels']
        f['train/labels'] = np.zeros(3, np.int64)
    with pytest.raises(data.DatasetError, match='len.h5: train/labels: 3 labels for 40 images'):
        data.HDF5Dataset(path)
    path = tiny_dataset(tmp_path / 'range.h5')
    with h5py.File(path, 'a') as f:
        f['train/labels'][0] = 9
    with pytest.raises(data.DatasetError, match=r'labels must be in \[0, 5\)'):
        data.HDF5Dataset(path)


def test_interrupted_write_leaves_nothing(tmp_path):
    out = tmp_path / 'never.h5'

    def blocks():
        yield np.zeros((2, 1, 4, 4), np.uint8), np.zeros(2, np.int64)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        datasets.write_dataset(str(out), {'train': (4, blocks())}, ['a'], 'x', (1, 4, 4))
    assert os.listdir(tmp_path) == []


def test_writing_over_a_folder_is_refused_before_writing(tmp_path):
    """A folder given as the file to write was found only at the final rename, after the
    whole dataset (or checkpoint) had been written beside it."""
    (tmp_path / 'out').mkdir()
    written = []

    def blocks():
        written.append(1)
        yield np.zeros((2, 1, 4, 4), np.uint8), np.zeros(2, np.int64)

    with pytest.raises(IsADirectoryError, match='out is a folder; expected a file name'):
        datasets.write_dataset(str(tmp_path / 'out'), {'train': (2, blocks())}, ['a'], 'x',
                               (1, 4, 4))
    assert written == [] and os.listdir(tmp_path) == ['out']


def test_a_folder_that_takes_no_new_file_is_named(tmp_path, monkeypatch):
    """Where no temporary file could be made beside the output (a full disk, a folder of
    /proc), the error named that temporary file, 'out.h5.w9j1o99l.partial'."""
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, 'No space left on device',
                      str(tmp_path / 'out.h5.w9j1o99l.partial'))
    monkeypatch.setattr(atomic.tempfile, 'mkstemp', full)
    with pytest.raises(OSError, match=r'^\[Errno 28\] cannot write .*out\.h5: no file can be '
                                      r'made in its folder \(No space left on device\)$'):
        datasets.write_dataset(str(tmp_path / 'out.h5'), {'train': (0, iter([]))}, ['a'], 'x',
                               (1, 4, 4))
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(datasets.fashion_mnist_default_dir() is None,
                    reason='dataset-fashion-mnist is not installed')
def test_real_fashion_mnist(tmp_path):
    out = datasets.prepare_fashion_mnist(str(tmp_path / 'fm.h5'))
    train, val = data.HDF5Dataset(out, 'train'), data.HDF5Dataset(out, 'val')
    assert len(train) == 60000 and len(val) == 10000 and train.image_shape == (1, 28, 28)
    assert np.bincount(train.labels).tolist() == [6000] * 10
    assert 70 < train.mean[0] < 75  # the published mean pixel, 0.286 * 255


def test_synthetic_defeats_a_linear_classifier(tmp_path):
    """The embedded default needs spatial filters: softmax regression on raw pixels stays near
    chance (1/32). (A small convnet reaches far above it: see the main job's log.)"""
    from minifft import nn, optim
    path = datasets.prepare_synthetic(str(tmp_path / 's.h5'), seed=1, n_train=3000, n_val=600)
    train, val = data.HDF5Dataset(path, 'train'), data.HDF5Dataset(path, 'val')
    model = nn.Sequential(nn.View(-1), nn.Linear(3 * 64 * 64, 32))
    crit = nn.CrossEntropyCriterion()
    opt = optim.SGD(*model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-3)
    loader = data.DataLoader(train, 100, seed=0, workers=0)
    for epoch in range(8):
        loader.set_epoch(epoch)
        for x, y in loader:
            out = model.forward(x)
            crit.forward(out, y)
            model.zeroGradParameters()
            model.backward(x, crit.backward(out, y))
            opt.step()
    x, y = next(iter(data.DataLoader(val, 600, shuffle=False, workers=0)))
    train_x, train_y = next(iter(data.DataLoader(train, 3000, shuffle=False, workers=0)))
    val_acc = (model.forward(x).argmax(1) == y).mean()
    train_acc = (model.forward(train_x).argmax(1) == train_y).mean()
    print(f'linear classifier: train {train_acc:.3f}, val {val_acc:.3f} (chance 0.031)')
    assert train_acc > 0.3  # it does fit its training set...
    assert val_acc < 0.25   # ...but carries little over (measured 0.06-0.16; the convnet: > 0.9)
