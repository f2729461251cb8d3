"""Run under mpirun by test_distributed.py: a few data-parallel steps through the real trainer,
then every rank's parameters are gathered on rank 0 and saved for the test to compare."""
import sys

import numpy as np

from minifft import data, distributed, nn, optim, random, trainer


def build(n_classes=4):
    random.manualSeed(0)
    return nn.Sequential(nn.SpatialConvolutionFFT(3, 6, 5, 5, 1, 1, 2, 2), nn.ReLU(),
                         nn.SpatialMaxPooling(2, 2, 2, 2), nn.View(-1), nn.Linear(6 * 6 * 6, 4))


def train(path, batch, epochs, comm, fail_rank=None):
    model = build()
    crit = nn.CrossEntropyCriterion()
    opt = optim.SGD(*model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    if comm.rank != 0:  # different starting weights: the broadcast must fix them
        for p in model.parameters()[0]:
            p += 1.0
    comm.broadcast_state(model, opt)
    loader = data.DataLoader(data.HDF5Dataset(path), batch, seed=3, workers=0, rank=comm.rank,
                             world=comm.world)
    for epoch in range(epochs):
        if fail_rank == comm.rank and epoch == 1:
            raise RuntimeError(f'rank {comm.rank} fails on purpose')
        loader.set_epoch(epoch)
        trainer.train_epoch(model, crit, opt, loader, epoch, progress=False, comm=comm)
    return np.concatenate([p.ravel() for p in model.parameters()[0]])


if __name__ == '__main__':
    path, out, fail = sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None
    comm = distributed.communicator(True)
    try:
        flat = train(path, 16, 3, comm, None if fail is None else int(fail))
    except Exception as e:
        comm.abort(f'{type(e).__name__}: {e}')
    gathered = comm.comm.gather(flat, root=0)
    if comm.is_main:
        np.save(out, np.stack(gathered))
