"""Checkpoints in HDF5, written atomically (temporary file, fsync, rename).

Layout: ``params/<path>`` and ``buffers/<path>`` by module path (``'3.weight'``,
``'1.running_mean'``), ``optim/buffer_<i>`` for the momentum buffers, and JSON attributes for the
optimizer's scalars, the random state, the epoch, the arguments and the per-epoch history.
"""
import json
import os

import h5py

from . import backend, random
from .atomic import atomic_path


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or does not fit the model it is loaded into."""


def save(path, model, optimizer, epoch, args=None, history=None, extra=None):
    with atomic_path(path) as tmp, h5py.File(tmp, 'w') as f:
        for name, p, _ in model.named_parameters():
            f[f'params/{name}'] = backend.asnumpy(p)
        for name, b in model.named_buffers():
            f[f'buffers/{name}'] = backend.asnumpy(b)
        state = optimizer.state_dict()
        for i, b in enumerate(state.pop('buffers')):
            if b is not None:
                f[f'optim/buffer_{i}'] = b
        f.attrs['optim'] = json.dumps(state)
        f.attrs['n_params'] = len(model.named_parameters())
        f.attrs['epoch'] = int(epoch)
        f.attrs['rng'] = json.dumps(random.get_state())
        f.attrs['args'] = json.dumps(args or {})
        f.attrs['history'] = json.dumps(history or [])
        f.attrs['extra'] = json.dumps(extra or {})
    return path


def _open(path):
    if os.path.isdir(path):  # h5py's message would be a dump of its low-level fields
        raise CheckpointError(f'{path}: is a folder; expected a checkpoint file, such as '
                              f'{os.path.join(path, "checkpoint.h5")}')
    try:
        return h5py.File(path, 'r')
    except FileNotFoundError:
        raise CheckpointError(f'{path}: no such checkpoint') from None
    except OSError as e:
        raise CheckpointError(f'{path}: not a readable HDF5 checkpoint ({e})') from None


def read_meta(path):
    """epoch, args, history and extra of a checkpoint, without touching a model."""
    with _open(path) as f:
        try:
            return {k: (int(f.attrs[k]) if k == 'epoch' else json.loads(f.attrs[k]))
                    for k in ('epoch', 'args', 'history', 'extra')}
        except (KeyError, ValueError) as e:
            raise CheckpointError(f'{path}: not a minifft checkpoint (attribute {e})') from None


def load(path, model, optimizer=None):
    """Copy a checkpoint's arrays into ``model`` (and ``optimizer``) in place, restore the
    random state, and return its metadata (see :func:`read_meta`)."""
    meta = read_meta(path)
    with _open(path) as f:
        try:
            _load_arrays(f, path, model, optimizer)
            rng = json.loads(f.attrs['rng'])
        except KeyError as e:
            raise CheckpointError(f'{path}: incomplete checkpoint, {e}') from None
    random.set_state(rng)
    return meta


def _load_arrays(f, path, model, optimizer):
    for group, entries in (('params', [(n, p) for n, p, _ in model.named_parameters()]),
                           ('buffers', model.named_buffers())):
        stored = set(f[group].keys()) if group in f else set()
        wanted = {n for n, _ in entries}
        if stored != wanted:
            raise CheckpointError(
                f'{path}: {group} do not match the model: missing '
                f'{sorted(wanted - stored)}, unexpected {sorted(stored - wanted)}')
        for name, target in entries:
            value = f[f'{group}/{name}'][...]
            if value.shape != tuple(target.shape):
                raise CheckpointError(f'{path}: {group}/{name} has shape {value.shape}, the '
                                      f'model expects {tuple(target.shape)}')
            target[...] = backend.get_array_module(target).asarray(value)
    if optimizer is not None:
        state = json.loads(f.attrs['optim'])
        state['buffers'] = [f[f'optim/buffer_{i}'][...] if f'optim/buffer_{i}' in f else None
                            for i in range(int(f.attrs['n_params']))]
        try:
            optimizer.load_state_dict(state)
        except ValueError as e:
            raise CheckpointError(f'{path}: {e}') from None
