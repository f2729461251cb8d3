"""Datasets in HDF5 (layout in data/README.md) and the DataLoader that feeds training.

``HDF5Dataset`` opens its file lazily, so an instance can be handed to worker threads or
processes before any handle exists. ``DataLoader`` builds each batch with one sorted read,
augments and normalises it, and prepares the next batches in background threads while the
model trains; every random choice comes from ``(seed, epoch, batch)``, so the batches are the
same whatever the number of workers.
"""
import collections
import os
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np

from . import backend
from .checks import whole_number

SPLITS = ('train', 'val')


class DatasetError(ValueError):
    """A dataset file that is missing, unreadable or not in the expected layout."""


class HDF5Dataset:
    def __init__(self, path, split='train'):
        if split not in SPLITS:
            raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
        self.path, self.split = os.fspath(path), split
        self._file = None
        with self._open_checked() as f:
            group = f[split]
            self.images_shape = tuple(group['images'].shape)
            self.labels = group['labels'][...].astype(np.int64)
            attrs = dict(f.attrs)
        self.class_names = [str(c) for c in attrs['class_names']]
        self.n_classes = len(self.class_names)
        self.mean = np.asarray(attrs['mean'], np.float32)
        self.std = np.asarray(attrs['std'], np.float32)
        self.source = str(attrs.get('source', ''))
        self._validate()

    def _fail(self, key, message):
        raise DatasetError(f'{self.path}: {key}: {message}')

    def _open_checked(self):
        if not os.path.exists(self.path):
            raise FileNotFoundError(f'{self.path}: no such dataset file; make one with '
                                    '`python scripts/prepare_data.py --help`')
        try:
            f = h5py.File(self.path, 'r')
        except OSError as e:
            raise DatasetError(f'{self.path}: not a readable HDF5 file ({e})') from None
        for key in (f'{self.split}/images', f'{self.split}/labels'):
            if key not in f:
                f.close()
                self._fail(key, 'missing (expected train/images, train/labels, val/images, '
                           'val/labels; see data/README.md)')
        for key in ('class_names', 'mean', 'std'):
            if key not in f.attrs:
                f.close()
                self._fail(f'attribute {key}', 'missing (see data/README.md)')
        return f

    def _validate(self):
        key = f'{self.split}/images'
        if len(self.images_shape) != 4:
            self._fail(key, f'expected uint8 (N, C, H, W), got shape {self.images_shape}')
        if self.images_shape[0] != self.labels.shape[0]:
            self._fail(f'{self.split}/labels', f'{self.labels.shape[0]} labels for '
                       f'{self.images_shape[0]} images')
        if self.labels.size and (self.labels.min() < 0 or self.labels.max() >= self.n_classes):
            self._fail(f'{self.split}/labels', f'labels must be in [0, {self.n_classes}), got '
                       f'[{self.labels.min()}, {self.labels.max()}]')
        C = self.images_shape[1]
        if self.mean.shape != (C,) or self.std.shape != (C,):
            self._fail('attributes mean/std', f'expected {C} values each, got '
                       f'{self.mean.shape} and {self.std.shape}')

    @property
    def image_shape(self):
        return self.images_shape[1:]

    def __len__(self):
        return self.images_shape[0]

    def read(self, indices):
        """uint8 images and int64 labels at ``indices`` (any order, repeats allowed).

        The file is read in ascending order, one slice per run of consecutive indices: h5py's
        one-call fancy selection of a random batch was measured 100x slower than these slice
        reads (it builds the selection element by element)."""
        indices = np.asarray(indices, np.int64)
        if indices.size and not (0 <= indices.min() and indices.max() < len(self)):
            raise IndexError(f'{self.path}: {self.split} holds samples 0..{len(self) - 1}, '
                             f'asked for {indices.min()}..{indices.max()}')
        if self._file is None:  # opened on first use, in whichever process uses it
            self._file = self._open_checked()
        dset = self._file[self.split]['images']
        unique, inverse = np.unique(indices, return_inverse=True)
        block = np.empty((unique.size,) + tuple(dset.shape[1:]), np.uint8)
        breaks = np.flatnonzero(np.diff(unique) != 1) + 1
        for start, stop in zip(np.r_[0, breaks], np.r_[breaks, unique.size]):
            block[start:stop] = dset[unique[start]:unique[stop - 1] + 1]
        return block[inverse.reshape(-1)], self.labels[indices]

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state['_file'] = None
        return state


class DataLoader:
    """Batches of ``(images, labels)``: float32 ``(B, C, H, W)`` normalised by the dataset's
    per-channel mean/std, and int64 ``(B,)``, on ``device``.

    ``augment`` adds a random crop from the image padded by ``crop_pad`` pixels and a random
    horizontal flip. ``rank``/``world`` give each distributed process a disjoint shard of every
    epoch's order: the epoch's permutation is cut to a multiple of ``world`` (a different few
    samples are left out each epoch) and rank r takes every world-th sample from r, so all
    ranks see the same number of batches. ``workers=0`` builds batches synchronously.
    """

    def __init__(self, dataset, batch_size, shuffle=True, seed=0, drop_last=False,
                 augment=False, workers=2, device='cpu', rank=0, world=1, crop_pad=4):
        for name, value, low in (('batch_size', batch_size, 1), ('workers', workers, 0),
                                 ('world', world, 1), ('rank', rank, 0),
                                 ('crop_pad', crop_pad, 0)):
            if whole_number(value, low) is None:
                raise ValueError(f'DataLoader: {name} must be a whole number >= {low}, '
                                 f'got {value!r}')
        if not rank < world:
            raise ValueError(f'DataLoader: rank must be in [0, world={world}), got {rank}')
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.augment, self.crop_pad, self.workers = augment, int(crop_pad), int(workers)
        # 'auto' as the scripts take it; a missing GPU said here, not as an AttributeError of
        # the uploader at the first batch
        self.device = backend.resolve_device(device)
        self.rank, self.world = int(rank), int(world)
        self.epoch = 0
        C = dataset.image_shape[0]
        self._mean = (dataset.mean / 255.0).reshape(1, C, 1, 1).astype(np.float32)
        self._inv_std = (255.0 / np.maximum(dataset.std, 1e-6)).reshape(1, C, 1, 1).astype(
            np.float32)

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def indices(self, epoch=None):
        """This rank's sample indices for an epoch, in order."""
        epoch = self.epoch if epoch is None else epoch
        n = len(self.dataset)
        order = (np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle
                 else np.arange(n))
        order = order[:n - n % self.world]
        return order[self.rank::self.world]

    def __len__(self):
        n = (len(self.dataset) - len(self.dataset) % self.world) // self.world
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _batch(self, epoch, number, idx):
        images, labels = self.dataset.read(idx)
        x = images.astype(np.float32) * np.float32(1 / 255.0)
        if self.augment:
            x = self._augmented(x, np.random.default_rng([self.seed, epoch, number, 1]))
        x -= self._mean
        x *= self._inv_std
        return x, labels

    def _augmented(self, x, rng):
        B, C, H, W = x.shape
        p = self.crop_pad
        padded = np.zeros((B, C, H + 2 * p, W + 2 * p), np.float32)
        padded[:, :, p:p + H, p:p + W] = x
        dy, dx = rng.integers(0, 2 * p + 1, B), rng.integers(0, 2 * p + 1, B)
        flip = rng.random(B) < 0.5
        out = np.empty_like(x)
        for i in range(B):
            crop = padded[i, :, dy[i]:dy[i] + H, dx[i]:dx[i] + W]
            out[i] = crop[:, :, ::-1] if flip[i] else crop
        return out

    def __iter__(self):
        epoch = self.epoch
        order = self.indices(epoch)
        starts = range(0, len(order), self.batch_size)
        jobs = [(n, order[s:s + self.batch_size]) for n, s in enumerate(starts)]
        if self.drop_last and jobs and len(jobs[-1][1]) < self.batch_size:
            jobs.pop()
        # on a GPU: pinned staging and copies on a stream of their own (backend.Uploader)
        to_device = (lambda b: b) if self.device == 'cpu' else backend.Uploader()
        if self.workers == 0:
            for n, idx in jobs:
                yield to_device(self._batch(epoch, n, idx))
            return
        with ThreadPoolExecutor(self.workers, thread_name_prefix='minifft-loader') as pool:
            pending = collections.deque()
            jobs = iter(jobs)
            try:
                for n, idx in jobs:
                    pending.append(pool.submit(self._batch, epoch, n, idx))
                    if len(pending) > 2 * self.workers:
                        yield to_device(pending.popleft().result())
                while pending:
                    yield to_device(pending.popleft().result())
            finally:  # an early break: drop the batches not yet started
                for f in pending:
                    f.cancel()
